"""The capture pipeline: ordered small steps over one page, each step's outcome recorded.

The pipeline owns a temporary folder and a fresh browser context per capture. Every artifact is
written to the blob store (hashed as stored) as soon as it is made; a step that fails is
recorded with its reason and makes the capture `partial`; a page that cannot be loaded makes it
`failed` with a clear reason. Nothing is dropped silently. A full disk (the blob store's or the
temporary folder's) is not a step's failure: the capture cannot be whole, so the steps stop and
`run` raises `StorageFull` for the worker to fail the job with, recording no capture.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from playwright.sync_api import (
    BrowserContext,
    CDPSession,
    Dialog,
    Download,
    Page,
    Request,
    WebSocketRoute,
)
from playwright.sync_api import Error as PlaywrightError

from capture import pdfread, traffic
from capture.browser import BrowserSession
from capture.errors import (
    NET_ERRORS,
    CaptureError,
    NavigationFailed,
    StepTimeout,
    TooLarge,
    describe,
    map_playwright_errors,
)
from capture.pdfread import read_pdf_text
from capture.phash import ImageHashes, hash_file
from capture.urlsafety import (
    DEFAULT_SCHEMES,
    UrlPolicy,
    UrlRefused,
    check_url,
    default_resolver,
    is_allowed_address,
)
from evidence import processes
from evidence.blobstore import BlobStore, StoredBlob
from evidence.canonical import canonical_json
from evidence.captures import TOOL, CaptureRecord, StepOutcome, StoredArtifact, iso
from evidence.db import FULL_DISK_FREE_BYTES, free_bytes, temp_folder
from evidence.errors import DISK_FULL_ERRNOS, StorageFull
from evidence.models import CaptureStatus, utcnow
from evidence.settings import Settings
from evidence.words import counted

_T = TypeVar("_T")

SCROLL_PAUSE_MS = 250
SETTLE_SECONDS = 5.0
# The page has settled when no request is in flight and none started or ended for this long.
# Playwright's "networkidle" waits 500 ms after the last one; the load event has fired by then,
# and a request that starts later than this is a timer, which the scroll step's settle and the
# second look of a re-capture catch. Half a second per capture is a third of its time.
QUIET_MS = 200
_POLL_MS = 20

MAX_DIALOGS = 100
MAX_HOPS_RECORDED = 50  # of a navigation that failed (Chromium gives up after 20 redirects)
# Documents Chromium would hand to its PDF viewer, which keeps none of the file: the viewer's
# own page ends up in the DOM, the screenshot and (under the PDF's URL) the traffic record. Such
# a document is saved as a download instead, so the file the server sent is the evidence.
SAVED_NOT_SHOWN = frozenset({"application/pdf", "application/x-pdf"})
TEMP_KIND = "capture"  # the kind of a capture's `processes.OwnedFolder`
OVERRUN_GRACE_SECONDS = 30.0  # after the capture's time limit, before the browser is stopped
MAX_PDF_TEXTS = 10  # PDFs a page loaded whose words are read, per capture
# A download's suggested name is kept as given, to this length (it is the page's to choose).
MAX_SUGGESTED_CHARS = 1000
# After a download's bounds, for its cancellation to come back before the context is closed.
CANCEL_GRACE_SECONDS = 5.0
# For the browser to name a download (`Browser.downloadWillBegin`) once the page started it.
NAMED_GRACE_SECONDS = 5.0
BOTTOM_WAITS = 4  # pauses more before a page that stopped growing is taken to have ended
# A body this large (bytes on the wire) is taken again from the run's own DevTools session
# before the context closes, in case the browser's record dropped it (`keep_large_bodies`).
LARGE_BODY_BYTES = 4 * 1024 * 1024
WARC_HEADROOM_BYTES = 1024 * 1024  # headers and records of the WARC besides the bodies
_SCROLL_JS = """
async ({steps, pause, waits}) => {
  const el = document.scrollingElement || document.documentElement;
  const atBottom = () => window.scrollY + window.innerHeight >= el.scrollHeight - 2;
  // A page that fits on one screen has nothing to load by scrolling: do not wait for it.
  if (atBottom()) return {steps: 0, height: el.scrollHeight, bottom: true};
  const sleep = () => new Promise(r => setTimeout(r, pause));
  let done = 0, bottom = false;
  for (; done < steps; done++) {
    const before = el.scrollHeight;
    window.scrollBy(0, window.innerHeight);
    await sleep();
    bottom = atBottom();
    if (bottom && el.scrollHeight === before) {
      // What scrolling asked for may come slower than the pause (a slow network or a busy
      // machine): the page has ended only if it still has not grown after a few more.
      let grew = false;
      for (let wait = 0; wait < waits && !grew; wait++) {
        await sleep();
        grew = el.scrollHeight !== before;
      }
      if (!grew) break;
      bottom = atBottom();
    }
  }
  window.scrollTo(0, 0);
  return {steps: done, height: el.scrollHeight, bottom: bottom};
}
"""


@dataclass
class _Hop:
    """A document's response as the server sent it (before the browser acts on it)."""

    url: str
    status: int | None
    headers: list[list[str]]
    saved_not_shown: bool = False  # a PDF the browser was told to save, not show


@dataclass
class _Download:
    """One file a page had the browser download, from its start to its end: the one place its
    state is kept (`_Run.on_download` follows and saves it, `_Run.bound` stops it)."""

    url: str
    suggested: str  # the file name the server or page suggested, as given
    path: Path  # where the complete file is saved, in the capture's temporary folder
    deadline: float  # time.monotonic() past which it is stopped
    handle: Download | None = None  # while it comes in
    state: str = "coming"  # then "kept", "stopped" or "failed"
    guid: str | None = None  # the browser's own name for it (`_Run.on_download_begun`)
    reached: int = 0  # bytes it had when last looked at (once stopped: when it was stopped)
    stop: str | None = None  # why it is being stopped, once it is
    failure: str | None = None  # why the browser could not save it

    @property
    def name(self) -> str:
        return _safe(self.suggested)

    @property
    def stopped_at(self) -> int | None:
        """The bytes it had reached when it was stopped; nothing of it is kept."""
        return self.reached if self.state == "stopped" else None

    def outcome(self, popup: str | None) -> dict[str, Any]:
        """What the metadata document says of it (a kept file's hash is its artifact's);
        `popup`: the address of the pop-up it was downloaded in, None for the page's own."""
        return {"url": self.url, "suggested_filename": self.suggested, "outcome": self.state,
                "stopped_at": self.stopped_at, "reason": self.stop or self.failure,
                "popup": popup}


@dataclass
class _PopUp:
    """A window the page opened (a page target of the capture's context with an opener), as
    the browser tells of it (`_Run.on_target`)."""

    # The address it was opened at: its first document request, or the address of its download
    # when that came first (fetched without the network: a blob:).
    opened: str | None = None
    shows: str = ""  # the address the browser says it shows ("" while it shows nothing)


@dataclass(frozen=True)
class _Body:
    """A response body taken from the run's DevTools session, in a file."""

    url: str
    path: Path
    size: int


def _media_type(headers: list[list[str]]) -> str | None:
    """The media type of a Content-Type header, lower case, without parameters."""
    for name, value in headers:
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower() or None
    return None


