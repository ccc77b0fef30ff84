"""Streaming WARC 1.1 writer for capture evidence.

Every capture keeps a WARC 1.1 file of each request and response the page
made, plus records for the screenshot and capture metadata, so the exhibit
can be replayed and checked by third-party tools (``warcio check`` verifies
every digest written here).  The writer knows nothing about the browser: the
capture worker hands it URLs, headers and bodies.

Format choices, each of which a court expert may ask about:

* Each record is its own gzip member (``.warc.gz``), so a damaged byte
  loses one record, not the rest of the file, and records can be located by
  offset.
* ``WARC-Block-Digest`` and ``WARC-Payload-Digest`` are SHA-256 in base32
  (``sha256:ABC...``), the encoding warcio writes and checks.
* ``WARC-Date`` carries microseconds, as WARC 1.1 allows.
* Bodies are written as the entity body, never with chunked framing, so
  ``Transfer-Encoding`` is always renamed ``X-Original-Transfer-Encoding``.
  Chromium hands over bodies already content-decoded; with
  ``body_decoded=True`` (the default) ``Content-Encoding`` is renamed
  ``X-Original-Content-Encoding`` so the headers do not claim a gzip body
  that is not there.  A ``Content-Length`` that disagrees with the body
  written is renamed ``X-Original-Content-Length``.  Nothing else is
  rewritten and no header is invented: renaming keeps the server's words
  while keeping the record self-consistent.  The payload digest is thus the
  digest of exactly the body bytes recorded.
* HTTP/2 and HTTP/3 messages are written in HTTP/1.1 syntax (the only
  syntax WARC readers parse) with the real protocol in ``WARC-Protocol``
  (IIPC proposal, warc-specifications#42); HTTP/2 pseudo-headers
  (``:authority`` ...) are dropped because the request line, target URI and
  status line already carry them.
* Page-controlled text never reaches a header line raw: control characters
  (CR, LF, NUL ...) in header values become spaces, characters not allowed
  in an HTTP field name become ``_``, and target URIs are converted to
  ASCII URIs (IDNA host, percent-encoded path), so a hostile page cannot
  inject WARC or HTTP header lines.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import tempfile
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Protocol, cast
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "WARC_VERSION",
    "Body",
    "WarcWriter",
    "new_record_id",
    "to_warc_uri",
]

WARC_VERSION = "WARC/1.1"
WARC_1_1_SPEC = "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"

_CHUNK = 256 * 1024
# Bodies from non-seekable streams are spooled to disk beyond this size so a
# large download is never held in memory while it is digested and written.
_SPOOL_MAX = 1024 * 1024


class _BinarySource(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _SeekableSource(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def seek(self, offset: int, whence: int = ..., /) -> int: ...
    def tell(self) -> int: ...


class _BinarySink(Protocol):
    def write(self, data: bytes, /) -> object: ...


Body = bytes | bytearray | memoryview | _BinarySource
Headers = Iterable[tuple[str, str]]

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_LONE_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 reserved + unreserved characters and "%" (already-encoded octets).
_URI_SAFE = "!#$&'()*+,/:;=?@[]~-._%"
_RECORD_REF_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[!-;=?-~]+")
_TRUNCATED_REASONS = frozenset({"length", "time", "disconnect", "unspecified"})

# Fields the writer manages itself; callers may not override them through
# extra_headers, or a record could contradict its own digests.
_MANAGED_FIELDS = frozenset(
    name.lower()
    for name in (
        "WARC-Type",
        "WARC-Record-ID",
        "WARC-Date",
        "Content-Length",
        "Content-Type",
        "WARC-Block-Digest",
        "WARC-Payload-Digest",
        "WARC-Target-URI",
        "WARC-Concurrent-To",
        "WARC-Refers-To",
        "WARC-Warcinfo-ID",
        "WARC-IP-Address",
        "WARC-Filename",
        "WARC-Truncated",
        "WARC-Protocol",
        "WARC-Segment-Number",
        "WARC-Segment-Origin-ID",
        "WARC-Segment-Total-Length",
    )
)

# ALPN-style protocol ids (as Chromium reports them) -> status line version.
_PROTOCOLS: dict[str, tuple[str, str]] = {
    "http/0.9": ("HTTP/1.0", "http/0.9"),
    "http/1.0": ("HTTP/1.0", "http/1.0"),
    "http/1.1": ("HTTP/1.1", "http/1.1"),
    "h2": ("HTTP/1.1", "h2"),
    "h2c": ("HTTP/1.1", "h2c"),
    "http/2": ("HTTP/1.1", "h2"),
    "http/2.0": ("HTTP/1.1", "h2"),
    "h3": ("HTTP/1.1", "h3"),
    "http/3": ("HTTP/1.1", "h3"),
    "http/3.0": ("HTTP/1.1", "h3"),
    "quic": ("HTTP/1.1", "h3"),
}


def new_record_id() -> str:
    """A fresh ``<urn:uuid:...>`` record id, for callers that link records before writing."""
    return f"<urn:uuid:{uuid.uuid4()}>"


def _record_ref(ref: str) -> str:
    bare = ref.strip()
    if bare.startswith("<") and bare.endswith(">"):
        bare = bare[1:-1]
    if not _RECORD_REF_RE.fullmatch(bare):
        raise ValueError(f"not a record id URI: {ref!r}")
    return f"<{bare}>"


def _clean_value(value: str) -> str:
    """One header line's worth of text: control characters become spaces."""
    return _CONTROL_RE.sub(" ", value).replace("\t", " ").strip()


