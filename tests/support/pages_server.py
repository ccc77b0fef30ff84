"""A local web site for the capture worker's browser tests, so they never reach the internet.

It serves the static files in ``tests/pages/`` and dynamic routes that behave the way hostile or
awkward real sites do (redirect chains, legacy charsets, right-to-left text, lazy images, dialogs,
pop-ups, slow responses, downloads, pages that change or vanish, infinite scroll, huge pages).
Every request is logged, so a test can assert what the browser actually fetched::

    with PagesServer() as pages:
        capture(pages.url("/lazy"))
        assert pages.requests_for("/img/lazy-1.png")

Routes (all GET, HEAD also works):

``/``, ``/simple.html``, ``/download.html``, ``/style.css``, ``/script.js``
    static files from ``tests/pages/``
``/favicon.ico``, ``/img/<name>.png``, ``/media/clip.webm``
    generated images (colour derived from ``<name>``, see :func:`image_bytes`) and a fake video
``/redirect/start`` → 301 → ``/redirect/middle`` → 302 → ``/redirect/end``
    plus ``/redirect/relative`` (``Location: end``), ``/redirect/other-host`` (to
    ``http://localhost:PORT/redirect/end``), ``/redirect/loop`` and
    ``/redirect/to?location=URL&status=302``
``/charset/windows-1256``, ``/charset/iso-8859-1``, ``/rtl``
    non-UTF-8 and right-to-left pages whose exact text is in the constants below
``/lazy?count=N&height=PX``
    ``loading="lazy"`` images ``/img/lazy-N.png`` and IntersectionObserver images
    ``/img/observed-N.png``, all far below the fold
``/dialogs``, ``/popup``, ``/popup/target``
    ``alert()`` and ``confirm()`` on load; ``window.open()`` on load and on ``#open-popup``
``/slow?delay=S``, ``/slow-body?delay=S&chunks=N``
    headers late; headers at once and the body trickled over ``S`` seconds
``/download/report.pdf``
    ``Content-Disposition: attachment``; ``/download.html`` links to it (``?auto`` starts it)
``/files/leaflet.pdf``, ``/files/papers.zip``, ``/files/pdf-frame``, ``/files/blob?size=N``
    a PDF served to be shown (no ``Content-Disposition``), a ZIP file (``application/zip``), a
    page showing the PDF in an ``<iframe>``, ``N`` bytes of ``application/octet-stream``
    (:func:`blob_bytes`)
``/media/big?size=N``, ``/media/big-page?size=N``
    ``N`` bytes of :func:`blob_bytes` as ``video/mp4``; a page whose script fetches it (its title
    then says how many bytes came)
``/files/price-list.pdf``, ``/files/pdf-embed``
    another PDF (:data:`PRICE_LIST_TEXT`); a page with it in an ``<embed>``, the leaflet in an
    ``<object>`` and the broken PDF in another
``/files/broken.pdf``
    ``application/pdf`` that is no PDF past its first line (:data:`BROKEN_PDF_BYTES`)
``/files/endless``
    ``application/octet-stream`` with no length, sent until the client hangs up (at most
    :data:`ENDLESS_MAX_BYTES`)
``/files/trickle?seconds=S``
    :func:`blob_bytes` of :data:`TRICKLE_BYTES` with their length stated, trickled over ``S``
    seconds
``/download-later?delay=MS&to=PATH``
    a long page that starts downloading ``PATH`` ``MS`` milliseconds after it is first resized:
    a capture's full-page screenshot resizes it, after the capture last waited for the network;
    with ``to`` given more than once, it starts every one of them at that moment, together
``/download-popup?to=PATH&via=open|link``
    a page that opens ``PATH`` in a pop-up once loaded: ``window.open(PATH)``, or a click on a
    link to it with ``target="_blank"``
``/changing``, ``/changing/img/<name>.png``
    content chosen by :meth:`PagesServer.set_version` (see :data:`CHANGING_PAGES`)
``/vanishing``, ``/unavailable``
    200 until :meth:`PagesServer.remove`; a 200 page saying the content is unavailable
``/infinite?delay=S``, ``/infinite/page/N?delay=S``
    a feed that fetches one more page whenever its bottom comes into view, forever; each page
    answered after ``S`` seconds (default none)
``/words?count=N``
    a page of N words of visible text, each different (their words fill a search index)
``/big?size=BYTES``, ``/duplicate-headers``, ``/echo-headers``, ``/cookie/set``, ``/cookie/show``
    an HTML page of exactly ``size`` bytes; two ``Set-Cookie`` headers; request headers as JSON;
    set a cookie (``?name=&value=``); the cookies the browser sent, as JSON

Any path can be made to fail with :meth:`PagesServer.remove`; :meth:`PagesServer.reset` undoes
every control and clears the log.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import cast
from urllib.parse import parse_qs, unquote, urlsplit

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"

# --- what the pages say, for comparing with what a capture extracted --------

SIMPLE_PATH = "/simple.html"
SIMPLE_TITLE = "Evidence locker test page"
SIMPLE_TEXT = "The quick brown fox jumps over the lazy dog."
SIMPLE_SCRIPT_TEXT = "Added by script.js"
SIMPLE_RESOURCES = (
    "/style.css",
    "/script.js",
    "/img/simple-photo.png",
    "/media/clip.webm",
    "/favicon.ico",
)

REDIRECT_CHAIN = ("/redirect/start", "/redirect/middle", "/redirect/end")
REDIRECT_STATUSES = (301, 302)
REDIRECT_END_TITLE = "Redirect target"

# Served as windows-1256 with the charset only in the Content-Type header.
ARABIC_1256_PATH = "/charset/windows-1256"
ARABIC_1256_TITLE = "منشور محذوف"
ARABIC_1256_TEXT = (
    "نشر الحساب هذا المنشور يوم الثلاثاء، ثم حُذف بعد ساعة واحدة. هل يمكن إثبات ذلك أمام المحكمة؟"
)
# Served as ISO-8859-1 declared only by <meta charset>; the header has no charset.
LATIN_8859_1_PATH = "/charset/iso-8859-1"
LATIN_8859_1_TITLE = "Déclaration du témoin"
LATIN_8859_1_TEXT = (
    "Déclaration du témoin : « Le véhicule était garé près du café à 23 h 15 ». "
    "Straße, Müller, señor, £120, 30 °C, ½."
)

RTL_PATH = "/rtl"
RTL_TITLE = "صفحة اختبار"
RTL_ARABIC_TEXT = "هذه الصفحة مخصصة لاختبار حفظ الأدلة الرقمية."
# The zero-width non-joiner is normal Persian spelling; extraction must keep it.
RTL_PERSIAN_TEXT = "این پست روز سه\u200cشنبه منتشر شد و یک ساعت بعد پاک شد."
TIGRINYA_TEXT = "እዚ ገጽ ንፈተና ጥራይ እዩ።"

LAZY_PATH = "/lazy"
LAZY_IMAGE_COUNT = 6
LAZY_PAGE_HEIGHT = 12000
# Chromium starts fetching loading="lazy" images up to 3000 px below the viewport on an
# unknown-speed connection; anything above this line would load without scrolling.
LAZY_FIRST_IMAGE_TOP = 5000

ALERT_MESSAGE = "Alert from the test page"
CONFIRM_MESSAGE = "Confirm from the test page?"
POPUP_TARGET_PATH = "/popup/target"
POPUP_TARGET_TITLE = "Pop-up window"

DOWNLOAD_PATH = "/download/report.pdf"
DOWNLOAD_FILENAME = "report.pdf"
DOWNLOAD_PAGE_PATH = "/download.html"
INLINE_PDF_PATH = "/files/leaflet.pdf"
ZIP_PATH = "/files/papers.zip"
PDF_FRAME_PATH = "/files/pdf-frame"
PRICE_LIST_PATH = "/files/price-list.pdf"
PDF_EMBED_PATH = "/files/pdf-embed"
BLOB_PATH = "/files/blob"
BIG_MEDIA_PATH = "/media/big"
BIG_MEDIA_PAGE_PATH = "/media/big-page"
BIG_MEDIA_TYPE = "video/mp4"
ENDLESS_PATH = "/files/endless"
BROKEN_PDF_PATH = "/files/broken.pdf"
ENDLESS_MAX_BYTES = 4 * 1024**3
TRICKLE_PATH = "/files/trickle"
TRICKLE_BYTES = 10_000
DOWNLOAD_LATER_PATH = "/download-later"
DOWNLOAD_LATER_TITLE = "A page that downloads later"
DOWNLOAD_POPUP_PATH = "/download-popup"
DOWNLOAD_POPUP_TITLE = "A page that downloads in a pop-up"

CHANGING_PATH = "/changing"
VANISHING_PATH = "/vanishing"
VANISHING_TEXT = "This post is still online."
UNAVAILABLE_PATH = "/unavailable"
UNAVAILABLE_MESSAGE = "This content isn't available right now"
UNAVAILABLE_DETAIL = (
    "When this happens, it's usually because the owner only shared it with a small group of "
    "people, changed who can see it or it's been deleted."
)

INFINITE_PATH = "/infinite"
INFINITE_ITEMS_PER_PAGE = 10
INFINITE_ITEM_TEXT = "Post number {n}"

BIG_PATH = "/big"
WORDS_PATH = "/words"
WORDS_MAX = 1_000_000
BIG_DEFAULT_SIZE = 1_000_000
BIG_MAX_SIZE = 1 << 30

DUPLICATE_HEADERS_PATH = "/duplicate-headers"
DUPLICATE_SET_COOKIES = ("dup_first=1; Path=/", "dup_second=2; Path=/")
DUPLICATE_LINKS = (
    '</style.css>; rel="preload"; as="style"',
    '</script.js>; rel="preload"; as="script"',
)

COOKIE_DEFAULT_NAME = "evidence_test"
COOKIE_DEFAULT_VALUE = "set-by-test"

VIDEO_PATH = "/media/clip.webm"
VIDEO_MEDIA_TYPE = "video/webm"

_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".pdf": "application/pdf",
    ".txt": "text/plain; charset=utf-8",
}

# Waits longer than any capture timeout, yet stopping the server cuts them short.
MAX_DELAY_SECONDS = 300.0


@dataclass(frozen=True)
class ChangingPage:
    title: str
    text: str
    # Paths of the <img> elements, in page order.
    images: tuple[str, ...]


# Version 2 changes the price, swaps main.png (same URL, different pixels, so only a content
# hash notices), removes old.png (now 404) and adds new.png.
CHANGING_PAGES: dict[int, ChangingPage] = {
    1: ChangingPage(
        title="For sale: 2015 pickup truck (listing v1)",
        text="Price: £4,500. Collection only, cash on the day.",
        images=("/changing/img/main.png", "/changing/img/kept.png", "/changing/img/old.png"),
    ),
    2: ChangingPage(
        title="For sale: 2015 pickup truck (listing v2)",
        text="Price: £3,950. Collection only, cash on the day.",
        images=("/changing/img/main.png", "/changing/img/kept.png", "/changing/img/new.png"),
    ),
}
VERSIONED_PATHS = frozenset({CHANGING_PATH})


# --- generated binary assets -------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour 8-bit RGB PNG, built by hand so the tests need no imaging library."""
    row = b"\x00" + bytes(rgb) * width  # filter type 0 (None) before every scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * height, 9))
        + _png_chunk(b"IEND", b"")
    )