class _Run:
    """State of one capture while its steps run."""

    def __init__(self, pipeline: CapturePipeline, record: CaptureRecord, tmp: Path) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.record = record
        self.tmp = tmp
        self.deadline = time.monotonic() + self.settings.capture_timeout_seconds
        self.stored_bytes = 0
        self.page: Page | None = None
        self.cdp: CDPSession | None = None
        self.fetch: CDPSession | None = None  # browser-wide, pausing every request (`guard`)
        self.blocked_documents: list[dict[str, str]] = []
        self.overran = False  # the browser was stopped for running past the time limit
        self.context: BrowserContext | None = None
        self.downloads: list[_Download] = []  # every one the page started, in order
        # What the browser says of each download in the context, by its guid (`fetch`):
        # begun and not yet matched to one of `downloads` (address, suggested name), bytes
        # received, and how it ended ("completed" or "canceled").
        self.begun: dict[str, tuple[str, str]] = {}
        self.begun_in: dict[str, str] = {}  # guid: the frame that started it
        self.received: dict[str, int] = {}
        self.ended: dict[str, str] = {}
        # The windows the page opened, by target id (the id of each one's main frame too).
        self.context_id: str | None = None
        self.popups: dict[str, _PopUp] = {}
        # Each document response the browser got, by its network request id (the same for
        # every hop of a redirect chain): URL, status and headers as the server sent them.
        self.documents: dict[str, list[_Hop]] = {}
        self.document_addresses: dict[str, tuple[str, int | None]] = {}
        self.answered: dict[str, str] = {}  # network request id: URL of its (last) response
        self.large: list[tuple[str, int]] = []  # request id, bytes: loaded bodies to keep whole
        self.large_bodies: list[_Body] = []  # kept by `keep_large_bodies`, in order of loading
        # The address answered with a file rather than a page: what the capture kept of it.
        self.file: _Download | None = None
        # PDFs among what the page loaded, by address: their bytes, or the file holding them.
        self.pdfs: list[tuple[str, bytes | Path]] = []
        self.load_deadline = self.deadline  # set by `navigate`: its bound covers the load too
        self._dns: dict[tuple[str, int], list[str]] = {}
        self.in_flight: set[Request] = set()
        self.last_activity = time.monotonic()
        # The disk filled up: the capture cannot be whole, so it is not kept (`run` raises it).
        self.full: StorageFull | None = None

    # -- safety and events ---------------------------------------------------------------

    def resolve(self, host: str, port: int) -> list[str]:
        # One lookup per host and capture: a page's hundred requests need not ask DNS 100 times.
        key = (host, port)
        if key not in self._dns:
            self._dns[key] = default_resolver(host, port)
        return self._dns[key]

    def refusal(self, url: str) -> str | None:
        """Why the browser may not fetch `url`, or None when it may."""
        scheme = urlsplit(url).scheme
        if scheme in ("data", "blob", "about"):
            return None
        try:
            check_url(url, self.pipeline.policy, resolve=self.resolve,
                      schemes=("ws", "wss") if scheme in ("ws", "wss") else DEFAULT_SCHEMES)
        except UrlRefused as exc:
            return str(exc)
        return None

    def guard(self, event: dict[str, Any]) -> None:
        """Every request of the browser, paused before it is sent (CDP `Fetch.requestPaused`
        on a browser-wide session): let go, or failed when its address is refused.

        Browser-wide and through CDP because Playwright's `route` is shown only the first
        request of a redirect chain: it lets each hop after it go out unchecked, so a page
        that redirected to an internal address had the browser fetch it (seen: a redirect to
        the cloud metadata address was sent, and its answer archived).
        """
        fetch = self.fetch
        if fetch is None:
            return
        if "responseStatusCode" in event or "responseErrorReason" in event:
            self._document_answered(fetch, event)
            return
        url = event["request"]["url"]
        if event.get("resourceType") == "Document":
            self.opened_at(str(event.get("frameId")), url)
        reason = self.refusal(url)
        try:
            if reason is None:
                fetch.send("Fetch.continueRequest", {"requestId": event["requestId"]})
                return
            self.record.blocked.append({"url": url, "reason": reason})
            if event.get("resourceType") == "Document":
                self.blocked_documents.append({"url": url, "reason": reason})
            fetch.send("Fetch.failRequest", {"requestId": event["requestId"],
                                             "errorReason": "BlockedByClient"})
        except PlaywrightError:
            pass  # the request went away with its page or frame: nothing left to let go

    def _document_answered(self, fetch: CDPSession, event: dict[str, Any]) -> None:
        """A document's response, paused before the browser reads it (pages and frames only):
        noted with the headers as sent; a PDF is turned into a download (`SAVED_NOT_SHOWN`)."""
        status = event.get("responseStatusCode")
        headers = [[str(h.get("name", "")), str(h.get("value", ""))]
                   for h in event.get("responseHeaders") or []]
        hop = _Hop(url=event["request"]["url"], status=status, headers=headers)
        self.documents.setdefault(str(event.get("networkId") or event["requestId"]), []).append(hop)
        answer: dict[str, Any] = {"requestId": event["requestId"]}
        if status is not None and 200 <= status < 300 and _media_type(headers) in SAVED_NOT_SHOWN:
            hop.saved_not_shown = True
            answer["responseCode"] = status
            answer["responseHeaders"] = [
                {"name": name, "value": value} for name, value in headers
                if name.lower() != "content-disposition"
            ] + [{"name": "Content-Disposition", "value": "attachment"}]
            method = "Fetch.continueResponse"
        else:
            method = "Fetch.continueRequest"
        with contextlib.suppress(PlaywrightError):  # gone with its page or frame
            fetch.send(method, answer)

    def on_response(self, event: dict[str, Any]) -> None:
        """Network.responseReceived: what answered each request, and where a document came
        from (the Fetch pause cannot say)."""
        response = event.get("response") or {}
        self.answered[str(event.get("requestId"))] = str(response.get("url", ""))
        if event.get("type") != "Document":
            return
        if response.get("remoteIPAddress"):
            self.document_addresses[str(event.get("requestId"))] = (
                str(response["remoteIPAddress"]).strip("[]"), response.get("remotePort"))

    def on_loaded(self, event: dict[str, Any]) -> None:
        """Network.loadingFinished: a body large enough that the browser's record may drop it
        (see `keep_large_bodies`)."""
        size = int(event.get("encodedDataLength") or 0)
        if size >= LARGE_BODY_BYTES:
            self.large.append((str(event.get("requestId")), size))

    def keep_large_bodies(self) -> str | None:
        """Bodies the browser's own record drops (it keeps none over its buffer's bound: seen,
        an 11 MB page kept, a 30 MB one not), taken from this run's DevTools session, whose
        buffer was opened to the artifact bound (`Network.enable` in `_browse`). Run before
        the context closes; `_with_saved_bodies` puts them in the WARC where the record has
        none. One over the artifact bound, or one the browser no longer holds, stays out (the
        WARC then marks that response truncated, as before)."""
        bound = self.settings.max_artifact_bytes
        missed: list[str] = []
        for request_id, _size in self.large:
            url = self.answered.get(request_id)
            if url is None:
                continue
            if time.monotonic() > self.deadline:
                missed.append(url)
                continue
            try:
                answer = self.live_cdp.send("Network.getResponseBody", {"requestId": request_id})
            except PlaywrightError:
                missed.append(url)
                continue
            text = answer.get("body") or ""
            data = (base64.b64decode(text) if answer.get("base64Encoded")
                    else text.encode("utf-8"))
            del answer, text
            if len(data) > bound:
                missed.append(url)
                continue
            path = self.tmp / f"body-{len(self.large_bodies)}"
            path.write_bytes(data)
            self.large_bodies.append(_Body(url, path, len(data)))
        note = (f"{counted(len(self.large_bodies), 'large body', 'large bodies')} taken from "
                f"the browser "
                f"({sum(b.size for b in self.large_bodies)} bytes)")
        if missed:
            note += (f"; {len(missed)} not (the browser no longer held it, it was over the "
                     f"{bound}-byte bound, or the capture's time was up), first {missed[0]}")
        return note

    def answer_to(self, url: str) -> tuple[str | None, list[_Hop]]:
        """The network request id and hops (redirects first) of the document answered at
        `url`, the last such; (None, []) when no document was answered there."""
        for request_id, hops in reversed(self.documents.items()):
            for at, hop in enumerate(hops):
                if hop.url == url and hop.status is not None and not 300 <= hop.status < 400:
                    return request_id, hops[:at + 1]
        return None, []

    def guard_websocket(self, ws: WebSocketRoute) -> None:
        """WebSockets are not paused with other requests: vetted here, by the same rules."""
        reason = self.refusal(ws.url)
        if reason is None:
            ws.connect_to_server()
            return
        self.record.blocked.append({"url": ws.url, "reason": reason})
        ws.close(code=1008, reason="refused by the capture's address policy")

    def on_request(self, request: Request) -> None:
        self.in_flight.add(request)
        self.last_activity = time.monotonic()

    def on_request_done(self, request: Request) -> None:
        self.in_flight.discard(request)
        self.last_activity = time.monotonic()

    def on_dialog(self, dialog: Dialog) -> None:
        dialogs = self.record.dialogs
        if len(dialogs) < MAX_DIALOGS:
            dialogs.append({"type": dialog.type, "message": dialog.message})
        elif len(dialogs) == MAX_DIALOGS:  # a page that loops on alert() would fill memory
            dialogs.append({"type": "more", "message": f"more than {MAX_DIALOGS} dialogs; "
                                                       "the rest were dismissed unrecorded"})
        dialog.dismiss()

    def on_popup(self, page: Page) -> None:
        """A window the page opened, closed at once, noted by the address it shows. One that
        shows nothing (its address answered with a file, which the browser downloads; no
        answer yet) is noted by the address it was opened at (`note_blank_popups`)."""
        if self.page is not None and page != self.page:
            if page.url:
                self.record.popups.append(page.url)
            page.close()

    def on_target(self, event: dict[str, Any]) -> None:
        """`Target.targetCreated` and `Target.targetInfoChanged` (every page of the browser):
        the windows the page opened, in the capture's context, and what each shows."""
        info = event["targetInfo"]
        if (info.get("type") != "page" or not info.get("openerId")
                or info.get("browserContextId") != self.context_id):
            return
        popup = self.popups.setdefault(str(info["targetId"]), _PopUp())
        popup.shows = str(info.get("url") or "") or popup.shows

    def opened_at(self, frame: str, url: str) -> None:
        """The first address asked for in `frame`: where the window the page opened with that
        frame was opened (its first document request, or its download when that came first);
        nothing for the page's own frames."""
        popup = self.popups.get(frame)
        if popup is not None and popup.opened is None:
            popup.opened = url

    def note_blank_popups(self) -> None:
        """The windows the page opened that never showed an address, by the address each was
        opened at."""
        self.record.popups += [p.opened for p in self.popups.values()
                               if not p.shows and p.opened is not None]

    def popup_of(self, item: _Download) -> str | None:
        """The address the window the page opened that downloaded `item` was opened at, or
        None when the page (or one of its frames) did itself."""
        popup = self.popups.get(self.begun_in.get(item.guid or "", ""))
        return None if popup is None else popup.opened or item.url

    def on_download(self, download: Download) -> None:
        """Follow the download until the browser has it all, bounding it (`bound`), then save
        it; this handler waits for that while the capture goes on.

        The handler runs whenever the capture is inside a call to the browser (a long
        screenshot, the PDF render, a wait), and its own waits let it look every _POLL_MS: the
        bound holds through every step, not only in those that poll (`watch_downloads`)."""
        suggested = download.suggested_filename[:MAX_SUGGESTED_CHARS]
        bound = self.settings.navigation_timeout_seconds
        item = _Download(
            url=download.url, suggested=suggested,
            path=self.tmp / f"download-{len(self.downloads)}-{_safe(suggested)}",
            deadline=min(self.deadline, time.monotonic() + bound), handle=download)
        self.downloads.append(item)
        # The browser's word for it, if it came first: the first begun with its address and
        # name (two alike are told in the order the browser started them, as Playwright is).
        item.guid = next((guid for guid, said in self.begun.items()
                          if said == (item.url, item.suggested)), None)
        self.begun.pop(item.guid or "", None)
        named_by = time.monotonic() + NAMED_GRACE_SECONDS
        try:
            with contextlib.suppress(PlaywrightError):  # the page is gone: the save says why
                while (item.stop is None and self.ended.get(item.guid or "") is None
                       and (item.guid is not None or time.monotonic() < named_by)):
                    self.bound(item)
                    download.page.wait_for_timeout(_POLL_MS)
                if item.guid is None and item.stop is None:  # bounded in time only, and said
                    self.record.steps.append(StepOutcome(
                        "download watch", False, f"the browser did not say which file {item.url}"
                        " was written to: its size was not watched, only its time"))
            download.save_as(item.path)  # the browser has it all, or it was stopped
        except Exception as exc:  # recorded on the capture, the page goes on
            if item.stop is None:
                item.state = "failed"
                item.failure = describe(exc)
                self.record.steps.append(StepOutcome("download", False,
                                                     f"download failed: {item.failure}"))
        else:
            item.state = "kept"
        finally:
            item.handle = None
        if item.stop is not None:  # whatever came of it meanwhile: stopped, nothing kept
            item.state = "stopped"
            item.path.unlink(missing_ok=True)

    def on_download_begun(self, event: dict[str, Any]) -> None:
        """`Browser.downloadWillBegin`: the download's guid, given to the page's download of the
        same address and suggested name that has none yet, or kept for it (`on_download`)."""
        said = (event["url"], event["suggestedFilename"][:MAX_SUGGESTED_CHARS])
        self.begun_in[event["guid"]] = frame = str(event.get("frameId"))
        self.opened_at(frame, event["url"])
        waiting = next((d for d in self.downloads if d.guid is None
                        and (d.url, d.suggested) == said), None)
        if waiting is None:
            self.begun[event["guid"]] = said
        else:
            waiting.guid = event["guid"]

    def on_download_progress(self, event: dict[str, Any]) -> None:
        guid = event["guid"]
        self.received[guid] = max(self.received.get(guid, 0), int(event["receivedBytes"]))
        if event["state"] != "inProgress":
            self.ended[guid] = event["state"]

    def coming(self) -> list[_Download]:
        return [d for d in self.downloads if d.state == "coming"]

    def watch_downloads(self) -> None:
        """Between calls to the browser: bound every download still coming in."""
        for item in self.coming():
            self.bound(item)

    def bound(self, item: _Download) -> None:
        """Stop a download once it has grown past the bound per artifact (a file sent without
        a length, or lying about it, would otherwise fill the disk and could not be stored
        anyway) or has run past its time; a download gets as long as a page to answer, within
        the capture's time. Its bytes are its own file's in the downloads folder, found by its
        guid, or what the browser said it received, whichever is more."""
        if item.stop is not None or item.state != "coming":
            return
        if item.guid is not None:
            item.reached = max(item.reached, self.received.get(item.guid, 0),
                               self.pipeline.browser.download_size(item.guid))
        bound = self.settings.max_artifact_bytes
        if item.reached > bound:
            self._stop(item, f"for growing past the {bound}-byte bound per artifact")
        elif time.monotonic() >= item.deadline:
            self._stop(item, f"for running past its bound of "
                             f"{self.settings.navigation_timeout_seconds:.0f} s")

    def _stop(self, item: _Download, why: str) -> None:
        item.stop = why  # first: the cancelled save must not be taken for a failure
        if item.handle is not None:
            with contextlib.suppress(PlaywrightError):  # it ended meanwhile
                item.handle.cancel()

    def finish_downloads(self) -> None:
        """Before the context closes: the downloads under way end within their bounds, kept
        or stopped, so none is cut off by the close and left unsaid."""
        if not self.coming() or self.page is None:
            return
        limit = max(d.deadline for d in self.coming()) + CANCEL_GRACE_SECONDS
        while self.coming():
            self.watch_downloads()
            if time.monotonic() >= limit:
                for item in self.coming():
                    self._stop(item, "for still coming in when the capture ended")
                return
            try:
                self.page.wait_for_timeout(_POLL_MS)
            except PlaywrightError:
                return  # the page is gone; the close fails what is left, and it is said

    # -- helpers -------------------------------------------------------------------------

    def remaining_ms(self, cap: float | None = None) -> float:
        left = max(0.0, self.deadline - time.monotonic())
        if cap is not None:
            left = min(left, cap)
        if left <= 0:
            raise CaptureError("the capture's time bound was reached before this step")
        return left * 1000

    def _admit(self, kind: str, size: int) -> None:
        if size > self.settings.max_artifact_bytes:
            raise TooLarge(f"{kind} is {size} bytes, over the {self.settings.max_artifact_bytes}"
                           "-byte bound per artifact; not stored")
        # The metadata document says what happened to everything else, the bound included;
        # it is kept even when the page's own artifacts used up the capture's bound.
        if kind != "metadata" and self.stored_bytes + size > self.settings.max_capture_bytes:
            raise TooLarge(f"{kind} would take the capture over its "
                           f"{self.settings.max_capture_bytes}-byte bound; not stored")

    def beside_the_browser(self, work: Callable[[], _T]) -> _T:
        """`work`, plain Python (hashing, storing), on a thread of its own while downloads are
        coming in, this thread waiting in the browser meanwhile: the download watch
        (`on_download`) looks only while the capture is inside a call to the browser, so it
        goes on looking through the work, and a download cannot grow unwatched meanwhile."""
        page = self.page
        if page is None or not self.coming():
            return work()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-work") as pool:
            done = pool.submit(work)
            with contextlib.suppress(PlaywrightError):  # the page is gone: only wait
                while not done.done():
                    page.wait_for_timeout(_POLL_MS)
            return done.result()

    def _keep(self, kind: str, name: str, media_type: str, put: Callable[[], StoredBlob]) -> None:
        """Store an artifact (`put`) and record it, with its picture hashes if it is one."""
        store = self.pipeline.store

        def stored_and_hashed() -> tuple[StoredBlob, ImageHashes | None]:
            stored = put()
            return stored, (hash_file(store.fetch(stored.sha256)).hashes
                            if media_type.startswith("image/") else None)

        stored, hashes = self.beside_the_browser(stored_and_hashed)
        self.stored_bytes += stored.size
        self.record.artifacts.append(StoredArtifact(
            kind=kind, name=name, media_type=media_type, size=stored.size,
            sha256=stored.sha256, path=store.locate(stored.sha256),
            phash=None if hashes is None else hashes.phash,
            dhash=None if hashes is None else hashes.dhash,
        ))

    def no_traffic_record(self) -> str | None:
        # A step that fails, so that a full temporary disk (the browser had no room to write
        # the record) is taken for what it is.
        raise CaptureError("the browser wrote no traffic record")

    def store(self, kind: str, path: Path, media_type: str, name: str | None = None) -> None:
        self._admit(kind, path.stat().st_size)
        self._keep(kind, name or path.name, media_type,
                   functools.partial(self.pipeline.store.put_file, path))

    def store_bytes(self, kind: str, filename: str, data: bytes, media_type: str,
                    name: str | None = None) -> None:
        self._admit(kind, len(data))
        self._keep(kind, name or filename, media_type,
                   functools.partial(self.pipeline.store.put_bytes, data))

    def run_step(self, name: str, fn: Callable[[], str | None]) -> bool:
        if self.full is not None:
            return False  # each step would only take more of the room recording needs
        started = time.monotonic()
        try:
            note = fn()
        except Exception as exc:
            self.full = _full_disk(exc, self.tmp)
            if self.full is not None:
                return False
            message = (exc.message if isinstance(exc, CaptureError)
                       else describe(exc) if isinstance(exc, PlaywrightError)
                       else f"{type(exc).__name__}: {exc}")
            self.record.steps.append(StepOutcome(name, False, message, None, _ms(started)))
            return False
        self.record.steps.append(StepOutcome(name, True, None, note, _ms(started)))
        return True

    @property
    def live_cdp(self) -> CDPSession:
        if self.cdp is None:
            raise CaptureError("no DevTools session")
        return self.cdp

    @property
    def live_page(self) -> Page:
        if self.page is None:
            raise CaptureError("no page")
        return self.page

    # -- steps ---------------------------------------------------------------------------

    def navigate(self) -> str | None:
        """Go to the address, until the browser has its answer and shows it (commit); the load
        event is waited for in the next step, so a page that never finishes loading (a tracker
        that hangs, a body trickled for minutes) is still captured as it stood."""
        page = self.live_page
        url = self.record.requested_url
        bound = self.settings.navigation_timeout_seconds
        self.load_deadline = time.monotonic() + self.remaining_ms(bound) / 1000
        try:
            with map_playwright_errors(f"loading {url}", navigation=True):
                response = page.goto(url, wait_until="commit", timeout=self.remaining_ms(bound))
        except CaptureError as exc:
            if "Download is starting" in str(exc):
                return self._answered_with_file(url)
            # What the browser was sent through before it failed (a redirect loop, a hop to a
            # server that never answers) is part of the record.
            self.record.redirects = [{"url": h.url, "status": h.status}
                                     for h in self.navigation_hops() if h.status is not None]
            refused = next((b for b in self.record.blocked if b["url"].rstrip("/") ==
                            url.rstrip("/")), None)
            if refused is not None:
                raise NavigationFailed(refused["reason"]) from exc
            if self.blocked_documents and "ERR_BLOCKED_BY_CLIENT" in str(exc):
                last = self.blocked_documents[-1]
                raise NavigationFailed(f"{url} led the browser to {last['url']}, which it was "
                                       f"not let fetch: {last['reason']}") from exc
            raise
        if response is None:
            raise NavigationFailed(f"loading {url}: the browser got no response")
        chain: list[dict[str, Any]] = []
        previous = response.request.redirected_from
        while previous is not None:
            hop = previous.response()
            chain.insert(0, {"url": previous.url, "status": None if hop is None else hop.status})
            previous = previous.redirected_from
        self.record.redirects = chain
        self.record.final_url = page.url
        self.record.http_status = response.status
        self.record.response_headers = [[h["name"], h["value"]] for h in response.headers_array()]
        server = response.server_addr()
        if server:
            self._served_from(server.get("ipAddress"), server.get("port"))
        security = response.security_details()
        if security:
            self.record.tls = {"negotiated": dict(security)}
        return None

    def load(self) -> str | None:
        """Wait for the page's load event, within what is left of the navigation bound."""
        page = self.live_page
        left_ms = max(1.0, (self.load_deadline - time.monotonic()) * 1000)
        try:
            with map_playwright_errors("waiting for the page to load"):
                page.wait_for_load_state("load", timeout=self.remaining_ms(left_ms / 1000))
        except CaptureError as exc:
            if not isinstance(exc, StepTimeout):
                raise
            self.record.title = self._title()
            bound = round(self.settings.navigation_timeout_seconds)
            raise CaptureError(
                f"the page did not finish loading within {counted(bound, 'second')}; what it "
                "showed by then is captured") from exc
        self.record.title = self._title()
        return None

    def _title(self) -> str | None:
        with map_playwright_errors("reading the title"):
            return self.live_page.title()

    def navigation_hops(self) -> list[_Hop]:
        """The document answers of the capture's own navigation, redirects first."""
        return next(iter(self.documents.values()), [])[:MAX_HOPS_RECORDED]

    def _served_from(self, ip: str | None, port: int | None) -> None:
        self.record.remote_ip = ip
        self.record.remote_port = port
        if ip and not self.pipeline.policy_allows(ip):
            raise NavigationFailed(
                f"refused: the page was served from {ip}, an address captures may not reach "
                "(DNS changed after the check?)")

    def _answered_with_file(self, url: str) -> str:
        """The address answered with a file, not a page: the file the browser saved is the
        capture's evidence, with the answer's status, headers and address."""
        page = self.live_page
        wait_ms = self.remaining_ms(self.settings.navigation_timeout_seconds)
        limit = time.monotonic() + wait_ms / 1000
        # The download event comes after the navigation gave up; its handler saves the file.
        while ((not self.downloads or self.downloads[0].state == "coming")
               and time.monotonic() < limit):
            self.watch_downloads()
            with map_playwright_errors("waiting for the file the address answered with"):
                page.wait_for_timeout(_POLL_MS)
        if not self.downloads or self.downloads[0].state in ("coming", "failed"):
            why = self.downloads[0].failure if self.downloads else None
            raise NavigationFailed(f"{url} answered with a file, which the browser could not "
                                   f"save: {why or 'it never came'}")
        saved = self.downloads[0]
        request_id, hops = self.answer_to(saved.url)
        self.file = saved
        self.record.final_url = saved.url
        if hops:
            self.record.redirects = [{"url": h.url, "status": h.status} for h in hops[:-1]]
            self.record.http_status = hops[-1].status
            self.record.response_headers = hops[-1].headers
        address = self.document_addresses.get(request_id or "")
        if address is not None:
            self._served_from(*address)
        media_type = (_media_type(hops[-1].headers) if hops else None) or "of no stated type"
        shown = " (which the browser would only have shown in its PDF viewer)" if (
            hops and hops[-1].saved_not_shown) else ""
        if saved.stopped_at is not None:
            kept = f"{shown}; the download was stopped at {saved.stopped_at} bytes {saved.stop}"
        else:
            kept = (f", {saved.path.stat().st_size} bytes{shown}; the browser saved the file for "
                    "the capture's downloads")
        return (f"the address answered with a file, not a page: {saved.name}, {media_type}{kept}, "
                "and there is no page to render")

    def settle(self) -> str | None:
        """Wait until the network has been quiet for QUIET_MS, at most SETTLE_SECONDS."""
        page = self.live_page
        limit = time.monotonic() + self.remaining_ms(SETTLE_SECONDS) / 1000
        with map_playwright_errors("waiting for the network to go quiet"):
            while True:
                now = time.monotonic()
                self.watch_downloads()
                if not self.in_flight and now - self.last_activity >= QUIET_MS / 1000:
                    return None
                if now >= limit:
                    busy = len(self.in_flight)
                    return (f"network still busy after {SETTLE_SECONDS:.0f} s "
                            f"({counted(busy, 'request')} open); captured as it "
                            "stood")
                page.wait_for_timeout(_POLL_MS)  # also lets Playwright deliver the events

    def scroll(self) -> str | None:
        steps = self.settings.max_scroll_steps
        with map_playwright_errors("scrolling to load lazy content"):
            result = self.live_page.evaluate(_SCROLL_JS, {"steps": steps, "pause": SCROLL_PAUSE_MS,
                                                          "waits": BOTTOM_WAITS})
        if result["steps"] == 0:
            return "the page fits on one screen"
        self.settle()  # let what the scrolling triggered finish loading
        if result["steps"] >= steps and not result["bottom"]:
            return f"stopped at the bound of {steps} screens; the page kept growing"
        return f"scrolled {result['steps']} screens"

    def screenshot_full(self) -> str | None:
        path = self.tmp / "screenshot-full.png"
        with map_playwright_errors("full-page screenshot"):
            self.live_page.screenshot(path=path, full_page=True, timeout=self.remaining_ms(60))
        self.store("screenshot", path, "image/png", "screenshot-full.png")
        return None

    def screenshot_viewport(self) -> str | None:
        full = self.tmp / "screenshot-full.png"
        if _png_size(full) == (self.settings.viewport_width, self.settings.viewport_height):
            # The whole page fits the viewport, so the full-page image is what the viewport
            # showed at that moment (a second shot differs only where the page moves, e.g. a
            # video's controls): stored again under this kind (the same blob), not re-taken.
            self.store("screenshot_viewport", full, "image/png", "screenshot-viewport.png")
            return "the page fits the viewport: same image as the full-page screenshot"
        path = self.tmp / "screenshot-viewport.png"
        with map_playwright_errors("viewport screenshot"):
            self.live_page.screenshot(path=path, full_page=False, timeout=self.remaining_ms(30))
        self.store("screenshot_viewport", path, "image/png", "screenshot-viewport.png")
        return None

    def dom(self) -> str | None:
        with map_playwright_errors("reading the DOM"):
            html = self.live_page.content()
        self.store_bytes("dom", "dom.html", html.encode("utf-8"), "text/html; charset=utf-8")
        return None

    def mhtml(self) -> str | None:
        with map_playwright_errors("MHTML snapshot"):
            snapshot = self.live_cdp.send("Page.captureSnapshot", {"format": "mhtml"})
        self.store_bytes("mhtml", "page.mhtml", str(snapshot["data"]).encode("utf-8"),
                         "multipart/related")
        return None

    def pdf(self) -> str | None:
        path = self.tmp / "page.pdf"
        with map_playwright_errors("PDF render"):
            self.live_page.pdf(path=path, print_background=True)
        self.store("pdf", path, "application/pdf", "page.pdf")
        return None

    def text(self) -> str | None:
        with map_playwright_errors("reading the visible text"):
            found = self.live_page.evaluate(
                "() => ({text: document.body ? document.body.innerText : '',"
                " lang: document.documentElement.lang || null})")
        self._keep_text(str(found["text"]), declared=found["lang"])
        return None

    def _keep_text(self, text: str, *, declared: str | None) -> None:
        """The capture's text artifact (what search indexes and comparisons diff), and the
        language it is in."""
        found = self.beside_the_browser(functools.partial(detect_language, text))
        self.record.language = {"declared": declared, **found}
        self.store_bytes("text", "text.txt", text.encode("utf-8"), "text/plain; charset=utf-8")

    def pdf_text(self) -> str | None:
        """The words of the PDF the address answered with, read from the file itself."""
        saved = self.file
        assert saved is not None
        if saved.path.stat().st_size > self.settings.max_artifact_bytes:
            return "the PDF is over the bound per artifact and not kept, so its text is not read"
        found = read_pdf_text(saved.path, timeout=min(pdfread.TIMEOUT_SECONDS,
                                                      self.remaining_ms() / 1000))
        self._keep_text(found.text, declared=None)
        return found.note

    def framed_pdf_texts(self) -> str | None:
        """The words of the PDFs the page framed, embedded or fetched, read from the bytes the
        capture kept of them (in its WARC, or as a download): each into a text artifact of its
        own, named by the hash of the PDF it was read from, which search finds with the page.
        Bounded as the text of an address that answers with a PDF is, and in how many are read;
        one that cannot be read is said in the note, the capture is not failed for it."""
        own = None if self.file is None or self.file.state != "kept" else \
            _sha256_of(self.file.path)  # its words are the capture's own text
        seen: set[str] = set() if own is None else {own}
        read = 0
        unread: list[str] = []
        for n, (url, body) in enumerate(self.pdfs):
            path = body if isinstance(body, Path) else self.tmp / f"framed-{n}.pdf"
            if isinstance(body, bytes):
                path.write_bytes(body)
            digest = _sha256_of(path)
            if digest in seen:
                continue
            seen.add(digest)
            said: dict[str, Any] = {"url": url, "pdf_sha256": digest, "text_sha256": None}
            self.record.pdf_texts.append(said)
            if read >= MAX_PDF_TEXTS:
                said["note"] = f"not read: the first {MAX_PDF_TEXTS} PDFs were"
            elif path.stat().st_size > self.settings.max_artifact_bytes:
                said["note"] = "not read: over the bound per artifact, so not kept"
            elif self.deadline - time.monotonic() < 1:
                said["note"] = "not read: the capture's time ran out"
            else:
                read += 1
                try:
                    found = read_pdf_text(path, timeout=min(pdfread.TIMEOUT_SECONDS,
                                                            self.remaining_ms() / 1000))
                except CaptureError as exc:
                    said["note"] = exc.message
                else:
                    said.update(note=found.note, pages=found.pages, read=found.read)
                    if found.text.strip():
                        self.store_bytes("pdf_text", f"{digest}.txt",
                                         found.text.encode("utf-8"), "text/plain; charset=utf-8")
                        said["text_sha256"] = self.record.artifacts[-1].sha256
            if said["text_sha256"] is None:
                unread.append(f"{url}: {said['note']}")
            if isinstance(body, bytes):
                path.unlink()
        kept = len(self.record.pdf_texts) - len(unread)
        note = f"text of {kept} of the {len(self.record.pdf_texts)} PDFs the page loaded"
        if unread:
            note += f"; first without text: {unread[0]}"
        return note

    def tls_chain(self) -> str | None:
        final = self.record.final_url or self.record.requested_url
        parts = urlsplit(final)
        if parts.scheme != "https":
            return "not https"
        with map_playwright_errors("reading the TLS certificate chain"):
            chain = self.live_cdp.send("Network.getCertificate",
                                       {"origin": f"{parts.scheme}://{parts.netloc}"})
        certs = [describe_certificate(base64.b64decode(c)) for c in chain.get("tableNames", [])]
        if not certs:
            raise CaptureError(f"the browser kept no certificate chain for {parts.netloc}")
        self.record.tls = {**(self.record.tls or {}), "chain": certs}
        return None

    def archive_traffic(self, har: Path) -> str | None:
        exchanges = self._with_saved_bodies(list(traffic.read_har(har)))
        self.pdfs = [(ex.url, body) for ex, body in traffic.pdf_bodies(exchanges)]
        path = self.tmp / "traffic.warc.gz"
        info = {
            "software": TOOL,
            "browser": self.record.browser_version or "",
            "operator": self.record.operator or "",
            "hostname": self.record.worker_host,
            "description": f"capture {self.record.capture_id} of {self.record.requested_url}",
        }
        with path.open("wb") as out:
            counts = traffic.write_warc(exchanges, out, warcinfo=info)
        self.store("warc", path, "application/warc", "traffic.warc.gz")
        for ex in exchanges:
            if ex.server_ip and not self.pipeline.policy_allows(ex.server_ip):
                self.record.blocked.append({
                    "url": ex.url, "reason": f"answered from {ex.server_ip}, a refused address"})
        seen: set[str] = set()
        stored = 0
        for ex, body in traffic.media_bodies(exchanges):
            if isinstance(body, Path):
                with body.open("rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
            else:
                digest = hashlib.sha256(body).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            if isinstance(body, Path):
                self.store("media", body, ex.mime_type, ex.url)
            else:
                self.store_bytes("media", f"media-{stored}", body, ex.mime_type, ex.url)
            stored += 1
        note = (f"{counted(counts.records, 'record')}, "
                f"{counted(counts.unanswered, 'request')} without a response; "
                f"{counted(stored, 'media file')}")
        if counts.truncated:
            # The browser keeps no body over its buffer's bound for its record (seen: an 11 MB
            # page kept, a 30 MB one not); the DOM and the MHTML still hold what it showed.
            first = counts.truncated[0]
            note += (f"; {counted(len(counts.truncated), 'response')} archived "
                     "without their body, which "
                     f"the browser did not keep (marked WARC-Truncated), first {first}")
        return note

    def store_downloads(self) -> str | None:
        """Each download kept as an artifact, or said to have been stopped; all of them, with
        their address and suggested name, in the metadata document."""
        kept = 0
        problems: list[str] = []
        for item in self.downloads:
            outcome = item.outcome(self.popup_of(item))
            if item.state == "kept":
                _, hops = self.answer_to(item.url)
                media_type = (_media_type(hops[-1].headers) if hops else None) or \
                    "application/octet-stream"
                try:
                    self.store("download", item.path, media_type, item.path.name)
                except CaptureError as exc:
                    outcome.update(outcome="not stored", reason=exc.message)
                    problems.append(exc.message)
                else:
                    stored = self.record.artifacts[-1]
                    outcome.update(size=stored.size, sha256=stored.sha256)
                    kept += 1
            self.record.downloads.append(outcome)
        stopped = [d for d in self.downloads if d.state == "stopped"]
        if stopped:
            first = stopped[0]
            problems.insert(0, f"{counted(len(stopped), 'download')} stopped, "
                               f"not stored; first {first.url}"
                               f", stopped at {first.stopped_at} bytes {first.stop}")
        if problems:
            raise CaptureError("; ".join(problems))
        return counted(kept, "download")

    def _with_saved_bodies(self, exchanges: list[traffic.Exchange]) -> list[traffic.Exchange]:
        """The browser's record keeps no body for what it downloaded: the saved file is that
        body, and the headers are those the server sent (a PDF's were changed to save it).
        Nor for a large body: the one `keep_large_bodies` took goes in its place, while the
        WARC stays within the artifact bound (past it, the response stays marked truncated)."""
        room = self.settings.max_artifact_bytes - WARC_HEADROOM_BYTES - sum(
            len(ex.body or b"") + len(ex.request_body or b"") for ex in exchanges)
        large = list(self.large_bodies)
        kept = []
        for ex in exchanges:
            found = next((b for b in large if b.url == ex.url), None)
            if found is not None and not ex.body and ex.body_path is None:
                large.remove(found)
                if found.size <= room:
                    room -= found.size
                    ex = replace(ex, body_path=found.path, extra={**ex.extra, "large": True})
            saved = next((d for d in self.downloads if d.url == ex.url and d.state == "kept"),
                         None)
            if (saved is not None and 200 <= ex.status < 300 and not ex.body
                    # one over the bound is not stored: the WARC would then be refused with it
                    and saved.path.stat().st_size <= self.settings.max_artifact_bytes):
                _, hops = self.answer_to(ex.url)
                headers = ([(name, value) for name, value in hops[-1].headers]
                           if hops else ex.response_headers)
                ex = replace(ex, body_path=saved.path, response_headers=headers)
            kept.append(ex)
        return kept


# The browser's side naming a full disk itself: Playwright's driver passes on Node's ENOSPC
# (writing the traffic record, a download), Chromium's network stack has a code of its own.
BROWSER_DISK_FULL = ("enospc", "no space left on device", "net::err_file_no_space")
# Chromium's words for a page that did not answer: said of the far end, however full this disk.
REMOTE_FAILURES = ("net::err_name_not_resolved", "net::err_connection_refused",
                   "net::err_connection_reset", "net::err_connection_closed",
                   "net::err_connection_timed_out", "net::err_address_unreachable",
                   "net::err_empty_response", "net::err_cert_", "net::err_ssl_",
                   "net::err_too_many_redirects")


def _full_disk(exc: Exception, tmp: Path) -> StorageFull | None:
    """`exc` as the full disk it tells of (the blob store's, or the temporary folder's)."""
    if isinstance(exc, StorageFull):
        return exc
    folder = tmp.parent  # TMPDIR: the capture's own folder is gone by the time this is read
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return StorageFull(f"the disk of the capture's temporary folder ({folder}) is full: "
                           f"{exc.strerror}")
    folders = {where: free_bytes(where) for where in (temp_folder(), folder)}
    told = next((line.strip() for cause in _causes(exc) for line in str(cause).splitlines()
                 if any(words in line.lower() for words in BROWSER_DISK_FULL)), None)
    if told is not None:
        # Said so: a full disk, whatever room the browser has given back since.
        where = min(folders, key=lambda f: folders[f] or 0)
        return StorageFull(f"the disk of the capture's temporary folder ({where}) is full: "
                           f"the browser had no room ({told})")
    if any(words in str(cause).lower() for cause in _causes(exc) for words in REMOTE_FAILURES):
        return None  # (a step that then needs the disk and has no room says so itself)
    # The browser keeps its files in TMPDIR (its shared memory among them; Python may have
    # passed over a full TMPDIR for `folder`) and, out of room, says only that it failed
    # ("Failed to generate MHTML", "Read failed"): a step it failed while that disk is full
    # failed for that, and the capture would lack what it should hold.
    for where, free in folders.items():
        if free is not None and free < FULL_DISK_FREE_BYTES:
            return StorageFull(f"the disk of the capture's temporary folder ({where}) is full "
                               f"({free} bytes free): the browser could not go on")
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it was raised from (Playwright's own error, whose words CaptureError
    shortens to their first line)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_pdf(path: Path) -> bool:
    """Whether the file starts as a PDF does (its header may follow up to 1 KB of anything)."""
    return b"%PDF-" in traffic.head_of(path)


def _sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _png_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's header, or None when it is not a readable PNG."""
    try:
        with path.open("rb") as handle:
            head = handle.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100]
    return cleaned or "download"


