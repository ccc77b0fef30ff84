"""Tests for the WARC 1.1 writer (capture.warc).

The file written here is validated three independent ways: the real
``warcio check`` and ``warcio index`` command-line tools, warcio's
ArchiveIterator, and a hand-rolled parser that splits the gzip members and
recomputes every digest itself.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from capture.warc import WarcWriter, new_record_id, to_warc_uri

FIVE_MB = 5 * 1024 * 1024
BINARY = bytes(range(256)) * 64 + b"\r\n\r\nWARC/1.1\r\n\x00\xff"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
WHEN = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)


def b32(data: bytes) -> str:
    return "sha256:" + base64.b32encode(hashlib.sha256(data).digest()).decode()


class PatternStream:
    """Non-seekable stream producing ``size`` bytes on the fly (like a socket)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.hasher = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.sent if n < 0 else min(n, self.size - self.sent)
        chunk = bytes((self.sent + i) * 7 % 251 for i in range(n)) if n < 4096 else None
        if chunk is None:
            block = bytes(i * 7 % 251 for i in range(251 * 16))
            start = self.sent % 251
            reps = (n + start) // len(block) + 1
            chunk = (block * reps)[start : start + n]
        self.sent += len(chunk)
        self.hasher.update(chunk)
        return chunk


def pattern(size: int) -> bytes:
    stream = PatternStream(size)
    return stream.read(size)


def warcio_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).parent / "warcio"
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "warcio.cli", *args]


@dataclass
class Written:
    path: Path
    ids: dict[str, str]
    big_file: Path