def image_colour(name: str) -> tuple[int, int, int]:
    """The colour of ``/img/<name>.png``: distinct per name, the same on every run."""
    digest = hashlib.sha256(name.encode()).digest()
    return digest[0], digest[1], digest[2]


def image_bytes(name: str, width: int = 64, height: int = 48) -> bytes:
    """The exact body of ``/img/<name>.png``."""
    return make_png(width, height, image_colour(name))


def changing_image_bytes(name: str, version: int) -> bytes:
    """The exact body of ``/changing/img/<name>.png`` while ``/changing`` is at ``version``."""
    # Only main.png depends on the version: it is the image that is swapped in place.
    key = f"changing-{name}-v{version}" if name == "main" else f"changing-{name}"
    return image_bytes(key)


def blob_bytes(size: int) -> bytes:
    """The body of ``/files/blob?size=N``."""
    return (b"evidence-locker test file\n" * (size // 26 + 1))[:size]


def _make_ico() -> bytes:
    # An ICO whose only entry is a PNG, which every current browser accepts.
    png = make_png(16, 16, (0xC0, 0x39, 0x2B))
    icondir = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 6 + 16)
    return icondir + entry + png


PDF_TEXT = "Evidence locker test report"  # what the PDF says


def _make_pdf(text: str = PDF_TEXT) -> bytes:
    # Offsets in the xref table must be exact byte positions, so build it object by object.
    stream = b"BT /F1 18 Tf 72 770 Td (%s) Tj ET" % text.encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(out)


FAVICON_BYTES = _make_ico()
PDF_BYTES = _make_pdf()
PRICE_LIST_TEXT = "Crossing to Lampedusa 2000 euros"  # what the price list says
PRICE_LIST_BYTES = _make_pdf(PRICE_LIST_TEXT)
# Starts as a PDF, and is none: no objects, no cross-reference table.
BROKEN_PDF_BYTES = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
# A ZIP file holding one stored file, papers.txt: a local header, its data, the central directory.
ZIP_BYTES = b"".join((
    b"PK\x03\x04", struct.pack("<5H3I2H", 10, 0, 0, 0, 0, zlib.crc32(b"papers\n"), 7, 7, 10, 0),
    b"papers.txt", b"papers\n",
    b"PK\x01\x02", struct.pack("<6H3I5H2I", 20, 10, 0, 0, 0, 0, zlib.crc32(b"papers\n"), 7, 7,
                                 10, 0, 0, 0, 0, 0, 0), b"papers.txt",
    b"PK\x05\x06", struct.pack("<4H2IH", 0, 0, 1, 1, 56, 47, 0),
))
# An EBML (WebM) signature and padding: enough for a media type and a hash, not for playback.
VIDEO_BYTES = b"\x1a\x45\xdf\xa3" + b"\x00" * 60


# --- the request log ----------------------------------------------------------


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server received it, before any response was sent."""

    method: str
    # Path and query exactly as requested, e.g. "/slow?delay=1".
    path: str
    # In the order received, duplicates kept.
    headers: tuple[tuple[str, str], ...]
    received_at: float

    @property
    def route(self) -> str:
        """The path without its query string, percent-decoded."""
        return unquote(urlsplit(self.path).path)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]


# --- the server ---------------------------------------------------------------


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pages: PagesServer) -> None:
        self.pages = pages
        super().__init__(("127.0.0.1", 0), _Handler)


class PagesServer:
    """The test web site on 127.0.0.1, in a background thread; a context manager yielding itself.

    Controls are thread-safe and take effect for the next request.
    """

    def __init__(self, pages_dir: Path = PAGES_DIR) -> None:
        self.pages_dir = pages_dir.resolve()
        self._lock = threading.Lock()
        self._logged = threading.Condition(self._lock)
        self._requests: list[LoggedRequest] = []
        self._versions: dict[str, int] = {}
        self._removed: dict[str, int] = {}
        self.stopping = threading.Event()
        self._server = _HttpServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pages-server",
            daemon=True,
        )

    # lifecycle

    def start(self) -> PagesServer:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; handlers still sleeping in slow routes wake up at once."""
        self.stopping.set()
        # shutdown() waits for serve_forever() and would hang if it never ran.
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> PagesServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # addresses

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` (which may carry a query string)."""
        return self.base + (path if path.startswith("/") else "/" + path)

    def url_for_host(self, host: str, path: str = "/") -> str:
        """The same server under another host name, e.g. ``localhost``, for URL-safety tests."""
        return f"http://{host}:{self.port}" + (path if path.startswith("/") else "/" + path)

    # controls

    def set_version(self, path: str, version: int) -> None:
        """Switch a versioned page (only ``/changing``) to ``version`` from the next request."""
        if path not in VERSIONED_PATHS:
            raise ValueError(f"{path} has no versions; versioned: {sorted(VERSIONED_PATHS)}")
        if version not in CHANGING_PAGES:
            raise ValueError(f"no version {version} of {path}; have {sorted(CHANGING_PAGES)}")
        with self._lock:
            self._versions[path] = version

    def version(self, path: str) -> int:
        with self._lock:
            return self._versions.get(path, 1)

    def remove(self, path: str, status: int = 404) -> None:
        """Answer ``path`` (any route, query ignored) with ``status`` until :meth:`restore`."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error, not {status}")
        with self._lock:
            self._removed[path] = status

    def restore(self, path: str) -> None:
        with self._lock:
            self._removed.pop(path, None)

    def removed_status(self, route: str) -> int | None:
        with self._lock:
            return self._removed.get(route)

    def reset(self) -> None:
        """Undo every control and clear the request log."""
        with self._lock:
            self._versions.clear()
            self._removed.clear()
            self._requests.clear()

    # the request log

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def paths(self) -> list[str]:
        """The requested paths (with query strings), oldest first."""
        return [request.path for request in self.requests]

    def requests_for(self, route: str) -> list[LoggedRequest]:
        """Requests whose path, without query string, is ``route``."""
        return [request for request in self.requests if request.route == route]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_request(self, route: str, timeout: float = 5.0) -> LoggedRequest:
        """The first logged request for ``route``, waiting for it if need be.

        Browsers fetch subresources asynchronously, so a test may look before it arrived.
        """
        deadline = time.monotonic() + timeout
        with self._logged:
            while True:
                for request in self._requests:
                    if request.route == route:
                        return request
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no request for {route} within {timeout} s")
                self._logged.wait(remaining)

    def _log(self, request: LoggedRequest) -> None:
        with self._logged:
            self._requests.append(request)
            self._logged.notify_all()


# --- pages --------------------------------------------------------------------


def _page(title: str, body: str, *, lang: str = "en", dir_: str = "ltr", head: str = "") -> str:
    return (
        f'<!doctype html>\n<html lang="{lang}" dir="{dir_}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title, quote=False)}</title>\n{head}</head>\n<body>\n{body}\n"
        "</body>\n</html>\n"
    )


def _text(value: str) -> str:
    # quote=False keeps apostrophes literal, so the served bytes contain the constants verbatim.
    return html.escape(value, quote=False)


def _lazy_page(count: int, height: int) -> str:
    slots = 2 * count
    span = max(height - LAZY_FIRST_IMAGE_TOP - 300, 0)
    step = span // max(slots - 1, 1)
    items = []
    for index in range(slots):
        top = LAZY_FIRST_IMAGE_TOP + index * step
        n = index // 2 + 1
        if index % 2 == 0:
            items.append(
                f'<img class="slot" loading="lazy" src="/img/lazy-{n}.png" width="64" '
                f'height="48" alt="lazy {n}" style="top:{top}px">'
            )
        else:
            items.append(
                f'<div class="slot observed" data-src="/img/observed-{n}.png" '
                f'data-alt="observed {n}" style="top:{top}px"></div>'
            )
    head = (
        "<style>body{margin:0;font-family:sans-serif}"
        f".page{{position:relative;height:{height}px}}"
        ".slot{position:absolute;left:20px;width:64px;height:48px;background:#eee}"
        "</style>\n"
    )
    script = """<script>
// These images exist only once scrolled into view, the way many social sites build feeds.
const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    const img = document.createElement("img");
    img.src = entry.target.dataset.src;
    img.alt = entry.target.dataset.alt;
    img.width = 64;
    img.height = 48;
    entry.target.appendChild(img);
    observer.unobserve(entry.target);
  }
});
document.querySelectorAll(".observed").forEach((slot) => observer.observe(slot));
</script>"""
    body = (
        '<div class="page">\n<h1>Lazy images</h1>\n'
        "<p>Scroll down: the images load on the way.</p>\n"
        + "\n".join(items)
        + f'\n<p id="bottom" style="position:absolute;top:{height - 60}px">End of page</p>\n'
        + "</div>\n"
        + script
    )
    return _page("Lazy images", body, head=head)


def _infinite_items(page: int) -> str:
    first = (page - 1) * INFINITE_ITEMS_PER_PAGE + 1
    return "\n".join(
        f'<article class="item" style="height:120px">{INFINITE_ITEM_TEXT.format(n=n)}</article>'
        for n in range(first, first + INFINITE_ITEMS_PER_PAGE)
    )


_INFINITE_SCRIPT = """<script>
// Fetch the next page whenever the sentinel is on screen, with no last page.
let nextPage = 2;
let loading = false;
const sentinel = document.getElementById("sentinel");
function sentinelVisible() {
  return sentinel.getBoundingClientRect().top < window.innerHeight;
}
async function loadMore() {
  if (loading) return;
  loading = true;
  try {
    const response = await fetch("/infinite/page/" + nextPage + "?delay=DELAY");
    const fragment = await response.text();
    document.getElementById("feed").insertAdjacentHTML("beforeend", fragment);
    document.body.dataset.pages = String(nextPage);
    nextPage += 1;
  } finally {
    loading = false;
  }
  // The observer only fires on changes, so keep going while the sentinel stays visible.
  if (sentinelVisible()) loadMore();
}
new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadMore();
}).observe(sentinel);
</script>"""


def _changing_page(version: int) -> str:
    page = CHANGING_PAGES[version]
    images = "\n".join(
        f'<img src="{src}" width="64" height="48" alt="{Path(src).stem}">' for src in page.images
    )
    body = (
        f'<h1>{_text(page.title)}</h1>\n<p id="price">{_text(page.text)}</p>\n'
        f'<div id="photos">\n{images}\n</div>'
    )
    return _page(page.title, body)


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class _BadRequest(Exception):
    pass


def _param(query: dict[str, list[str]], name: str, default: str) -> str:
    values = query.get(name)
    return values[0] if values else default


def _paths_for_script(paths: str | list[str]) -> str:
    """A path on this server (`to`), or a list of them, as JavaScript inside a <script>, which
    it never ends early; any other address is a bad request."""
    if any(not p.startswith("/") or p.startswith("//")
           for p in ([paths] if isinstance(paths, str) else paths)):
        raise _BadRequest("to must be a path on this server")
    return json.dumps(paths).replace("<", "\\u003c")


def _number(
    query: dict[str, list[str]], name: str, default: float, low: float, high: float
) -> float:
    raw = _param(query, name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise _BadRequest(f"{name} must be a number, not {raw!r}") from None
    if not low <= value <= high:
        raise _BadRequest(f"{name} must be between {low} and {high}")
    return value


# --- the handler --------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = "EvidenceLockerTestPages/1.0"
    # HTTP/1.0 closes every connection after one response, so no idle keep-alive socket can
    # hold a handler thread open after the test ends.
    protocol_version = "HTTP/1.0"

    @property
    def pages(self) -> PagesServer:
        return cast(_HttpServer, self.server).pages

    def log_message(self, format: str, *args: object) -> None:
        # The request log replaces the access log; keep pytest output quiet.
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    # plumbing

    def _serve(self) -> None:
        self.pages._log(
            LoggedRequest(
                method=self.command,
                path=self.path,
                headers=tuple(self.headers.items()),
                received_at=time.time(),
            )
        )
        parts = urlsplit(self.path)
        route = unquote(parts.path)
        query = parse_qs(parts.query)
        try:
            removed = self.pages.removed_status(route)
            if removed is not None:
                self._removed_response(removed)
            else:
                self._dispatch(route, query)
        except _BadRequest as error:
            self._send(400, str(error).encode(), "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            # The browser navigated away or timed out; nobody is left to answer.
            pass

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._send_head(status, content_type, len(body), headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_head(
        self,
        status: int,
        content_type: str | None,
        length: int | None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        # Every test wants to see every fetch in the log, not a cache hit.
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _html(
        self, markup: str, status: int = 200, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self._send(status, markup.encode("utf-8"), "text/html; charset=utf-8", headers)

    def _json(self, value: object) -> None:
        body = json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")
        self._send(200, body, "application/json; charset=utf-8")

    def _redirect(self, status: int, location: str) -> None:
        self._send_head(status, "text/html; charset=utf-8", 0, [("Location", location)])

    def _not_found(self) -> None:
        self._html(_page("Not found", "<h1>Not found</h1>"), status=404)

    def _removed_response(self, status: int) -> None:
        title = "Gone" if status == 410 else "Not found" if status == 404 else "Error"
        self._html(_page(title, f"<h1>{title}</h1>"), status=status)

    def _wait(self, seconds: float) -> None:
        self.pages.stopping.wait(seconds)

    # routing

    def _dispatch(self, route: str, query: dict[str, list[str]]) -> None:
        exact: dict[str, Callable[[], None]] = {
            "/favicon.ico": lambda: self._send(200, FAVICON_BYTES, "image/x-icon"),
            VIDEO_PATH: lambda: self._send(200, VIDEO_BYTES, VIDEO_MEDIA_TYPE),
            "/redirect/start": lambda: self._redirect(301, self.pages.url("/redirect/middle")),
            "/redirect/middle": lambda: self._redirect(302, "/redirect/end"),
            "/redirect/end": self._redirect_end,
            "/redirect/relative": lambda: self._redirect(302, "end"),
            "/redirect/other-host": lambda: self._redirect(
                302, self.pages.url_for_host("localhost", "/redirect/end")
            ),
            "/redirect/loop": lambda: self._redirect(302, "/redirect/loop"),
            "/redirect/to": lambda: self._redirect_to(query),
            ARABIC_1256_PATH: self._arabic_1256,
            LATIN_8859_1_PATH: self._latin_8859_1,
            RTL_PATH: self._rtl,
            LAZY_PATH: lambda: self._lazy(query),
            "/dialogs": self._dialogs,
            "/popup": self._popup,
            POPUP_TARGET_PATH: lambda: self._html(
                _page(POPUP_TARGET_TITLE, f"<h1>{POPUP_TARGET_TITLE}</h1>")
            ),
            "/slow": lambda: self._slow(query),
            "/slow-body": lambda: self._slow_body(query),
            DOWNLOAD_PATH: self._download,
            INLINE_PDF_PATH: lambda: self._send(200, PDF_BYTES, "application/pdf"),
            ZIP_PATH: lambda: self._send(200, ZIP_BYTES, "application/zip"),
            BLOB_PATH: lambda: self._send(200, blob_bytes(int(_number(
                query, "size", 1000, 0, BIG_MAX_SIZE))), "application/octet-stream"),
            ENDLESS_PATH: self._endless,
            BIG_MEDIA_PATH: lambda: self._send(200, blob_bytes(int(_number(
                query, "size", 1000, 0, BIG_MAX_SIZE))), BIG_MEDIA_TYPE),
            BIG_MEDIA_PAGE_PATH: lambda: self._html(_page("Big video", (
                "<h1>Big video</h1><script>fetch('{}?size={}').then(r => r.arrayBuffer())"
                ".then(b => {{ document.title = 'fetched ' + b.byteLength; }});</script>").format(
                    BIG_MEDIA_PATH, int(_number(query, "size", 1000, 0, BIG_MAX_SIZE))))),
            TRICKLE_PATH: lambda: self._trickle(query),
            DOWNLOAD_LATER_PATH: lambda: self._download_later(query),
            DOWNLOAD_POPUP_PATH: lambda: self._download_popup(query),
            BROKEN_PDF_PATH: lambda: self._send(200, BROKEN_PDF_BYTES, "application/pdf"),
            PRICE_LIST_PATH: lambda: self._send(200, PRICE_LIST_BYTES, "application/pdf"),
            PDF_EMBED_PATH: lambda: self._html(_page(
                "Embedded papers", f'<h1>Papers</h1><embed src="{PRICE_LIST_PATH}" '
                'type="application/pdf" width="600" height="400">'
                f'<object data="{INLINE_PDF_PATH}" type="application/pdf" width="600" '
                f'height="400"></object><object data="{BROKEN_PDF_PATH}" '
                'type="application/pdf" width="600" height="400"></object>')),
            PDF_FRAME_PATH: lambda: self._html(_page(
                "A leaflet in a frame", f'<h1>Leaflet</h1><iframe src="{INLINE_PDF_PATH}" '
                'width="600" height="400"></iframe>')),
            CHANGING_PATH: lambda: self._html(_changing_page(self.pages.version(CHANGING_PATH))),
            VANISHING_PATH: lambda: self._html(
                _page("Vanishing post", f"<p>{_text(VANISHING_TEXT)}</p>")
            ),
            UNAVAILABLE_PATH: self._unavailable,
            INFINITE_PATH: lambda: self._infinite(query),
            BIG_PATH: lambda: self._big(query),
            WORDS_PATH: lambda: self._words(query),
            DUPLICATE_HEADERS_PATH: self._duplicate_headers,
            "/echo-headers": self._echo_headers,
            "/cookie/set": lambda: self._cookie_set(query),
            "/cookie/show": self._cookie_show,
        }
        handler = exact.get(route)
        if handler is not None:
            handler()
        elif match := re.fullmatch(r"/img/([A-Za-z0-9_-]{1,64})\.png", route):
            self._send(200, image_bytes(match[1]), "image/png")
        elif match := re.fullmatch(r"/changing/img/([a-z]+)\.png", route):
            self._changing_image(route, match[1])
        elif match := re.fullmatch(r"/infinite/page/([1-9][0-9]{0,6})", route):
            self._wait(_number(query, "delay", 0.0, 0, MAX_DELAY_SECONDS))
            self._html(_infinite_items(int(match[1])))
        else:
            self._static(route)

    # routes

    def _static(self, route: str) -> None:
        target = (self.pages.pages_dir / route.lstrip("/")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(self.pages.pages_dir) or not target.is_file():
            self._not_found()
            return
        self._send(
            200, target.read_bytes(), _STATIC_TYPES.get(target.suffix, "application/octet-stream")
        )

    def _redirect_end(self) -> None:
        self._html(_page(REDIRECT_END_TITLE, f"<h1>{REDIRECT_END_TITLE}</h1>"))

    def _redirect_to(self, query: dict[str, list[str]]) -> None:
        location = _param(query, "location", "/redirect/end")
        status = int(_number(query, "status", 302, 300, 399))
        # send_header() does not check for CR/LF, and a test URL must not forge headers.
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in location):
            raise _BadRequest("location contains control characters")
        self._redirect(status, location)

    def _arabic_1256(self) -> None:
        markup = (
            '<!doctype html>\n<html lang="ar" dir="rtl">\n<head>\n'
            f"<title>{_text(ARABIC_1256_TITLE)}</title>\n</head>\n<body>\n"
            f'<p id="text">{_text(ARABIC_1256_TEXT)}</p>\n</body>\n</html>\n'
        )
        self._send(200, markup.encode("windows-1256"), "text/html; charset=windows-1256")

    def _latin_8859_1(self) -> None:
        markup = (
            '<!doctype html>\n<html lang="fr">\n<head>\n<meta charset="iso-8859-1">\n'
            f"<title>{_text(LATIN_8859_1_TITLE)}</title>\n</head>\n<body>\n"
            f'<p id="text">{_text(LATIN_8859_1_TEXT)}</p>\n</body>\n</html>\n'
        )
        self._send(200, markup.encode("iso-8859-1"), "text/html")

    def _rtl(self) -> None:
        body = (
            f'<h1>{_text(RTL_TITLE)}</h1>\n<p id="arabic" lang="ar">{_text(RTL_ARABIC_TEXT)}</p>\n'
            f'<p id="persian" lang="fa">{_text(RTL_PERSIAN_TEXT)}</p>\n'
            f'<p id="tigrinya" lang="ti" dir="ltr">{_text(TIGRINYA_TEXT)}</p>'
        )
        self._html(_page(RTL_TITLE, body, lang="ar", dir_="rtl"))

    def _lazy(self, query: dict[str, list[str]]) -> None:
        count = int(_number(query, "count", LAZY_IMAGE_COUNT, 1, 200))
        height = int(
            _number(query, "height", LAZY_PAGE_HEIGHT, LAZY_FIRST_IMAGE_TOP + 500, 200_000)
        )
        self._html(_lazy_page(count, height))

    def _dialogs(self) -> None:
        script = (
            '<script>\nwindow.addEventListener("load", () => {\n'
            f"  alert({json.dumps(ALERT_MESSAGE)});\n"
            f"  const answer = confirm({json.dumps(CONFIRM_MESSAGE)});\n"
            '  document.getElementById("result").textContent =\n'
            '    answer ? "confirmed" : "dismissed";\n'
            "});\n</script>"
        )
        body = '<h1>Dialogs</h1>\n<p id="result">waiting for dialogs</p>\n' + script
        self._html(_page("Dialogs", body))

    def _popup(self) -> None:
        script = (
            "<script>\nfunction openPopup() {\n"
            f'  window.open("{POPUP_TARGET_PATH}", "evidence-popup", "width=400,height=300");\n'
            "}\n"
            'document.getElementById("open-popup").addEventListener("click", openPopup);\n'
            'window.addEventListener("load", openPopup);\n</script>'
        )
        body = (
            '<h1>Pop-up</h1>\n<button id="open-popup" type="button">Open the pop-up</button>\n'
            + script
        )
        self._html(_page("Pop-up opener", body))

    def _slow(self, query: dict[str, list[str]]) -> None:
        delay = _number(query, "delay", 5.0, 0, MAX_DELAY_SECONDS)
        self._wait(delay)
        self._html(_page("Slow page", f"<p>Answered after {delay:g} s.</p>"))

    def _slow_body(self, query: dict[str, list[str]]) -> None:
        delay = _number(query, "delay", 5.0, 0, MAX_DELAY_SECONDS)
        chunks = int(_number(query, "chunks", 10, 1, 1000))
        parts = [_page("Slow body", "<h1>Slow body</h1>").encode().replace(b"</body>", b"")]
        parts += [f"<p>chunk {n}</p>\n".encode() for n in range(1, chunks + 1)]
        parts.append(b"</body>\n</html>\n")
        self._send_head(200, "text/html; charset=utf-8", sum(len(part) for part in parts))
        if self.command == "HEAD":
            return
        pause = delay / chunks
        for part in parts:
            self.wfile.write(part)
            self.wfile.flush()
            if part is not parts[-1] and self.pages.stopping.wait(pause):
                # Stopping: finish at once rather than hold the thread.
                pause = 0

    def _endless(self) -> None:
        """A file with no stated length that never ends: only the client can stop it."""
        self._send_head(200, "application/octet-stream", None)
        if self.command == "HEAD":
            return
        chunk = bytes(range(256)) * 256
        sent = 0
        while sent < ENDLESS_MAX_BYTES and not self.pages.stopping.is_set():
            self.wfile.write(chunk)  # BrokenPipeError once the client hangs up: handled above
            sent += len(chunk)

    def _trickle(self, query: dict[str, list[str]]) -> None:
        seconds = _number(query, "seconds", 30.0, 0, MAX_DELAY_SECONDS)
        body = blob_bytes(TRICKLE_BYTES)
        self._send_head(200, "application/octet-stream", len(body))
        if self.command == "HEAD":
            return
        pieces = 100
        for at in range(0, len(body), len(body) // pieces):
            self.wfile.write(body[at:at + len(body) // pieces])
            self.wfile.flush()
            if self.pages.stopping.wait(seconds / pieces):
                return

    def _download_later(self, query: dict[str, list[str]]) -> None:
        delay = int(_number(query, "delay", 1000, 0, MAX_DELAY_SECONDS * 1000))
        targets = query.get("to") or [DOWNLOAD_PATH]
        locations = _paths_for_script(targets)
        # One: the page goes to it. Several: a link with a download attribute for each, clicked
        # in the same moment, so the browser starts them together.
        start = ("window.location.href = paths[0];" if len(targets) == 1 else
                 "for (const path of paths) { const a = document.createElement('a');\n"
                 "  a.href = path; a.download = ''; document.body.append(a); a.click(); }")
        script = (f"<script>\nconst paths = {locations};\n"
                  "window.addEventListener('resize', () => setTimeout(() => {\n"
                  f"  {start}\n}}, {delay}), {{once: true}});\n</script>")
        body = (f"<h1>{_text(DOWNLOAD_LATER_TITLE)}</h1>\n"
                '<div style="height: 3000px">A long page.</div>\n' + script)
        self._html(_page(DOWNLOAD_LATER_TITLE, body))

    def _download_popup(self, query: dict[str, list[str]]) -> None:
        location = _paths_for_script(_param(query, "to", DOWNLOAD_PATH))
        via = _param(query, "via", "open")
        if via not in ("open", "link"):
            raise _BadRequest("via must be open or link")
        start = ("window.open(path);" if via == "open" else
                 "const a = document.createElement('a'); a.href = path; a.target = '_blank';\n"
                 "  document.body.append(a); a.click();")
        script = (f"<script>\nconst path = {location};\n"
                  f"window.addEventListener('load', () => {{\n  {start}\n}});\n</script>")
        body = f"<h1>{_text(DOWNLOAD_POPUP_TITLE)}</h1>\n" + script
        self._html(_page(DOWNLOAD_POPUP_TITLE, body))

    def _download(self) -> None:
        disposition = f'attachment; filename="{DOWNLOAD_FILENAME}"'
        self._send(200, PDF_BYTES, "application/pdf", [("Content-Disposition", disposition)])

    def _changing_image(self, route: str, name: str) -> None:
        version = self.pages.version(CHANGING_PATH)
        if route not in CHANGING_PAGES[version].images:
            self._not_found()
            return
        self._send(200, changing_image_bytes(name, version), "image/png")

    def _unavailable(self) -> None:
        body = (
            f'<div role="main"><h2 id="message">{_text(UNAVAILABLE_MESSAGE)}</h2>\n'
            f"<p>{_text(UNAVAILABLE_DETAIL)}</p>\n"
            '<a href="/">Go to News Feed</a></div>'
        )
        self._html(_page("Social network", body))

    def _infinite(self, query: dict[str, list[str]]) -> None:
        delay = _number(query, "delay", 0.0, 0, MAX_DELAY_SECONDS)
        body = (
            '<h1>Feed</h1>\n<div id="feed">\n'
            + _infinite_items(1)
            + '\n</div>\n<p id="sentinel">Loading more…</p>\n'
            + _INFINITE_SCRIPT.replace("DELAY", f"{delay:g}")
        )
        self._html(_page("Infinite feed", body))

    def _words(self, query: dict[str, list[str]]) -> None:
        count = int(_number(query, "count", 1000, 1, WORDS_MAX))
        words = " ".join(f"w{n:x}" for n in range(count))  # one word each: w0, w1 ... wff ...
        self._html(_page("Many words", f"<h1>Many words</h1>\n<p>{words}</p>"))

    def _big(self, query: dict[str, list[str]]) -> None:
        size = int(_number(query, "size", BIG_DEFAULT_SIZE, 0, BIG_MAX_SIZE))
        # The padding sits in a comment: the byte count grows, the DOM barely does.
        head, tail = (
            part.encode() for part in _page("Big page", "<h1>Big page</h1>\n<!--@-->").split("@")
        )
        padding = size - len(head) - len(tail)
        if padding < 0:
            raise _BadRequest(f"size must be at least {len(head) + len(tail)}")
        self._send_head(200, "text/html; charset=utf-8", size)
        if self.command == "HEAD":
            return
        # Streamed, so a gigabyte page costs no gigabyte of memory.
        self.wfile.write(head)
        block = b"." * 65536
        while padding > 0:
            piece = block[:padding]
            self.wfile.write(piece)
            padding -= len(piece)
        self.wfile.write(tail)

    def _duplicate_headers(self) -> None:
        headers = [("Set-Cookie", value) for value in DUPLICATE_SET_COOKIES]
        headers += [("Link", value) for value in DUPLICATE_LINKS]
        self._html(_page("Duplicate headers", "<p>Two Set-Cookie, two Link.</p>"), headers=headers)

    def _echo_headers(self) -> None:
        # Repeated headers are joined, as RFC 9110 allows, so each name appears once.
        echoed: dict[str, str] = {}
        for name, value in self.headers.items():
            echoed[name] = f"{echoed[name]}, {value}" if name in echoed else value
        self._json(echoed)

    def _cookie_set(self, query: dict[str, list[str]]) -> None:
        name = _param(query, "name", COOKIE_DEFAULT_NAME)
        value = _param(query, "value", COOKIE_DEFAULT_VALUE)
        if not (_SAFE_TOKEN.match(name) and _SAFE_TOKEN.match(value)):
            raise _BadRequest("cookie name and value must match [A-Za-z0-9_.-]{1,64}")
        cookie = f"{name}={value}; Path=/; SameSite=Lax"
        self._html(_page("Cookie set", f"<p>Set {name}.</p>"), headers=[("Set-Cookie", cookie)])

    def _cookie_show(self) -> None:
        cookies: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(header)
            except CookieError:
                continue
            cookies.update({name: morsel.value for name, morsel in jar.items()})
        self._json(cookies)


def lazy_image_paths(count: int = LAZY_IMAGE_COUNT) -> list[str]:
    """Every image path on ``/lazy?count=count``: the lazy-N images, then the observed-N ones."""
    return [f"/img/{kind}-{n}.png" for kind in ("lazy", "observed") for n in range(1, count + 1)]