def detect_script(text: str) -> str | None:
    """The dominant writing system of the text (a first cut of language detection)."""
    counts: dict[str, int] = {}
    for ch in text:
        code = ord(ch)
        if 0x0600 <= code <= 0x06FF or 0x0750 <= code <= 0x077F or 0xFB50 <= code <= 0xFEFF:
            script = "Arab"
        elif 0x1200 <= code <= 0x139F or 0x2D80 <= code <= 0x2DDF:
            script = "Ethi"
        elif 0x0400 <= code <= 0x04FF:
            script = "Cyrl"
        elif ch.isalpha() and code < 0x0250:
            script = "Latn"
        else:
            continue
        counts[script] = counts.get(script, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None


@functools.cache
def _identifier() -> Any:
    # The model ships inside the package (no download); loading it takes a moment, so once.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> dict[str, str | None]:
    """The text's language (ISO 639-1) as py3langid judges it, and its writing system."""
    script = detect_script(text)
    sample = text[:20_000].strip()
    if not sample:
        return {"detected": None, "confidence": None, "script": script, "note": "no text"}
    code, probability = _identifier().classify(sample)
    note = None
    if script == "Ethi":
        # The model knows Amharic but not Tigrinya; both are written in Ge'ez script.
        note = "Ge'ez script: Amharic or Tigrinya (the detector has no Tigrinya model)"
    return {"detected": str(code), "confidence": f"{float(probability):.2f}", "script": script,
            "note": note}


def describe_certificate(der: bytes) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial_number": format(cert.serial_number, "x"),
        "not_before": iso(cert.not_valid_before_utc),
        "not_after": iso(cert.not_valid_after_utc),
        "sha256_fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
        "der_base64": base64.b64encode(der).decode(),
    }