@pytest.fixture(scope="module")
def warc_file(tmp_path_factory: pytest.TempPathFactory) -> Written:
    tmp = tmp_path_factory.mktemp("warc")
    big_file = tmp / "big.bin"
    big_file.write_bytes(pattern(FIVE_MB))
    path = tmp / "capture.warc.gz"
    ids: dict[str, str] = {}
    with path.open("wb") as fh:
        writer = WarcWriter(fh)
        ids["info"] = writer.write_warcinfo(
            {
                "software": "evidence-locker capture 0.1.0",
                "operator": "Det. Jane Doe, Unit 7",
                "hostname": "capture-01",
                "isPartOf": "case-2024-0042",
            },
            filename="capture.warc.gz",
            date=WHEN,
        )

        # 1. HTML page, gzip on the wire but decoded by Chromium, duplicate headers.
        ids["req1"] = writer.write_request(
            "https://example.com/",
            method="GET",
            headers=[
                ("Host", "example.com"),
                ("Accept", "text/html"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
            ],
            date=WHEN,
            ip_address="93.184.216.34",
        )
        ids["resp1"] = writer.write_response(
            "https://example.com/",
            status=200,
            reason="OK",
            headers=[
                ("Content-Type", "text/html; charset=utf-8"),
                ("Set-Cookie", "a=1; Path=/"),
                ("Content-Encoding", "gzip"),
                ("Set-Cookie", "b=2; Path=/"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Length", "4242"),
                ("Set-Cookie", "c=3"),
            ],
            body=b"<html><body>caf\xc3\xa9</body></html>",
            date=WHEN + timedelta(milliseconds=250),
            ip_address="93.184.216.34",
            concurrent_to=ids["req1"],
        )

        # 2. Binary body, HTTP/2 with pseudo-headers and an IPv6 remote.
        ids["req2"] = writer.write_request(
            "https://example.com/blob.bin",
            headers=[(":method", "GET"), (":authority", "example.com"), ("accept", "*/*")],
            http_version="h2",
            ip_address="[2606:2800:220:1:248:1893:25c8:1946]",
        )
        ids["resp2"] = writer.write_response(
            "https://example.com/blob.bin",
            status=200,
            reason="",
            headers=[
                (":status", "200"),
                ("content-type", "application/octet-stream"),
                ("content-length", str(len(BINARY))),
            ],
            body=BINARY,
            http_version="h2",
            ip_address="2606:2800:220:1:248:1893:25c8:1946",
            concurrent_to=ids["req2"],
        )

        # 3. POST with a body; 5 MB response streamed from a non-seekable source.
        ids["req3"] = writer.write_request(
            "https://example.com/upload?x=1",
            method="POST",
            headers=[("Content-Type", "application/x-www-form-urlencoded")],
            body=b"name=value&other=%C3%A9",
        )
        stream = PatternStream(FIVE_MB)
        ids["resp3"] = writer.write_response(
            "https://example.com/upload?x=1",
            status=200,
            headers=[("Content-Type", "application/octet-stream")],
            body=stream,
            concurrent_to=ids["req3"],
        )

        # 4. 5 MB response streamed from a seekable file, starting mid-file.
        ids["req4"] = writer.write_request("https://example.com/video.mp4")
        with big_file.open("rb") as big:
            big.seek(1000)
            ids["resp4"] = writer.write_response(
                "https://example.com/video.mp4",
                status=206,
                headers=[("Content-Type", "video/mp4")],
                body=big,
                concurrent_to=ids["req4"],
            )

        # 5. Hostile header values and a non-ASCII URL.
        hostile = "https://bücher.example/straße?q=naïve value#frag"
        ids["req5"] = writer.write_request(
            hostile,
            headers=[("X-Evil", "x\r\nWARC-Type: resource\r\n\r\nHTTP/1.1 200 OK")],
        )
        ids["resp5"] = writer.write_response(
            hostile,
            status=200,
            reason="OK\r\nWARC-Record-ID: <urn:uuid:evil>",
            headers=[
                ("X-Evil", "v\r\nWARC-Target-URI: http://evil/\nX-Injected: 1\r"),
                ("Bad Name\r\nX-Injected", "1"),
                ("X-Unicode", "ünïcödé ✓"),
            ],
            body=b"ok",
            concurrent_to=ids["req5"],
        )

        # 6. Redirect with an empty body.
        ids["req6"] = writer.write_request("http://example.com/old")
        ids["resp6"] = writer.write_response(
            "http://example.com/old",
            status=302,
            headers=[("Location", "https://example.com/"), ("Content-Length", "0")],
            body=b"",
            concurrent_to=ids["req6"],
        )

        # 7. Screenshot and capture metadata.
        ids["shot"] = writer.write_resource(
            "urn:evidence:screenshot:https://example.com/",
            "image/png",
            PNG,
            refers_to=ids["resp1"],
            concurrent_to=ids["resp1"],
        )
        ids["meta"] = writer.write_metadata(
            "https://example.com/",
            "application/json",
            json.dumps({"viewport": [1280, 800], "note": "naïve"}).encode(),
            refers_to=ids["resp1"],
        )
    assert stream.sent == FIVE_MB
    return Written(path, ids, big_file)


def test_warcio_check_passes_every_digest(warc_file: Written) -> None:
    result = subprocess.run(
        warcio_cmd("check", "-v", str(warc_file.path)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("digest pass") == len(warc_file.ids)
    assert "fail" not in result.stdout


def test_warcio_index_lists_every_record(warc_file: Written) -> None:
    result = subprocess.run(
        warcio_cmd(
            "index",
            "-f",
            "offset,length,warc-type,warc-target-uri,http:status",
            str(warc_file.path),
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["warc-type"] for row in rows] == [
        "warcinfo",
        *["request", "response"] * 6,
        "resource",
        "metadata",
    ]
    statuses = [row.get("http:status") for row in rows if row["warc-type"] == "response"]
    assert statuses == ["200", "200", "200", "206", "200", "302"]
    # offsets are gzip member boundaries: each record is its own member
    raw = warc_file.path.read_bytes()
    for row in rows:
        start, length = int(row["offset"]), int(row["length"])
        member = gzip.decompress(raw[start : start + length])
        assert member.startswith(b"WARC/1.1\r\n")
        assert member.endswith(b"\r\n\r\n")


def read_records(path: Path) -> list[tuple[Any, bytes]]:
    out = []
    with path.open("rb") as fh:
        for record in ArchiveIterator(fh, check_digests=True):
            body = record.content_stream().read()
            assert record.digest_checker.passed is True, record.digest_checker.problems
            out.append((record, body))
    return out


def test_archive_iterator_reads_back_bodies_and_links(warc_file: Written) -> None:
    records = read_records(warc_file.path)
    by_id = {rec.rec_headers.get_header("WARC-Record-ID"): (rec, body) for rec, body in records}
    assert set(by_id) == set(warc_file.ids.values())
    ids = warc_file.ids

    for rec, _ in records:
        assert rec.rec_headers.protocol == "WARC/1.1"
        if rec.rec_type != "warcinfo":
            assert rec.rec_headers.get_header("WARC-Warcinfo-ID") == ids["info"]

    info, info_body = by_id[ids["info"]]
    assert info.rec_headers.get_header("WARC-Filename") == "capture.warc.gz"
    assert info.rec_headers.get_header("WARC-Date") == "2024-05-17T09:30:15.123456Z"
    text = info_body.decode()
    assert "software: evidence-locker capture 0.1.0\r\n" in text
    assert "operator: Det. Jane Doe, Unit 7\r\n" in text
    assert "format: WARC File Format 1.1\r\n" in text
    assert "conformsTo: " in text

    for n in range(1, 7):
        req, _ = by_id[ids[f"req{n}"]]
        resp, _ = by_id[ids[f"resp{n}"]]
        assert req.rec_type == "request"
        assert resp.rec_type == "response"
        assert resp.rec_headers.get_header("WARC-Concurrent-To") == ids[f"req{n}"]
        assert resp.rec_headers.get_header("WARC-Target-URI") == req.rec_headers.get_header(
            "WARC-Target-URI"
        )

    resp1, body1 = by_id[ids["resp1"]]
    assert body1 == b"<html><body>caf\xc3\xa9</body></html>"
    assert resp1.rec_headers.get_header("WARC-Date") == "2024-05-17T09:30:15.373456Z"
    assert resp1.rec_headers.get_header("WARC-IP-Address") == "93.184.216.34"
    assert resp1.rec_headers.get_header("WARC-Payload-Digest") == b32(body1)
    assert resp1.http_headers.protocol == "HTTP/1.1"
    assert resp1.http_headers.get_statuscode() == "200"
    assert resp1.http_headers.headers == [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Set-Cookie", "a=1; Path=/"),
        ("X-Original-Content-Encoding", "gzip"),
        ("Set-Cookie", "b=2; Path=/"),
        ("X-Original-Transfer-Encoding", "chunked"),
        ("X-Original-Content-Length", "4242"),
        ("Set-Cookie", "c=3"),
    ]
    req1, _ = by_id[ids["req1"]]
    assert req1.http_headers.protocol == "GET"
    assert req1.http_headers.statusline == "/ HTTP/1.1"
    assert req1.http_headers.headers[2:] == [("Cookie", "a=1"), ("Cookie", "b=2")]

    resp2, body2 = by_id[ids["resp2"]]
    assert body2 == BINARY
    assert resp2.rec_headers.get_header("WARC-Protocol") == "h2"
    assert resp2.rec_headers.get_header("WARC-IP-Address") == "2606:2800:220:1:248:1893:25c8:1946"
    assert resp2.http_headers.protocol == "HTTP/1.1"
    assert resp2.http_headers.statusline == "200 OK"
    assert resp2.http_headers.headers == [
        ("content-type", "application/octet-stream"),
        ("content-length", str(len(BINARY))),
    ]
    req2, _ = by_id[ids["req2"]]
    assert req2.http_headers.headers == [("accept", "*/*")]

    req3, req3_body = by_id[ids["req3"]]
    assert req3.http_headers.protocol == "POST"
    assert req3.http_headers.statusline == "/upload?x=1 HTTP/1.1"
    assert req3_body == b"name=value&other=%C3%A9"
    resp3, body3 = by_id[ids["resp3"]]
    assert body3 == pattern(FIVE_MB)
    assert resp3.rec_headers.get_header("WARC-Payload-Digest") == b32(body3)

    resp4, body4 = by_id[ids["resp4"]]
    assert body4 == warc_file.big_file.read_bytes()[1000:]
    assert resp4.http_headers.get_statuscode() == "206"

    resp6, body6 = by_id[ids["resp6"]]
    assert body6 == b""
    assert resp6.http_headers.statusline == "302 Found"
    assert resp6.http_headers.get_header("Location") == "https://example.com/"
    assert resp6.http_headers.get_header("Content-Length") == "0"
    assert resp6.rec_headers.get_header("WARC-Payload-Digest") == b32(b"")

    shot, shot_body = by_id[ids["shot"]]
    assert shot.rec_type == "resource"
    assert shot_body == PNG
    assert shot.rec_headers.get_header("Content-Type") == "image/png"
    assert shot.rec_headers.get_header("WARC-Refers-To") == ids["resp1"]
    assert shot.rec_headers.get_header("WARC-Concurrent-To") == ids["resp1"]
    meta, meta_body = by_id[ids["meta"]]
    assert meta.rec_type == "metadata"
    assert json.loads(meta_body) == {"viewport": [1280, 800], "note": "naïve"}
    assert meta.rec_headers.get_header("WARC-Refers-To") == ids["resp1"]


def test_hostile_headers_and_urls_cannot_inject(warc_file: Written) -> None:
    records = dict(
        (rec.rec_headers.get_header("WARC-Record-ID"), rec)
        for rec, _ in read_records(warc_file.path)
    )
    req5 = records[warc_file.ids["req5"]]
    resp5 = records[warc_file.ids["resp5"]]
    uri = "https://xn--bcher-kva.example/stra%C3%9Fe?q=na%C3%AFve%20value#frag"
    assert req5.rec_headers.get_header("WARC-Target-URI") == uri
    assert resp5.rec_headers.get_header("WARC-Target-URI") == uri
    assert req5.http_headers.statusline == "/stra%C3%9Fe?q=na%C3%AFve%20value HTTP/1.1"
    # no extra WARC header lines, whatever the page sent
    for rec in (req5, resp5):
        names = [name for name, _ in rec.rec_headers.headers]
        assert len(names) == len(set(names))
        assert names.count("WARC-Type") == 1
        assert names.count("WARC-Record-ID") == 1
        assert names.count("WARC-Target-URI") == 1
    assert req5.rec_type == "request"
    assert req5.http_headers.headers == [
        ("X-Evil", "x  WARC-Type: resource    HTTP/1.1 200 OK"),
    ]
    assert resp5.http_headers.statusline == "200 OK  WARC-Record-ID: <urn:uuid:evil>"
    assert resp5.http_headers.headers == [
        ("X-Evil", "v  WARC-Target-URI: http://evil/ X-Injected: 1"),
        ("Bad_Name__X-Injected", "1"),
        ("X-Unicode", "ünïcödé ✓"),
    ]


def split_members(raw: bytes) -> list[bytes]:
    members = []
    while raw:
        inflater = zlib.decompressobj(31)
        members.append(inflater.decompress(raw) + inflater.flush())
        assert inflater.eof
        raw = inflater.unused_data
    return members


def test_independent_parse_recomputes_every_digest(warc_file: Written) -> None:
    members = split_members(warc_file.path.read_bytes())
    assert len(members) == len(warc_file.ids)
    date_re = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
    for member in members:
        head, _, rest = member.partition(b"\r\n\r\n")
        lines = head.decode("utf-8").split("\r\n")
        assert lines[0] == "WARC/1.1"
        fields = dict(line.split(": ", 1) for line in lines[1:])
        assert len(fields) == len(lines) - 1, "no repeated or injected WARC fields"
        length = int(fields["Content-Length"])
        block = rest[:length]
        assert rest[length:] == b"\r\n\r\n"
        assert fields["WARC-Block-Digest"] == b32(block)
        assert re.fullmatch(r"<urn:uuid:[0-9a-f-]{36}>", fields["WARC-Record-ID"])
        assert date_re.fullmatch(fields["WARC-Date"])
        assert all(line.isascii() for line in lines), "WARC headers stay ASCII here"
        if "WARC-Payload-Digest" in fields and fields["WARC-Type"] in ("request", "response"):
            payload = block.partition(b"\r\n\r\n")[2]
            assert fields["WARC-Payload-Digest"] == b32(payload)
        elif "WARC-Payload-Digest" in fields:
            assert fields["WARC-Payload-Digest"] == b32(block)


def test_large_stream_is_never_held_in_memory(tmp_path: Path) -> None:
    with (tmp_path / "big.warc.gz").open("wb") as fh:
        writer = WarcWriter(fh, compresslevel=1)
        tracemalloc.start()
        try:
            writer.write_response(
                "https://example.com/big", status=200, body=PatternStream(FIVE_MB)
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < FIVE_MB // 2, f"peak {peak} bytes while writing a {FIVE_MB} byte body"


def test_uncompressed_output_is_also_valid(tmp_path: Path) -> None:
    path = tmp_path / "plain.warc"
    with path.open("wb") as fh:
        writer = WarcWriter(fh, gzip=False)
        writer.write_warcinfo({"software": "test"})
        req = writer.write_request("http://example.com/")
        writer.write_response("http://example.com/", status=204, concurrent_to=req)
        assert writer.bytes_written == fh.tell()
    assert path.read_bytes().startswith(b"WARC/1.1\r\n")
    result = subprocess.run(warcio_cmd("check", "-v", str(path)), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("digest pass") == 3


def test_preassigned_ids_link_both_ways(tmp_path: Path) -> None:
    buf = io.BytesIO()
    writer = WarcWriter(buf)
    resp_id = new_record_id()
    req_id = writer.write_request("http://example.com/", concurrent_to=resp_id)
    assert (
        writer.write_response(
            "http://example.com/", status=200, record_id=resp_id, concurrent_to=[req_id]
        )
        == resp_id
    )
    buf.seek(0)
    recs = list(ArchiveIterator(buf))
    assert recs[0].rec_headers.get_header("WARC-Concurrent-To") == resp_id
    assert recs[1].rec_headers.get_header("WARC-Record-ID") == resp_id
    assert recs[1].rec_headers.get_header("WARC-Concurrent-To") == req_id


def test_encoded_body_keeps_content_encoding(tmp_path: Path) -> None:
    raw = gzip.compress(b"hello world")
    buf = io.BytesIO()
    WarcWriter(buf).write_response(
        "http://example.com/",
        status=200,
        headers=[("Content-Encoding", "gzip"), ("Content-Length", str(len(raw)))],
        body=raw,
        body_decoded=False,
    )
    buf.seek(0)
    records = 0
    for rec in ArchiveIterator(buf, check_digests=True):
        records += 1
        assert rec.http_headers.get_header("Content-Encoding") == "gzip"
        assert rec.http_headers.get_header("Content-Length") == str(len(raw))
        assert rec.content_stream().read() == b"hello world"  # warcio decodes it
        assert rec.rec_headers.get_header("WARC-Payload-Digest") == b32(raw)
        assert rec.digest_checker.passed is True
    assert records == 1


def test_dates_are_converted_to_utc_and_naive_ones_refused() -> None:
    buf = io.BytesIO()
    writer = WarcWriter(buf)
    paris = timezone(timedelta(hours=2))
    writer.write_metadata(
        "urn:x", "text/plain", b"x", date=datetime(2024, 5, 17, 11, 30, 15, 5, tzinfo=paris)
    )
    buf.seek(0)
    (rec,) = list(ArchiveIterator(buf))
    assert rec.rec_headers.get_header("WARC-Date") == "2024-05-17T09:30:15.000005Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        writer.write_metadata("urn:x", "text/plain", b"x", date=datetime(2024, 5, 17))


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.write_request("http://x/", method="GET /evil HTTP/1.1\r\n"),
        lambda w: w.write_request("http://x/", concurrent_to="<urn:uuid:1>\r\nWARC-Type: x"),
        lambda w: w.write_request("http://x/", ip_address="10.0.0.1\r\nX: y"),
        lambda w: w.write_response("http://x/", status=20),
        lambda w: w.write_response("http://x/", status=200, truncated="because"),
        lambda w: w.write_resource(
            "urn:x", "image/png", b"", extra_headers=[("Content-Length", "1")]
        ),
        lambda w: w.write_resource("urn:x", "image/png", b"", extra_headers=[("X Bad", "1")]),
        lambda w: w.write_metadata("urn:x", "text/plain", b"", refers_to="not an id"),
        lambda w: w.write_warcinfo({"bad field": "x"}),
    ],
)
def test_invalid_arguments_are_refused_before_anything_is_written(
    call: Callable[[WarcWriter], object],
) -> None:
    buf = io.BytesIO()
    writer = WarcWriter(buf)
    with pytest.raises(ValueError):
        call(writer)
    assert buf.getvalue() == b""


def test_a_stream_that_changes_between_passes_is_reported(tmp_path: Path) -> None:
    class Shifty(io.BytesIO):
        reads = 0

        def read(self, n: int | None = -1) -> bytes:
            data = super().read(n)
            if self.tell() == len(self.getvalue()):
                self.reads += 1
            return data.upper() if self.reads > 1 else data

    with pytest.raises(RuntimeError, match="changed"):
        WarcWriter(io.BytesIO()).write_resource("urn:x", "text/plain", Shifty(b"abc" * 1000))


@pytest.mark.parametrize(
    ("iri", "uri"),
    [
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/%20ok%zz", "http://example.com/%20ok%25zz"),
        ("http://example.com/a\r\nb", "http://example.com/ab"),
        (
            "https://bücher.example:8443/ü?ä=ö#ß",
            "https://xn--bcher-kva.example:8443/%C3%BC?%C3%A4=%C3%B6#%C3%9F",
        ),
        ("http://üser:pä@bücher.example/", "http://%C3%BCser:p%C3%A4@xn--bcher-kva.example/"),
        ("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        (
            'http://example.com/<script>"{x}|^`',
            "http://example.com/%3Cscript%3E%22%7Bx%7D%7C%5E%60",
        ),
        ("http://example.com/?", "http://example.com/?"),
        ("urn:evidence:screenshot", "urn:evidence:screenshot"),
    ],
)
def test_to_warc_uri(iri: str, uri: str) -> None:
    assert to_warc_uri(iri) == uri