def _clean_name(name: str) -> str:
    cleaned = "".join(ch if ch in _TOKEN_CHARS else "_" for ch in name.strip())
    return cleaned or "_"


def _check_token(kind: str, value: str) -> str:
    if not value or any(ch not in _TOKEN_CHARS for ch in value):
        raise ValueError(f"invalid {kind}: {value!r}")
    return value


def _quote_part(part: str) -> str:
    return quote(_LONE_PERCENT_RE.sub("%25", part), safe=_URI_SAFE)


def _ascii_host(host: str) -> str:
    if host.isascii():
        return _quote_part(host)
    labels: list[str] = []
    for label in host.split("."):
        if label.isascii():
            labels.append(_quote_part(label))
            continue
        try:
            labels.append(label.encode("idna").decode("ascii"))
        except UnicodeError:
            # RFC 3986 allows a percent-encoded reg-name when IDNA refuses.
            labels.append(quote(label, safe=""))
    return ".".join(labels)


def to_warc_uri(uri: str) -> str:
    """``uri`` as an ASCII URI fit for WARC-Target-URI (IRI -> URI, RFC 3987 3.1)."""
    uri = _CONTROL_RE.sub("", uri).replace("\t", "").strip()
    try:
        parts = urlsplit(uri)
        netloc = parts.netloc
        if netloc and not netloc.isascii():
            userinfo, at, hostport = netloc.rpartition("@")
            host, colon, port = hostport, "", ""
            if not hostport.endswith("]") and ":" in hostport:
                host, colon, port = hostport.rpartition(":")
            netloc = (
                (_quote_part(userinfo) + at if at else "")
                + _ascii_host(host)
                + colon
                + _quote_part(port)
            )
        else:
            netloc = _quote_part(netloc)
        rebuilt = urlunsplit(
            (
                parts.scheme,
                netloc,
                _quote_part(parts.path),
                _quote_part(parts.query),
                _quote_part(parts.fragment),
            )
        )
        # urlunsplit drops an empty "?" or "#"; keep the URI as the page had it.
        if uri.endswith("?") and not rebuilt.endswith("?"):
            rebuilt += "?"
        elif uri.endswith("#") and not rebuilt.endswith("#"):
            rebuilt += "#"
        return rebuilt
    except ValueError:
        return _quote_part(uri)


def _warc_date(when: datetime | None) -> str:
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("capture datetimes must be timezone-aware (UTC)")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ip_text(ip: str) -> str:
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return str(ipaddress.ip_address(text))


def _digest_text(hasher: hashlib._Hash) -> str:
    return "sha256:" + base64.b32encode(hasher.digest()).decode("ascii")


def _protocol(http_version: str) -> tuple[str, str | None]:
    """(status/request line version, WARC-Protocol id or None)."""
    key = http_version.strip().lower()
    if key in _PROTOCOLS:
        return _PROTOCOLS[key]
    token = "".join(ch for ch in key if ch in _TOKEN_CHARS or ch == "/")
    return "HTTP/1.1", token or None


