"""Tests for WACZ packaging (evidence.wacz).

The WACZ built from a small capture WARC is checked by the reference validator (``wacz
validate``, run as a program), by our own ``check_wacz``, by resolving every index line back to
its WARC record with warcio, and by replaying it in pywb (installed by ``./dev test``).  Tampering
with the archived WARC or with ``datapackage.json`` must be caught by both validators.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from warcio.archiveiterator import ArchiveIterator

from capture.warc import WarcWriter
from evidence.wacz import (
    PageInfo,
    PageNotArchived,
    UnreadableWarc,
    WaczSummary,
    build_wacz,
    check_wacz,
)

WHEN = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)
CREATED = datetime(2024, 5, 18, 8, 0, 0, tzinfo=UTC)
PAGE_URL = "https://example.org/"
OLD_URL = "http://example.org/old"
IMAGE_URL = "https://example.org/logo.png"
CLIP_URL = "https://example.org/clip.bin"
API_URL = "https://example.org/api/search"
SHOT_URL = "urn:view:https://example.org/"
HTML = b"<!doctype html><html><head><title>Seized</title></head><body>Evidence</body></html>"
# Incompressible, larger than the 1 MiB copy chunk, so index offsets cross chunk boundaries.
CLIP = random.Random(7).randbytes(2 * 1024 * 1024 + 4321)
ARCHIVE = "archive/capture.warc.gz"
VENV_BIN = Path(sys.executable).parent


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


IMAGE = png()


def write_capture(path: Path) -> None:
    """A capture as the worker writes it: a page, an image, a redirect, a POST and a screenshot."""
    with path.open("wb") as fh:
        writer = WarcWriter(fh)
        writer.write_warcinfo(
            {"software": "evidence-locker capture test", "operator": "Det. Test"},
            filename=path.name,
            date=WHEN,
        )
        exchanges: list[tuple[str, str, int, list[tuple[str, str]], bytes]] = [
            (OLD_URL, "GET", 301, [("Location", PAGE_URL)], b""),
            (PAGE_URL, "GET", 200, [("Content-Type", "text/html; charset=utf-8")], HTML),
            (IMAGE_URL, "GET", 200, [("Content-Type", "image/png")], IMAGE),
            (CLIP_URL, "GET", 200, [("Content-Type", "application/octet-stream")], CLIP),
            (API_URL, "POST", 200, [("Content-Type", "application/json")], b'{"hits": 3}'),
        ]
        for step, (url, method, status, headers, body) in enumerate(exchanges):
            date = WHEN + timedelta(seconds=step)
            request_body = b"q=evidence&page=1" if method == "POST" else None
            request_headers = [("Host", "example.org")]
            if request_body is not None:
                request_headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            request_id = writer.write_request(
                url, method=method, headers=request_headers, body=request_body, date=date
            )
            writer.write_response(
                url,
                status=status,
                headers=[*headers, ("Content-Length", str(len(body)))],
                body=body,
                date=date,
                concurrent_to=request_id,
            )
        writer.write_resource(SHOT_URL, "image/png", IMAGE, date=WHEN + timedelta(seconds=9))


PAGES = [
    PageInfo(url=PAGE_URL, ts=WHEN + timedelta(seconds=1), title="Seized"),
    PageInfo(url=OLD_URL, ts=WHEN, title="As entered by the officer", id="entered"),
]


def build(warc: Path, out: Path, **overrides: Any) -> WaczSummary:
    kwargs: dict[str, Any] = {
        "title": "Case 2024/17 capture 1",
        "pages": PAGES,
        "created": CREATED,
        "software": "evidence-locker 0.1.0",
        "extra_metadata": {"description": "Capture of example.org for case 2024/17."},
    }
    kwargs.update(overrides)
    with out.open("wb") as fh:
        return build_wacz(warc, fh, **kwargs)


@dataclass(frozen=True)
class Built:
    warc: Path
    wacz: Path
    summary: WaczSummary


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("wacz")
    warc = root / "capture.warc.gz"
    write_capture(warc)
    wacz = root / "capture.wacz"
    return Built(warc, wacz, build(warc, wacz))


def read_member(wacz: Path, name: str) -> bytes:
    with zipfile.ZipFile(wacz) as zf:
        return zf.read(name)


def rewrite(src: Path, dst: Path, name: str, change: bytes) -> None:
    """Copy the WACZ, replacing one member's content (with a valid CRC, so only hashes tell)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, change if info.filename == name else zin.read(info))


def wacz_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "wacz"), "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- the reference validator ---------------------------------------------------------------


def test_reference_validator_accepts_it(built: Built) -> None:
    result = wacz_validate(built.wacz)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation succeeded" in result.stdout


def test_check_wacz_accepts_it(built: Built) -> None:
    assert check_wacz(built.wacz) == []