class CapturePipeline:
    """Runs the steps over one URL in a fresh context of a shared browser."""

    def __init__(self, browser: BrowserSession, store: BlobStore, settings: Settings) -> None:
        self.browser = browser
        self.store = store
        self.settings = settings
        self.policy = UrlPolicy.from_setting(settings.capture_allow)

    def policy_allows(self, ip: str) -> bool:
        return is_allowed_address(ip, self.policy)

    def run(self, url: str, *, capture_id: uuid.UUID | None = None,
            operator: str | None = None) -> CaptureRecord:
        record = CaptureRecord(
            capture_id=capture_id or uuid.uuid4(), requested_url=url, operator=operator,
            worker_host=socket.gethostname(), started_at=utcnow(),
            viewport=f"{self.settings.viewport_width}x{self.settings.viewport_height}",
        )
        try:
            check_url(url, self.policy)
        except UrlRefused as exc:
            reason = str(exc)
            if exc.category == "unresolvable":
                # Checked before the browser, which would say net::ERR_NAME_NOT_RESOLVED.
                reason = (f"refused: {NET_ERRORS['ERR_NAME_NOT_RESOLVED']} "
                          f"({reason.removeprefix('refused: ')})")
            if exc.address is not None:
                # Said where an officer sees it: the refusal is a setting, not the page's fault.
                reason += ("; captures do not reach internal addresses unless the setting "
                           "EVIDENCE_CAPTURE_ALLOW lists them")
            record.error = reason
            record.steps.append(StepOutcome("navigate", False, reason))
            record.finished_at = utcnow()
            return record
        self.browser.ensure_running()
        with processes.OwnedFolder(TEMP_KIND) as tmp:
            run = _Run(self, record, tmp)
            # Past the capture's time limit, and a grace for the steps under way to end on
            # their own, the browser is stopped: a page whose script never yields (or loops on
            # dialogs) holds every call into the browser, and the worker with it, for ever.
            limit = self.settings.capture_timeout_seconds + OVERRUN_GRACE_SECONDS
            stopper = threading.Timer(limit, self._stop_browser, args=(run,))
            stopper.daemon = True
            stopper.start()
            try:
                self._browse(run)
            finally:
                stopper.cancel()
            if run.overran:
                record.steps.append(StepOutcome(
                    "time limit", False,
                    f"the page kept the browser busy past the capture's limit of "
                    f"{self.settings.capture_timeout_seconds:.0f} s; the browser was stopped "
                    "and what was gathered before is kept"))
            record.finished_at = utcnow()
            run.run_step("metadata", lambda: run.store_bytes(
                "metadata", "metadata.json", canonical_json(record.metadata()),
                "application/json"))
        if run.full is not None:
            raise run.full
        failed = [s for s in record.steps if not s.ok]
        nav = record.step("navigate")
        if nav is None or not nav.ok:
            record.status = CaptureStatus.FAILED
            record.error = record.error or (nav.error if nav else "page was not loaded")
        else:
            record.status = CaptureStatus.PARTIAL if failed else CaptureStatus.COMPLETE
        return record

    def _stop_browser(self, run: _Run) -> None:  # on the timer's thread
        run.overran = self.browser.kill()

    def _browse(self, run: _Run) -> None:
        record = run.record
        har = run.tmp / "traffic.har"
        record.browser_version = self.browser.version
        context = self.browser.new_context(
            viewport={"width": self.settings.viewport_width,
                      "height": self.settings.viewport_height},
            accept_downloads=True,
            record_har_path=str(har),
            record_har_content="embed",
            service_workers="block",
            # A page behind a bad certificate is still evidence: capture it and record the
            # certificate chain it was served with, rather than refuse to look.
            ignore_https_errors=True,
        )
        run.context = context
        fetch = self.browser.browser.new_browser_cdp_session()
        run.fetch = fetch
        try:
            fetch.on("Fetch.requestPaused", run.guard)
            fetch.send("Fetch.enable", {"patterns": [
                {"urlPattern": "*", "requestStage": "Request"},
                # Documents again once answered: their headers as sent, PDFs saved.
                {"urlPattern": "*", "resourceType": "Document", "requestStage": "Response"},
            ]})
            context.route_web_socket("**/*", run.guard_websocket)
            context.on("request", run.on_request)
            context.on("requestfinished", run.on_request_done)
            context.on("requestfailed", run.on_request_done)
            context.on("page", run.on_popup)
            page = context.new_page()
            run.page = page
            # Chromium hands out certificate chains only to a session that watched the
            # connection being made, so this session is opened before navigating.
            run.cdp = context.new_cdp_session(page)
            # Each download by the browser's own name for it, its guid: its file, its bytes.
            fetch.on("Browser.downloadWillBegin", run.on_download_begun)
            fetch.on("Browser.downloadProgress", run.on_download_progress)
            target = run.cdp.send("Target.getTargetInfo")["targetInfo"]
            self.browser.follow_downloads(fetch, target["browserContextId"])
            # The windows the page opens: a download started in one is told with the frame
            # that started it, the window's own (`popup_of`).
            run.context_id = target["browserContextId"]
            fetch.on("Target.targetCreated", run.on_target)
            fetch.on("Target.targetInfoChanged", run.on_target)
            fetch.send("Target.setDiscoverTargets", {"discover": True,
                                                     "filter": [{"type": "page"}]})
            run.cdp.on("Network.responseReceived", run.on_response)
            run.cdp.on("Network.loadingFinished", run.on_loaded)
            # This session's own buffer of bodies, opened to the artifact bound: the browser's
            # record (Playwright's session) keeps none over its default bound.
            bound = self.settings.max_artifact_bytes
            run.cdp.send("Network.enable", {"maxResourceBufferSize": bound,
                                            "maxTotalBufferSize": 2 * bound})
            page.on("dialog", run.on_dialog)
            page.on("download", run.on_download)
            record.user_agent = page.evaluate("() => navigator.userAgent")
            if run.run_step("navigate", run.navigate):
                steps: tuple[tuple[str, Callable[[], str | None]], ...] = (
                    ("load", run.load), ("settle", run.settle), ("scroll", run.scroll),
                    ("screenshot", run.screenshot_full),
                    ("screenshot_viewport", run.screenshot_viewport), ("dom", run.dom),
                    ("mhtml", run.mhtml), ("pdf", run.pdf), ("text", run.text),
                    ("tls", run.tls_chain),
                )
                if run.file is not None:  # a file has no page to look at
                    steps = (("tls", run.tls_chain),)
                    if run.file.stopped_at is None and _is_pdf(run.file.path):
                        steps = (("text", run.pdf_text), *steps)
                for name, step in steps:
                    run.run_step(name, step)
            run.finish_downloads()
            run.note_blank_popups()
            if run.large and run.cdp is not None and not run.overran:
                run.run_step("large bodies", run.keep_large_bodies)
        finally:
            try:
                context.close()  # writes the HAR
            except Exception as exc:
                run.full = run.full or _full_disk(exc, run.tmp)
                record.steps.append(StepOutcome("close", False,
                                                f"closing the context: {describe(exc)}"))
            run.fetch = None
            with contextlib.suppress(PlaywrightError):
                fetch.detach()  # pauses nothing more: the next capture opens its own
        if har.exists():
            run.run_step("warc", lambda: run.archive_traffic(har))
        else:
            run.run_step("warc", run.no_traffic_record)
        own = None if run.file is None else run.file.url
        run.pdfs += [(d.url, d.path) for d in run.downloads
                     if d.state == "kept" and d.url != own and _is_pdf(d.path)]
        if [url for url, _ in run.pdfs if url != own]:
            run.run_step("pdf_texts", run.framed_pdf_texts)
        if run.downloads:
            run.run_step("downloads", run.store_downloads)


def record_json(record: CaptureRecord) -> str:
    return json.dumps(record.metadata(), ensure_ascii=False, indent=2)