def _http_headers(
    headers: Headers, body_length: int, *, body_decoded: bool
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for raw_name, raw_value in headers:
        if raw_name.startswith(":"):
            continue
        name = _clean_name(raw_name)
        value = _clean_value(raw_value)
        lower = name.lower()
        if lower == "transfer-encoding":
            name = "X-Original-Transfer-Encoding"
        elif lower == "content-encoding" and body_decoded and value.lower() != "identity":
            name = "X-Original-Content-Encoding"
        elif lower == "content-length" and value != str(body_length):
            name = "X-Original-Content-Length"
        out.append((name, value))
    return out


def _header_block(start_line: str, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("utf-8")


class _Payload:
    """A body that can be measured, digested and then streamed out again."""

    def __init__(self, body: Body | None) -> None:
        self._buffer: memoryview | None = None
        self._stream: _SeekableSource | None = None
        self._start = 0
        self._spool: tempfile.SpooledTemporaryFile[bytes] | None = None
        if body is None:
            body = b""
        if isinstance(body, bytes | bytearray | memoryview):
            self._buffer = memoryview(body).cast("B")
            self.length = self._buffer.nbytes
            return
        seekable = getattr(body, "seekable", None)
        if callable(seekable) and seekable():
            stream = cast(_SeekableSource, body)
            self._stream = stream
            self._start = stream.tell()
            end = stream.seek(0, os.SEEK_END)
            stream.seek(self._start)
            self.length = end - self._start
            return
        # Not seekable: the body must be read twice (digest, then write), so
        # keep one copy, on disk once it is large.
        # Closed by close(), not a with-block: the spool outlives __init__.
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)  # noqa: SIM115
        length = 0
        while chunk := body.read(_CHUNK):
            spool.write(chunk)
            length += len(chunk)
        self._spool = spool
        self._stream = spool
        self.length = length

    def chunks(self) -> Iterator[bytes | memoryview]:
        if self._buffer is not None:
            for offset in range(0, self.length, _CHUNK):
                yield self._buffer[offset : offset + _CHUNK]
            return
        assert self._stream is not None
        self._stream.seek(self._start)
        remaining = self.length
        while remaining > 0:
            chunk = self._stream.read(min(_CHUNK, remaining))
            if not chunk:
                raise RuntimeError("body stream ended early while writing the WARC record")
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


class WarcWriter:
    """Append WARC 1.1 records to a binary file object; each write returns the record id.

    The writer never closes ``stream``.  Writes are serialised by a lock so a
    threaded capture cannot interleave two records.  Record ids are returned
    as they appear in headers (``<urn:uuid:...>``) and can be passed straight
    to ``concurrent_to`` / ``refers_to``.
    """

    def __init__(self, stream: _BinarySink, *, gzip: bool = True, compresslevel: int = 6) -> None:
        self._stream = stream
        self._gzip = gzip
        self._level = compresslevel
        self._lock = threading.Lock()
        self._warcinfo_id: str | None = None
        self._bytes_written = 0

    @property
    def warcinfo_id(self) -> str | None:
        """Id of the warcinfo record, referenced by every later record's WARC-Warcinfo-ID."""
        return self._warcinfo_id

    @property
    def bytes_written(self) -> int:
        """Bytes written to the stream so far (the offset of the next record)."""
        return self._bytes_written

    # -- record types ---------------------------------------------------------

    def write_warcinfo(
        self,
        fields: Mapping[str, str] | Iterable[tuple[str, str]],
        *,
        filename: str | None = None,
        date: datetime | None = None,
    ) -> str:
        """Write the warcinfo record describing the capture (software, operator, ...).

        ``format`` and ``conformsTo`` default to WARC 1.1 when not given.
        """
        pairs = list(fields.items() if isinstance(fields, Mapping) else fields)
        given = {name.lower() for name, _ in pairs}
        if "format" not in given:
            pairs.append(("format", "WARC File Format 1.1"))
        if "conformsto" not in given:
            pairs.append(("conformsTo", WARC_1_1_SPEC))
        block = "".join(
            f"{_check_token('warcinfo field name', name)}: {_clean_value(value)}\r\n"
            for name, value in pairs
        ).encode("utf-8")
        headers: list[tuple[str, str]] = []
        if filename is not None:
            headers.append(("WARC-Filename", _clean_value(filename)))
        record_id = self._write(
            "warcinfo",
            headers,
            content_type="application/warc-fields",
            head=block,
            body=None,
            date=date,
            payload_digest=False,
        )
        self._warcinfo_id = record_id
        return record_id

    def write_request(
        self,
        target_uri: str,
        *,
        method: str = "GET",
        headers: Headers = (),
        body: Body | None = None,
        http_version: str = "HTTP/1.1",
        date: datetime | None = None,
        ip_address: str | None = None,
        concurrent_to: str | Sequence[str] | None = None,
        body_decoded: bool = True,
        record_id: str | None = None,
        extra_headers: Headers = (),
    ) -> str:
        """Write a ``request`` record: request line, headers and body as sent."""
        uri = to_warc_uri(target_uri)
        version, protocol = _protocol(http_version)
        parts = urlsplit(uri)
        request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not parts.scheme or not parts.netloc:
            request_target = uri
        start_line = f"{_check_token('HTTP method', method.strip())} {request_target} {version}"
        header_list = list(headers)

        def head(length: int) -> bytes:
            return _header_block(
                start_line, _http_headers(header_list, length, body_decoded=body_decoded)
            )

        return self._write(
            "request",
            self._http_record_headers(uri, ip_address, concurrent_to, protocol, extra_headers),
            content_type="application/http;msgtype=request",
            head=head,
            body=body,
            date=date,
            payload_digest=True,
            record_id=record_id,
        )

    def write_response(
        self,
        target_uri: str,
        *,
        status: int,
        reason: str | None = None,
        headers: Headers = (),
        body: Body | None = None,
        http_version: str = "HTTP/1.1",
        date: datetime | None = None,
        ip_address: str | None = None,
        concurrent_to: str | Sequence[str] | None = None,
        body_decoded: bool = True,
        truncated: str | None = None,
        record_id: str | None = None,
        extra_headers: Headers = (),
    ) -> str:
        """Write a ``response`` record: status line, headers and entity body.

        ``reason`` defaults to the standard phrase (HTTP/2 has none).
        ``truncated`` ("length", "time", "disconnect", "unspecified") marks a
        body the capture cut short.
        """
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status {status!r}")
        if reason is None or not reason.strip():
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = ""
        uri = to_warc_uri(target_uri)
        version, protocol = _protocol(http_version)
        status_line = f"{version} {status} {_clean_value(reason)}"
        header_list = list(headers)

        def head(length: int) -> bytes:
            return _header_block(
                status_line, _http_headers(header_list, length, body_decoded=body_decoded)
            )

        record_headers = self._http_record_headers(
            uri, ip_address, concurrent_to, protocol, extra_headers
        )
        if truncated is not None:
            if truncated not in _TRUNCATED_REASONS:
                raise ValueError(f"invalid WARC-Truncated reason {truncated!r}")
            record_headers.append(("WARC-Truncated", truncated))
        return self._write(
            "response",
            record_headers,
            content_type="application/http;msgtype=response",
            head=head,
            body=body,
            date=date,
            payload_digest=True,
            record_id=record_id,
        )

    def write_metadata(
        self,
        target_uri: str,
        content_type: str,
        payload: Body,
        refers_to: str | None = None,
        *,
        date: datetime | None = None,
        concurrent_to: str | Sequence[str] | None = None,
        record_id: str | None = None,
        extra_headers: Headers = (),
    ) -> str:
        """Write a ``metadata`` record (e.g. capture log, page outline) about ``refers_to``."""
        return self._write_document(
            "metadata", target_uri, content_type, payload, refers_to=refers_to, date=date,
            concurrent_to=concurrent_to, record_id=record_id, extra_headers=extra_headers,
            payload_digest=False,
        )

    def write_resource(
        self,
        target_uri: str,
        content_type: str,
        payload: Body,
        *,
        refers_to: str | None = None,
        date: datetime | None = None,
        concurrent_to: str | Sequence[str] | None = None,
        record_id: str | None = None,
        extra_headers: Headers = (),
    ) -> str:
        """Write a ``resource`` record (e.g. the screenshot or a PDF rendering of the page)."""
        return self._write_document(
            "resource", target_uri, content_type, payload, refers_to=refers_to, date=date,
            concurrent_to=concurrent_to, record_id=record_id, extra_headers=extra_headers,
            payload_digest=True,
        )

    # -- internals --------------------------------------------------------------

    def _write_document(
        self,
        kind: str,
        target_uri: str,
        content_type: str,
        payload: Body,
        *,
        refers_to: str | None,
        date: datetime | None,
        concurrent_to: str | Sequence[str] | None,
        record_id: str | None,
        extra_headers: Headers,
        payload_digest: bool,
    ) -> str:
        """A record whose block is a document of its own (metadata, resource), not HTTP."""
        headers = [("WARC-Target-URI", to_warc_uri(target_uri))]
        if refers_to is not None:
            headers.append(("WARC-Refers-To", _record_ref(refers_to)))
        headers += self._links(concurrent_to, extra_headers)
        return self._write(
            kind,
            headers,
            content_type=content_type,
            head=b"",
            body=payload,
            date=date,
            payload_digest=payload_digest,
            record_id=record_id,
        )

    def _links(
        self, concurrent_to: str | Sequence[str] | None, extra_headers: Headers
    ) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if concurrent_to is not None:
            refs = [concurrent_to] if isinstance(concurrent_to, str) else list(concurrent_to)
            headers += [("WARC-Concurrent-To", _record_ref(ref)) for ref in refs]
        for name, value in extra_headers:
            _check_token("WARC header name", name)
            if name.lower() in _MANAGED_FIELDS:
                raise ValueError(f"{name} is set by the writer itself")
            headers.append((name, _clean_value(value)))
        return headers

    def _http_record_headers(
        self,
        uri: str,
        ip_address: str | None,
        concurrent_to: str | Sequence[str] | None,
        protocol: str | None,
        extra_headers: Headers,
    ) -> list[tuple[str, str]]:
        headers = [("WARC-Target-URI", uri)]
        if ip_address:
            headers.append(("WARC-IP-Address", _ip_text(ip_address)))
        if protocol:
            headers.append(("WARC-Protocol", protocol))
        headers += self._links(concurrent_to, extra_headers)
        return headers

    def _write(
        self,
        warc_type: str,
        headers: list[tuple[str, str]],
        *,
        content_type: str,
        head: bytes | Callable[[int], bytes],
        body: Body | None,
        date: datetime | None,
        payload_digest: bool,
        record_id: str | None = None,
    ) -> str:
        rec_id = _record_ref(record_id) if record_id is not None else new_record_id()
        payload = _Payload(body)
        try:
            # HTTP heads depend on the body length (Content-Length handling).
            if callable(head):
                head = head(payload.length)
            block_hash = hashlib.sha256(head)
            payload_hash = hashlib.sha256()
            for chunk in payload.chunks():
                block_hash.update(chunk)
                payload_hash.update(chunk)
            warc_headers = [
                ("WARC-Type", warc_type),
                ("WARC-Record-ID", rec_id),
                ("WARC-Date", _warc_date(date)),
            ]
            if self._warcinfo_id is not None and warc_type != "warcinfo":
                warc_headers.append(("WARC-Warcinfo-ID", self._warcinfo_id))
            warc_headers += headers
            warc_headers += [
                ("Content-Type", _clean_value(content_type) or "application/octet-stream"),
                ("WARC-Block-Digest", _digest_text(block_hash)),
            ]
            if payload_digest:
                warc_headers.append(("WARC-Payload-Digest", _digest_text(payload_hash)))
            warc_headers.append(("Content-Length", str(len(head) + payload.length)))
            record_head = _header_block(
                WARC_VERSION, [(name, _clean_value(value)) for name, value in warc_headers]
            )
            expected = payload_hash.digest()
            with self._lock:
                self._emit(record_head, head, payload, expected)
            return rec_id
        finally:
            payload.close()

    def _emit(self, record_head: bytes, head: bytes, payload: _Payload, expected: bytes) -> None:
        compressor = zlib.compressobj(self._level, zlib.DEFLATED, 31) if self._gzip else None

        def out(data: bytes | memoryview) -> None:
            if compressor is not None:
                data = compressor.compress(data)
            if data:
                self._stream.write(bytes(data))
                self._bytes_written += len(data)

        out(record_head)
        out(head)
        rehash = hashlib.sha256()
        for chunk in payload.chunks():
            rehash.update(chunk)
            out(chunk)
        out(b"\r\n\r\n")
        if compressor is not None:
            tail = compressor.flush()
            self._stream.write(tail)
            self._bytes_written += len(tail)
        if rehash.digest() != expected:
            # The caller's stream changed between digesting and writing: the
            # record on disk now fails its digest, and the capture must know.
            raise RuntimeError("body stream changed while the WARC record was being written")
