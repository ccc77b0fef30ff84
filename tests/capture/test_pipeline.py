"""The capture pipeline in a real Chromium against pages served on 127.0.0.1: what a court, and
the defence's expert, would check in a capture."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import ipaddress
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from warcio.archiveiterator import ArchiveIterator

from capture import pipeline as capture_pipeline
from capture.browser import BrowserSession
from capture.pipeline import CapturePipeline
from evidence.blobstore import FolderStore
from evidence.captures import CaptureRecord
from evidence.settings import Settings
from tests.support import pages_server as pages
from tests.support.net import free_port

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server() -> Iterator[pages.PagesServer]:
    with pages.PagesServer() as s:
        yield s


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("home"), capture_allow="127.0.0.1",
                    navigation_timeout_seconds=10, capture_timeout_seconds=60,
                    max_scroll_steps=20)


@pytest.fixture(scope="module")
def browser(settings: Settings) -> Iterator[BrowserSession]:
    with BrowserSession(settings) as b:
        yield b


@pytest.fixture(scope="module")
def store(settings: Settings) -> FolderStore:
    s = FolderStore(settings.blob_path)
    s.create()
    return s


@pytest.fixture(scope="module")
def pipeline(browser: BrowserSession, store: FolderStore, settings: Settings) -> CapturePipeline:
    return CapturePipeline(browser, store, settings)


def _artifact(record: CaptureRecord, kind: str) -> bytes:
    found = [a for a in record.artifacts if a.kind == kind]
    assert found, f"no {kind} artifact; steps: {record.steps}"
    return Path(found[0].path).read_bytes()


def test_simple_page_yields_every_artifact_hashed_as_stored(
    server: pages.PagesServer, pipeline: CapturePipeline, store: FolderStore,
) -> None:
    record = pipeline.run(server.url(pages.SIMPLE_PATH), operator="nadia")
    assert record.status == "complete", record.steps
    kinds = {a.kind for a in record.artifacts}
    assert {"screenshot", "screenshot_viewport", "dom", "mhtml", "pdf", "text", "warc",
            "media", "metadata"} <= kinds
    for artifact in record.artifacts:
        data = Path(artifact.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact.sha256 == Path(artifact.path).name
        assert len(data) == artifact.size
        store.verify(artifact.sha256)
    assert _artifact(record, "screenshot").startswith(b"\x89PNG")
    assert _artifact(record, "pdf").startswith(b"%PDF")
    assert b"Content-Type: multipart/related" in _artifact(record, "mhtml")
    assert pages.SIMPLE_TEXT in _artifact(record, "text").decode("utf-8")
    assert record.title == pages.SIMPLE_TITLE
    assert record.http_status == 200 and record.remote_ip == "127.0.0.1"
    assert record.remote_port == server.port
    meta = json.loads(_artifact(record, "metadata"))
    assert meta["requested_url"] == server.url(pages.SIMPLE_PATH)
    assert meta["operator"] == "nadia" and meta["browser_version"].startswith("Chromium")
    assert meta["started_at"].endswith("Z") and meta["user_agent"]
    # The page fits the viewport: its full-page image is the viewport's, kept once.
    assert _artifact(record, "screenshot_viewport") == _artifact(record, "screenshot")
    assert "fits the viewport" in (record.step("screenshot_viewport").note or "")  # type: ignore[union-attr]


def test_warc_holds_every_request_and_response(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    record = pipeline.run(server.url(pages.SIMPLE_PATH))
    warc = _artifact(record, "warc")
    uris = []
    for rec in ArchiveIterator(io.BytesIO(warc)):
        assert rec.rec_headers.get_header("WARC-Type") in ("warcinfo", "request", "response")
        if rec.rec_type == "response":
            uris.append(rec.rec_headers.get_header("WARC-Target-URI"))
            assert rec.rec_headers.get_header("WARC-IP-Address") == "127.0.0.1"
    # Headless Chromium never asks for a favicon; everything the page itself loads is there.
    for resource in pages.SIMPLE_RESOURCES:
        if resource != "/favicon.ico":
            assert any(u.endswith(resource) for u in uris), (resource, uris)
    assert gzip.decompress(warc)[:8] == b"WARC/1.1"


def test_redirect_chain_is_recorded_with_statuses(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    record = pipeline.run(server.url("/redirect/start"))
    assert record.status == "complete"
    assert [hop["status"] for hop in record.redirects] == list(pages.REDIRECT_STATUSES)
    assert record.final_url == server.url(pages.REDIRECT_CHAIN[-1])
    assert record.title == pages.REDIRECT_END_TITLE


@pytest.mark.parametrize(("path", "title", "text"), [
    ("/charset/windows-1256", pages.ARABIC_1256_TITLE, pages.ARABIC_1256_TEXT),
    ("/charset/iso-8859-1", pages.LATIN_8859_1_TITLE, pages.LATIN_8859_1_TEXT),
    ("/rtl", pages.RTL_TITLE, pages.TIGRINYA_TEXT),
])
def test_text_is_utf8_whatever_the_page_charset(
    server: pages.PagesServer, pipeline: CapturePipeline, path: str, title: str, text: str,
) -> None:
    record = pipeline.run(server.url(path))
    assert record.title == title
    assert text in _artifact(record, "text").decode("utf-8")


def test_lazy_images_are_loaded_by_scrolling(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    server.clear_requests()
    record = pipeline.run(server.url("/lazy"))
    fetched = set(server.paths())
    assert set(pages.lazy_image_paths(pages.LAZY_IMAGE_COUNT)) <= fetched
    assert record.step("scroll") is not None and record.step("scroll").ok  # type: ignore[union-attr]
    media = [a for a in record.artifacts if a.kind == "media"]
    assert len(media) >= pages.LAZY_IMAGE_COUNT
    # A tall page gets a viewport screenshot of its own, the size of the viewport.
    viewport = _artifact(record, "screenshot_viewport")
    assert viewport != _artifact(record, "screenshot")
    assert int.from_bytes(viewport[20:24], "big") == pipeline.settings.viewport_height


def test_dialogs_are_dismissed_and_recorded(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    record = pipeline.run(server.url("/dialogs"))
    assert record.status == "complete"
    messages = [d["message"] for d in record.dialogs]
    assert pages.ALERT_MESSAGE in messages and pages.CONFIRM_MESSAGE in messages


def test_private_addresses_are_refused_before_and_during_the_capture(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    strict = CapturePipeline(browser, store, settings.model_copy(update={"capture_allow": None}))
    refused = strict.run(server.url(pages.SIMPLE_PATH))
    assert refused.status == "failed"
    assert refused.error is not None and "loopback" in refused.error
    redirected = CapturePipeline(browser, store, settings).run(
        server.url("/redirect/to?location=http://169.254.169.254/latest/meta-data/&status=302"))
    assert redirected.status == "failed"
    assert any("169.254.169.254" in b["url"] for b in redirected.blocked)


class _Page(http.server.BaseHTTPRequestHandler):
    """Answers every GET with `body` as HTML, and counts the paths asked for in `hits`."""

    body = b"<p>internal secret</p>"
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_args: object) -> None:
        pass


def _page(body: bytes, hits: list[str] | None = None) -> type[_Page]:
    return type("Page", (_Page,), {"body": body, "hits": [] if hits is None else hits})


@contextlib.contextmanager
def _serving(host: str, handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def inside() -> Iterator[tuple[str, list[str]]]:
    """An address inside the unit's network (127.0.0.2: not the one the tests allow), counting
    what reaches it: a page can send the browser here by redirect, script, frame or socket."""
    hits: list[str] = []
    with _serving("127.0.0.2", _page(b"<p>internal secret</p>", hits)) as base:
        yield base, hits


def test_no_request_reaches_a_refused_address_by_any_road(
    server: pages.PagesServer, pipeline: CapturePipeline, inside: tuple[str, list[str]],
) -> None:
    """Refused before it is sent, not found out after: every hop of a redirect chain, and what
    a page fetches, frames or opens a socket to."""
    base, hits = inside
    for status in (301, 302, 307):
        redirected = pipeline.run(server.url(
            f"/redirect/to?location={base}/secret-{status}&status={status}"))
        assert redirected.status == "failed"
        assert redirected.error is not None
        assert f"led the browser to {base}/secret-{status}, which it was not let fetch" in (
            redirected.error), redirected.error
        assert "loopback" in redirected.error
        assert any(b["url"] == f"{base}/secret-{status}" for b in redirected.blocked)
    hostile = f"""<p>innocent</p><iframe src="{base}/framed"></iframe>
        <img src="{base}/pixel.png"><script>
        fetch("{base}/fetched").catch(() => null);
        try {{ new WebSocket("{base.replace('http', 'ws')}/socket"); }} catch (e) {{}}
        </script>""".encode()
    with _serving("127.0.0.1", _page(hostile)) as outside:
        loaded = pipeline.run(f"{outside}/ad")
    assert loaded.status != "failed"
    refused = {b["url"] for b in loaded.blocked}
    for path in ("/framed", "/pixel.png", "/fetched"):
        assert f"{base}{path}" in refused, (path, refused)
    assert any(u.startswith("ws://127.0.0.2") for u in refused), refused
    assert hits == []


def test_a_page_that_never_lets_go_is_stopped_at_the_time_limit(
    browser: BrowserSession, store: FolderStore, settings: Settings,
    server: pages.PagesServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A script that loops on alert() holds every call into the browser: the worker would wait
    for ever. Past the limit the browser is stopped, the capture says so, and the next capture
    has a browser again."""
    monkeypatch.setattr(capture_pipeline, "OVERRUN_GRACE_SECONDS", 1.0)
    hostile = (b"<title>loop</title><p>crossings</p>"
               b"<script>setTimeout(() => { for (;;) alert('x'); }, 300)</script>")
    limited = CapturePipeline(browser, store, settings.model_copy(
        update={"capture_timeout_seconds": 6}))
    with _serving("127.0.0.1", _page(hostile)) as outside:
        started = time.monotonic()
        record = limited.run(f"{outside}/loop")
        took = time.monotonic() - started
    assert took < 60, took
    stopped = record.step("time limit")
    assert stopped is not None and not stopped.ok
    assert "past the capture's limit of 6 s; the browser was stopped" in (stopped.error or "")
    assert record.status in ("partial", "failed")
    assert len(record.dialogs) <= capture_pipeline.MAX_DIALOGS + 1
    after = limited.run(server.url(pages.SIMPLE_PATH))
    assert after.status == "complete", after.steps


