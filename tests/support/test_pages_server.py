"""Checks the local test web site (tests/support/pages_server.py) with plain urllib.

The browser tests trust these routes to misbehave in exactly the documented way, so each one is
pinned here without a browser.
"""

from __future__ import annotations

import http.client
import json
import re
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

import pytest

from tests.support.pages_server import (
    ALERT_MESSAGE,
    ARABIC_1256_PATH,
    ARABIC_1256_TEXT,
    ARABIC_1256_TITLE,
    CHANGING_PAGES,
    CHANGING_PATH,
    CONFIRM_MESSAGE,
    DOWNLOAD_FILENAME,
    DOWNLOAD_PAGE_PATH,
    DOWNLOAD_PATH,
    DOWNLOAD_POPUP_PATH,
    DUPLICATE_HEADERS_PATH,
    DUPLICATE_LINKS,
    DUPLICATE_SET_COOKIES,
    INFINITE_ITEM_TEXT,
    INFINITE_ITEMS_PER_PAGE,
    INFINITE_PATH,
    LATIN_8859_1_PATH,
    LATIN_8859_1_TEXT,
    LATIN_8859_1_TITLE,
    LAZY_FIRST_IMAGE_TOP,
    LAZY_IMAGE_COUNT,
    LAZY_PATH,
    PAGES_DIR,
    PDF_BYTES,
    POPUP_TARGET_PATH,
    POPUP_TARGET_TITLE,
    REDIRECT_CHAIN,
    REDIRECT_END_TITLE,
    REDIRECT_STATUSES,
    RTL_ARABIC_TEXT,
    RTL_PATH,
    RTL_PERSIAN_TEXT,
    SIMPLE_PATH,
    SIMPLE_RESOURCES,
    SIMPLE_SCRIPT_TEXT,
    SIMPLE_TEXT,
    SIMPLE_TITLE,
    TIGRINYA_TEXT,
    UNAVAILABLE_MESSAGE,
    UNAVAILABLE_PATH,
    VANISHING_PATH,
    VANISHING_TEXT,
    VIDEO_BYTES,
    VIDEO_MEDIA_TYPE,
    PagesServer,
    changing_image_bytes,
    image_bytes,
    image_colour,
    lazy_image_paths,
)


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: Message
    body: bytes


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Redirects are followed by hand so every hop can be checked.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Fetched:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=5) as response:
            return Fetched(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Fetched(error.code, error.headers, error.read())


def first_pixel(png: bytes) -> tuple[int, int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, colour_type = struct.unpack(">IIBB", png[16:26])
    assert (depth, colour_type) == (8, 2)
    idat_length = struct.unpack(">I", png[33:37])[0]
    assert png[37:41] == b"IDAT"
    raw = zlib.decompress(png[41 : 41 + idat_length])
    assert len(raw) == height * (1 + 3 * width)
    return raw[1], raw[2], raw[3]


@pytest.fixture(scope="module")
def server() -> Iterator[PagesServer]:
    with PagesServer() as running:
        yield running


@pytest.fixture
def pages(server: PagesServer) -> Iterator[PagesServer]:
    server.reset()
    yield server
    server.reset()


def test_addresses(pages: PagesServer) -> None:
    assert pages.base == f"http://127.0.0.1:{pages.port}"
    assert pages.url("/a?b=1") == pages.base + "/a?b=1"
    assert pages.url("a") == pages.base + "/a"
    assert pages.url_for_host("localhost", "/x") == f"http://localhost:{pages.port}/x"


def test_simple_page_and_its_resources(pages: PagesServer) -> None:
    page = fetch(pages.url(SIMPLE_PATH))
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    markup = page.body.decode()
    assert f"<title>{SIMPLE_TITLE}</title>" in markup
    assert SIMPLE_TEXT in markup
    for path in SIMPLE_RESOURCES:
        assert f'"{path}"' in markup
    assert SIMPLE_SCRIPT_TEXT in fetch(pages.url("/script.js")).body.decode()

    expected_types = {
        "/style.css": "text/css; charset=utf-8",
        "/script.js": "text/javascript; charset=utf-8",
        "/img/simple-photo.png": "image/png",
        "/media/clip.webm": VIDEO_MEDIA_TYPE,
        "/favicon.ico": "image/x-icon",
    }
    for path, media_type in expected_types.items():
        resource = fetch(pages.url(path))
        assert (resource.status, resource.headers["Content-Type"]) == (200, media_type), path
    assert fetch(pages.url("/media/clip.webm")).body == VIDEO_BYTES
    favicon = fetch(pages.url("/favicon.ico")).body
    assert favicon[:6] == b"\x00\x00\x01\x00\x01\x00"
    assert favicon[22:30] == b"\x89PNG\r\n\x1a\n"
    assert fetch(pages.url("/")).body == (PAGES_DIR / "index.html").read_bytes()


def test_static_files_stay_inside_the_pages_directory(pages: PagesServer) -> None:
    assert fetch(pages.url("/%2e%2e/conftest.py")).status == 404
    assert fetch(pages.url("/..%2fsupport/pages_server.py")).status == 404
    assert fetch(pages.url("/no-such-page.html")).status == 404


def test_generated_images_are_distinct_and_deterministic(pages: PagesServer) -> None:
    bodies = set()
    for path in lazy_image_paths():
        body = fetch(pages.url(path)).body
        name = path.removeprefix("/img/").removesuffix(".png")
        assert body == image_bytes(name)
        assert first_pixel(body) == image_colour(name)
        bodies.add(body)
    assert len(bodies) == 2 * LAZY_IMAGE_COUNT


def test_redirect_chain_followed_by_hand(pages: PagesServer) -> None:
    url = pages.url(REDIRECT_CHAIN[0])
    hops: list[tuple[str, int]] = []
    for _ in range(5):
        response = fetch(url)
        hops.append((urlsplit(url).path, response.status))
        if response.status not in (301, 302):
            break
        url = urljoin(url, response.headers["Location"])
    assert hops == list(zip(REDIRECT_CHAIN, (*REDIRECT_STATUSES, 200), strict=True))
    assert f"<title>{REDIRECT_END_TITLE}</title>" in response.body.decode()


def test_relative_other_host_and_arbitrary_redirects(pages: PagesServer) -> None:
    relative = fetch(pages.url("/redirect/relative"))
    assert (relative.status, relative.headers["Location"]) == (302, "end")
    assert urljoin(pages.url("/redirect/relative"), "end") == pages.url("/redirect/end")

    other = fetch(pages.url("/redirect/other-host"))
    assert other.headers["Location"] == f"http://localhost:{pages.port}/redirect/end"

    loop = fetch(pages.url("/redirect/loop"))
    assert loop.headers["Location"] == "/redirect/loop"

    metadata = "http://169.254.169.254/latest/meta-data/"
    anywhere = fetch(pages.url(f"/redirect/to?status=307&location={metadata}"))
    assert (anywhere.status, anywhere.headers["Location"]) == (307, metadata)
    assert fetch(pages.url("/redirect/to?location=/x%0d%0aSet-Cookie:%20a=b")).status == 400


def test_windows_1256_declared_only_in_the_header(pages: PagesServer) -> None:
    page = fetch(pages.url(ARABIC_1256_PATH))
    assert page.headers["Content-Type"] == "text/html; charset=windows-1256"
    assert b"charset" not in page.body
    with pytest.raises(UnicodeDecodeError):
        page.body.decode("utf-8")
    text = page.body.decode("windows-1256")
    assert ARABIC_1256_TEXT in text
    assert ARABIC_1256_TITLE in text
    assert 'dir="rtl"' in text


def test_iso_8859_1_declared_only_in_meta(pages: PagesServer) -> None:
    page = fetch(pages.url(LATIN_8859_1_PATH))
    assert page.headers["Content-Type"] == "text/html"
    assert b'<meta charset="iso-8859-1">' in page.body
    with pytest.raises(UnicodeDecodeError):
        page.body.decode("utf-8")
    text = page.body.decode("iso-8859-1")
    assert LATIN_8859_1_TEXT in text
    assert LATIN_8859_1_TITLE in text
    # Browsers decode ISO-8859-1 as windows-1252, which differs only in 0x80-0x9F.
    assert not any(0x80 <= byte <= 0x9F for byte in page.body)


def test_right_to_left_and_geez(pages: PagesServer) -> None:
    page = fetch(pages.url(RTL_PATH))
    text = page.body.decode("utf-8")
    assert '<html lang="ar" dir="rtl">' in text
    for constant in (RTL_ARABIC_TEXT, RTL_PERSIAN_TEXT, TIGRINYA_TEXT):
        assert constant in text
    assert "\u200c" in RTL_PERSIAN_TEXT
    assert all(0x1200 <= ord(char) <= 0x137F for char in TIGRINYA_TEXT if not char.isspace())


def test_lazy_page_keeps_every_image_below_the_fold(pages: PagesServer) -> None:
    markup = fetch(pages.url(LAZY_PATH)).body.decode()
    assert markup.count('loading="lazy"') == LAZY_IMAGE_COUNT
    assert "IntersectionObserver" in markup
    for path in lazy_image_paths():
        assert f'"{path}"' in markup
    tops = [int(top) for top in re.findall(r"top:(\d+)px", markup)]
    assert len(tops) == 2 * LAZY_IMAGE_COUNT + 1
    assert min(tops) >= LAZY_FIRST_IMAGE_TOP
    assert fetch(pages.url(LAZY_PATH + "?count=3")).body.decode().count("<img") == 3
    assert fetch(pages.url(LAZY_PATH + "?count=0")).status == 400


def test_dialogs_and_popup(pages: PagesServer) -> None:
    dialogs = fetch(pages.url("/dialogs")).body.decode()
    assert f"alert({json.dumps(ALERT_MESSAGE)})" in dialogs
    assert f"confirm({json.dumps(CONFIRM_MESSAGE)})" in dialogs
    popup = fetch(pages.url("/popup")).body.decode()
    assert f'window.open("{POPUP_TARGET_PATH}"' in popup
    assert 'id="open-popup"' in popup
    target = fetch(pages.url(POPUP_TARGET_PATH)).body.decode()
    assert f"<title>{POPUP_TARGET_TITLE}</title>" in target


def test_download_popup(pages: PagesServer) -> None:
    opens = fetch(pages.url(f"{DOWNLOAD_POPUP_PATH}?to=/files/endless")).body.decode()
    assert 'const path = "/files/endless";' in opens and "window.open(path);" in opens
    link = fetch(pages.url(f"{DOWNLOAD_POPUP_PATH}?via=link")).body.decode()
    assert f'const path = "{DOWNLOAD_PATH}";' in link and "a.target = '_blank'" in link
    assert fetch(pages.url(f"{DOWNLOAD_POPUP_PATH}?via=tab")).status == 400
    assert fetch(pages.url(f"{DOWNLOAD_POPUP_PATH}?to=//elsewhere.example/")).status == 400


def test_slow_headers(pages: PagesServer) -> None:
    started = time.monotonic()
    assert fetch(pages.url("/slow?delay=0.3")).status == 200
    assert time.monotonic() - started >= 0.3
    assert fetch(pages.url("/slow?delay=-1")).status == 400
    assert fetch(pages.url("/slow?delay=soon")).status == 400


def test_slow_body_sends_headers_first(pages: PagesServer) -> None:
    connection = http.client.HTTPConnection(pages.host, pages.port, timeout=5)
    try:
        started = time.monotonic()
        connection.request("GET", "/slow-body?delay=0.4&chunks=4")
        response = connection.getresponse()
        headers_after = time.monotonic() - started
        body = response.read()
        body_after = time.monotonic() - started
    finally:
        connection.close()
    assert response.status == 200
    assert headers_after < 0.2
    assert body_after >= 0.3
    assert len(body) == int(response.headers["Content-Length"])
    assert body.endswith(b"</html>\n")
    assert b"<p>chunk 4</p>" in body


def test_download(pages: PagesServer) -> None:
    download = fetch(pages.url(DOWNLOAD_PATH))
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"] == f'attachment; filename="{DOWNLOAD_FILENAME}"'
    assert download.body == PDF_BYTES
    assert PDF_BYTES.startswith(b"%PDF-1.4\n")
    assert PDF_BYTES.endswith(b"%%EOF\n")
    startxref = int(PDF_BYTES.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert PDF_BYTES[startxref:].startswith(b"xref\n")
    page = fetch(pages.url(DOWNLOAD_PAGE_PATH)).body.decode()
    assert f'href="{DOWNLOAD_PATH}"' in page
    assert 'id="download-button"' in page


def test_changing_page_versions(pages: PagesServer) -> None:
    def current_images(version: int) -> dict[str, int]:
        markup = fetch(pages.url(CHANGING_PATH)).body.decode()
        page = CHANGING_PAGES[version]
        assert f"<title>{page.title}</title>" in markup
        assert page.text in markup
        assert re.findall(r'<img src="([^"]+)"', markup) == list(page.images)
        every = {src for each in CHANGING_PAGES.values() for src in each.images}
        return {src: fetch(pages.url(src)).status for src in sorted(every)}

    assert pages.version(CHANGING_PATH) == 1
    main_v1 = fetch(pages.url("/changing/img/main.png")).body
    assert current_images(1)["/changing/img/new.png"] == 404

    pages.set_version(CHANGING_PATH, 2)
    statuses = current_images(2)
    assert statuses["/changing/img/old.png"] == 404
    assert statuses["/changing/img/new.png"] == 200
    main_v2 = fetch(pages.url("/changing/img/main.png")).body
    assert main_v1 == changing_image_bytes("main", 1)
    assert main_v2 == changing_image_bytes("main", 2)
    assert main_v1 != main_v2
    assert CHANGING_PAGES[1].text != CHANGING_PAGES[2].text

    with pytest.raises(ValueError):
        pages.set_version(CHANGING_PATH, 3)
    with pytest.raises(ValueError):
        pages.set_version(VANISHING_PATH, 2)
    pages.reset()
    assert pages.version(CHANGING_PATH) == 1


def test_vanishing_and_unavailable(pages: PagesServer) -> None:
    first = fetch(pages.url(VANISHING_PATH))
    assert (first.status, VANISHING_TEXT in first.body.decode()) == (200, True)
    pages.remove(VANISHING_PATH, status=410)
    assert fetch(pages.url(VANISHING_PATH)).status == 410
    assert fetch(pages.url(VANISHING_PATH + "?again=1")).status == 410
    pages.remove(VANISHING_PATH)
    assert fetch(pages.url(VANISHING_PATH)).status == 404
    pages.restore(VANISHING_PATH)
    assert fetch(pages.url(VANISHING_PATH)).status == 200

    pages.remove(SIMPLE_PATH)
    assert fetch(pages.url(SIMPLE_PATH)).status == 404
    with pytest.raises(ValueError):
        pages.remove(SIMPLE_PATH, status=200)

    unavailable = fetch(pages.url(UNAVAILABLE_PATH))
    assert unavailable.status == 200
    assert UNAVAILABLE_MESSAGE in unavailable.body.decode()


def test_infinite_scroll_never_ends(pages: PagesServer) -> None:
    markup = fetch(pages.url(INFINITE_PATH)).body.decode()
    assert INFINITE_ITEM_TEXT.format(n=1) in markup
    assert 'id="sentinel"' in markup
    assert "/infinite/page/" in markup
    far = fetch(pages.url("/infinite/page/1000")).body.decode()
    first_on_page = 999 * INFINITE_ITEMS_PER_PAGE + 1
    assert far.count("<article") == INFINITE_ITEMS_PER_PAGE
    assert INFINITE_ITEM_TEXT.format(n=first_on_page) in far
    assert fetch(pages.url("/infinite/page/0")).status == 404


def test_big_page_has_the_exact_size(pages: PagesServer) -> None:
    big = fetch(pages.url("/big?size=300000"))
    assert len(big.body) == int(big.headers["Content-Length"]) == 300_000
    assert big.body.endswith(b"</html>\n")
    head = fetch(pages.url("/big?size=5000000000"), method="HEAD")
    assert head.status == 400
    head = fetch(pages.url("/big?size=123456"), method="HEAD")
    assert (head.headers["Content-Length"], head.body) == ("123456", b"")
    assert fetch(pages.url("/big?size=10")).status == 400


def test_duplicate_headers(pages: PagesServer) -> None:
    response = fetch(pages.url(DUPLICATE_HEADERS_PATH))
    assert response.headers.get_all("Set-Cookie") == list(DUPLICATE_SET_COOKIES)
    assert response.headers.get_all("Link") == list(DUPLICATE_LINKS)


def test_echo_headers_and_cookies(pages: PagesServer) -> None:
    echoed = json.loads(fetch(pages.url("/echo-headers"), headers={"User-Agent": "probe/1"}).body)
    assert echoed["User-Agent"] == "probe/1"
    assert echoed["Host"] == f"127.0.0.1:{pages.port}"

    cookie = fetch(pages.url("/cookie/set?name=case&value=42")).headers["Set-Cookie"]
    assert cookie == "case=42; Path=/; SameSite=Lax"
    assert fetch(pages.url("/cookie/set?name=a;b")).status == 400
    shown = fetch(pages.url("/cookie/show"), headers={"Cookie": "case=42; other=x"})
    assert json.loads(shown.body) == {"case": "42", "other": "x"}
    assert json.loads(fetch(pages.url("/cookie/show")).body) == {}


def test_request_log(pages: PagesServer) -> None:
    fetch(pages.url("/simple.html?from=test"), headers={"User-Agent": "logger/1", "X-Case": "7"})
    fetch(pages.url("/echo-headers"), method="HEAD")
    logged = pages.requests
    assert [(request.method, request.path) for request in logged] == [
        ("GET", "/simple.html?from=test"),
        ("HEAD", "/echo-headers"),
    ]
    assert logged[0].route == SIMPLE_PATH
    assert logged[0].header("user-agent") == "logger/1"
    assert logged[0].header_values("X-CASE") == ["7"]
    assert ("X-Case", "7") in logged[0].headers
    assert pages.paths() == ["/simple.html?from=test", "/echo-headers"]
    assert pages.requests_for(SIMPLE_PATH) == [logged[0]]
    assert pages.wait_for_request("/echo-headers", timeout=0.1) is logged[1]
    with pytest.raises(TimeoutError):
        pages.wait_for_request("/never", timeout=0.05)
    pages.clear_requests()
    assert pages.requests == []


def test_wait_for_request_wakes_on_arrival(pages: PagesServer) -> None:
    later = threading.Timer(0.1, fetch, args=(pages.url("/late"),))
    later.start()
    try:
        assert pages.wait_for_request("/late", timeout=2).path == "/late"
    finally:
        later.join()


def test_exit_does_not_wait_for_slow_requests() -> None:
    results: list[int] = []
    with PagesServer() as pages:
        client = threading.Thread(
            target=lambda: results.append(fetch(pages.url("/slow?delay=60")).status),
            daemon=True,
        )
        client.start()
        pages.wait_for_request("/slow", timeout=2)
        started = time.monotonic()
    assert time.monotonic() - started < 1
    client.join(timeout=2)
    # Stopping cuts the wait short; the handler still answers the client it was holding.
    assert results == [200]
