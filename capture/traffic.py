"""The page's network traffic: read from the HAR the browser context recorded, written as WARC.

Playwright records every request and response of a context, redirects included, with bodies
and the server address, into a HAR file when the context closes. That record is turned into a
WARC 1.1 file (the archival standard) and mined for the page's images and media.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from capture.warc import WarcWriter

MEDIA_PREFIXES = ("image/", "video/", "audio/")
PDF_TYPES = ("application/pdf", "application/x-pdf")


@dataclass(frozen=True)
class Exchange:
    """One request and its response as the browser saw them."""

    url: str
    method: str
    request_headers: list[tuple[str, str]]
    request_body: bytes | None
    http_version: str
    status: int
    reason: str
    response_headers: list[tuple[str, str]]
    body: bytes | None
    mime_type: str
    server_ip: str | None
    started: datetime
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The body in a file, for an answer the browser saved rather than kept in its record (a
    # download): streamed into the WARC instead of `body`.
    body_path: Path | None = None

    def body_expected(self) -> bool:
        """The server said it sent a body (Content-Length over 0) that the record lacks."""
        if self.body or self.body_path is not None or self.method.upper() == "HEAD":
            return False
        for name, value in self.response_headers:
            if name.lower() == "content-length":
                return value.strip().isdigit() and int(value) > 0
        return False


def _headers(items: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    return [(str(h.get("name", "")), str(h.get("value", ""))) for h in items or []]


def _time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _body(content: dict[str, Any]) -> bytes | None:
    text = content.get("text")
    if text is None:
        return None
    if content.get("encoding") == "base64":
        return base64.b64decode(text)
    return str(text).encode("utf-8")


def read_har(path: Path) -> Iterator[Exchange]:
    """The exchanges of a HAR file in the order the browser made them."""
    with path.open("rb") as fh:
        har = json.load(fh)
    for entry in har.get("log", {}).get("entries", []):
        request = entry.get("request", {})
        response = entry.get("response", {})
        post = request.get("postData") or {}
        post_text = post.get("text")
        yield Exchange(
            url=str(request.get("url", "")),
            method=str(request.get("method", "GET")),
            request_headers=_headers(request.get("headers")),
            request_body=None if post_text is None else str(post_text).encode("utf-8"),
            http_version=str(response.get("httpVersion") or request.get("httpVersion") or
                             "HTTP/1.1"),
            status=int(response.get("status") or 0),
            reason=str(response.get("statusText") or ""),
            response_headers=_headers(response.get("headers")),
            body=_body(response.get("content") or {}),
            mime_type=str((response.get("content") or {}).get("mimeType") or ""),
            server_ip=(str(entry["serverIPAddress"]).strip("[]")
                       if entry.get("serverIPAddress") else None),
            started=_time(entry.get("startedDateTime")),
            error=response.get("_failureText"),
        )


def _http_version(value: str) -> str:
    value = value.upper()
    if value.startswith("HTTP/"):
        return value
    if value in ("H2", "HTTP2"):
        return "HTTP/2"
    if value in ("H3", "HTTP3"):
        return "HTTP/3"
    return "HTTP/1.1"


@dataclass(frozen=True)
class WarcCounts:
    records: int  # written
    unanswered: int  # exchanges with no response, not written
    truncated: list[str]  # URLs of responses written without the body the server sent


def write_warc(
    exchanges: list[Exchange], out: BinaryIO, *, warcinfo: dict[str, str]
) -> WarcCounts:
    """Write every exchange that got an answer.

    Exchanges the browser never got a response for (blocked, failed) have no HTTP response to
    archive; they are listed in the capture's metadata instead. A response whose body the
    browser did not keep (one over its recording bound, or a download nobody saved) is written
    with its headers and marked `WARC-Truncated: unspecified`, not passed off as empty.
    """
    writer = WarcWriter(out)
    writer.write_warcinfo(warcinfo)
    written = skipped = 0
    truncated: list[str] = []
    for ex in exchanges:
        if ex.status <= 0:
            skipped += 1
            continue
        version = _http_version(ex.http_version)
        request_id = writer.write_request(
            ex.url, method=ex.method, headers=ex.request_headers, body=ex.request_body,
            http_version=version, date=ex.started, ip_address=ex.server_ip,
        )
        with contextlib.ExitStack() as stack:
            body: bytes | BinaryIO | None = ex.body
            if ex.body_path is not None:
                body = stack.enter_context(ex.body_path.open("rb"))
            writer.write_response(
                ex.url, status=ex.status, reason=ex.reason or None, headers=ex.response_headers,
                body=body, http_version=version, date=ex.started, ip_address=ex.server_ip,
                concurrent_to=request_id, body_decoded=True,
                truncated="unspecified" if ex.body_expected() else None,
            )
        if ex.body_expected():
            truncated.append(ex.url)
        written += 2
    return WarcCounts(written, skipped, truncated)


def media_bodies(exchanges: list[Exchange]) -> Iterator[tuple[Exchange, bytes | Path]]:
    """Images, video and audio the page loaded, with their bytes, or the file holding a large
    one (not a download's: that is kept as the download)."""
    for ex in exchanges:
        if not (200 <= ex.status < 300 and ex.mime_type.lower().startswith(MEDIA_PREFIXES)):
            continue
        if ex.body:
            yield ex, ex.body
        elif ex.body_path is not None and ex.extra.get("large"):
            yield ex, ex.body_path


def pdf_bodies(exchanges: list[Exchange]) -> Iterator[tuple[Exchange, bytes | Path]]:
    """PDFs the page loaded (in a frame, an embed, an object, a fetch), with their bytes or the
    file holding them: by their stated type, or by a body that starts as a PDF does."""
    for ex in exchanges:
        if not 200 <= ex.status < 300:
            continue
        body: bytes | Path | None = ex.body_path if ex.body_path is not None else ex.body
        if body is None:
            continue
        head = body[:1024] if isinstance(body, bytes) else head_of(body)
        if ex.mime_type.lower().split(";", 1)[0].strip() in PDF_TYPES or b"%PDF-" in head:
            yield ex, body


def head_of(path: Path) -> bytes:
    """The first KB of a file (a PDF's header may follow up to 1 KB of anything)."""
    try:
        with path.open("rb") as handle:
            return handle.read(1024)
    except OSError:
        return b""