def test_infinite_scroll_stops_at_its_bound(
    server: pages.PagesServer, pipeline: CapturePipeline, settings: Settings,
) -> None:
    record = pipeline.run(server.url("/infinite"))
    scroll = record.step("scroll")
    assert scroll is not None and scroll.ok and scroll.note is not None
    assert "bound" in scroll.note
    assert record.status == "complete"


def test_a_feed_that_loads_slower_than_a_scroll_pause_is_scrolled_on(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    """Each page of this feed comes 0.6 s after it is asked for, more than the pause after a
    scroll: the page has not ended because it did not grow at once."""
    record = pipeline.run(server.url("/infinite?delay=0.6"))
    scroll = record.step("scroll")
    assert scroll is not None and scroll.ok and scroll.note is not None
    assert "stopped at the bound of 20 screens" in scroll.note, scroll.note
    assert record.status == "complete"


def test_popups_are_closed_and_recorded(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    record = pipeline.run(server.url("/popup"))
    assert record.status == "complete"
    assert record.popups == [server.url(pages.POPUP_TARGET_PATH)]
    assert record.downloads == [] and not [a for a in record.artifacts if a.kind == "download"]


def test_downloads_are_stored_not_followed(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    record = pipeline.run(server.url("/download.html?auto"))
    assert record.final_url is not None and record.final_url.endswith("/download.html?auto")
    downloads = [a for a in record.artifacts if a.kind == "download"]
    assert len(downloads) == 1
    assert downloads[0].name.endswith(pages.DOWNLOAD_FILENAME)
    assert Path(downloads[0].path).read_bytes() == pages.PDF_BYTES
    said = record.step("downloads")  # counted as a reader counts: not "1 downloads"
    assert said is not None and said.note == "1 download"


def _warc_responses(record: CaptureRecord) -> dict[str, tuple[Any, bytes]]:
    """The WARC's response records by target URI: (record, payload)."""
    found = {}
    for rec in ArchiveIterator(io.BytesIO(_artifact(record, "warc"))):
        if rec.rec_type == "response":
            uri = rec.rec_headers.get_header("WARC-Target-URI")
            found[uri] = (rec, rec.content_stream().read())
    return found


@pytest.mark.parametrize(("path", "body", "media_type"), [
    (pages.INLINE_PDF_PATH, pages.PDF_BYTES, "application/pdf"),  # the browser would show it
    (pages.DOWNLOAD_PATH, pages.PDF_BYTES, "application/pdf"),  # sent as an attachment
    (pages.ZIP_PATH, pages.ZIP_BYTES, "application/zip"),  # no page type: a download
])
def test_an_address_that_answers_with_a_file_keeps_the_file(
    server: pages.PagesServer, pipeline: CapturePipeline,
    path: str, body: bytes, media_type: str,
) -> None:
    """A link to a smuggler's price list as a PDF or a ZIP of fake papers: the file the server
    sent is the evidence, in the store and in the WARC, never the PDF viewer's own page."""
    record = pipeline.run(server.url(path))
    assert record.status == "complete", record.steps
    assert record.http_status == 200 and record.final_url == server.url(path)
    assert record.remote_ip == "127.0.0.1"
    assert ["Content-Type", media_type] in record.response_headers
    navigate = record.step("navigate")
    assert navigate is not None and "answered with a file, not a page" in (navigate.note or "")
    files = [a for a in record.artifacts if a.kind == "download"]
    assert len(files) == 1 and files[0].media_type == media_type
    assert Path(files[0].path).read_bytes() == body
    assert files[0].sha256 == hashlib.sha256(body).hexdigest()
    # Nothing claims to show a page that was never there; a PDF's own words are read from it.
    assert not {a.kind for a in record.artifacts} & {"screenshot", "dom", "pdf"}
    if media_type == "application/pdf":
        assert _artifact(record, "text").decode().strip() == pages.PDF_TEXT
        text = record.step("text")
        assert text is not None and text.note == "text read from the PDF's one page"
    else:
        assert record.step("text") is None and "text" not in {a.kind for a in record.artifacts}
    assert record.step("pdf_texts") is None  # the file's words are the capture's own text
    rec, payload = _warc_responses(record)[server.url(path)]
    assert payload == body
    assert rec.http_headers.get_header("Content-Type") == media_type
    assert rec.rec_headers.get_header("WARC-Truncated") is None


def test_a_pdf_whose_text_cannot_be_read_is_kept_and_the_capture_says_why(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    record = pipeline.run(server.url(pages.BROKEN_PDF_PATH))
    assert record.status == "partial", record.steps
    text = record.step("text")
    assert text is not None and not text.ok
    assert (text.error or "").startswith("the PDF's text could not be read: ")
    files = [a for a in record.artifacts if a.kind == "download"]
    assert [Path(a.path).read_bytes() for a in files] == [pages.BROKEN_PDF_BYTES]
    assert "text" not in {a.kind for a in record.artifacts}


def test_a_pdf_reached_by_a_redirect_keeps_the_chain_and_the_headers_as_sent(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    start = server.url(f"/redirect/to?location={pages.INLINE_PDF_PATH}&status=307")
    record = pipeline.run(start)
    assert record.status == "complete", record.steps
    assert record.redirects == [{"url": start, "status": 307}]
    assert record.final_url == server.url(pages.INLINE_PDF_PATH)
    # The capture told the browser to save the PDF; the record keeps what the server sent.
    assert not any(name.lower() == "content-disposition" for name, _ in record.response_headers)
    rec, payload = _warc_responses(record)[server.url(pages.INLINE_PDF_PATH)]
    assert payload == pages.PDF_BYTES
    assert rec.http_headers.get_header("Content-Disposition") is None


def test_a_pdf_in_a_frame_is_kept_beside_the_page(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    record = pipeline.run(server.url(pages.PDF_FRAME_PATH))
    assert record.status == "complete", record.steps
    assert record.title == "A leaflet in a frame"
    files = [a for a in record.artifacts if a.kind == "download"]
    assert [Path(a.path).read_bytes() for a in files] == [pages.PDF_BYTES]
    assert _warc_responses(record)[server.url(pages.INLINE_PDF_PATH)][1] == pages.PDF_BYTES
    # Its words are read into a text of their own, named by the PDF's hash; the page's text is
    # what the page showed.
    [read] = [a for a in record.artifacts if a.kind == "pdf_text"]
    assert read.name == f"{hashlib.sha256(pages.PDF_BYTES).hexdigest()}.txt"
    assert Path(read.path).read_text().strip() == pages.PDF_TEXT
    assert pages.PDF_TEXT not in _artifact(record, "text").decode()


def test_pdfs_in_embeds_and_objects_are_read_and_a_broken_one_is_said(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    """A smuggler's page with a price list in an <embed> and leaflets in <object>s: the words
    of each readable PDF are kept, tied to the PDF by its hash; one that is no PDF is said, and
    the capture is complete."""
    record = pipeline.run(server.url(pages.PDF_EMBED_PATH))
    assert record.status == "complete", record.steps
    read = {a.name: a for a in record.artifacts if a.kind == "pdf_text"}
    texts = {name: Path(a.path).read_text().strip() for name, a in read.items()}
    price_list = hashlib.sha256(pages.PRICE_LIST_BYTES).hexdigest()
    leaflet = hashlib.sha256(pages.PDF_BYTES).hexdigest()
    broken = hashlib.sha256(pages.BROKEN_PDF_BYTES).hexdigest()
    assert texts == {f"{price_list}.txt": pages.PRICE_LIST_TEXT, f"{leaflet}.txt": pages.PDF_TEXT}
    said = {entry["pdf_sha256"]: entry for entry in
            json.loads(_artifact(record, "metadata"))["pdf_texts"]}
    assert set(said) == {price_list, leaflet, broken}
    assert said[price_list]["url"] == server.url(pages.PRICE_LIST_PATH)
    assert said[price_list]["text_sha256"] == read[f"{price_list}.txt"].sha256
    assert said[broken]["text_sha256"] is None
    assert said[broken]["note"].startswith("the PDF's text could not be read: ")
    step = record.step("pdf_texts")
    assert step is not None and step.ok
    assert step.note is not None and step.note.startswith(
        f"text of 2 of the 3 PDFs the page loaded; first without text: "
        f"{server.url(pages.BROKEN_PDF_PATH)}: the PDF's text could not be read")
    page_text = _artifact(record, "text").decode()
    assert "Papers" in page_text and pages.PRICE_LIST_TEXT not in page_text


def test_no_cookie_survives_from_one_capture_to_the_next(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    first = pipeline.run(server.url("/cookie/set"))
    assert first.status == "complete"
    second = pipeline.run(server.url("/cookie/show"))
    assert pages.COOKIE_DEFAULT_VALUE not in _artifact(second, "text").decode("utf-8")


def test_a_server_too_slow_to_answer_fails_with_a_clear_reason(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    impatient = CapturePipeline(browser, store, settings.model_copy(
        update={"navigation_timeout_seconds": 1.5}))
    record = impatient.run(server.url("/slow?delay=5"))
    assert record.status == "failed"
    # In words, not Playwright's "Page.goto: Timeout 1500ms exceeded." and its call log.
    assert record.error == (f"loading {server.url('/slow?delay=5')}: timed out after 1.5 seconds: "
                            "the server had not answered, so nothing of the page came to be "
                            "kept")
    assert any(a.kind == "metadata" for a in record.artifacts)


def test_a_page_that_never_finishes_loading_is_captured_as_it_stood(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    """The answer starts at once and trickles for 20 s (a tracker that hangs does the same to
    the load event): what the page showed by the navigation bound is evidence, not a failure
    to retry three times."""
    impatient = CapturePipeline(browser, store, settings.model_copy(
        update={"navigation_timeout_seconds": 3}))
    record = impatient.run(server.url("/slow-body?delay=20&chunks=20"))
    assert record.status == "partial", record.steps
    assert record.http_status == 200 and record.title == "Slow body"
    load = record.step("load")
    assert load is not None and not load.ok
    assert load.error == ("the page did not finish loading within 3 seconds; what it showed by "
                          "then is captured")
    text = _artifact(record, "text").decode()
    assert "Slow body" in text and "chunk 1" in text and "chunk 20" not in text
    assert {"screenshot", "dom", "warc"} <= {a.kind for a in record.artifacts}


def test_a_redirect_loop_fails_and_keeps_the_hops_it_went_through(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    record = pipeline.run(server.url("/redirect/loop"))
    assert record.status == "failed"
    assert record.error == (f"loading {server.url('/redirect/loop')}: the address redirects in "
                            "a loop: the browser gave up after 20 redirects "
                            "(net::ERR_TOO_MANY_REDIRECTS)")
    assert len(record.redirects) >= 20, record.redirects
    assert {(hop["url"], hop["status"]) for hop in record.redirects} == {
        (server.url("/redirect/loop"), 302)}


def test_a_server_that_refuses_the_connection_is_said_in_words_with_the_browsers_code(
    pipeline: CapturePipeline,
) -> None:
    port = free_port()  # nothing listens there once it is handed out
    url = f"http://127.0.0.1:{port}/post"
    record = pipeline.run(url)
    assert record.status == "failed"
    assert record.error == (f"loading {url}: the server refused the connection: nothing answers "
                            "at that address and port (net::ERR_CONNECTION_REFUSED)")
    step = record.step("navigate")
    assert step is not None and step.error == record.error


def test_a_site_whose_name_does_not_resolve_says_so(pipeline: CapturePipeline) -> None:
    record = pipeline.run("http://no-such-site.invalid/post")
    assert record.status == "failed"
    assert record.error is not None and record.error.startswith(
        "refused: the site's name did not resolve: no such domain, or its DNS failed (cannot "
        "resolve host no-such-site.invalid: ")


def test_an_artifact_over_its_size_bound_is_refused_and_the_capture_is_partial(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    bounded = CapturePipeline(browser, store, settings.model_copy(
        update={"max_artifact_bytes": 600_000}))
    record = bounded.run(server.url("/big?size=1000000"))
    assert record.status == "partial"
    failed = {s.name: s.error for s in record.steps if not s.ok}
    assert "dom" in failed and "bound" in (failed["dom"] or "")
    assert all(a.size <= 600_000 for a in record.artifacts)


def test_the_text_language_is_detected(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    arabic = pipeline.run(server.url("/charset/windows-1256"))
    assert arabic.language["detected"] == "ar" and arabic.language["script"] == "Arab"
    latin = pipeline.run(server.url(pages.SIMPLE_PATH))
    assert latin.language["script"] == "Latn"
    meta = json.loads(_artifact(arabic, "metadata"))
    assert meta["language"]["detected"] == "ar"


def test_pipeline_warc_passes_warcio_check(
    server: pages.PagesServer, pipeline: CapturePipeline, tmp_path: Path,
) -> None:
    record = pipeline.run(server.url("/redirect/start"))
    warc = tmp_path / "capture.warc.gz"
    warc.write_bytes(_artifact(record, "warc"))
    checked = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", "-v",
                              str(warc)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "digest pass" in checked.stdout


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    """A page over TLS with a self-signed certificate, as many small sites have."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (folder / "index.html").write_text("<title>TLS page</title><p>Served over TLS</p>")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield (f"https://127.0.0.1:{httpd.server_address[1]}/index.html",
               cert.fingerprint(hashes.SHA256()))
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_tls_certificate_chain_is_recorded_with_fingerprints(
    https_server: tuple[str, bytes], pipeline: CapturePipeline,
) -> None:
    url, fingerprint = https_server
    record = pipeline.run(url)
    assert record.status == "complete", record.steps
    assert record.title == "TLS page"
    assert record.tls is not None
    chain = record.tls["chain"]
    assert chain[0]["sha256_fingerprint"] == fingerprint.hex()
    assert chain[0]["subject"] == "CN=localhost"
    assert record.tls["negotiated"]["protocol"].startswith("TLS")
    meta = json.loads(_artifact(record, "metadata"))
    assert meta["tls"]["chain"][0]["sha256_fingerprint"] == fingerprint.hex()


def test_a_body_the_browser_record_drops_is_archived_whole(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    """A 40 MB page: the browser's own traffic record keeps no body that large (seen: 11 MB
    kept, 30 MB not); the capture takes it from its own DevTools session, so the WARC holds
    the page as the server sent it, not an empty answer."""
    path = "/big?size=40000000"
    record = pipeline.run(server.url(path))
    assert record.status == "complete", record.steps
    rec, payload = _warc_responses(record)[server.url(path)]
    assert rec.rec_headers.get_header("WARC-Truncated") is None
    assert len(payload) == 40_000_000 and b"<title>Big page</title>" in payload[:200]
    warc = record.step("warc")
    assert warc is not None and "without their body" not in (warc.note or "")
    large = record.step("large bodies")
    assert large is not None and large.ok and "1 large body taken" in (large.note or "")
    assert len(_artifact(record, "dom")) > 39_000_000  # what the page showed is kept too


def test_a_large_video_a_page_fetched_is_kept_as_media_and_in_the_warc(
    server: pages.PagesServer, pipeline: CapturePipeline,
) -> None:
    size = 30_000_000
    record = pipeline.run(server.url(f"{pages.BIG_MEDIA_PAGE_PATH}?size={size}"))
    assert record.status == "complete", record.steps
    body = pages.blob_bytes(size)
    video_url = server.url(f"{pages.BIG_MEDIA_PATH}?size={size}")
    rec, payload = _warc_responses(record)[video_url]
    assert rec.rec_headers.get_header("WARC-Truncated") is None
    assert hashlib.sha256(payload).hexdigest() == hashlib.sha256(body).hexdigest()
    media = [a for a in record.artifacts if a.kind == "media"]
    assert [(a.sha256, a.size, a.media_type) for a in media] == [
        (hashlib.sha256(body).hexdigest(), size, pages.BIG_MEDIA_TYPE)]


def test_a_body_over_the_bound_is_marked_truncated_not_archived_empty(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    """Over the bound per artifact, a body is not kept: the WARC says so (WARC-Truncated)
    instead of holding an empty 200 answer, and so does the capture."""
    bounded = CapturePipeline(browser, store, settings.model_copy(
        update={"max_artifact_bytes": 25_000_000}))
    size = 30_000_000
    record = bounded.run(server.url(f"{pages.BIG_MEDIA_PAGE_PATH}?size={size}"))
    assert record.status == "complete", record.steps
    video_url = server.url(f"{pages.BIG_MEDIA_PATH}?size={size}")
    rec, payload = _warc_responses(record)[video_url]
    assert rec.rec_headers.get_header("WARC-Truncated") == "unspecified" and payload == b""
    warc = record.step("warc")
    assert warc is not None and "1 response archived without their body" in (warc.note or "")
    assert not [a for a in record.artifacts if a.kind == "media"]


def test_a_file_that_never_ends_is_stopped_at_the_bound_not_left_to_fill_the_disk(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    """Sent with no length and no end: the download is stopped once past the bound per
    artifact, instead of growing until the capture's time runs out."""
    bounded = CapturePipeline(browser, store, settings.model_copy(
        update={"max_artifact_bytes": 5_000_000}))
    record = bounded.run(server.url(pages.ENDLESS_PATH))
    assert record.status == "partial", record.steps
    assert record.http_status == 200
    navigate = record.step("navigate")
    assert navigate is not None and navigate.ok
    assert "the download was stopped at" in (navigate.note or "")
    downloads = record.step("downloads")
    assert downloads is not None and not downloads.ok
    assert "for growing past the 5000000-byte bound" in (downloads.error or "")
    stopped_at = int((downloads.error or "").rsplit("stopped at ", 1)[1].split()[0])
    assert stopped_at > 5_000_000
    assert not [a for a in record.artifacts if a.kind == "download"]
    assert {"metadata", "warc"} <= {a.kind for a in record.artifacts}
    assert list(browser.downloads_dir.iterdir()) == []  # nothing of it left on disk
    assert bounded.run(server.url(pages.ZIP_PATH)).status == "complete"  # the browser goes on


def test_a_file_over_the_bound_is_said_not_kept_and_the_warc_is_still_kept(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    bounded = CapturePipeline(browser, store, settings.model_copy(
        update={"max_artifact_bytes": 20_000}))
    path = f"{pages.BLOB_PATH}?size=20001"
    record = bounded.run(server.url(path))
    assert record.status == "partial"
    downloads = record.step("downloads")
    assert downloads is not None and not downloads.ok
    # Said either way, by when the bound was seen: finished over it, or stopped growing past it
    # (a loaded machine lets the watch see the file grow).
    said = downloads.error or ""
    assert "not stored" in said
    assert "over the 20000" in said or "past the 20000-byte bound" in said
    assert not [a for a in record.artifacts if a.kind == "download"]
    rec, payload = _warc_responses(record)[server.url(path)]
    assert rec.rec_headers.get_header("WARC-Truncated") == "unspecified" and payload == b""


def _downloads_said(record: CaptureRecord) -> list[dict[str, Any]]:
    """What the capture's metadata document says of the page's downloads."""
    said: list[dict[str, Any]] = json.loads(_artifact(record, "metadata"))["downloads"]
    return said


def _endless_download_stopped(record: CaptureRecord, server: pages.PagesServer) -> str:
    """The capture is partial for one thing only, the endless download it stopped, and says
    so: what it says."""
    assert record.status == "partial", record.steps
    assert [s.name for s in record.steps if not s.ok] == ["downloads"]
    downloads = record.step("downloads")
    assert downloads is not None and downloads.error is not None
    assert (f"1 download stopped, not stored; first {server.url(pages.ENDLESS_PATH)}, "
            "stopped at ") in downloads.error
    return downloads.error


def _report_kept_beside_the_page(
    record: CaptureRecord, server: pages.PagesServer, browser: BrowserSession, page: str,
    title: str, *, popup: str | None,
) -> None:
    """The capture of `page` is whole, and the report the page had downloaded is kept beside
    it with its hash, said with its address, its name and the pop-up it came from (`popup`),
    nothing of it left in the browser's downloads folder."""
    assert record.status == "complete", record.steps
    assert record.final_url == page and record.title == title
    files = [a for a in record.artifacts if a.kind == "download"]
    assert [Path(a.path).read_bytes() for a in files] == [pages.PDF_BYTES]
    assert _downloads_said(record) == [{
        "url": server.url(pages.DOWNLOAD_PATH), "suggested_filename": pages.DOWNLOAD_FILENAME,
        "outcome": "kept", "stopped_at": None, "reason": None, "popup": popup,
        "size": len(pages.PDF_BYTES), "sha256": hashlib.sha256(pages.PDF_BYTES).hexdigest()}]
    assert {"screenshot", "dom", "pdf", "text"} <= {a.kind for a in record.artifacts}
    assert list(browser.downloads_dir.iterdir()) == []


@pytest.mark.parametrize(("via", "opened"), [
    ("open", pages.DOWNLOAD_PATH),  # window.open() of the file itself
    # A link with target="_blank" to an address that redirects to the file.
    ("link", f"/redirect/to?location={pages.DOWNLOAD_PATH}"),
])
def test_a_file_a_pop_up_downloads_is_kept_and_said_to_come_from_the_pop_up(
    server: pages.PagesServer, pipeline: CapturePipeline, browser: BrowserSession,
    via: str, opened: str,
) -> None:
    """The page opens a pop-up that answers with a file: the file is kept beside the page with
    its hash, as the page's own downloads are, and said to come from a pop-up opened at its
    address; the pop-up is listed among the page's pop-ups by that address."""
    page = server.url(f"{pages.DOWNLOAD_POPUP_PATH}?via={via}&to={quote(opened, safe='')}")
    record = pipeline.run(page)
    _report_kept_beside_the_page(record, server, browser, page, pages.DOWNLOAD_POPUP_TITLE,
                                 popup=server.url(opened))
    assert record.popups == [server.url(opened)]


def test_an_endless_file_a_pop_up_downloads_is_stopped_at_the_bound(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    """A pop-up's download is bounded as the page's own are: stopped past the bound per
    artifact, nothing of it kept, and said with the pop-up it came from."""
    bounded = CapturePipeline(browser, store, settings.model_copy(
        update={"max_artifact_bytes": 5_000_000}))
    record = bounded.run(server.url(f"{pages.DOWNLOAD_POPUP_PATH}?to={pages.ENDLESS_PATH}"))
    said_stopped = _endless_download_stopped(record, server)
    assert said_stopped.endswith("for growing past the 5000000-byte bound per artifact")
    [said] = _downloads_said(record)
    assert said["outcome"] == "stopped" and said["url"] == server.url(pages.ENDLESS_PATH)
    assert said["popup"] == server.url(pages.ENDLESS_PATH)
    assert said["stopped_at"] > 5_000_000 and "sha256" not in said
    assert not [a for a in record.artifacts if a.kind == "download"]
    assert list(browser.downloads_dir.iterdir()) == []  # nothing of it left on disk


def test_a_download_a_page_starts_while_it_is_captured_is_kept_with_its_address_and_name(
    server: pages.PagesServer, pipeline: CapturePipeline, browser: BrowserSession,
) -> None:
    """The page starts a download once the capture takes its full-page screenshot, after the
    capture last waited for the network: the file is kept beside the page, said with its
    address and name."""
    page = server.url(f"{pages.DOWNLOAD_LATER_PATH}?delay=0&to={pages.DOWNLOAD_PATH}")
    record = pipeline.run(page)
    _report_kept_beside_the_page(record, server, browser, page, pages.DOWNLOAD_LATER_TITLE,
                                 popup=None)
    assert record.popups == []


def test_an_endless_download_a_page_starts_later_is_stopped_at_the_bound(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    """Started while the page is being rendered, after the steps that used to watch downloads:
    it is stopped past the bound per artifact all the same, and said."""
    bounded = CapturePipeline(browser, store, settings.model_copy(
        update={"max_artifact_bytes": 5_000_000}))
    page = server.url(f"{pages.DOWNLOAD_LATER_PATH}?delay=0&to={pages.ENDLESS_PATH}")
    record = bounded.run(page)
    said_stopped = _endless_download_stopped(record, server)
    assert said_stopped.endswith("for growing past the 5000000-byte bound per artifact")
    [said] = _downloads_said(record)
    assert said["outcome"] == "stopped" and said["url"] == server.url(pages.ENDLESS_PATH)
    assert said["stopped_at"] > 5_000_000 and "sha256" not in said
    assert not [a for a in record.artifacts if a.kind == "download"]
    assert {"screenshot", "dom", "pdf", "text", "warc"} <= {a.kind for a in record.artifacts}
    assert list(browser.downloads_dir.iterdir()) == []  # nothing of it left on disk


def test_a_download_that_outlasts_its_time_is_stopped_and_said(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
) -> None:
    """Small, but trickled for a minute: stopped once it has run as long as a page may take to
    answer, not left to hold the capture or be cut off unsaid when the browser closes."""
    impatient = CapturePipeline(browser, store, settings.model_copy(
        update={"navigation_timeout_seconds": 3}))
    trickle = f"{pages.TRICKLE_PATH}?seconds=60"
    record = impatient.run(server.url(
        f"{pages.DOWNLOAD_LATER_PATH}?delay=0&to={quote(trickle, safe='')}"))
    assert record.status == "partial", record.steps
    downloads = record.step("downloads")
    assert downloads is not None and not downloads.ok
    assert (downloads.error or "").endswith("for running past its bound of 3 s")
    [said] = _downloads_said(record)
    assert said["outcome"] == "stopped" and said["url"] == server.url(trickle)
    assert 0 <= said["stopped_at"] < pages.TRICKLE_BYTES
    assert not [a for a in record.artifacts if a.kind == "download"]
    assert list(browser.downloads_dir.iterdir()) == []


@pytest.mark.parametrize("endless_first", [True, False])
def test_two_downloads_started_together_are_each_bounded_by_their_own_bytes(
    server: pages.PagesServer, browser: BrowserSession, store: FolderStore, settings: Settings,
    endless_first: bool,
) -> None:
    """The page starts a file just under the bound and an endless one in the same moment, while
    it is rendered: the file is kept whole with its hash, the endless one is stopped past the
    bound and said. Each is bounded by its own bytes, never by the other's."""
    bounded = CapturePipeline(browser, store, settings.model_copy(
        update={"max_artifact_bytes": 5_000_000}))
    small = f"{pages.BLOB_PATH}?size=4900000"
    paths = [pages.ENDLESS_PATH, small] if endless_first else [small, pages.ENDLESS_PATH]
    started = "&".join(f"to={quote(path, safe='')}" for path in paths)
    record = bounded.run(server.url(f"{pages.DOWNLOAD_LATER_PATH}?delay=0&{started}"))
    _endless_download_stopped(record, server)
    said = {d["url"]: d for d in _downloads_said(record)}
    assert said.keys() == {server.url(small), server.url(pages.ENDLESS_PATH)}
    body = pages.blob_bytes(4_900_000)
    assert said[server.url(small)]["outcome"] == "kept"
    assert said[server.url(small)]["size"] == len(body)
    assert said[server.url(small)]["sha256"] == hashlib.sha256(body).hexdigest()
    endless = said[server.url(pages.ENDLESS_PATH)]
    assert endless["outcome"] == "stopped" and endless["stopped_at"] > 5_000_000
    assert endless["reason"] == "for growing past the 5000000-byte bound per artifact"
    files = [a for a in record.artifacts if a.kind == "download"]
    assert [Path(a.path).read_bytes() for a in files] == [body]
    assert list(browser.downloads_dir.iterdir()) == []


def test_a_download_is_bounded_while_the_capture_works_outside_the_browser(
    server: pages.PagesServer, pipeline: CapturePipeline, browser: BrowserSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trickled download is under way when the capture detects the page's language, plain
    Python work that here lasts until the download is gone: the download is stopped past its
    time during that work, not left to grow until the capture next calls the browser."""
    seen: list[bool] = []  # the download's file in the browser's folder, as the work begins, ends
    detect = capture_pipeline.detect_language

    def detect_once_the_download_is_gone(text: str) -> dict[str, str | None]:
        def coming() -> bool:
            return any(browser.downloads_dir.iterdir())
        seen.append(coming())
        limit = time.monotonic() + 30  # well past the download's bound of 10 s
        while coming() and time.monotonic() < limit:
            time.sleep(0.05)
        seen.append(coming())
        return detect(text)

    monkeypatch.setattr(capture_pipeline, "detect_language", detect_once_the_download_is_gone)
    trickle = f"{pages.TRICKLE_PATH}?seconds=60"
    record = pipeline.run(server.url(
        f"{pages.DOWNLOAD_LATER_PATH}?delay=0&to={quote(trickle, safe='')}"))
    assert seen == [True, False]
    [said] = _downloads_said(record)
    assert said["outcome"] == "stopped" and said["url"] == server.url(trickle)
    assert said["reason"] == "for running past its bound of 10 s"
    assert list(browser.downloads_dir.iterdir()) == []