# -- layout and metadata -------------------------------------------------------------------


def test_archive_is_the_warc_stored_byte_for_byte(built: Built) -> None:
    with zipfile.ZipFile(built.wacz) as zf:
        info = zf.getinfo(ARCHIVE)
        assert info.compress_type == zipfile.ZIP_STORED
        assert zf.read(info) == built.warc.read_bytes()
        names = sorted(zf.namelist())
    assert names == sorted(
        [
            ARCHIVE,
            "indexes/index.cdx",
            "pages/pages.jsonl",
            "datapackage.json",
            "datapackage-digest.json",
        ]
    )
    warc_hash = "sha256:" + hashlib.sha256(built.warc.read_bytes()).hexdigest()
    assert built.summary.archive.hash == warc_hash
    assert built.summary.archive.bytes == built.warc.stat().st_size


def test_datapackage_lists_every_file_with_hash_and_size(built: Built) -> None:
    raw = read_member(built.wacz, "datapackage.json")
    package = json.loads(raw)
    assert package["profile"] == "data-package"
    assert package["wacz_version"] == "1.1.1"
    assert package["title"] == "Case 2024/17 capture 1"
    assert package["description"] == "Capture of example.org for case 2024/17."
    assert package["software"] == "evidence-locker 0.1.0"
    assert package["created"] == "2024-05-18T08:00:00.000Z"
    assert package["home"] == {"url": PAGE_URL, "ts": "2024-05-17T09:30:16.123Z"}
    assert package["mainPageURL"] == PAGE_URL
    assert package["mainPageDate"] == "2024-05-17T09:30:16.123Z"
    with zipfile.ZipFile(built.wacz) as zf:
        for resource in package["resources"]:
            data = zf.read(resource["path"])
            assert resource["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
            assert resource["bytes"] == len(data)
            assert resource["name"] == resource["path"].rsplit("/", 1)[-1]
    listed = [(r.name, r.path, r.hash, r.bytes) for r in built.summary.resources]
    assert listed == [(r["name"], r["path"], r["hash"], r["bytes"]) for r in package["resources"]]

    digest = json.loads(read_member(built.wacz, "datapackage-digest.json"))
    assert digest == {"path": "datapackage.json", "hash": built.summary.datapackage_hash}
    assert digest["hash"] == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_pages_jsonl_has_header_and_one_line_per_page(built: Built) -> None:
    lines = [json.loads(line) for line in read_member(built.wacz, "pages/pages.jsonl").splitlines()]
    assert lines[0] == {"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}
    assert [(p["url"], p["ts"], p["title"]) for p in lines[1:]] == [
        (PAGE_URL, "2024-05-17T09:30:16.123Z", "Seized"),
        (OLD_URL, "2024-05-17T09:30:15.123Z", "As entered by the officer"),
    ]
    assert lines[2]["id"] == "entered"
    assert lines[1]["id"]  # derived from URL and time when not given
    assert built.summary.page_count == 2


def test_same_input_gives_the_same_bytes(built: Built, tmp_path: Path) -> None:
    again = tmp_path / "again.wacz"
    build(built.warc, again)
    assert again.read_bytes() == built.wacz.read_bytes()


# -- the index -----------------------------------------------------------------------------


def index_lines(wacz: Path) -> list[tuple[str, str, dict[str, str]]]:
    out = []
    for line in read_member(wacz, "indexes/index.cdx").decode("utf-8").splitlines():
        key, ts, block = line.split(" ", 2)
        out.append((key, ts, json.loads(block)))
    return out


def test_index_is_sorted_cdxj_covering_every_response(built: Built) -> None:
    raw = read_member(built.wacz, "indexes/index.cdx").decode("utf-8").splitlines()
    assert raw == sorted(raw)
    entries = index_lines(built.wacz)
    assert built.summary.index_entries == len(entries) == 6
    by_url = {entry["url"]: entry for _, _, entry in entries}
    assert set(by_url) == {OLD_URL, PAGE_URL, IMAGE_URL, CLIP_URL, API_URL, SHOT_URL}
    assert by_url[OLD_URL]["status"] == "301"
    assert by_url[PAGE_URL]["mime"] == "text/html"
    assert by_url[IMAGE_URL]["mime"] == "image/png"
    post_key = next(key for key, _, entry in entries if entry["url"] == API_URL)
    assert "__wb_method=post" in post_key and "q=evidence" in post_key
    assert by_url[API_URL]["method"] == "POST"
    for _, ts, entry in entries:
        assert entry["filename"] == "capture.warc.gz"
        assert entry["digest"].startswith("sha256:")
        assert len(ts) == 14 and ts.startswith("20240517093")


def test_every_index_line_resolves_to_its_record(built: Built) -> None:
    warc = read_member(built.wacz, ARCHIVE)
    for _, _, entry in index_lines(built.wacz):
        offset, length = int(entry["offset"]), int(entry["length"])
        member = warc[offset : offset + length]
        # Exactly one whole gzip member: it ends where the index says it does.
        inflater = zlib.decompressobj(31)
        inflater.decompress(member)
        assert inflater.eof and inflater.unused_data == b"", entry["url"]
        records = list(ArchiveIterator(io.BytesIO(member)))
        assert len(records) == 1
        record = records[0]
        assert record.rec_headers.get_header("WARC-Target-URI") == entry["url"]
        assert record.rec_headers.get_header("WARC-Payload-Digest") == entry["digest"]
        assert record.rec_type in ("response", "resource")


# -- tampering -----------------------------------------------------------------------------


def test_flipped_byte_in_the_archived_warc_is_named(built: Built, tmp_path: Path) -> None:
    data = bytearray(built.wacz.read_bytes())
    with zipfile.ZipFile(built.wacz) as zf:
        info = zf.getinfo(ARCHIVE)
    name_len = len(info.filename.encode())
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x01
    tampered = tmp_path / "flipped.wacz"
    tampered.write_bytes(bytes(data))

    problems = check_wacz(tampered)
    assert problems and all(p.startswith(ARCHIVE) for p in problems), problems
    assert wacz_validate(tampered).returncode != 0


def test_planted_record_with_valid_zip_fails_its_hash(built: Built, tmp_path: Path) -> None:
    planted = io.BytesIO()
    WarcWriter(planted).write_response(PAGE_URL, status=200, body=b"<html>planted</html>")
    tampered = tmp_path / "planted.wacz"
    rewrite(built.wacz, tampered, ARCHIVE, built.warc.read_bytes() + planted.getvalue())

    problems = check_wacz(tampered)
    assert problems and all(p.startswith(f"{ARCHIVE}: ") for p in problems), problems
    assert any("hash" in p for p in problems) and any("bytes" in p for p in problems)
    result = wacz_validate(tampered)
    assert result.returncode != 0
    assert "capture.warc.gz" in result.stdout  # frictionless reports its hash and size


def test_edited_datapackage_fails_its_digest(built: Built, tmp_path: Path) -> None:
    package = read_member(built.wacz, "datapackage.json")
    edited = package.replace(b"Case 2024/17", b"Case 2024/18")
    assert edited != package
    tampered = tmp_path / "edited.wacz"
    rewrite(built.wacz, tampered, "datapackage.json", edited)

    problems = check_wacz(tampered)
    assert len(problems) == 1 and problems[0].startswith("datapackage.json: hash"), problems
    result = wacz_validate(tampered)
    assert result.returncode != 0
    assert "datapackage.json hash mismatch" in result.stdout


def test_unlisted_and_missing_files_are_named(built: Built, tmp_path: Path) -> None:
    tampered = tmp_path / "extra.wacz"
    with zipfile.ZipFile(built.wacz) as zin, zipfile.ZipFile(tampered, "w") as zout:
        for info in zin.infolist():
            if info.filename != "pages/pages.jsonl":
                zout.writestr(info, zin.read(info))
        zout.writestr("archive/planted.warc", b"WARC/1.1\r\n")
    problems = check_wacz(tampered)
    assert any(p.startswith("pages/pages.jsonl: listed") for p in problems), problems
    assert any(p.startswith("archive/planted.warc: in the WACZ but not listed") for p in problems)


def test_not_a_zip(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.wacz"
    bogus.write_bytes(b"not a zip")
    assert check_wacz(bogus)[0].startswith("bogus.wacz: not a readable ZIP")


# -- inputs --------------------------------------------------------------------------------


class ReadOnly(io.RawIOBase):
    """A non-seekable stream (a pipe or a socket) over some bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class WriteOnly(io.RawIOBase):
    """A non-seekable sink, as when the WACZ is streamed into an upload."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.data += bytes(data)
        return len(data)


def test_streams_in_and_out(built: Built, tmp_path: Path) -> None:
    sink = WriteOnly()
    summary = build_wacz(
        ReadOnly(built.warc.read_bytes()),  # type: ignore[arg-type]
        sink,  # type: ignore[arg-type]
        title="streamed",
        pages=PAGES,
        created=CREATED,
        software="evidence-locker 0.1.0",
    )
    assert summary.archive.path == "archive/data.warc.gz"
    assert summary.archive.hash == built.summary.archive.hash
    out = tmp_path / "streamed.wacz"
    out.write_bytes(bytes(sink.data))
    assert check_wacz(out) == []
    assert {e["filename"] for _, _, e in index_lines(out)} == {"data.warc.gz"}
    offsets = sorted((e["offset"], e["length"]) for _, _, e in index_lines(out))
    assert offsets == sorted((e["offset"], e["length"]) for _, _, e in index_lines(built.wacz))


def test_large_warc_is_not_held_in_memory(tmp_path: Path) -> None:
    warc = tmp_path / "big.warc.gz"
    body = random.Random(3).randbytes(12 * 1024 * 1024)
    with warc.open("wb") as fh:
        WarcWriter(fh, compresslevel=1).write_response(PAGE_URL, status=200, body=body)
    del body
    tracemalloc.start()
    try:
        build(warc, tmp_path / "big.wacz", pages=[PageInfo(PAGE_URL, WHEN, "big")])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024, peak
    assert check_wacz(tmp_path / "big.wacz") == []


def test_page_missing_from_the_warc_is_refused(built: Built, tmp_path: Path) -> None:
    with pytest.raises(PageNotArchived, match=re.escape("https://example.org/elsewhere")):
        build(
            built.warc,
            tmp_path / "x.wacz",
            pages=[*PAGES, PageInfo("https://example.org/elsewhere", WHEN, "?")],
        )


def test_unreadable_warcs_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.warc"
    garbage.write_bytes(b"this is not a WARC\r\n" * 10)
    with pytest.raises(UnreadableWarc):
        build(garbage, tmp_path / "g.wacz")

    # One gzip stream around several records: offsets could not address a record.
    plain = io.BytesIO()
    writer = WarcWriter(plain, gzip=False)
    writer.write_response(PAGE_URL, status=200, body=HTML)
    writer.write_response(IMAGE_URL, status=200, body=IMAGE)
    whole = tmp_path / "whole.warc.gz"
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    whole.write_bytes(compressor.compress(plain.getvalue()) + compressor.flush())
    with pytest.raises(UnreadableWarc):
        build(whole, tmp_path / "w.wacz", pages=[PageInfo(PAGE_URL, WHEN, "p")])


def test_bad_arguments(built: Built, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build(built.warc, tmp_path / "a.wacz", created=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="profile"):
        build(built.warc, tmp_path / "b.wacz", extra_metadata={"profile": "wacz"})
    with pytest.raises(ValueError, match="at least one page"):
        build(built.warc, tmp_path / "c.wacz", pages=[])


# -- replay --------------------------------------------------------------------------------

REPLAY_SCRIPT = """
import json, sys
from pywb.apps.frontendapp import FrontEndApp
from werkzeug.test import Client

client = Client(FrontEndApp())
out = {}
for url in sys.argv[1:]:
    response = client.get("/ev/20240517093020id_/" + url)
    out[url] = [response.status_code, response.headers.get("Location"), response.data.hex()]
print(json.dumps(out))
"""


# pywb pins old versions of libraries the project uses, so `./dev test` installs it in a venv of
# its own and names that venv here; there it must be. Run outside ./dev, the test looks next to
# this Python and on PATH, and skips when pywb is nowhere.
PYWB_VENV = os.environ.get("EVIDENCE_PYWB_VENV")


def find_pywb() -> Path:
    if PYWB_VENV:
        manager = Path(PYWB_VENV, "bin", "wb-manager")
        if not os.access(manager, os.X_OK):
            pytest.fail(f"EVIDENCE_PYWB_VENV={PYWB_VENV} but {manager} is missing")
        return manager
    search = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
    found = shutil.which("wb-manager", path=search)
    if found is None:
        pytest.skip(
            "pywb is not installed: EVIDENCE_PYWB_VENV is unset (./dev test sets it) and "
            "wb-manager is neither next to this Python nor on PATH"
        )
    return Path(found)


@pytest.mark.slow
def test_pywb_replays_the_capture(built: Built, tmp_path: Path) -> None:
    manager = find_pywb()
    python = manager.parent / "python"

    def run(*args: str) -> str:
        result = subprocess.run(
            args, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run(str(manager), "init", "ev")
    # --unpack-wacz keeps our index (filenames rewritten), so replay goes through it.
    run(str(manager), "add", "--unpack-wacz", "ev", str(built.wacz))
    output = run(str(python), "-c", REPLAY_SCRIPT, PAGE_URL, IMAGE_URL, OLD_URL)
    replayed = json.loads(output.strip().splitlines()[-1])  # pywb logs to stdout too
    assert replayed[PAGE_URL][0] == 200 and bytes.fromhex(replayed[PAGE_URL][2]) == HTML
    assert replayed[IMAGE_URL][0] == 200 and bytes.fromhex(replayed[IMAGE_URL][2]) == IMAGE
    status, location, _ = replayed[OLD_URL]  # id_ mode: Location is not rewritten
    assert status == 301 and location and location.endswith(PAGE_URL), replayed[OLD_URL]
