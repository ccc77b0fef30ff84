"""Verify an evidence bundle offline: the one implementation, also shipped as `data/verify.py`.

    python verify.py BUNDLE.zip            (or the unzipped bag folder)
    python verify.py BUNDLE.zip --json --key unit-signing-key.pem --trust-tsa tsa-root.pem

This file is copied verbatim into every bundle, so it needs nothing but Python >= 3.11 and the
`cryptography` package: no project module, no ASN.1 or BagIt library. It checks what
docs/bundle-format.md lists under "What the verifier checks", in that order: the BagIt bag, the
index (bundle.json), the signing key, each exhibit (signature, manifest hash, files, RFC 3161
token, WACZ), the custody log (hash chain, Merkle inclusion proofs, signed and timestamped
checkpoint, optionally consistency with an older checkpoint) and the CASE graph. Every failure
becomes a problem naming the file (its path relative to `data/`) or the custody entry's `seq`.

Decisions, so a reader need not reverse them out of the code:

- Hostile input never raises. A bundle may come from anyone, so every read is bounded: JSON and
  tag files are read whole only up to 64 MiB, ZIP members named with `..`, an absolute path, a
  drive letter, a backslash or NUL are refused unread, as are symlinks, encrypted entries and
  compression other than stored/deflate; a declared uncompressed total far beyond what deflate
  can reach from the archive's size, or compressed sizes that add up to more than the archive
  (overlapping entries), refuse the archive before anything is inflated; inflating stops at an
  entry's declared size. The ZIP is never extracted: members are streamed. A named pipe, device
  or socket, given as the bundle or any other file, is refused unopened (`input_refusal`).
- What is checked is the bag's content, not its container. A bundle someone unzipped and zipped
  again verifies when every file's bytes are intact: the bag may sit in one folder (as exported)
  or at the top of the ZIP, folder entries are skipped, members may be stored or deflated. The
  report then notes how the ZIP differs from the exporter's (`_repack_signs`): its own SHA-256
  is no longer the one the custody log recorded at export, and the expert should know why.
  Bytes outside the archive are another matter and fail the bag (`outside_archive`): a stub
  before the first entry (a self-extracting or polyglot file), bytes between one entry's data
  (and data descriptor) and the next local header or the central directory, between the
  central directory and its end records or within them (a ZIP64 extensible data sector), a
  comment (the archive's or an entry's) or bytes after the end record, and entries that
  overlap. The exporter writes none, zip tools read past them, and what the file holds
  besides the ZIP's entries no manifest covers. The files inside are still checked, and the
  report says what holds of them. So do end records that contradict each other or the central
  directory (`end_record_flaws`): tools that go by the one and those that go by the other see
  different archives. Inside an entry, bytes its compressed size counts past the end of its
  data fail that file (`entry_chunks`, in the one reading pass), as does content whose CRC-32 is
  not the one recorded (zip tools call it damaged), and an entry whose local header disagrees
  with its central directory record is refused unread (`entry_header_flaw`): a streaming
  extractor would read other bytes. So is an entry whose name differs from an earlier one's
  only in letter case (`name_clash`): Windows and macOS unpack the two into one file.
- Desktop metadata (`__MACOSX/`, `.DS_Store`, `._*`, `Thumbs.db`, `desktop.ini`) that no
  manifest lists is warned of, each file by name, and set aside: the Finder writes `.DS_Store`
  into every folder an expert opens, so failing it would fail every bundle unzipped on a Mac.
  It is not bundle content, no manifest or exhibit refers to it, and the report says it covers
  none of it. Any other file the manifests do not list still fails the bag, in a ZIP or a
  folder alike.
- Every file is read and hashed once, in 1 MiB chunks, and the one digest serves the bag
  manifest, the capture manifest and the CASE graph. Two threads hash at once (hashlib and file
  reads release the GIL), each with its own file handle, largest files first.
- Stored ZIP members are read straight from the archive at their data offset rather than through
  `zipfile`. Their CRC-32 is computed as they stream past all the same (zlib.crc32, about a third
  of SHA-256's cost): the manifests' SHA-256 does not cover the tag manifest, the bag signature or
  a WACZ's datapackage-digest.json, and zip tools refuse an entry whose CRC-32 is wrong even when
  its bytes hold.
- A file that differs from its listing is read a second time, streamed, to see whether only its
  line endings were converted (`_line_ends_undone`), whatever its size: it costs nothing on a
  bundle that verifies, and a large case's custody log is text larger than any file parsed.
- A WACZ's own members are hashed by a second read of the WACZ (from the page cache, through a
  seekable window onto the bundle ZIP), run as its own task beside the others. Hashing them while
  the WACZ streams past would need no second read, but would put both hashes of the WARC on one
  thread; on two cores the separate task finishes sooner. A WACZ the bundle ZIP deflated (a
  re-packed bundle) cannot be read at random in place: it is inflated, in 1 MiB chunks, into a
  temporary file that is checked and removed (so it is inflated twice, once for its hash).
- The RFC 3161 reader is a small bounds-checked DER parser (definite lengths only); X.509
  certificates and signatures are left to `cryptography`. Trust anchors come from the bundle's
  `keys/tsa/*.pem` and from the caller; those shipped in the bundle are only as trustworthy as
  their fingerprints, which the report prints.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import threading
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


def _cannot_run(what: str) -> None:
    """Run as a script without what it needs: say so in one line and exit 2 (nothing was
    checked, which is not the same as a bundle that failed: exit 1). Imported, raise as usual."""
    if __name__ == "__main__":
        print(f"verify: {what}; nothing was checked", file=sys.stderr)
        sys.exit(2)


if sys.version_info < (3, 11):  # noqa: UP036 (verify.py may be run by any python3)
    _cannot_run(f"this verifier needs Python 3.11 or newer, and this is Python "
                f"{sys.version_info[0]}.{sys.version_info[1]} ({sys.executable})")
try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError as exc:
    _cannot_run(f"this verifier needs the Python package 'cryptography' (pip install "
                f"cryptography), which {sys.executable} cannot import: {exc}")
    raise

from datetime import UTC, datetime  # noqa: E402 (after the check that says Python is too old)

__all__ = [
    "Check",
    "ProofInvalid",
    "TimestampInvalid",
    "TimestampResult",
    "VerificationReport",
    "input_refusal",
    "key_problem",
    "main",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_timestamp",
]

CHUNK = 1024 * 1024
MAX_JSON = 64 * 1024 * 1024  # bundle.json, manifests, proofs, graph, tag files
MAX_KEPT = 128 * 1024 * 1024  # all the files above together, held at once
MAX_TOKEN = 1024 * 1024  # a timestamp token with its certificates is a few kilobytes
MAX_KEY_FILE = 1024 * 1024
MAX_LINE = 16 * 1024 * 1024  # one custody entry
MAX_ZIP_ENTRIES = 200_000
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
MAX_TOTAL_SIZE = 1024**4
# Deflate cannot expand more than about 1032:1; a header claiming more is lying.
MAX_DEFLATE_RATIO = 1032
MAX_CERTIFICATES = 32
MAX_CHAIN = 8
WORKERS = 2

BAGIT_VERSION = "1.0"
BUNDLE_FORMAT = "evidence-locker/bundle"
# What a version 1 bundle holds beyond the first ones, as bundle.json's `revision` says (absent:
# 0); each revision adds something the verifier then requires. 1: case.jsonld describes every
# received file. 2: bundle.json names the chosen targets (`targets`) and lists the received
# material left out (`received_left_out`), both as the export.started entry records them, and
# every received file the custody slice records is carried or listed as left out. 3: the bag as
# a whole is signed (BAG_SIGNATURE, over the tag manifest). This verifier knows revisions up to
# BUNDLE_REVISION.
BUNDLE_REVISION = 3
REVISION_RECEIVED_IN_GRAPH = 1
REVISION_RECEIVED_SCOPE = 2
REVISION_BAG_SIGNED = 3
# The signature over the tag manifest: a tag file written after it, so no manifest lists it (it
# cannot list its own signature). Its name starts with "tagmanifest-", which verifiers before
# revision 3 already pass over as a tag manifest, so they still verify a revision 3 bundle.
BAG_SIGNATURE = "tagmanifest-sha256.txt.sig"
BAG_SIGNATURE_TYPE = "evidence-locker/bag-signature"
MANIFEST_TYPE = "evidence-locker/capture-manifest"
LOCAL_TSA_POLICY_OID = "2.25.105080062447526380206053475928912169171"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_MANIFEST_LINE = re.compile(r"([0-9A-Fa-f]{64})[ \t]+(.+)")
_PERCENT_ESCAPE = re.compile(r"%(25|0[AaDd])")
_PERCENT_DECODED = {"25": "%", "0a": "\n", "0d": "\r"}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_OXUM = re.compile(r"(\d+)\.(\d+)")
_DRIVE = re.compile(r"[A-Za-z]:")
_GENERALIZED_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z")
_S_IFLNK = 0o120000


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerificationReport:
    bundle: str
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Files beside the bag's content that do not fail it: desktop metadata no manifest lists.
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The input could not be opened as a bundle at all (the CLI exits 2 rather than 1).
    unreadable: bool = False
    # Checks a failure earlier made impossible to run: (check, why). Said, so that a report
    # listing a few problems is not read as if the signatures and custody log were checked.
    not_run: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unreadable and not self.not_run

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "bundle": self.bundle,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "not_run": [{"name": name, "why": why} for name, why in self.not_run],
        }

    def render(self) -> str:
        lines = [f"Evidence bundle {self.bundle}"]
        for check in self.checks:
            lines.append(f"  [{' ok ' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        if self.problems:
            lines.append(f"Problems ({len(self.problems)}):")
            lines.extend(f"  - {problem}" for problem in self.problems)
        if self.warnings:
            lines.append(f"Warnings ({len(self.warnings)}):")
            lines.extend(f"  - {warning}" for warning in self.warnings)
        if self.notes:
            lines.append("Notes:")
            lines.extend(f"  - {note}" for note in self.notes)
        reasons = list(dict.fromkeys(why for _, why in self.not_run))
        for why in reasons:
            names = [name for name, reason in self.not_run if reason == why]
            lines.append(f"Not run ({len(names)}), because {why}:")
            lines.extend(f"  - {name}" for name in names)
        failed = sum(1 for check in self.checks if not check.ok)
        if self.ok:
            warned = f", with {len(self.warnings)} warning(s)" if self.warnings else ""
            lines.append(f"VERIFIED: all {len(self.checks)} checks hold{warned}.")
        elif self.not_run:
            lines.append(
                f"NOT VERIFIED: {len(self.problems)} problem(s) in {failed} of the "
                f"{len(self.checks)} checks run; {len(self.not_run)} more checks were not run at "
                "all (listed above under 'Not run'), so this report says nothing of what they "
                "check."
            )
        else:
            lines.append(
                f"NOT VERIFIED: {len(self.problems)} problem(s) in {failed} of "
                f"{len(self.checks)} checks."
            )
        return "\n".join(lines)


class _Step:
    """One named check being run: its problems, and the facts its detail line reports."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[str] = []
        self.facts: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def fact(self, text: str) -> None:
        self.facts.append(text)

    def check(self) -> Check:
        if self.problems:
            more = len(self.problems) - 1
            detail = self.problems[0] + (f" (and {more} more)" if more else "")
        else:
            detail = "; ".join(self.facts) or "ok"
        return Check(self.name, not self.problems, detail)


# ---------------------------------------------------------------------------------------------
# Small helpers


class _BadJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _BadJson(f"{name} is not a JSON number")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Parsers disagree on which copy wins; signed JSON must not be ambiguous.
            raise _BadJson(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _load_json(data: bytes) -> Any:
    """Parse JSON bytes; raises _BadJson with a reason a person can read."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadJson(f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except _BadJson:
        raise
    except RecursionError as exc:
        raise _BadJson("nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise _BadJson(f"not valid JSON ({exc})") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hex32(value: Any) -> bytes | None:
    """32 bytes from a lower- or upper-case 64-digit hex string, else None."""
    if isinstance(value, str) and _HEX64.fullmatch(value.lower()):
        return bytes.fromhex(value)
    return None


def _human(octets: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if octets >= scale:
            return f"{octets / scale:.1f} {unit}"
    return f"{octets} bytes"


def _fingerprint(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _path_flaw(path: str) -> str | None:
    if not path:
        return "empty path"
    if "\x00" in path:
        return "NUL in name"
    if "\\" in path:
        return "backslash in name"
    if path.startswith("/"):
        return "absolute path"
    if _DRIVE.match(path):
        return "drive-letter path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "'..', '.' or empty path component"
    return None


MAX_SHOWN_CHARS = 200


def _shown(text: str) -> str:
    """Text a page chose (a title), as this report shows it: quoted, with control and other
    unprintable characters escaped (a title may hold terminal escapes or direction overrides),
    cut to MAX_SHOWN_CHARS."""
    shown = repr(text[:MAX_SHOWN_CHARS])
    if len(text) > MAX_SHOWN_CHARS:
        shown += f" (the first {MAX_SHOWN_CHARS} of {len(text)} characters)"
    return shown


def _rel(path: str) -> str:
    """How a problem names a file: relative to data/ for payload, bag-relative for tag files."""
    return path[5:] if path.startswith("data/") else path


def _decode_manifest_path(path: str) -> str:
    """A manifest's path with %25, %0D and %0A decoded (RFC 8493 section 2.1.3)."""
    return _PERCENT_ESCAPE.sub(lambda m: _PERCENT_DECODED[m.group(1).lower()], path)


def _listed_path_flaw(listed: str, payload: bool) -> str | None:
    """Why a path a payload (or tag) manifest lists cannot be in it, or None."""
    flaw = _path_flaw(listed)
    if not flaw and payload and not listed.startswith("data/"):
        flaw = "a payload manifest lists only files under data/"
    if not flaw and not payload and listed.startswith(("data/", "tagmanifest-")):
        flaw = "a tag manifest lists neither payload files nor tag manifests"
    return flaw


def _text_lines(content: bytes) -> list[str]:
    text = content.decode("utf-8")
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# ---------------------------------------------------------------------------------------------
# DER


def _whole(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """An entry's chunks, with a CRC-32 mismatch left to the check that reports it."""
    try:
        yield from chunks
    except _CrcMismatch:
        return


def _line_ends_undone(chunks: Iterator[bytes]) -> list[tuple[str, int, str]]:
    """The SHA-256 and size a file would have with its line endings converted back, and how
    they were converted: CR LF back to LF when it holds a CR LF (what a Windows editor, a
    text-mode mail or FTP transfer or a Git checkout does to a text file), LF back to CR LF when
    it holds an LF and no CR (a Unix tool converting a Windows file). A hash that then matches
    tells a sloppy copy from an altered file: SHA-256 leaves no room for anything else."""
    to_lf, to_crlf = hashlib.sha256(), hashlib.sha256()
    lf_size = crlf_size = 0
    has_crlf = has_cr = has_lf = False
    carry = b""
    for chunk in chunks:
        data, carry = carry + chunk, b""
        if data.endswith(b"\r"):  # its LF may start the next chunk
            data, carry = data[:-1], b"\r"
        has_crlf = has_crlf or b"\r\n" in data
        has_cr = has_cr or b"\r" in data
        has_lf = has_lf or b"\n" in data
        unix = data.replace(b"\r\n", b"\n")
        to_lf.update(unix)
        lf_size += len(unix)
        if not has_cr:
            dos = data.replace(b"\n", b"\r\n")
            to_crlf.update(dos)
            crlf_size += len(dos)
    if carry:
        to_lf.update(carry)
        lf_size += 1
        has_cr = True
    undone = []
    if has_crlf:
        undone.append((to_lf.hexdigest(), lf_size,
                       "CR LF, Windows line ends, where the exported file had LF"))
    if has_lf and not has_cr:
        undone.append((to_crlf.hexdigest(), crlf_size,
                       "LF where the exported file had CR LF, Windows line ends"))
    return undone


class DerError(ValueError):
    """Bytes that are not the DER structure expected."""


@dataclass(frozen=True)
class _Der:
    """One TLV inside `data`: identifier at `start`, contents in [head, end)."""

    data: bytes
    tag: int
    start: int
    head: int
    end: int

    @property
    def body(self) -> bytes:
        return self.data[self.head : self.end]

    @property
    def raw(self) -> bytes:
        return self.data[self.start : self.end]

    def children(self) -> list[_Der]:
        if not self.tag & 0x20:
            raise DerError(f"element with tag 0x{self.tag:02x} is not constructed")
        return _der_all(self.data, self.head, self.end)


def _der_one(data: bytes, pos: int, end: int) -> _Der:
    if pos + 2 > end:
        raise DerError("truncated: no room for a tag and a length")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers do not occur in these structures")
    first = data[pos + 1]
    head = pos + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length (BER, not DER)")
    else:
        count = first & 0x7F
        if count > 4 or head + count > end:
            raise DerError("truncated or oversized length")
        length = int.from_bytes(data[head : head + count], "big")
        head += count
    if head + length > end:
        raise DerError("truncated: an element runs past the end of its container")
    return _Der(data, tag, pos, head, head + length)


def _der_all(data: bytes, pos: int, end: int) -> list[_Der]:
    out: list[_Der] = []
    while pos < end:
        element = _der_one(data, pos, end)
        out.append(element)
        pos = element.end
        if len(out) > 10_000:
            raise DerError("too many elements")
    return out


def _der_read(data: bytes) -> _Der:
    element = _der_one(data, 0, len(data))
    if element.end != len(data):
        raise DerError(f"{len(data) - element.end} trailing bytes after the DER structure")
    return element


def _expect(element: _Der, tag: int, what: str) -> _Der:
    if element.tag != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{element.tag:02x}")
    return element


def _seq(element: _Der, what: str) -> list[_Der]:
    return _expect(element, 0x30, what).children()


def _int(element: _Der, what: str) -> int:
    body = _expect(element, 0x02, what).body
    if not body:
        raise DerError(f"{what}: empty INTEGER")
    return int.from_bytes(body, "big", signed=True)


def _octets(element: _Der, what: str) -> bytes:
    return _expect(element, 0x04, what).body


def _oid(element: _Der, what: str) -> str:
    body = _expect(element, 0x06, what).body
    if not body or body[-1] & 0x80:
        raise DerError(f"{what}: malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    fresh = True
    for byte in body:
        if fresh and byte == 0x80:
            raise DerError(f"{what}: OBJECT IDENTIFIER is not minimally encoded")
        value = (value << 7) | (byte & 0x7F)
        fresh = not byte & 0x80
        if value.bit_length() > 160:
            raise DerError(f"{what}: OBJECT IDENTIFIER arc too large")
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


def _only(element: _Der, what: str) -> _Der:
    """The single element inside an EXPLICIT tag."""
    inner = element.children()
    if len(inner) != 1:
        raise DerError(f"{what}: expected one element inside the tag, found {len(inner)}")
    return inner[0]


def _algorithm(element: _Der, what: str) -> tuple[str, _Der | None]:
    items = _seq(element, what)
    if not items or len(items) > 2:
        raise DerError(f"{what}: malformed AlgorithmIdentifier")
    params = items[1] if len(items) == 2 and items[1].tag != 0x05 else None
    return _oid(items[0], what), params


def _generalized_time(element: _Der, what: str) -> datetime:
    text = _expect(element, 0x18, what).body.decode("ascii", "replace")
    match = _GENERALIZED_TIME.fullmatch(text)
    if not match:
        raise DerError(f"{what}: {text!r} is not a UTC GeneralizedTime")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    try:
        return datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=UTC)
    except ValueError as exc:
        raise DerError(f"{what}: {text!r} is not a valid time ({exc})") from exc


def _asn1_string(element: _Der) -> str:
    body = element.body
    codecs = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x12: "ascii", 0x1A: "ascii",
              0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}  # fmt: skip
    codec = codecs.get(element.tag)
    if codec is None:
        return "#" + body.hex()
    return body.decode(codec, "replace")


_NAME_LABELS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.5": "serialNumber", "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC",
}  # fmt: skip


def _name_rdns(name: _Der) -> list[list[tuple[str, str]]]:
    rdns: list[list[tuple[str, str]]] = []
    for rdn in _seq(name, "Name"):
        attributes = []
        for atv in _expect(rdn, 0x31, "RelativeDistinguishedName").children():
            items = _seq(atv, "AttributeTypeAndValue")
            if len(items) != 2:
                raise DerError("Name: malformed attribute")
            attributes.append((_oid(items[0], "Name"), _asn1_string(items[1])))
        rdns.append(attributes)
    return rdns


def _render_name(name: _Der) -> str:
    parts = []
    for rdn in reversed(_name_rdns(name)):
        parts.append("+".join(f"{_NAME_LABELS.get(oid, oid)}={value}" for oid, value in rdn))
    return ",".join(parts)


def _name_key(name: _Der) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A Name compared as RFC 5280 7.1 suggests: case and white space folded."""
    return tuple(
        tuple(sorted((oid, " ".join(value.casefold().split())) for oid, value in rdn))
        for rdn in _name_rdns(name)
    )


def _same_name(a: _Der, b: _Der) -> bool:
    if a.raw == b.raw:
        return True
    try:
        return _name_key(a) == _name_key(b)
    except DerError:
        return False


def _general_name(element: _Der) -> str:
    if element.tag == 0xA4:  # directoryName, EXPLICIT because Name is a CHOICE
        return _render_name(_only(element, "directoryName"))
    if element.tag in (0x81, 0x82, 0x86):  # rfc822Name, dNSName, URI
        return element.body.decode("ascii", "replace")
    return f"(general name tag 0x{element.tag:02x})"


# ---------------------------------------------------------------------------------------------
# RFC 3161 timestamp tokens

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"
OID_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_RSA = "1.2.840.113549.1.1.1"
OID_RSA_PSS = "1.2.840.113549.1.1.10"
OID_MGF1 = "1.2.840.113549.1.1.8"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_ED25519 = "1.3.101.112"
OID_ED448 = "1.3.101.113"

_DIGESTS: dict[str, str] = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    OID_SHA256: "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.8": "sha3_256",
    "2.16.840.1.101.3.4.2.9": "sha3_384",
    "2.16.840.1.101.3.4.2.10": "sha3_512",
}
_CRYPTO_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}
_RSA_PKCS1: dict[str, str] = {
    "1.2.840.113549.1.1.5": "sha1",
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
_ECDSA: dict[str, str] = {
    "1.2.840.10045.4.1": "sha1",
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}


class TimestampInvalid(ValueError):
    """A timestamp token does not verify; the message says why."""


@dataclass(frozen=True)
class TimestampResult:
    gen_time: datetime
    tsa_name: str
    signer_subject: str
    policy_oid: str
    serial_number: int
    anchor: str  # the trust anchor's label
    notes: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.policy_oid == LOCAL_TSA_POLICY_OID


@dataclass(frozen=True)
class TrustAnchor:
    label: str
    certificate: x509.Certificate
    der: bytes

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.der)


@dataclass
class _Token:
    status: int
    tst_der: bytes
    policy: str
    imprint_algorithm: str
    imprint: bytes
    serial: int
    gen_time: datetime
    nonce: int | None
    tsa_name: str | None
    certificates: list[tuple[bytes, x509.Certificate]]
    sid: _Der
    digest_algorithm: str
    signed_attrs: _Der | None
    signature_algorithm: str
    signature_params: _Der | None
    signature: bytes


def _hash_name(oid: str, what: str) -> str:
    name = _DIGESTS.get(oid)
    if name is None:
        raise TimestampInvalid(f"{what} {oid} is not a supported digest algorithm")
    return name


def _parse_token(data: bytes) -> _Token:
    top = _der_read(data)
    items = _seq(top, "TimeStampResp")
    if not items:
        raise DerError("empty SEQUENCE")
    status = 0
    if items[0].tag == 0x30:  # TimeStampResp: PKIStatusInfo first
        status_items = _seq(items[0], "PKIStatusInfo")
        if not status_items:
            raise DerError("PKIStatusInfo: empty")
        status = _int(status_items[0], "PKIStatus")
        if status not in (0, 1):
            texts = []
            if len(status_items) > 1 and status_items[1].tag == 0x30:
                texts = [_asn1_string(t) for t in status_items[1].children()]
            said = f" ({'; '.join(texts)})" if texts else ""
            raise TimestampInvalid(
                f"the authority did not grant a timestamp: status {status}{said}"
            )
        if len(items) != 2:
            raise TimestampInvalid("the granted response carries no timestamp token")
        content_info = items[1]
    elif items[0].tag == 0x06:  # a bare TimeStampToken (ContentInfo)
        content_info = top
    else:
        raise DerError("neither a TimeStampResp nor a ContentInfo")

    ci = _seq(content_info, "ContentInfo")
    if len(ci) != 2 or _oid(ci[0], "ContentInfo") != OID_SIGNED_DATA:
        raise DerError("ContentInfo: not CMS SignedData")
    signed_data = _seq(_only(_expect(ci[1], 0xA0, "ContentInfo content"), "content"), "SignedData")
    if len(signed_data) < 4:
        raise DerError("SignedData: too few fields")
    _int(signed_data[0], "SignedData version")
    _expect(signed_data[1], 0x31, "SignedData digestAlgorithms")
    encap = _seq(signed_data[2], "EncapsulatedContentInfo")
    if len(encap) != 2 or _oid(encap[0], "eContentType") != OID_TST_INFO:
        raise DerError("EncapsulatedContentInfo: the content is not a TSTInfo")
    tst_der = _octets(_only(_expect(encap[1], 0xA0, "eContent"), "eContent"), "eContent")

    certificates: list[tuple[bytes, x509.Certificate]] = []
    rest = signed_data[3:]
    if rest and rest[0].tag == 0xA0:
        for choice in rest[0].children():
            if choice.tag != 0x30:
                continue  # attribute certificates and other formats are not used by TSAs
            if len(certificates) >= MAX_CERTIFICATES:
                raise DerError("too many certificates")
            try:
                certificates.append((choice.raw, x509.load_der_x509_certificate(choice.raw)))
            except Exception as exc:  # cryptography has several ways to refuse a certificate
                raise DerError(f"a certificate in the token cannot be read: {exc}") from exc
        rest = rest[1:]
    if rest and rest[0].tag == 0xA1:  # crls
        rest = rest[1:]
    if len(rest) != 1:
        raise DerError("SignedData: unexpected fields after the certificates")
    signer_infos = _expect(rest[0], 0x31, "signerInfos").children()
    if len(signer_infos) != 1:
        raise TimestampInvalid(f"expected exactly one signer, found {len(signer_infos)}")
    signer = _seq(signer_infos[0], "SignerInfo")
    if len(signer) < 5:
        raise DerError("SignerInfo: too few fields")
    _int(signer[0], "SignerInfo version")
    sid = signer[1]
    if sid.tag not in (0x30, 0x80):
        raise DerError("SignerInfo: unknown signer identifier")
    digest_algorithm, _ = _algorithm(signer[2], "digestAlgorithm")
    index = 3
    signed_attrs = None
    if signer[index].tag == 0xA0:
        signed_attrs = signer[index]
        index += 1
    if len(signer) < index + 2:
        raise DerError("SignerInfo: signature missing")
    signature_algorithm, signature_params = _algorithm(signer[index], "signatureAlgorithm")
    signature = _octets(signer[index + 1], "signature")
    if len(signer) > index + 3 or (len(signer) == index + 3 and signer[index + 2].tag != 0xA1):
        raise DerError("SignerInfo: unexpected trailing fields")

    tst = _seq(_der_read(tst_der), "TSTInfo")
    if len(tst) < 5:
        raise DerError("TSTInfo: too few fields")
    if _int(tst[0], "TSTInfo version") != 1:
        raise TimestampInvalid("TSTInfo version is not 1")
    policy = _oid(tst[1], "TSTInfo policy")
    imprint = _seq(tst[2], "MessageImprint")
    if len(imprint) != 2:
        raise DerError("MessageImprint: malformed")
    imprint_algorithm, _ = _algorithm(imprint[0], "MessageImprint hashAlgorithm")
    hashed = _octets(imprint[1], "hashedMessage")
    serial = _int(tst[3], "serialNumber")
    gen_time = _generalized_time(tst[4], "genTime")
    nonce = None
    tsa_name = None
    optional = tst[5:]
    for tag in (0x30, 0x01, 0x02, 0xA0, 0xA1):  # accuracy, ordering, nonce, tsa, extensions
        if optional and optional[0].tag == tag:
            if tag == 0x02:
                nonce = _int(optional[0], "nonce")
            elif tag == 0xA0:
                tsa_name = _general_name(_only(optional[0], "tsa"))
            optional = optional[1:]
    if optional:
        raise DerError("TSTInfo: unexpected fields")
    return _Token(
        status=status,
        tst_der=tst_der,
        policy=policy,
        imprint_algorithm=imprint_algorithm,
        imprint=hashed,
        serial=serial,
        gen_time=gen_time,
        nonce=nonce,
        tsa_name=tsa_name,
        certificates=certificates,
        sid=sid,
        digest_algorithm=digest_algorithm,
        signed_attrs=signed_attrs,
        signature_algorithm=signature_algorithm,
        signature_params=signature_params,
        signature=signature,
    )


def _tbs_issuer_and_serial(certificate: x509.Certificate) -> tuple[_Der, int]:
    tbs = _seq(_der_read(certificate.tbs_certificate_bytes), "TBSCertificate")
    at = 1 if tbs and tbs[0].tag == 0xA0 else 0
    if len(tbs) < at + 6:
        raise DerError("TBSCertificate: too few fields")
    return tbs[at + 2], _int(tbs[at], "serialNumber")


def _sid_matches(sid: _Der, certificate: x509.Certificate) -> bool:
    try:
        if sid.tag == 0x80:  # subjectKeyIdentifier
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return hmac.compare_digest(ski.value.digest, sid.body)
        items = _seq(sid, "IssuerAndSerialNumber")
        if len(items) != 2:
            return False
        issuer, serial = _tbs_issuer_and_serial(certificate)
        return serial == _int(items[1], "serialNumber") and _same_name(items[0], issuer)
    except (x509.ExtensionNotFound, DerError, ValueError):
        return False


def _signed_attributes(signed_attrs: _Der) -> dict[str, _Der]:
    values: dict[str, _Der] = {}
    for attribute in signed_attrs.children():
        items = _seq(attribute, "Attribute")
        if len(items) != 2:
            raise DerError("Attribute: malformed")
        oid = _oid(items[0], "attribute type")
        if oid in values:
            raise TimestampInvalid(f"signed attribute {oid} appears twice")
        inner = _expect(items[1], 0x31, "attribute values").children()
        if len(inner) != 1:
            raise TimestampInvalid(f"signed attribute {oid} must have exactly one value")
        values[oid] = inner[0]
    return values


def _ess_problem(value: _Der, v2: bool, der: bytes, certificate: x509.Certificate) -> str | None:
    """Why the ESS signing-certificate attribute does not name this certificate, or None."""
    certs = _seq(_seq(value, "SigningCertificate")[0], "certs")
    if not certs:
        return "the ESS signing-certificate attribute lists no certificate"
    cert_id = _seq(certs[0], "ESSCertID")  # the first one names the signer (RFC 5035)
    hash_name = "sha1"
    if v2:
        hash_name = "sha256"
        if cert_id and cert_id[0].tag == 0x30:
            hash_name = _hash_name(_algorithm(cert_id[0], "ESSCertIDv2")[0], "ESSCertIDv2 hash")
            cert_id = cert_id[1:]
    if not cert_id:
        return "the ESS signing-certificate attribute is malformed"
    if not hmac.compare_digest(hashlib.new(hash_name, der).digest(), _octets(cert_id[0], "hash")):
        return "the ESS signing-certificate hash does not match the signer's certificate"
    if len(cert_id) > 1:
        issuer_serial = _seq(cert_id[1], "IssuerSerial")
        issuer, serial = _tbs_issuer_and_serial(certificate)
        if len(issuer_serial) != 2 or _int(issuer_serial[1], "serialNumber") != serial:
            return "the ESS signing-certificate serial number does not match the signer"
        names = _seq(issuer_serial[0], "GeneralNames")
        if not any(n.tag == 0xA4 and _same_name(_only(n, "directoryName"), issuer) for n in names):
            return "the ESS signing-certificate issuer does not match the signer"
    return None


def _pss_padding(params: _Der | None) -> tuple[padding.PSS, str]:
    hash_name, mgf_hash, salt = "sha1", "sha1", 20
    if params is not None:
        for item in _seq(params, "RSASSA-PSS-params"):
            inner = _only(item, "RSASSA-PSS-params field")
            if item.tag == 0xA0:
                hash_name = _hash_name(_algorithm(inner, "PSS hash")[0], "PSS hash")
            elif item.tag == 0xA1:
                mgf, mgf_params = _algorithm(inner, "PSS mask generation")
                if mgf != OID_MGF1 or mgf_params is None:
                    raise TimestampInvalid("PSS mask generation function is not MGF1")
                mgf_hash = _hash_name(_algorithm(mgf_params, "MGF1 hash")[0], "MGF1 hash")
            elif item.tag == 0xA2:
                salt = _int(inner, "PSS salt length")
            elif item.tag == 0xA3 and _int(inner, "PSS trailer field") != 1:
                raise TimestampInvalid("PSS trailer field is not 1")
    if not 0 <= salt <= 1024:
        raise TimestampInvalid(f"PSS salt length {salt} is implausible")
    return padding.PSS(mgf=padding.MGF1(_CRYPTO_HASHES[mgf_hash]()), salt_length=salt), hash_name


def _verify_signature(token: _Token, message: bytes, certificate: x509.Certificate) -> None:
    oid = token.signature_algorithm
    digest_name = _hash_name(token.digest_algorithm, "digestAlgorithm")
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TimestampInvalid(f"the signer's public key cannot be read: {exc}") from exc
    try:
        if oid in _RSA_PKCS1 or oid == OID_RSA:
            if not isinstance(key, rsa.RSAPublicKey):
                raise TimestampInvalid("RSA signature but the signer's key is not RSA")
            algorithm = _CRYPTO_HASHES[_RSA_PKCS1.get(oid, digest_name)]()
            key.verify(token.signature, message, padding.PKCS1v15(), algorithm)
        elif oid == OID_RSA_PSS:
            if not isinstance(key, rsa.RSAPublicKey):
                raise TimestampInvalid("RSA-PSS signature but the signer's key is not RSA")
            pss, hash_name = _pss_padding(token.signature_params)
            key.verify(token.signature, message, pss, _CRYPTO_HASHES[hash_name]())
        elif oid in _ECDSA or oid == OID_EC_PUBLIC_KEY:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise TimestampInvalid("ECDSA signature but the signer's key is not an EC key")
            algorithm = _CRYPTO_HASHES[_ECDSA.get(oid, digest_name)]()
            key.verify(token.signature, message, ec.ECDSA(algorithm))
        elif oid == OID_ED25519:
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise TimestampInvalid("Ed25519 signature but the signer's key is not Ed25519")
            key.verify(token.signature, message)
        elif oid == OID_ED448:
            if not isinstance(key, ed448.Ed448PublicKey):
                raise TimestampInvalid("Ed448 signature but the signer's key is not Ed448")
            key.verify(token.signature, message)
        else:
            raise TimestampInvalid(f"signature algorithm {oid} is not supported")
    except InvalidSignature as exc:
        raise TimestampInvalid(
            "the timestamp signature does not verify with the signer's certificate"
        ) from exc


# --- older `cryptography` releases ------------------------------------------------------------
# The defence may check a bundle with the `cryptography` its operating system ships (Debian 12:
# 38.0). These stand in for the few newer calls: validity times with a zone (42), loading every
# certificate of a PEM (39), and checking one certificate's signature by another (40).


def _not_before(certificate: x509.Certificate) -> datetime:
    value = getattr(certificate, "not_valid_before_utc", None)
    return value if value is not None else certificate.not_valid_before.replace(tzinfo=UTC)


def _not_after(certificate: x509.Certificate) -> datetime:
    value = getattr(certificate, "not_valid_after_utc", None)
    return value if value is not None else certificate.not_valid_after.replace(tzinfo=UTC)


_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")


def _pem_certificates(pem: bytes) -> list[x509.Certificate]:
    blocks = _PEM_CERTIFICATE.findall(pem)
    if not blocks:
        raise ValueError("no certificate in the PEM text")
    return [x509.load_der_x509_certificate(base64.b64decode(b"".join(block.split())))
            for block in blocks]


def _check_issued(child: x509.Certificate, issuer: x509.Certificate) -> None:
    """Raises unless `issuer` names and signed `child` (as verify_directly_issued_by does)."""
    if child.issuer != issuer.subject:
        raise ValueError("the issuer's name is not the child's issuer name")
    direct = getattr(child, "verify_directly_issued_by", None)
    if direct is not None:
        direct(issuer)
        return
    key = issuer.public_key()
    algorithm = child.signature_hash_algorithm
    if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        key.verify(child.signature, child.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(algorithm))
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(child.signature, child.tbs_certificate_bytes)
    else:
        raise UnsupportedAlgorithm("this certificate signature cannot be checked here")


def _valid_at(certificate: x509.Certificate, moment: datetime, role: str) -> None:
    if not _not_before(certificate) <= moment <= _not_after(certificate):
        raise TimestampInvalid(
            f"the {role} certificate ({certificate.subject.rfc4514_string()}) was not valid at "
            f"genTime {moment.isoformat()} (valid {_not_before(certificate).isoformat()} "
            f"to {_not_after(certificate).isoformat()})"
        )


def _check_tsa_certificate(certificate: x509.Certificate, gen_time: datetime) -> None:
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise TimestampInvalid(
            "the signer certificate lacks the timeStamping extended key usage"
        ) from exc
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampInvalid(
            "the signer certificate's extended key usage must be timeStamping only (RFC 3161 2.3)"
        )
    if not eku.critical:
        raise TimestampInvalid(
            "the signer certificate's timeStamping extended key usage is not critical "
            "(RFC 3161 2.3)"
        )
    try:
        key_usage: x509.KeyUsage | None = certificate.extensions.get_extension_for_class(
            x509.KeyUsage
        ).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is not None and not (key_usage.digital_signature or key_usage.content_commitment):
        raise TimestampInvalid("the signer certificate's key usage does not allow signing")
    _valid_at(certificate, gen_time, "signer")


def _may_issue(certificate: x509.Certificate) -> bool:
    if certificate.version == x509.Version.v1:
        return True
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except (x509.ExtensionNotFound, ValueError):
        return False
    if not constraints.value.ca:
        return False
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        return bool(usage.key_cert_sign)
    except x509.ExtensionNotFound:
        return True
    except ValueError:
        return False


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if not _may_issue(issuer):
        return False
    try:
        _check_issued(child, issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _chain_to_anchor(
    signer: tuple[bytes, x509.Certificate],
    intermediates: Sequence[tuple[bytes, x509.Certificate]],
    anchors: Sequence[TrustAnchor],
    gen_time: datetime,
) -> TrustAnchor:
    current_der, current = signer
    visited = {current_der}
    for _ in range(MAX_CHAIN):
        for anchor in anchors:
            if anchor.der == current_der or _issued_by(current, anchor.certificate):
                _valid_at(anchor.certificate, gen_time, f"trust anchor {anchor.label}")
                return anchor
        step = next(
            ((der, cert) for der, cert in intermediates
             if der not in visited and _issued_by(current, cert)),
            None,
        )  # fmt: skip
        if step is None:
            break
        _valid_at(step[1], gen_time, "intermediate")
        visited.add(step[0])
        current_der, current = step
    names = ", ".join(a.label for a in anchors) or "none given"
    raise TimestampInvalid(
        f"the signer certificate ({signer[1].subject.rfc4514_string()}) does not chain to a "
        f"trust anchor ({names})"
    )


def verify_timestamp(
    token_der: bytes, digest: bytes, anchors: Sequence[TrustAnchor]
) -> TimestampResult:
    """Verify an RFC 3161 TimeStampResp (or bare token) over a SHA-256 `digest`, offline.

    Raises TimestampInvalid saying what does not hold.
    """
    try:
        return _verify_timestamp(token_der, digest, anchors)
    except TimestampInvalid:
        raise
    except DerError as exc:
        raise TimestampInvalid(f"malformed timestamp token: {exc}") from exc
    except Exception as exc:  # hostile bytes reach cryptography too; none may escape as a crash
        raise TimestampInvalid(f"malformed timestamp token: {type(exc).__name__}: {exc}") from exc


def _verify_timestamp(
    token_der: bytes, digest: bytes, anchors: Sequence[TrustAnchor]
) -> TimestampResult:
    if len(token_der) > MAX_TOKEN:
        raise TimestampInvalid(f"{len(token_der)} bytes is too large for a timestamp token")
    token = _parse_token(token_der)
    notes: list[str] = []
    if token.status == 1:
        notes.append("the authority granted the timestamp with modifications")
    if token.imprint_algorithm != OID_SHA256:
        raise TimestampInvalid(f"message imprint uses {token.imprint_algorithm}, not SHA-256")
    if not hmac.compare_digest(token.imprint, digest):
        raise TimestampInvalid(
            "the message imprint does not match the SHA-256 of the timestamped data "
            f"(token {token.imprint.hex()}, data {digest.hex()})"
        )
    if token.signed_attrs is None:
        raise TimestampInvalid("the token has no signed attributes")
    attributes = _signed_attributes(token.signed_attrs)
    content_type = attributes.get(OID_CONTENT_TYPE)
    if content_type is None or _oid(content_type, "content-type") != OID_TST_INFO:
        raise TimestampInvalid("the content-type attribute is missing or not id-ct-TSTInfo")
    message_digest = attributes.get(OID_MESSAGE_DIGEST)
    if message_digest is None:
        raise TimestampInvalid("the message-digest attribute is missing")
    digest_name = _hash_name(token.digest_algorithm, "digestAlgorithm")
    if digest_name == "sha1":
        notes.append("the token is signed over SHA-1, which is no longer collision resistant")
    actual = hashlib.new(digest_name, token.tst_der).digest()
    if not hmac.compare_digest(actual, _octets(message_digest, "message-digest")):
        raise TimestampInvalid(
            "the TSTInfo (time, imprint, serial) was altered after signing: the message-digest "
            "attribute does not match it"
        )

    candidates = [*token.certificates, *((a.der, a.certificate) for a in anchors)]
    matching = [c for c in candidates if _sid_matches(token.sid, c[1])]
    if not matching:
        raise TimestampInvalid("the signer's certificate is neither in the token nor an anchor")
    ess_v2 = attributes.get(OID_SIGNING_CERTIFICATE_V2)
    ess = ess_v2 if ess_v2 is not None else attributes.get(OID_SIGNING_CERTIFICATE)
    signer = matching[0]
    if ess is None:
        notes.append("the token lacks the ESS signing-certificate attribute RFC 3161 requires")
    else:
        why = None
        for candidate in matching:
            why = _ess_problem(ess, ess_v2 is not None, candidate[0], candidate[1])
            if why is None:
                signer = candidate
                break
        if why is not None:
            raise TimestampInvalid(why)

    # The signature covers the DER SET OF attributes, not the [0] IMPLICIT form on the wire.
    _verify_signature(token, b"\x31" + token.signed_attrs.raw[1:], signer[1])
    _check_tsa_certificate(signer[1], token.gen_time)
    anchor = _chain_to_anchor(signer, token.certificates, anchors, token.gen_time)
    subject = signer[1].subject.rfc4514_string()
    return TimestampResult(
        gen_time=token.gen_time,
        tsa_name=token.tsa_name or subject,
        signer_subject=subject,
        policy_oid=token.policy,
        serial_number=token.serial,
        anchor=anchor.label,
        notes=tuple(notes),
    )


def load_anchors(pem: bytes, label: str) -> list[TrustAnchor]:
    """Every certificate in a PEM (or DER) blob as a trust anchor; raises ValueError."""
    if b"-----BEGIN" in pem:
        certificates = _pem_certificates(pem)
    else:
        certificates = [x509.load_der_x509_certificate(pem)]
    return [
        TrustAnchor(label, cert, cert.public_bytes(serialization.Encoding.DER))
        for cert in certificates
    ]


# ---------------------------------------------------------------------------------------------
# Merkle proofs (RFC 9162)


class ProofInvalid(ValueError):
    """A Merkle proof does not verify."""


def _leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2: `leaf` (a leaf hash) is leaf `index` of the tree with `root`."""
    if not 0 <= index < size:
        raise ProofInvalid(f"leaf index {index} is outside a tree of {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if len(p) != 32:
            raise ProofInvalid("a proof element is not a SHA-256 hash")
        if sn == 0:
            raise ProofInvalid("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid("the inclusion proof is shorter than the tree is deep")
    if not hmac.compare_digest(r, root):
        raise ProofInvalid("the inclusion proof does not lead to the checkpoint's root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2: the tree of `old_size` is a prefix of the tree of `new_size`."""
    if not 0 < old_size <= new_size:
        raise ProofInvalid(f"no consistency proof between sizes {old_size} and {new_size}")
    if any(len(p) != 32 for p in path):
        raise ProofInvalid("a proof element is not a SHA-256 hash")
    if old_size == new_size:
        if path:
            raise ProofInvalid("a proof between equal sizes must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise ProofInvalid("trees of equal size have different roots")
        return
    if not path:
        raise ProofInvalid("the consistency proof is empty")
    nodes = list(path)
    if old_size & (old_size - 1) == 0:
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise ProofInvalid("the consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = _node_hash(c, fr)
            sr = _node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid("the consistency proof is shorter than needed")
    if not hmac.compare_digest(fr, old_root):
        raise ProofInvalid("the consistency proof does not lead to the older checkpoint's root")
    if not hmac.compare_digest(sr, new_root):
        raise ProofInvalid("the consistency proof does not lead to the bundle checkpoint's root")


def _hex_path(value: Any) -> list[bytes] | None:
    if not isinstance(value, list):
        return None
    out = []
    for item in value:
        node = _hex32(item)
        if node is None:
            return None
        out.append(node)
    return out


def checkpoint_body(origin: str, tree_size: int, root: bytes) -> bytes:
    """The signed C2SP tlog-checkpoint text: origin, size and base64 root, one per line."""
    return f"{origin}\n{tree_size}\n{base64.b64encode(root).decode()}\n".encode()


def _signature_problem(doc: Any, key: ed25519.Ed25519PublicKey | None, message: bytes,
                       what: str) -> str | None:
    """Why a JSON document's `key_id` and base64 `signature` do not sign `message` with `key`
    (described as `what`); None when they do."""
    if key is None:
        return "no usable signing key to check the signature with"
    key_id, want = _get(doc, "key_id"), _key_id(key)
    if not isinstance(key_id, str) or key_id.lower() != want:
        return f"signed by key {key_id!r}, not by the signing key {want}"
    try:
        signature = base64.b64decode(str(_get(doc, "signature")), validate=True)
    except (binascii.Error, ValueError):
        return "signature is not base64"
    if len(signature) != 64:
        return f"signature is {len(signature)} bytes, not a 64-byte Ed25519 signature"
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return f"the Ed25519 signature does not verify over {what} with key {want}"
    return None


def bag_signature_problem(doc: Any, key: ed25519.Ed25519PublicKey | None,
                          tagmanifest_sha256: str) -> str | None:
    """Why `doc`, the bag's BAG_SIGNATURE file as parsed (`_load_json`), is not `key`'s
    signature over the tag manifest whose SHA-256 (hex) is `tagmanifest_sha256`; None when it
    is: the one check for this verifier and for `evidence.bagit`, which imports it."""
    bag, listed = _get(doc, "bag"), _get(doc, "tagmanifest_sha256")
    if _get(doc, "type") != BAG_SIGNATURE_TYPE or _get(doc, "algorithm") != "Ed25519" \
            or not isinstance(bag, str) or _hex32(listed) is None:  # fmt: skip
        return (f"not a {BAG_SIGNATURE_TYPE} document (type, algorithm Ed25519, bag, "
                "tagmanifest_sha256, key_id, signature)")
    # Checked over the digest the file names, so a mismatch below is the exporter's own word
    # for another tag manifest, not a forger's.
    error = _signature_problem(doc, key, bag_signature_statement(bag, str(listed)),
                               "the tag manifest it names")
    if error is None and str(listed).lower() != tagmanifest_sha256:
        error = (f"signs a tag manifest with SHA-256 {listed}, but tagmanifest-sha256.txt has "
                 f"SHA-256 {tagmanifest_sha256}: the bag was changed and its manifests "
                 "rewritten after export")
    return error


def bag_signature_statement(bag: str, tagmanifest_sha256: str) -> bytes:
    """What the bag signature signs: its type, the bag's name and the tag manifest's SHA-256
    (hex), one per line. The same key signs capture manifests (JSON, starting with "{") and
    checkpoints (whose third line is 44 characters of base64); this text can be taken for
    neither, nor either for it, because its first line names what it is and its last is 64 hex
    digits."""
    return f"{BAG_SIGNATURE_TYPE}\n{bag}\n{tagmanifest_sha256}\n".encode()


# ---------------------------------------------------------------------------------------------
# Reading a bag: a ZIP (streamed, never extracted) or a folder


class _ReadError(Exception):
    pass


class _CrcMismatch(_ReadError):
    """Raised once an entry's every chunk has been read, so its SHA-256 is whole: whoever can
    say both whether its bytes are the ones listed and that the ZIP records another CRC-32
    catches it (`entry_chunks`); to any other reader it is an entry that cannot be read."""


class _Stream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...
    def close(self) -> None: ...


_Opener = Callable[[], _Stream]


class _Window:
    """A read-only, seekable view of [start, start + length) of a file: a stored ZIP member."""

    def __init__(self, path: str, start: int, length: int) -> None:
        self._handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._start = start
        self._length = length
        self._pos = 0

    def read(self, size: int = -1, /) -> bytes:
        left = self._length - self._pos
        size = left if size is None or size < 0 else min(size, left)
        if size <= 0:
            return b""
        self._handle.seek(self._start + self._pos)
        data = self._handle.read(size)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0, /) -> int:
        base = {0: 0, 1: self._pos, 2: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._handle.close()


def _open_file(path: str) -> _Opener:
    def opener() -> _Stream:
        return open(path, "rb")

    return opener


class _Zip:
    """A ZIP read defensively: bounded before parsing, names checked before any member is read."""

    def __init__(self, opener: _Opener, size: int, problems: list[str], label: str) -> None:
        self.opener = opener
        self.size = size
        self.infos: list[zipfile.ZipInfo] = []
        # What the file holds beyond the archive the exporter wrote (`outside_archive`).
        self.outside: list[str] = []
        self.ok = False
        handle = opener()
        try:
            refusal = _central_directory_refusal(handle, size)
            if refusal:
                problems.append(f"{label}: {refusal}")
                return
            handle.seek(0)
            try:
                with zipfile.ZipFile(handle) as archive:
                    infos = archive.infolist()
            except Exception as exc:  # zipfile raises many kinds on a damaged archive
                problems.append(f"{label}: not a readable ZIP archive ({exc})")
                return
            self.outside = outside_archive(handle, size, infos, archive.start_dir)
            # The entries are still read, as zipfile lists them; the bag fails all the same.
            problems.extend(f"{label}: {flaw}" for flaw in end_record_flaws(handle, size, infos))
        finally:
            handle.close()
        declared = sum(info.file_size for info in infos)
        packed = sum(info.compress_size for info in infos)
        if declared > MAX_TOTAL_SIZE or declared > size * (MAX_DEFLATE_RATIO + 1) + 16 * CHUNK:
            problems.append(
                f"{label}: entries declare {declared} bytes uncompressed from a {size}-byte "
                "archive, more than deflate can produce (zip bomb?)"
            )
            return
        if packed > size:
            problems.append(
                f"{label}: entries' compressed sizes add up to {packed} bytes in a {size}-byte "
                "archive: they overlap (zip bomb?)"
            )
            return
        seen: dict[str, str] = {}
        handle = opener()
        try:
            for info in infos:
                name = info.orig_filename
                flaw = _entry_flaw(info) or entry_header_flaw(handle, size, info)
                if flaw:
                    problems.append(f"{label}: entry {name!r} refused unread: {flaw}")
                    continue
                key = same_file_key(name)
                if key in seen:
                    problems.append(f"{label}: entry {name!r} refused unread: "
                                    f"{name_clash(name, seen[key])}")
                    continue
                seen[key] = name
                self.infos.append(info)
        finally:
            handle.close()
        self.ok = True

    def data_offset(self, handle: _Stream, info: zipfile.ZipInfo) -> int:
        return _data_offset(handle, self.size, info)

    def chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        handle = self.opener()
        try:
            yield from entry_chunks(handle, self.size, info)
        finally:
            handle.close()

    def stored_window(self, info: zipfile.ZipInfo, path: str) -> _Opener | None:
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            return None
        handle = self.opener()
        try:
            start = self.data_offset(handle, info)
        finally:
            handle.close()
        return lambda: _Window(path, start, info.file_size)


def same_file_key(name: str) -> str:
    """An entry's name as Windows and macOS compare file names: letter case and the encoding
    of accented letters ignored (`name_clash`)."""
    return unicodedata.normalize("NFC", name.rstrip("/")).casefold()


def name_clash(name: str, earlier: str) -> str:
    """Why entry `name` is refused when the archive has already given `earlier`, which has the
    same `same_file_key`: the one wording for this verifier and for `evidence.bagit`, which
    imports it, written for a reader who is no programmer."""
    if name == earlier:
        found = "the archive holds two entries of this same name"
        means = ("Unpacking keeps one of the two and drops the other, and tools differ on "
                 "which (some keep the first, some the last)")
    elif unicodedata.normalize("NFC", name) != unicodedata.normalize("NFC", earlier):
        found = (f"the archive also holds {earlier!r}, whose name differs from this one only "
                 "in letter case (as data/A.txt and data/a.txt do)")
        means = ("Windows and macOS treat such names as one file, so unpacking there writes "
                 "one over the other, and which of the two is then on the disk depends on the "
                 "tool used")
    else:
        found = (f"the archive also holds {earlier!r}, whose name looks the same as this one "
                 "but spells its accented letters differently (Unicode normalisation)")
        means = ("macOS treats such names as one file, so unpacking there writes one over "
                 "the other; elsewhere two files appear under what looks like one name")
    first = "the first of the two" if name == earlier else f"the first, {earlier!r},"
    return (f"{found}. {means}. The exporter never writes two such names; only {first} was "
            "checked")


def entry_header_flaw(handle: _Stream, size: int, info: zipfile.ZipInfo) -> str | None:
    """Why an entry's local header or other names disagree with its central directory record,
    or None: the one rule for this verifier and for `evidence.bagit`, which imports it.

    Checked for every entry, also those never read (folders, desktop metadata): unzip takes
    an entry's name from its Unicode Path field when it has one, and a streaming extractor
    its name, compression method and (without a data descriptor) sizes and CRC-32 from its
    local header, so either could write an entry set aside here over a file that was checked
    (a forged report.pdf beside a '._report.pdf'), or other bytes than those checked."""
    try:
        local = _local_header(handle, size, info)
    except _ReadError as exc:
        return str(exc)
    if local.name != info.orig_filename:
        return (f"its local header names {local.name!r}, which an extractor reading the "
                "archive in order writes instead (archive crafted?)")
    for where, extra in (("central directory", info.extra), ("local header", local.extra)):
        for other in _unicode_path_names(extra):
            if other != info.orig_filename:
                return (f"its Unicode Path field ({where}) names {other!r}, which unzip "
                        "writes instead (archive crafted?)")
    said: list[tuple[str, object, object]] = []
    if local.method != info.compress_type:
        said.append(("compression method", local.method, info.compress_type))
    for bit, what in ((0x01, "encryption flag"), (0x08, "data descriptor flag")):
        if local.flags & bit != info.flag_bits & bit:
            said.append((what, "set" if local.flags & bit else "clear",
                         "set" if info.flag_bits & bit else "clear"))
    if not said and not local.flags & 0x08:  # else the sizes and CRC-32 follow the data
        said.extend((what, ours, theirs) for what, ours, theirs in (
            ("CRC-32", f"{local.crc:08x}", f"{info.CRC:08x}"),
            ("compressed size", local.compress_size, info.compress_size),
            ("size", local.file_size, info.file_size),
        ) if ours != theirs)  # fmt: skip
    if said:
        what, ours, theirs = said[0]
        return (f"its local header gives {what} {ours} where the central directory gives "
                f"{theirs}, so an extractor reading the archive in order reads other bytes "
                "than those checked (archive crafted?)")
    if info.is_dir() and (info.file_size or info.compress_size > 2):  # 2: an empty deflate
        return (f"a folder entry, yet it holds {_bytes(info.compress_size)} that no tool "
                "unpacks (archive crafted?)")
    return None


class _LocalHeader(NamedTuple):
    name: str
    extra: bytes
    start: int  # where the entry's data starts
    flags: int
    method: int
    crc: int
    compress_size: int  # from its ZIP64 field when the header leaves them to it
    file_size: int


def _local_header(handle: _Stream, size: int, info: zipfile.ZipInfo) -> _LocalHeader:
    if info.header_offset < 0 or info.header_offset + 30 > size:
        raise _ReadError("its local header lies outside the archive")
    handle.seek(info.header_offset)
    header = handle.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise _ReadError("its local header is missing (archive damaged)")
    flags, method, _, _, crc, compress_size, file_size, name_length, extra_length = \
        struct.unpack("<HHHHLLLHH", header[6:30])  # fmt: skip
    raw = handle.read(name_length)
    extra = handle.read(extra_length)
    name = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
    if 0xFFFFFFFF in (compress_size, file_size):  # the ZIP64 field: size, then compressed
        body = _extra_field(extra, 0x0001)
        if file_size == 0xFFFFFFFF and len(body) >= 8:
            (file_size,), body = struct.unpack("<Q", body[:8]), body[8:]
        if compress_size == 0xFFFFFFFF and len(body) >= 8:
            (compress_size,) = struct.unpack("<Q", body[:8])
    return _LocalHeader(name, extra, info.header_offset + 30 + name_length + extra_length,
                        flags, method, crc, compress_size, file_size)


def _data_offset(handle: _Stream, size: int, info: zipfile.ZipInfo) -> int:
    local = _local_header(handle, size, info)
    if local.name != info.orig_filename:
        raise _ReadError("its local header names a different file (archive crafted?)")
    if local.start + info.compress_size > size:
        raise _ReadError("its data runs past the end of the archive")
    return local.start


def entry_chunks(handle: _Stream, size: int, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """An entry's content in chunks of at most `CHUNK`, read from `handle` at its local header
    as its central directory record describes it: the one reader for this verifier and for
    `evidence.bagit`, which imports it. Raises `_ReadError` saying what is wrong, also when the
    entry's compressed size holds bytes past the end of its data, which zip tools stop before
    and no manifest covers (a place to hide them), and, once the last chunk is read, when the
    content's CRC-32 is not the one its central directory record gives (`_CrcMismatch`)."""
    handle.seek(_data_offset(handle, size, info))
    crc = 0
    pieces = _inflate(handle, info) if info.compress_type != zipfile.ZIP_STORED \
        else _stored(handle, info)  # fmt: skip
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
        yield piece
    flaw = _crc_flaw(crc, info)
    if flaw:
        raise _CrcMismatch(flaw)


def _crc_flaw(crc: int, info: zipfile.ZipInfo) -> str | None:
    """Why content with CRC-32 `crc` is not what entry `info` records, or None. The SHA-256
    each manifest gives covers most files' bytes, but not the bag signature's, nor a WACZ's
    datapackage-digest.json, and an entry whose bytes hold while its CRC-32 does not is one
    that zip tools (unzip, Python's zipfile, Windows Explorer) report as damaged: the checker
    must not call it intact where they do not. zlib.crc32 costs about a third of SHA-256."""
    if crc == info.CRC:
        return None
    return (f"its bytes have CRC-32 {crc:08x} but its ZIP entry records {info.CRC:08x}, so zip "
            "tools report it as damaged: its bytes changed after the archive was written (a "
            "faulty disk or transfer?) or the entry's record was altered")


def _stored(handle: _Stream, info: zipfile.ZipInfo) -> Iterator[bytes]:
    if info.compress_size > info.file_size:
        raise _ReadError(
            f"{_bytes(info.compress_size - info.file_size)} after the end of its data (stored: "
            f"its compressed size is {info.compress_size}, its size {info.file_size}), which "
            "zip tools disagree on (archive crafted?)"
        )
    if info.compress_size != info.file_size:
        raise _ReadError("stored entry whose two sizes disagree")
    left = info.file_size
    while left:
        chunk = handle.read(min(CHUNK, left))
        if not chunk:
            raise _ReadError("the archive ends inside this entry")
        left -= len(chunk)
        yield chunk


def _inflate(handle: _Stream, info: zipfile.ZipInfo) -> Iterator[bytes]:
    # Output is cut at the declared size: a lying header cannot inflate past the bound.
    inflater = zlib.decompressobj(-15)
    packed_left = info.compress_size
    out_left = info.file_size
    data = b""
    try:
        while not inflater.eof:
            if not data and packed_left > 0:
                data = handle.read(min(CHUNK, packed_left))
                if not data:
                    raise _ReadError("the archive ends inside this entry")
                packed_left -= len(data)
            # Called again after the last input too: zlib may still hold output for it (a
            # highly compressed tail inflates to more than one chunk).
            piece = inflater.decompress(data, min(CHUNK, out_left + 1))
            data = inflater.unconsumed_tail
            if len(piece) > out_left:
                raise _ReadError(
                    f"inflates past the {info.file_size} bytes its entry declares (zip bomb?)"
                )
            out_left -= len(piece)
            if piece:
                yield piece
            elif not data and packed_left <= 0:
                break  # no input left, and none of it gave output
    except zlib.error as exc:
        raise _ReadError(f"its compressed data is corrupt ({exc})") from exc
    if not inflater.eof:
        raise _ReadError("its compressed data ends early")
    if out_left:
        raise _ReadError(
            f"holds {info.file_size - out_left} bytes but its entry declares {info.file_size}"
        )
    # zlib, zipfile and unzip stop at the end of the deflate stream; what the entry's
    # compressed size holds past it is read by none of them.
    after = len(inflater.unused_data) + len(data) + packed_left
    if after:
        raise _ReadError(
            f"{_bytes(after)} after the end of its compressed data (its compressed size is "
            f"{info.compress_size}), which zip tools stop before (archive crafted?)"
        )


def _central_directory_refusal(handle: _Stream, size: int) -> str:
    """Reads the end-of-central-directory record, so a huge directory is refused unparsed."""
    declared = _central_directory_declared(handle, size)
    if declared is None:
        return "not a ZIP archive (no end-of-central-directory record)"
    entries, cd_size = declared
    if entries > MAX_ZIP_ENTRIES:
        return f"the archive declares {entries} entries, more than the limit of {MAX_ZIP_ENTRIES}"
    if cd_size > MAX_CENTRAL_DIRECTORY:
        return f"the archive's central directory is {cd_size} bytes, more than the limit"
    return ""


def _end_record(handle: _Stream, size: int) -> tuple[int, bytes] | None:
    """Where the end-of-central-directory record starts, and its 22 bytes; None if absent.
    Found as zipfile finds it: the last signature in the file's final 64 KiB."""
    tail = min(size, 22 + 65535)
    handle.seek(size - tail)
    buffer = handle.read(tail)
    at = buffer.rfind(b"PK\x05\x06")
    if at < 0 or len(buffer) - at < 22:
        return None
    return size - tail + at, buffer[at : at + 22]


class _Declared(NamedTuple):
    """What an end record declares of the central directory."""

    entries_here: int  # on this disk (a bundle is one disk: all of them)
    entries: int
    cd_size: int
    cd_offset: int


_DECLARED_WHAT = ("entry count on this disk", "entry count", "central directory size",
                  "central directory offset")  # fmt: skip
# The 32-bit end record's values that say "see the ZIP64 end record".
_DECLARED_SENTINELS = (0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


def _end_records(handle: _Stream, size: int) -> tuple[_Declared, _Declared | None] | None:
    """What the end-of-central-directory record declares, and the ZIP64 end record its
    locator points to when there is one; None when there is no end record."""
    end = _end_record(handle, size)
    if end is None:
        return None
    end_at, record = end
    _, _, _, *fields, _ = struct.unpack("<4s4H2LH", record)
    zip64 = None
    locator_at = end_at - 20
    if locator_at >= 0:
        handle.seek(locator_at)
        locator = handle.read(20)
        if locator[:4] == b"PK\x06\x07":
            (zip64_at,) = struct.unpack("<Q", locator[8:16])
            if zip64_at < size:
                handle.seek(zip64_at)
                record = handle.read(56)
                if record[:4] == b"PK\x06\x06" and len(record) == 56:
                    zip64 = _Declared(*struct.unpack("<4Q", record[24:56]))
    return _Declared(*fields), zip64


def _central_directory_declared(handle: _Stream, size: int) -> tuple[int, int] | None:
    """(entries, central directory bytes) as the end records declare them; None if absent."""
    records = _end_records(handle, size)
    if records is None:
        return None
    declared = records[1] or records[0]
    return declared.entries, declared.cd_size


def end_record_flaws(handle: _Stream, size: int, infos: list[zipfile.ZipInfo]) -> list[str]:
    """Where the ZIP's end records contradict each other or the central directory zipfile
    read (`infos`, all its records): the one rule for this verifier and for `evidence.bagit`,
    which imports it. Where both end records exist, each value the 32-bit record gives (rather
    than its "see the ZIP64 record" mark) must be the ZIP64 record's, and the entry count
    declared must be the number of records: zip tools that read the one and those that read
    the other (or count the records) otherwise find different archives, one with files the
    other lacks. The exporter writes them alike."""
    records = _end_records(handle, size)
    if records is None:
        return []
    plain, zip64 = records
    flaws = []
    if zip64 is not None:
        for what, small, large, sentinel in zip(_DECLARED_WHAT, plain, zip64,
                                                _DECLARED_SENTINELS, strict=True):
            if small not in (sentinel, large):
                flaws.append(f"its end record gives {what} {small} where its ZIP64 end record "
                             f"gives {large}")
    declared = zip64 or plain
    if declared.entries_here != declared.entries:
        flaws.append(f"its end record{' (ZIP64)' if zip64 else ''} declares "
                     f"{declared.entries_here} entries on this disk but {declared.entries} in "
                     "all, as if the archive were split over several disks")
    if declared.entries != len(infos):
        flaws.append(f"its end record{' (ZIP64)' if zip64 else ''} declares "
                     f"{declared.entries} entries but its central directory holds "
                     f"{len(infos)}")
    if not flaws:
        return []
    return ["; ".join(flaws) + ": zip tools that trust the one and those that trust the other "
            "see different archives, one perhaps with files the other does not show, so what "
            "this report checked may not be what another tool unpacks. The exporter never "
            "writes such records (archive crafted, or damaged?)"]


def outside_archive(
    handle: _Stream, size: int, infos: list[zipfile.ZipInfo], central_directory_at: int
) -> list[str]:
    """What the file holds beyond the ZIP archive proper, each as "<so many> bytes <where>": the
    one rule for this verifier and for `evidence.bagit`, which imports it. `infos` are all the
    entries zipfile read, `central_directory_at` where it found the central directory
    (`ZipFile.start_dir`), both in the file's own offsets.

    The exporter writes its first entry at byte 0, each entry's local header straight after
    the previous entry's data (and data descriptor), the central directory straight after the
    last, its end records straight after that (a ZIP64 end record without extensible data and
    its locator, when the archive needs them, then the end-of-central-directory record), no
    comment, the archive's or an entry's, and nothing after the end record. zipfile (and unzip)
    read past a stub put in front (a self-extracting or polyglot file), past bytes between
    entries or end records (they follow the records' offsets), past comments and bytes
    appended, and read entries that overlap (two central directory records pointing into the
    same bytes, one entry's data running into the next), so the archive's files may all hold
    while the file is not the one exported, or holds more than they say."""
    parts: list[str] = []
    # zipfile has already shifted the offsets by a stub put in front without adjusting them.
    first = min((info.header_offset for info in infos), default=central_directory_at)
    if 0 < first <= size:
        parts.append(f"{_bytes(first)} before the ZIP archive (ahead of its first entry)")
    parts.extend(_between_entries(handle, size, infos, central_directory_at))
    parts.extend(_first_few([(len(info.comment), f"in the comment of entry "
                                                 f"{_shown(info.orig_filename)}")
                             for info in infos if info.comment],
                            ("entry's comment", "entries' comments")))
    end = _end_record(handle, size)
    if end is not None:
        end_at, record = end
        directory_end = _central_directory_end(handle, central_directory_at, len(infos))
        if directory_end is not None:
            parts.extend(_between_end_records(handle, directory_end, end_at))
        (declared,) = struct.unpack("<H", record[20:22])
        comment = min(declared, size - end_at - 22)
        if comment:
            parts.append(f"{_bytes(comment)} in the ZIP archive's comment")
        after = size - end_at - 22 - comment
        if after:
            parts.append(f"{_bytes(after)} after the ZIP archive (past its end record)")
    return parts


MAX_GAPS_SHOWN = 3


def _between_entries(
    handle: _Stream, size: int, infos: list[zipfile.ZipInfo], central_directory_at: int
) -> list[str]:
    """Gaps between one entry's end and the next local header, and between the last entry's
    end and the central directory, and overlaps between them, walked in the order the entries
    lie in the file (the central directory may list them in another). The walk stops at a
    local header it cannot read (`entry_header_flaw` refuses that entry)."""
    gaps: list[tuple[int, str]] = []
    overlaps: list[tuple[int, str]] = []
    ordered = sorted(infos, key=lambda info: info.header_offset)
    cursor = ordered[0].header_offset if ordered else central_directory_at
    previous = ""  # the entry that reaches furthest so far, ending at `cursor`
    for info in ordered:
        name = _shown(info.orig_filename)
        end = _entry_end(handle, size, info)
        if previous and info.header_offset > cursor:
            gaps.append((info.header_offset - cursor, f"between entries {previous} and {name}"))
        elif previous and info.header_offset < cursor:
            shared = min(cursor, end if end is not None else cursor) - info.header_offset
            overlaps.append((shared, f"where entries {previous} and {name} overlap"))
        if end is None:
            break
        if end > cursor or not previous:
            cursor, previous = max(cursor, end), name
    else:
        if previous and central_directory_at > cursor:
            gaps.append((central_directory_at - cursor,
                         f"between entry {previous} and the central directory"))
        elif previous and central_directory_at < cursor:
            overlaps.append((cursor - central_directory_at,
                             f"where entry {previous} and the central directory overlap"))
    return (_first_few(gaps, ("gap between entries", "gaps between entries"))
            + _first_few(overlaps, ("overlap between entries", "overlaps between entries")))


def _first_few(found: list[tuple[int, str]], more: tuple[str, str]) -> list[str]:
    """The first few (bytes, where) found, then how many more and their bytes together."""
    shown = [f"{_bytes(count)} {where}" for count, where in found[:MAX_GAPS_SHOWN]]
    rest = found[MAX_GAPS_SHOWN:]
    if rest:
        shown.append(f"{_bytes(sum(count for count, _ in rest))} in {len(rest)} more "
                     f"{more[len(rest) > 1]}")
    return shown


def _central_directory_end(handle: _Stream, start: int, entries: int) -> int | None:
    """Where the central directory zipfile read ends: after its `entries` records, each 46
    bytes and its name, extra field and comment; None when one is not where it should be."""
    at = start
    for _ in range(entries):
        handle.seek(at)
        record = handle.read(46)
        if len(record) != 46 or record[:4] != b"PK\x01\x02":
            return None
        at += 46 + sum(struct.unpack("<3H", record[28:34]))
    return at


def _between_end_records(handle: _Stream, directory_end: int, end_at: int) -> list[str]:
    """Bytes between the central directory and the end record, or around the ZIP64 end
    record and its locator when the archive has them, and a locator that points elsewhere:
    readers that follow the locator (libzip, 7-Zip, newer Pythons) and those that look right
    before it (older Pythons) may then read different central directories."""
    locator_at = end_at - 20
    locator = b""
    if locator_at >= directory_end:
        handle.seek(locator_at)
        locator = handle.read(20)
    if locator[:4] != b"PK\x06\x07":
        if end_at > directory_end:
            return [f"{_bytes(end_at - directory_end)} between the central directory and "
                    "its end record"]
        return []
    parts: list[str] = []
    record = b""
    for record_at in (directory_end, locator_at - 56):  # as exported, or where zipfile looks
        if directory_end <= record_at <= locator_at - 56:
            handle.seek(record_at)
            record = handle.read(56)
            if record[:4] == b"PK\x06\x06":
                break
    else:
        return [f"{_bytes(locator_at - directory_end)} between the central directory and its "
                "ZIP64 end locator"]
    if record_at > directory_end:
        parts.append(f"{_bytes(record_at - directory_end)} between the central directory and "
                     "its ZIP64 end record")
    (length,) = struct.unpack("<Q", record[4:12])
    record_end = min(record_at + 12 + max(length, 44), locator_at)
    if record_end > record_at + 56:
        parts.append(f"{_bytes(record_end - record_at - 56)} in the ZIP64 end record's "
                     "extensible data sector")
    if locator_at > record_end:
        parts.append(f"{_bytes(locator_at - record_end)} between the ZIP64 end record and "
                     "its locator")
    (pointer,) = struct.unpack("<Q", locator[8:16])
    cd_size, cd_offset = struct.unpack("<2Q", record[40:56])
    if pointer != cd_offset + cd_size:  # both as declared, so a stub in front shifts neither
        parts.append(f"a ZIP64 end locator that points to byte {pointer}, not to its ZIP64 "
                     f"end record (byte {cd_offset + cd_size}, after the central directory)")
    return parts


def _entry_end(handle: _Stream, size: int, info: zipfile.ZipInfo) -> int | None:
    """Where an entry ends in the file: after its data and, when its flags say it has one, the
    data descriptor (optional signature, CRC-32, sizes of 4 bytes or, ZIP64, 8) that repeats
    the central directory's CRC-32 and sizes. None when its local header cannot be read."""
    try:
        local = _local_header(handle, size, info)
    except _ReadError:
        return None
    end = local.start + info.compress_size
    if not info.flag_bits & 0x08:
        return end
    handle.seek(end)
    tail = handle.read(24)
    zip64 = 0x0001 in _extra_field_ids(local.extra)
    for signed in (True, False):
        if signed and tail[:4] != b"PK\x07\x08":
            continue
        body = tail[4:] if signed else tail
        for fmt in ("<LQQ", "<LLL") if zip64 else ("<LLL", "<LQQ"):
            length = struct.calcsize(fmt)
            if len(body) >= length and struct.unpack(fmt, body[:length]) == (
                info.CRC, info.compress_size, info.file_size
            ):
                return end + (4 if signed else 0) + length
    return end  # no descriptor that matches: whatever follows is not one


def _bytes(count: int) -> str:
    return f"{count} byte{'' if count == 1 else 's'}"


def _entry_flaw(info: zipfile.ZipInfo) -> str | None:
    name = info.orig_filename
    flaw = _path_flaw(name[:-1] if name.endswith("/") else name)
    if flaw:
        return flaw
    if (info.external_attr >> 16) & 0o170000 == _S_IFLNK:
        return "symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"compression method {info.compress_type} is not allowed"
    if (
        info.compress_type == zipfile.ZIP_DEFLATED
        and info.file_size > info.compress_size * MAX_DEFLATE_RATIO + 65536
    ):
        return (
            f"declares {info.file_size} bytes from {info.compress_size} compressed, more than "
            "deflate can produce (zip bomb?)"
        )
    return None


@dataclass
class _Member:
    size: int  # as declared (ZIP) or found (folder)
    info: zipfile.ZipInfo | None = None
    os_path: str | None = None


class _Source:
    """The bag's files by bag-relative path ("bagit.txt", "data/bundle.json"), read as chunks."""

    def __init__(self) -> None:
        self.files: dict[str, _Member] = {}
        self.zip: _Zip | None = None
        self.zip_path = ""
        self.name = ""
        # Why the ZIP is not the one the exporter wrote (empty for a folder, or when it is).
        self.repacked: list[str] = []
        # Bytes the file holds beyond the ZIP's entries (`outside_archive`): these fail the bag.
        self.outside: list[str] = []
        # Files a desktop wrote that no manifest lists: (path, what wrote it); warned of.
        self.desktop_metadata: list[tuple[str, str]] = []

    def chunks(self, path: str) -> Iterator[bytes]:
        member = self.files[path]
        if self.zip is not None and member.info is not None:
            yield from self.zip.chunks(member.info)
            return
        assert member.os_path is not None
        try:
            with open(member.os_path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
        except OSError as exc:
            raise _ReadError(f"cannot be read ({exc.strerror or exc})") from exc

    def seekable(self, path: str) -> _Opener | None:
        """Random access to one member (for a WACZ inside), or None when it is compressed."""
        member = self.files[path]
        if self.zip is not None and member.info is not None:
            return self.zip.stored_window(member.info, self.zip_path)
        assert member.os_path is not None
        return _open_file(member.os_path)


def _input_name(path: str) -> str:
    """The bundle as the report names it: the ZIP's or folder's name, and for "." or ".." (typed
    inside the bag) the name of the folder it stands for."""
    name = os.path.basename(path.rstrip("/\\"))
    if name in ("", ".", ".."):
        name = os.path.basename(os.path.abspath(path))
    return name or path


def _open_source(path: str, problems: list[str]) -> _Source | None:
    label = _input_name(path)
    refusal = input_refusal(path, folder_ok=True)
    if refusal is not None:
        problems.append(f"{label}: {refusal}")
        return None
    if os.path.isdir(path):
        return _open_folder(path, label, problems)
    try:
        size = os.path.getsize(path)
        with open(path, "rb"):
            pass
    except OSError as exc:
        problems.append(f"{label}: cannot be read ({exc.strerror or exc})")
        return None
    archive = _Zip(_open_file(path), size, problems, label)
    if not archive.ok:
        return None
    bag = zip_bag(archive.infos)
    problems.extend(f"{label}: {message}" for _where, message in bag.problems)
    if bag.prefix is None:
        return None
    source = _Source()
    source.zip = archive
    source.zip_path = path
    source.name = bag.prefix.rstrip("/") or os.path.splitext(label)[0]
    for name, info in bag.files.items():
        source.files[name] = _Member(size=info.file_size, info=info)
    source.repacked = bag.repacked
    source.outside = archive.outside
    source.desktop_metadata = list(bag.desktop_metadata)
    return source


@dataclass
class ZipBag:
    """Which entries of a ZIP are the bag, by bag-relative path ("bagit.txt", "data/..."), and
    what is wrong with the rest; `prefix` is None when no bag was found."""

    prefix: str | None
    files: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    # (the entry named, or "" for the archive as a whole; the message, without the archive's name)
    problems: list[tuple[str, str]] = field(default_factory=list)
    repacked: list[str] = field(default_factory=list)  # how the ZIP differs from the exporter's
    # Entries outside the bag that a desktop wrote (`_os_metadata`): (name, what wrote it).
    desktop_metadata: list[tuple[str, str]] = field(default_factory=list)


def zip_bag(infos: list[zipfile.ZipInfo]) -> ZipBag:
    """The one rule for which entries of a bundle ZIP are the bag, for this verifier and for
    `evidence.bagit`, which imports it (this file stays standalone as verify.py). `infos` are the
    entries left after screening names (`_entry_flaw`) and duplicates.

    The bag sits in one folder (as exported) or at the top of the ZIP; folder entries hold no
    bytes and are skipped (re-zipping tools add them); an entry outside the bag is a problem,
    unless a desktop wrote it (`__MACOSX/`, `.DS_Store` ...): that is set aside, to be warned of.
    """
    problems: list[tuple[str, str]] = []
    prefix = _bag_prefix(infos, problems)
    if prefix is None:
        return ZipBag(None, problems=problems)
    bag = ZipBag(prefix, problems=problems)
    for info in infos:
        name = info.orig_filename
        if info.is_dir() and (name.startswith(prefix) or _os_metadata(name)):
            continue  # a folder entry holds no bytes; re-zipping tools add them
        if not name.startswith(prefix):
            what = _os_metadata(name)
            if what:
                bag.desktop_metadata.append((name, what))
            else:
                problems.append((name, f"entry {name!r} lies outside the bag folder"))
            continue
        bag.files[name[len(prefix) :]] = info
    bag.repacked = _repack_signs(infos, prefix)
    return bag


def _bag_prefix(infos: list[zipfile.ZipInfo], problems: list[tuple[str, str]]) -> str | None:
    """Where the bag sits in the ZIP: "<folder>/" as exported, or "" when someone zipped the
    folder's contents rather than the folder. None (with a problem) when neither holds."""
    names = [i.orig_filename for i in infos]
    holders = sorted(
        {n.split("/")[0] for n in names
         if n.count("/") == 1 and n.endswith("/bagit.txt") and not _os_metadata(n)}
    )  # fmt: skip
    at_top = "bagit.txt" in names
    if len(holders) == 1 and not at_top:
        return holders[0] + "/"
    if at_top and not holders:
        return ""
    if not holders and not at_top:
        # No declaration anywhere: the rest of a bag still makes one, whose missing bagit.txt
        # the bag check then names, every other check running.
        folders = {n.split("/")[0] + "/" for n in names if "/" in n}
        bags = [prefix for prefix in ["", *sorted(folders)]
                if _holds_bag_without_declaration({n[len(prefix):] for n in names
                                                   if n.startswith(prefix)})]  # fmt: skip
        if len(bags) == 1:
            return bags[0]
    tops = ", ".join(repr(t) for t in sorted({n.split("/")[0] for n in names})[:10])
    problems.append((
        "",
        "a bundle unpacks to one folder holding bagit.txt (or is that folder's contents "
        f"zipped); the archive's top level holds {tops or 'nothing'}",
    ))  # fmt: skip
    if holders:
        return holders[0] + "/"
    return "" if at_top else None


# What makes a bag of evidence-locker's without its declaration (bagit.txt): a bag removed from
# has still been exported, and is checked as a bag that fails, not refused as no bundle.
_BAG_WITHOUT_DECLARATION = ("bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt")


def _holds_bag_without_declaration(names: set[str]) -> bool:
    """Whether bag-relative `names` ("bag-info.txt", "data/...", "data/" for the folder) are the
    rest of a bag: evidence-locker's tag files and a payload folder, its bagit.txt alone gone."""
    return all(tag in names for tag in _BAG_WITHOUT_DECLARATION) and \
        any(name.startswith("data/") for name in names)  # fmt: skip


def _files(count: int) -> str:
    return f"{count} file" + ("" if count == 1 else "s")


def _oxum_differs(recorded: tuple[int, int], found: tuple[int, int], named: list[str]) -> str:
    """The Payload-Oxum problem in words for a reader who is no programmer: what the number is,
    and whether the files named before it account for the difference."""
    text = (f"the files under data/ add up to {found[0]:,} bytes in {_files(found[1])}, but "
            f"the exporter recorded {recorded[0]:,} bytes in {_files(recorded[1])} "
            f"(Payload-Oxum {recorded[0]}.{recorded[1]}); ")
    if named:
        shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
        return text + (f"this follows from the file(s) named above as missing, added, altered "
                       f"or unreadable ({shown}), not from a further change")
    return text + ("no file under data/ is named above as missing, added or altered, so the "
                   "record itself does not match the files the manifest lists: bag-info.txt "
                   "was edited, or the files and manifest-sha256.txt were both changed")


def _os_metadata(path: str) -> str | None:
    """What wrote `path`, if it is the metadata a desktop adds to folders it shows or zips."""
    parts = path.rstrip("/").split("/")
    if "__MACOSX" in parts[:-1] or parts[0] == "__MACOSX":
        return "macOS resource forks (__MACOSX/), which the Finder adds when it zips a folder"
    name = parts[-1]
    if name == ".DS_Store":
        return "macOS Finder folder settings (.DS_Store)"
    if name.startswith("._"):
        return "a macOS resource fork ('._' file)"
    if name.casefold() in ("thumbs.db", "desktop.ini"):
        return f"Windows Explorer folder data ({name})"
    return None


_TAG_FILES = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt",
              BAG_SIGNATURE)


def _repack_signs(infos: list[zipfile.ZipInfo], prefix: str) -> list[str]:
    """How this ZIP differs from the ZIPs the exporter writes (evidence.bagit.BagWriter): bagit.txt
    first and tagmanifest-sha256.txt last (then its signature, from revision 3), all inside one
    folder, one folder entry (data/), one
    modification time, no extra fields but ZIP64's, tag files deflated, WACZ files stored."""
    signs: list[str] = []
    if not prefix:
        signs.append("the bag's files are at the top of the ZIP, not inside one folder")
    folders = [i for i in infos if i.is_dir() and i.orig_filename != prefix + "data/"]
    if folders:
        signs.append(
            f"it holds {len(folders)} folder entr{'y' if len(folders) == 1 else 'ies'} besides "
            "data/"
        )
    files = [i.orig_filename[len(prefix) :] for i in infos
             if not i.is_dir() and i.orig_filename.startswith(prefix)]  # fmt: skip
    last = ["tagmanifest-sha256.txt", BAG_SIGNATURE] if BAG_SIGNATURE in files \
        else ["tagmanifest-sha256.txt"]  # fmt: skip
    first = "bagit.txt" if "bagit.txt" in files else None  # a removed one is the bag check's
    if files and ((first and files[0] != first) or files[-len(last) :] != last):
        signs.append("its entries are not in the exporter's order")
    if len({i.date_time for i in infos}) > 1:
        signs.append("its entries carry different modification times")
    extra = sorted({kind for i in infos for kind in _extra_field_ids(i.extra)} - {0x0001})
    if extra:
        signs.append(
            "its entries carry extra fields that zip tools add (" +
            ", ".join(f"0x{kind:04x}" for kind in extra) + ")"
        )
    by_name = {i.orig_filename[len(prefix) :]: i for i in infos}
    stored = [t for t in _TAG_FILES if t in by_name and
              by_name[t].compress_type == zipfile.ZIP_STORED]  # fmt: skip
    if stored:
        signs.append(f"{', '.join(stored)} stored where the exporter deflates")
    deflated = [_rel(n) for n, i in by_name.items()
                if n.endswith(".wacz") and i.compress_type != zipfile.ZIP_STORED]  # fmt: skip
    if deflated:
        signs.append(f"{', '.join(deflated[:3])} deflated where the exporter stores")
    return signs


def _unicode_path_names(extra: bytes) -> Iterator[str]:
    """The names an Info-ZIP Unicode Path extra field (0x7075) gives, which unzip prefers to
    the entry's own name; one that is not UTF-8 is yielded escaped, so it never matches."""
    for kind, body in _extra_fields(extra):
        if kind == 0x7075 and len(body) >= 5:
            yield body[5:].decode("utf-8", "backslashreplace")


def _extra_fields(extra: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack("<HH", extra[at : at + 4])
        yield kind, extra[at + 4 : at + 4 + length]
        at += 4 + length


def _extra_field_ids(extra: bytes) -> Iterator[int]:
    return (kind for kind, _ in _extra_fields(extra))


def _extra_field(extra: bytes, wanted: int) -> bytes:
    return next((body for kind, body in _extra_fields(extra) if kind == wanted), b"")


def _open_folder(path: str, label: str, problems: list[str]) -> _Source | None:
    root = path
    declared = os.path.isfile(os.path.join(path, "bagit.txt"))
    if not declared and not _folder_without_declaration(path):
        try:
            folders = [os.path.join(path, name) for name in sorted(os.listdir(path))]
        except OSError as exc:
            problems.append(f"{label}: cannot be read ({exc.strerror or exc})")
            return None
        candidates = [f for f in folders if os.path.isfile(os.path.join(f, "bagit.txt"))] or \
            [f for f in folders if _folder_without_declaration(f)]  # fmt: skip
        if len(candidates) != 1:
            parent = os.path.dirname(os.path.abspath(path))
            if os.path.basename(os.path.abspath(path)) == "data" and \
                    os.path.isfile(os.path.join(parent, "bagit.txt")):  # fmt: skip
                why = ("this is the bundle's data/ folder: give the folder above it, which holds "
                       "bagit.txt (from inside data/: python3 verify.py ..)")
            elif candidates:
                why = (f"not a bundle folder: it holds no bagit.txt, and {len(candidates)} "
                       "folders in it do (" + ", ".join(
                           repr(os.path.basename(c)) for c in candidates[:5]) +
                       "): give the one to check")  # fmt: skip
            else:
                why = ("not a bundle folder: neither it nor any folder in it holds bagit.txt "
                       "(give the bundle's ZIP, or the folder it unpacks to, which holds "
                       "bagit.txt and data/)")
            problems.append(f"{label}: {why}")
            return None
        root = candidates[0]
    source = _Source()
    source.name = os.path.basename(root)
    for folder, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            full = os.path.join(folder, name)
            relative = os.path.relpath(full, root).replace(os.sep, "/")
            try:
                info = os.lstat(full)
            except OSError as exc:
                problems.append(f"{relative}: cannot be read ({exc.strerror or exc})")
                continue
            if stat.S_ISLNK(info.st_mode):
                problems.append(f"{_rel(relative)}: symbolic link, not followed")
            elif stat.S_ISREG(info.st_mode):
                source.files[relative] = _Member(size=info.st_size, os_path=full)
            elif not stat.S_ISDIR(info.st_mode):
                problems.append(f"{_rel(relative)}: not a regular file")
    return source


def _folder_without_declaration(path: str) -> bool:
    """Whether the folder at `path` is a bag without its bagit.txt
    (`_holds_bag_without_declaration`)."""
    try:
        names = {name + "/" if os.path.isdir(os.path.join(path, name)) else name
                 for name in os.listdir(path)}  # fmt: skip
    except OSError:
        return False
    return _holds_bag_without_declaration(names)


# ---------------------------------------------------------------------------------------------
# The one pass over the files


class _Progress:
    def __init__(self, callback: Callable[[str], None] | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._done = 0
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def say(self, message: str) -> None:
        if self._callback is not None:
            with self._lock:
                self._callback(message)

    def advance(self, count: int) -> None:
        if self._callback is None:
            return
        with self._lock:
            self._done += count
            now = time.monotonic()
            if now - self._last >= 2.0:
                self._last = now
                self._callback(f"hashed {_human(self._done)} of {_human(self._total)}")


@dataclass(slots=True)
class _Entry:
    line: int
    seq: Any
    leaf: bytes
    case: Any
    case_seq: Any
    prev: Any
    action: Any
    object: Any
    sha256: Any
    details: Any
    actor: Any = None  # kept, like details, only for export.started


class _EntriesReader:
    """Splits custody/entries.jsonl into lines as it is hashed, keeping only what is checked."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.problems: list[str] = []
        self._buffer = bytearray()
        self._line = 0
        self._skipping = False
        self.crlf_lines = 0  # lines that ended CR LF, not LF

    @property
    def lines(self) -> int:
        return self._line

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        start = 0
        while (newline := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:newline])
            start = newline + 1
            self._line += 1
            if self._skipping:
                self._skipping = False
            else:
                self._take(line)
        del self._buffer[:start]
        if len(self._buffer) > MAX_LINE and not self._skipping:
            self._line += 1
            self.problems.append(
                f"custody/entries.jsonl line {self._line}: longer than {MAX_LINE} bytes"
            )
            self._skipping = True
        if self._skipping:
            self._buffer.clear()

    def finish(self) -> None:
        if self._buffer:
            self._line += 1
            self.problems.append(
                f"custody/entries.jsonl line {self._line}: does not end with a newline "
                "(file truncated?)"
            )
            self._take(bytes(self._buffer))
            self._buffer.clear()

    def _take(self, line: bytes) -> None:
        where = f"custody/entries.jsonl line {self._line}"
        if line.endswith(b"\r"):
            # Canonical JSON holds no raw CR, so a line ending CR LF had its line end converted
            # after export (see `_line_ends_undone`): the entry is read without it, and the
            # file is named once, not each entry as breaking the chain.
            line = line[:-1]
            self.crlf_lines += 1
        if not line:
            self.problems.append(f"{where}: empty line")
            return
        try:
            doc = _load_json(line)
        except _BadJson as exc:
            self.problems.append(f"{where}: {exc}")
            return
        if not isinstance(doc, dict):
            self.problems.append(f"{where}: not a JSON object")
            return
        self.entries.append(
            _Entry(
                line=self._line,
                seq=doc.get("seq"),
                leaf=_leaf_hash(line),
                case=doc.get("case"),
                case_seq=doc.get("case_seq"),
                prev=doc.get("prev_case_hash"),
                action=doc.get("action"),
                object=doc.get("object"),
                sha256=doc.get("sha256"),
                # Only export.started details are looked at; others may be large.
                details=doc.get("details") if doc.get("action") == "export.started" else None,
                actor=doc.get("actor") if doc.get("action") == "export.started" else None,
            )
        )


@dataclass
class _WaczResult:
    problems: list[str] = field(default_factory=list)
    warcs: dict[str, str] = field(default_factory=dict)  # archive/<name> -> sha256 hex
    members: int = 0
    inflated: bool = False  # checked from a temporary copy: the bundle ZIP compressed it


def _check_wacz(opener: _Opener, size: int, label: str) -> _WaczResult:
    result = _WaczResult()
    problems: list[str] = []
    archive = _Zip(opener, size, problems, label)
    result.problems.extend(problems)
    if not archive.ok:
        return result
    members = {i.orig_filename: i for i in archive.infos if not i.is_dir()}
    result.members = len(members)
    digests: dict[str, tuple[str, int]] = {}
    kept: dict[str, bytes] = {}
    for name, info in members.items():
        hasher = hashlib.sha256()
        size_read = 0
        keep = name in ("datapackage.json", "datapackage-digest.json")
        buffer = bytearray()
        try:
            if keep and info.file_size > MAX_JSON:
                raise _ReadError(f"{info.file_size} bytes is implausibly large")
            for chunk in archive.chunks(info):
                hasher.update(chunk)
                size_read += len(chunk)
                if keep:
                    buffer += chunk
        except _ReadError as exc:
            result.problems.append(f"{label}: {name}: {exc}")
            continue
        digests[name] = (hasher.hexdigest(), size_read)
        if keep:
            kept[name] = bytes(buffer)
        if name.startswith("archive/") and name.endswith((".warc", ".warc.gz")):
            result.warcs[name] = digests[name][0]
            if info.compress_type != zipfile.ZIP_STORED:
                result.problems.append(f"{label}: {name}: compressed; WACZ stores its WARC files")

    package_bytes = kept.get("datapackage.json")
    package: Any = None
    if package_bytes is None:
        if "datapackage.json" not in members:
            result.problems.append(f"{label}: datapackage.json is missing")
    else:
        try:
            package = _load_json(package_bytes)
        except _BadJson as exc:
            result.problems.append(f"{label}: datapackage.json: {exc}")
    digest_bytes = kept.get("datapackage-digest.json")
    if digest_bytes is None:
        if "datapackage-digest.json" not in members:
            result.problems.append(f"{label}: datapackage-digest.json is missing")
    elif package_bytes is not None:
        try:
            digest_doc = _load_json(digest_bytes)
        except _BadJson as exc:
            result.problems.append(f"{label}: datapackage-digest.json: {exc}")
        else:
            want = f"sha256:{hashlib.sha256(package_bytes).hexdigest()}"
            if not isinstance(digest_doc, dict) or digest_doc.get("path") != "datapackage.json":
                result.problems.append(
                    f"{label}: datapackage-digest.json does not name datapackage.json"
                )
            elif str(digest_doc.get("hash", "")).lower() != want:
                result.problems.append(
                    f"{label}: datapackage.json hashes to {want} but datapackage-digest.json "
                    f"says {digest_doc.get('hash')!r}"
                )
    if package is None:
        return result
    resources = package.get("resources") if isinstance(package, dict) else None
    if not isinstance(resources, list):
        result.problems.append(f"{label}: datapackage.json has no resources list")
        return result
    listed: set[str] = set()
    for resource in resources:
        if not isinstance(resource, dict) or not isinstance(resource.get("path"), str):
            result.problems.append(f"{label}: datapackage.json lists a resource without a path")
            continue
        name = resource["path"]
        listed.add(name)
        if name not in members:
            result.problems.append(f"{label}: {name}: listed in datapackage.json but missing")
            continue
        if name not in digests:
            continue  # unreadable, already reported
        sha, length = digests[name]
        declared = resource.get("hash")
        if not isinstance(declared, str) or not declared.lower().startswith("sha256:"):
            result.problems.append(
                f"{label}: {name}: datapackage.json gives {declared!r}, not a sha256: hash"
            )
        elif declared.lower() != f"sha256:{sha}":
            result.problems.append(
                f"{label}: {name}: SHA-256 is {sha} but datapackage.json says {declared}"
            )
        if resource.get("bytes") != length:
            result.problems.append(
                f"{label}: {name}: {length} bytes but datapackage.json says "
                f"{resource.get('bytes')!r}"
            )
    for name in sorted(set(members) - listed - {"datapackage.json", "datapackage-digest.json"}):
        result.problems.append(f"{label}: {name}: in the WACZ but not listed in datapackage.json")
    return result


# ---------------------------------------------------------------------------------------------
# CASE graph (reads what evidence.caseuco.graph_file_hashes reads, without raising)

_UCO_CORE = "https://ontology.unifiedcyberontology.org/uco/core/"
_UCO_OBSERVABLE = "https://ontology.unifiedcyberontology.org/uco/observable/"
_UCO_TYPES = "https://ontology.unifiedcyberontology.org/uco/types/"


def _graph_files(graph: Any, problems: list[str]) -> dict[str, tuple[str, int]]:
    if not isinstance(graph, dict):
        problems.append("case graph: not a JSON object")
        return {}
    prefixes: dict[str, str] = {}
    for part in _as_list(graph.get("@context")):
        if isinstance(part, dict):
            prefixes.update({k: v for k, v in part.items() if isinstance(v, str)})

    def expand(term: str) -> str:
        prefix, sep, rest = term.partition(":")
        if sep and not rest.startswith("//") and prefix in prefixes:
            return prefixes[prefix] + rest
        return prefixes.get(term, term)

    nodes: dict[str, dict[str, list[Any]]] = {}
    stack: list[Any] = [graph]
    while stack:  # iterative: a hostile graph may nest deeper than the recursion limit
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(reversed(value))
            continue
        if not isinstance(value, dict) or "@value" in value:
            continue
        iri = value.get("@id")
        if isinstance(iri, str) and len(value) > 1:
            merged = nodes.setdefault(expand(iri), {})
            for key, item in value.items():
                values = merged.setdefault(expand(key), [])
                values.extend(v for v in _as_list(item) if v not in values)
        stack.extend(child for key, child in value.items() if key != "@context")

    def resolve(value: Any) -> dict[str, list[Any]]:
        if isinstance(value, dict) and isinstance(value.get("@id"), str):
            return nodes.get(expand(value["@id"]), {})
        return {}

    files: dict[str, tuple[str, int]] = {}
    for iri, node in nodes.items():
        types = {expand(t) for t in node.get("@type", []) if isinstance(t, str)}
        if _UCO_OBSERVABLE + "File" not in types:
            continue
        paths: set[str] = set()
        sizes: set[int] = set()
        digests: set[str] = set()
        for facet in map(resolve, node.get(_UCO_CORE + "hasFacet", [])):
            paths.update(_strings(facet.get(_UCO_OBSERVABLE + "filePath", [])))
            sizes.update(_ints(facet.get(_UCO_OBSERVABLE + "sizeInBytes", [])))
            for digest in map(resolve, facet.get(_UCO_OBSERVABLE + "hash", [])):
                if set(_strings(digest.get(_UCO_TYPES + "hashMethod", []))) == {"SHA256"}:
                    digests.update(
                        v.lower() for v in _strings(digest.get(_UCO_TYPES + "hashValue", []))
                    )
        if len(paths) != 1 or len(sizes) != 1 or len(digests) != 1:
            problems.append(
                f"case graph: file node {iri} needs one path, one size and one SHA-256; has "
                f"{sorted(paths)}, {sorted(sizes)}, {sorted(digests)}"
            )
            continue
        (path,), (size,), (sha256,) = paths, sizes, digests
        if path in files:
            problems.append(f"case graph: two file nodes at {path!r}")
            continue
        files[path] = (sha256, size)
    return files


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _literal(value: Any) -> Any:
    return value.get("@value") if isinstance(value, dict) else value


def _strings(values: list[Any]) -> list[str]:
    return [v for v in map(_literal, values) if isinstance(v, str)]


def _ints(values: list[Any]) -> list[int]:
    out: list[int] = []
    for value in map(_literal, values):
        if _is_int(value):
            out.append(value)
        elif isinstance(value, str) and value.isdigit() and len(value) < 20:
            out.append(int(value))
    return out


# ---------------------------------------------------------------------------------------------
# The verifier


@dataclass
class _Exhibit:
    where: str  # "bundle.json exhibits[i]"
    number: str
    capture_id: str | None
    manifest_sha256: str | None
    manifest: str | None
    signature: str | None
    token: str | None
    wacz: str | None
    files: list[dict[str, Any]]
    raw: dict[str, Any]


# The checks after the index, each of which needs bundle.json to know what to check (with the
# exhibits', received material's and older checkpoint's checks as one each: without bundle.json
# there is no telling how many exhibits there are).
_RUN_ONLY_WITH_INDEX = (
    "signing key", "bag signature", "timestamp trust anchors",
    "each exhibit's manifest, signature, files, timestamp and WACZ", "custody entries",
    "custody checkpoint", "custody proofs", "custody checkpoint timestamp",
    "custody capture records", "custody export record", "received material", "case graph",
)  # fmt: skip


class _Verifier:
    def __init__(
        self,
        report: VerificationReport,
        *,
        key_pem: bytes | None,
        trusted_tsa_pems: Sequence[bytes],
        against_checkpoint: dict[str, Any] | None,
        consistency_proof: dict[str, Any] | None,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.report = report
        self.key_pem = key_pem
        self.trusted_tsa_pems = trusted_tsa_pems
        self.against = against_checkpoint
        self.consistency = consistency_proof
        self.progress_callback = progress
        self.source = _Source()
        self.open_problems: list[str] = []
        self.digests: dict[str, tuple[str, int]] = {}
        self.read_errors: dict[str, str] = {}
        # Files read whole whose ZIP entry records another CRC-32 (`_CrcMismatch`): path -> why.
        self.crc_errors: dict[str, str] = {}
        self.kept: dict[str, bytes] = {}
        self.kept_total = 0
        self.unkept: dict[str, str] = {}
        self.lock = threading.Lock()
        self.index: dict[str, Any] | None = None
        self.index_problem: str | None = None
        self.case_id: str | None = None
        self.exhibits: list[_Exhibit] = []
        self.entries_reader: _EntriesReader | None = None
        self.waczs: dict[str, _WaczResult] = {}
        self.key: ed25519.Ed25519PublicKey | None = None
        self.key_id: str | None = None
        self.anchors: list[TrustAnchor] = []
        self.checkpoint_body: bytes | None = None
        self.checkpoint_root: bytes | None = None
        self.checkpoint_size: int | None = None
        self.bag_signed = False  # the bag signature verified
        self.bag_intact = False  # the bag check held: every file as its manifest lists it
        # Files whose only change is their line endings (`_line_ends_undone`): bag path ->
        # (SHA-256, size) with them converted back, which later checks compare with.
        self.line_ends: dict[str, tuple[str, int]] = {}

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def step(self, name: str) -> Iterator[_Step]:
        step = _Step(name)
        try:
            yield step
        except Exception as exc:  # a bug must not hide the other checks; it fails this one
            step.fail(name, f"internal error while checking: {type(exc).__name__}: {exc}")
        self.report.checks.append(step.check())
        self.report.problems.extend(step.problems)

    def note(self, text: str) -> None:
        if text not in self.report.notes:
            self.report.notes.append(text)

    def warn(self, text: str) -> None:
        if text not in self.report.warnings:
            self.report.warnings.append(text)

    def data(self, path: str) -> bytes | None:
        return self.kept.get("data/" + path)

    def why_unread(self, bag_path: str) -> str:
        if bag_path not in self.source.files:
            return "missing from the bundle"
        if bag_path in self.read_errors:
            return self.read_errors[bag_path]
        return self.unkept.get(bag_path, "not read")

    def digest(self, bag_path: str) -> tuple[str, int] | None:
        return self.digests.get(bag_path)

    def _json_file(self, bag_path: str, shown: str, step: _Step) -> tuple[bool, Any]:
        """A kept file parsed as JSON: (True, value), or (False, None) once `step` has failed
        naming `shown` because the file is unread or not JSON (its value may be null)."""
        data = self.kept.get(bag_path)
        if data is None:
            step.fail(shown, self.why_unread(bag_path))
            return False, None
        try:
            return True, _load_json(data)
        except _BadJson as exc:
            step.fail(shown, str(exc))
            return False, None

    def _hash_file(self, path: str, limit: int | None, progress: _Progress) -> None:
        hasher = hashlib.sha256()
        size = 0
        buffer: bytearray | None = bytearray() if limit is not None else None
        reader = self.entries_reader if path == self._entries_path() else None
        member_size = self.source.files[path].size
        if member_size >= 64 * CHUNK:
            progress.say(f"hashing {_rel(path)} ({_human(member_size)})")
        try:
            for chunk in self.source.chunks(path):
                hasher.update(chunk)
                size += len(chunk)
                progress.advance(len(chunk))
                if buffer is not None and limit is not None:
                    if len(buffer) + len(chunk) > limit:
                        buffer = None
                    else:
                        buffer += chunk
                if reader is not None:
                    reader.feed(chunk)
        except _CrcMismatch as exc:  # read whole: its digest is compared as any other's
            with self.lock:
                self.crc_errors[path] = str(exc)
        except _ReadError as exc:
            with self.lock:
                self.read_errors[path] = str(exc)
            return
        except Exception as exc:  # never let one file stop the pass
            with self.lock:
                self.read_errors[path] = f"cannot be read ({type(exc).__name__}: {exc})"
            return
        if reader is not None:
            reader.finish()
        with self.lock:
            self.digests[path] = (hasher.hexdigest(), size)
            if buffer is not None and self.kept_total + len(buffer) > MAX_KEPT:
                self.unkept[path] = (
                    f"not read: the files to parse would hold more than {_human(MAX_KEPT)} "
                    "in memory"
                )
            elif buffer is not None:
                self.kept[path] = bytes(buffer)
                self.kept_total += len(buffer)
            elif limit is not None:
                self.unkept[path] = f"{_human(size)}, too large to parse (limit {_human(limit)})"

    def _wacz_task(self, path: str) -> None:
        opener = self.source.seekable(path)
        label = _rel(path)
        try:
            if opener is None:
                result = self._inflated_wacz(path, label)
            else:
                result = _check_wacz(opener, self.source.files[path].size, label)
        except Exception as exc:
            result = _WaczResult(problems=[f"{label}: cannot be read ({exc})"])
        with self.lock:
            self.waczs[path] = result

    def _inflated_wacz(self, path: str, label: str) -> _WaczResult:
        """A WACZ the bundle ZIP compressed (a re-packed bundle), checked from a temporary copy:
        its members are read at random, which a deflate stream does not allow."""
        size = self.source.files[path].size
        folder = tempfile.gettempdir()
        try:
            free: int | None = shutil.disk_usage(folder).free
        except OSError:
            free = None
        if free is not None and free < size + 16 * CHUNK:
            return _WaczResult(problems=[
                f"{label}: compressed inside the bundle ZIP, and the temporary folder {folder} "
                f"has {_human(free)} free, too little to inflate its {_human(size)} and check "
                "its members; point TMPDIR (TEMP on Windows) at a folder with room, or unzip the "
                "bundle and verify the folder"
            ])  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="verify-wacz-") as work:
            copy = os.path.join(work, "archive.wacz")
            try:
                with open(copy, "wb") as out:
                    for chunk in _whole(self.source.chunks(path)):  # the bag check names it
                        out.write(chunk)
            except _ReadError as exc:
                return _WaczResult(problems=[f"{label}: {exc}"])
            except OSError as exc:
                return _WaczResult(problems=[
                    f"{label}: compressed inside the bundle ZIP, and it could not be inflated "
                    f"into {folder} to check its members ({exc.strerror or exc})"
                ])  # fmt: skip
            result = _check_wacz(_open_file(copy), size, label)
        result.inflated = True
        return result

    def _entries_path(self) -> str | None:
        custody = self.index.get("custody") if self.index else None
        if isinstance(custody, dict) and isinstance(custody.get("entries"), str):
            return "data/" + custody["entries"]
        return None

    # -- the run ----------------------------------------------------------------------------

    def run(self, path: str) -> None:
        source = _open_source(path, self.open_problems)
        if source is None:
            self.report.unreadable = True
            with self.step("bag") as step:
                step.problems.extend(self.open_problems or [f"{path}: not a bundle"])
            return
        self.source = source
        if source.repacked:
            self.note(
                "The ZIP was re-packed after export (" + "; ".join(source.repacked) + "): it is "
                "not the file the exporter wrote, so its own SHA-256 is not the one the unit's "
                "custody log recorded for the export (export.completed). The checks are of the "
                "files inside, whose bytes are what the manifests, signatures and timestamps seal."
            )
        progress = _Progress(self.progress_callback, sum(m.size for m in source.files.values()))
        progress.say(f"reading {self.report.bundle}")

        # bundle.json first, so the pass knows which files to keep and which to split into lines.
        for name in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt",
                     "tagmanifest-sha256.txt", "data/bundle.json"):  # fmt: skip
            if name in source.files:
                self._hash_file(name, MAX_JSON, progress)
        self._parse_index()

        keep: dict[str, int] = {}
        for name in self._small_files():
            keep["data/" + name] = MAX_JSON
        if self._entries_path():
            self.entries_reader = _EntriesReader()
        tasks: list[tuple[int, Callable[[], None]]] = []
        for name, member in source.files.items():
            if name in self.digests or name in self.read_errors:
                continue
            limit = keep.get(name)
            if limit is None and not name.startswith("data/"):
                limit = MAX_JSON  # tag files are parsed too
            tasks.append((member.size, functools.partial(self._hash_file, name, limit, progress)))
        for exhibit in self.exhibits:
            if exhibit.wacz and "data/" + exhibit.wacz in source.files:
                wacz = "data/" + exhibit.wacz
                tasks.append((source.files[wacz].size, functools.partial(self._wacz_task, wacz)))
        tasks.sort(key=lambda t: -t[0])  # largest first: two workers finish close together
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for future in [pool.submit(task) for _, task in tasks]:
                future.result()
        progress.say("checking signatures, timestamps and proofs")

        self._check_bag()
        with self.step("index") as step:
            self._check_index(step)
        if self.index is None:
            why = ("bundle.json, which names the files they check, could not be used: "
                   f"{self.index_problem or 'unreadable'}")
            names = [*_RUN_ONLY_WITH_INDEX,
                     *(["custody consistency with older checkpoint"] if self.against else [])]
            self.report.not_run = [(name, why) for name in names]
            self._note_line_ends()
            return
        with self.step("signing key") as step:
            self._check_key(step)
        with self.step("bag signature") as step:
            self._check_bag_signature(step)
        with self.step("timestamp trust anchors") as step:
            self._load_anchors(step)
        for exhibit in self.exhibits:
            self._check_exhibit(exhibit)
        self._check_custody()
        with self.step("case graph") as step:
            self._check_graph(step)
        self._note_line_ends()
        self._note_unsealed()

    def _note_line_ends(self) -> None:
        if self.line_ends:
            self.note(
                f"{len(self.line_ends)} file(s) had their line endings converted after export, "
                "as a text editor, a text-mode transfer (mail, FTP), a Git checkout or an "
                "unzip -a does: converted back they are as exported, but the bundle as it "
                "stands is not the one exported and does not verify. Verify the ZIP as it was "
                "handed over, or unpack it again with a tool that leaves files unchanged."
            )

    def _note_unsealed(self) -> None:
        """Say what no signature covers, and whether the bundle's verify.py is this one: before
        revision 3 a forger who rewrites the bag manifests can change those files unnoticed."""
        if self.bag_signed and self.bag_intact:
            self.note(
                f"The bag as a whole is signed ({BAG_SIGNATURE}, over the tag manifest): "
                "report.pdf, README.txt, verify.py, bag-info.txt and all of bundle.json are "
                "as the holder of the signing key exported them. That holder is the unit only "
                "if the key id is the unit's (pin it with --key)."
            )
        elif self.bag_signed:
            # The manifests are as signed, but a file differs from them: only the files the bag
            # check found intact are as exported, so the note must not vouch for them all.
            self.note(
                f"The bag's signature holds over its manifests ({BAG_SIGNATURE}, over the tag "
                "manifest): they are as the holder of the signing key exported them, but the "
                "files the bag check names differ from what they list, or are not listed in "
                "them, and so are not as exported."
            )
        else:
            if self.revision() < REVISION_BAG_SIGNED:
                why = (f"revision {self.revision()}; bundles sign it from revision "
                       f"{REVISION_BAG_SIGNED}")  # fmt: skip
            elif BAG_SIGNATURE not in self.source.files:
                why = f"its signature, {BAG_SIGNATURE}, is missing"
            else:
                why = (f"its signature, {BAG_SIGNATURE}, did not verify: see the bag signature "
                       "check")
            self.note(
                f"The bag as a whole is not signed ({why}). Not sealed by any signature, timestamp "
                "or custody entry (a forger who rewrites the bag manifests can change them "
                "unnoticed): report.pdf, README.txt, verify.py, bag-info.txt, and bundle.json's "
                "fields other than those checked above (case title, offence and facts, "
                "exported_by.unit, created_at, tool, target_id). The exhibits, their files, the "
                "custody entries and received files have seals of their own, checked above."
            )
        verifier = (self.index or {}).get("verifier")
        got = self.digest("data/" + verifier) if isinstance(verifier, str) else None
        if got is None:
            return
        try:
            with open(os.path.abspath(__file__), "rb") as handle:
                mine = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            return
        if got[0] == mine:
            self.note(f"The bundle's {verifier} is this verifier, byte for byte (SHA-256 {mine}).")
        else:
            self.note(
                f"The bundle's {verifier} (SHA-256 {got[0]}) is not this verifier (SHA-256 "
                f"{mine}): another version, or altered. Do not rely on it; use a copy obtained "
                "independently."
            )

    def _small_files(self) -> list[str]:
        """Files named by bundle.json that are parsed, not just hashed."""
        index = self.index or {}
        names: list[Any] = []
        key = index.get("signing_key")
        if isinstance(key, dict):
            names.append(key.get("path"))
        names.extend(_as_list(index.get("tsa_certificates")))
        custody = index.get("custody")
        if isinstance(custody, dict):
            names.extend(custody.get(k) for k in ("proofs", "checkpoint", "checkpoint_token"))
        names.append(index.get("case_graph"))
        for exhibit in self.exhibits:
            names.extend([exhibit.manifest, exhibit.signature, exhibit.token])
        return [n for n in names if isinstance(n, str)]

    # -- 1. bag -----------------------------------------------------------------------------

    def _tag_text(self, name: str, step: _Step) -> list[str] | None:
        if name not in self.source.files:
            step.fail(name, "missing")
            return None
        content = self.kept.get(name)
        if content is None:
            step.fail(name, self.why_unread(name))
            return None
        if content.startswith(b"\xef\xbb\xbf"):
            step.fail(name, "starts with a byte-order mark")
            content = content[3:]
        try:
            return _text_lines(content)
        except UnicodeDecodeError as exc:
            step.fail(name, f"not UTF-8 ({exc.reason} at byte {exc.start})")
            return None

    def _manifest(self, name: str, payload: bool, step: _Step) -> dict[str, str] | None:
        lines = self._tag_text(name, step)
        if lines is None:
            return None
        entries: dict[str, str] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            match = _MANIFEST_LINE.fullmatch(line)
            if not match:
                step.fail(name, f"line {number}: expected a SHA-256 hex digest, space and a path")
                continue
            listed = _decode_manifest_path(match.group(2))
            flaw = _listed_path_flaw(listed, payload)
            if flaw:
                step.fail(name, f"line {number}: {listed!r}: {flaw}")
            elif listed in entries:
                step.fail(name, f"line {number}: {listed!r} listed twice")
            else:
                entries[listed] = match.group(1).lower()
        return entries

    def _line_ends_converted(self, path: str, want: str) -> str | None:
        """How `path`'s line endings were converted, when converting them back gives the SHA-256
        `want` (and then remember what it is with them converted back); else None. The file is
        read again, streamed, whatever its size: only a file that already differs from its
        listing is, and a custody log of a large case, or a WARC sent through a text-mode
        transfer, is text past any size limit."""
        size = self.source.files[path].size
        if self.progress_callback is not None and size >= 64 * CHUNK:
            self.progress_callback(f"reading {_rel(path)} ({_human(size)}) again: were only its "
                                   "line endings converted?")
        try:
            undone = _line_ends_undone(_whole(self.source.chunks(path)))
        except Exception:  # unreadable now: the plain mismatch is reported instead
            return None
        for sha256, size, how in undone:
            if sha256 == want:
                self.line_ends[path] = (sha256, size)
                return how
        return None

    def _differs(self, step: _Step, path: str, got: tuple[str, int], want_sha256: Any,
                 want_size: Any, lists: str) -> None:
        """Fail `step` where the file at `path` (under data/) is not the one `lists` names; a
        file whose only change is its line endings is one problem, not a size and a hash."""
        want = (str(want_sha256).lower(), want_size)
        if got == want:
            return
        if self.line_ends.get("data/" + path) == want:
            step.fail(path, f"its line endings were converted after export (see the bag "
                            f"check); converted back, it is the file {lists} lists")
            return
        if got[1] != want_size:
            step.fail(path, f"{got[1]} bytes but {lists} says {want_size!r}")
        if got[0] != want[0]:
            step.fail(path, f"SHA-256 is {got[0]} but {lists} says {want_sha256}")

    def _check_bag(self) -> None:
        with self.step("bag") as step:
            step.problems.extend(self.open_problems)
            declaration = None
            if "bagit.txt" not in self.source.files:
                # Only a bag without its declaration is opened (`_holds_bag_without_declaration`).
                step.fail("bagit.txt", "missing: evidence-locker writes this declaration (BagIt "
                                       "version and tag-file encoding) into every bundle, so it "
                                       "was removed after export; the bag's other files and "
                                       "every other check were still run")  # fmt: skip
            else:
                declaration = self._tag_text("bagit.txt", step)
            if declaration is not None:
                fields = [line.split(":", 1) for line in declaration]
                if (
                    len(fields) != 2
                    or any(len(f) != 2 for f in fields)
                    or fields[0][0] != "BagIt-Version"
                    or fields[1][0] != "Tag-File-Character-Encoding"
                ):
                    step.fail("bagit.txt", "is not a BagIt declaration (two lines: BagIt-Version, "
                                           "Tag-File-Character-Encoding)")  # fmt: skip
                else:
                    if fields[0][1].strip() != BAGIT_VERSION:
                        step.fail("bagit.txt", f"BagIt version {fields[0][1].strip()!r}, not 1.0")
                    if fields[1][1].strip().upper() != "UTF-8":
                        step.fail("bagit.txt", "tag files are declared not to be UTF-8")
            manifest = self._manifest("manifest-sha256.txt", True, step)
            tag_manifest = self._manifest("tagmanifest-sha256.txt", False, step)
            if not any(p.startswith("data/") for p in self.source.files):
                step.fail("data/", "the payload folder is missing or empty")
            if "fetch.txt" in self.source.files:
                step.fail("fetch.txt", "the bag wants files fetched from the network")
            octets = streams = 0
            # Files under data/ this check names as unread, added, changed or missing: each
            # also changes the payload's total, which the Payload-Oxum problem then points to.
            payload_named: list[str] = []
            for path in sorted(self.source.files):
                payload = path.startswith("data/")
                if not payload and path.startswith("tagmanifest-"):
                    continue
                if path.startswith(("manifest-", "tagmanifest-")) and path not in (
                    "manifest-sha256.txt", "tagmanifest-sha256.txt"
                ):
                    self.note(f"{path} is not checked: bundles are verified by SHA-256 only")
                listing = manifest if payload else tag_manifest
                listing_name = "manifest-sha256.txt" if payload else "tagmanifest-sha256.txt"
                what = _os_metadata(path)
                if what and listing is not None and path not in listing:
                    # Not bundle content: set aside (no later check reads it), and warned of.
                    self.source.desktop_metadata.append((path, what))
                    del self.source.files[path]
                    continue
                got = self.digests.get(path)
                want = None if listing is None else listing.get(path)
                if payload and (got is None or (listing is not None and want != got[0])):
                    payload_named.append(_rel(path))
                if got is None:
                    step.fail(_rel(path), self.why_unread(path))
                    continue
                if payload:
                    octets += got[1]
                    streams += 1
                if listing is None:
                    continue
                if want is None:
                    step.fail(
                        _rel(path), f"in the bundle but not listed in {listing_name} (added?)"
                    )
                elif want != got[0] and (how := self._line_ends_converted(path, want)):
                    step.fail(
                        _rel(path),
                        f"its line endings were converted after export ({how}); converted "
                        f"back, it has the SHA-256 {listing_name} lists: nothing else changed, "
                        "but it is not the file exported",
                    )
                elif want != got[0]:
                    step.fail(
                        _rel(path),
                        f"SHA-256 is {got[0]} but {listing_name} says {want} (altered?)",
                    )
            for path, why in sorted(self.crc_errors.items()):
                if path in self.source.files:  # not desktop metadata set aside above
                    step.fail(_rel(path), why)
            for path, what in sorted(self.source.desktop_metadata):
                self.warn(
                    f"{path}: {what}, written by a desktop after export: not listed in the "
                    "bag's manifests, so not part of the sealed bundle, not checked and not "
                    "vouched for by this report"
                )
            for listing, listing_name in ((manifest, "manifest-sha256.txt"),
                                          (tag_manifest, "tagmanifest-sha256.txt")):  # fmt: skip
                for path in sorted(listing or {}):
                    if path not in self.source.files and path != "bagit.txt":  # named above
                        if listing is manifest:
                            payload_named.append(_rel(path))
                        step.fail(
                            _rel(path), f"listed in {listing_name} but missing from the bundle"
                        )
            info = self._tag_text("bag-info.txt", step) if "bag-info.txt" in self.source.files \
                else None  # fmt: skip
            oxum = [line.split(":", 1)[1].strip() for line in info or []
                    if line.split(":", 1)[0].strip().casefold() == "payload-oxum"
                    and ":" in line]  # fmt: skip
            if info is None and "bag-info.txt" not in self.source.files:
                step.fail("bag-info.txt", "missing")
            elif info is not None and len(oxum) != 1:
                step.fail("bag-info.txt", "needs exactly one Payload-Oxum")
            elif info is not None:
                match = _OXUM.fullmatch(oxum[0])
                if not match:
                    step.fail("bag-info.txt", f"Payload-Oxum {oxum[0]!r} is not the total size "
                                              "and number of the files under data/, written "
                                              "BYTES.FILES (such as 2048.3)")  # fmt: skip
                elif (int(match.group(1)), int(match.group(2))) != (octets, streams):
                    step.fail("bag-info.txt", _oxum_differs(
                        (int(match.group(1)), int(match.group(2))), (octets, streams),
                        payload_named))  # fmt: skip
            holds = (f"{streams} payload files ({_human(octets)}) match manifest-sha256.txt, tag "
                     f"files match tagmanifest-sha256.txt, Payload-Oxum {octets}.{streams}")
            step.fact(holds)
            self.bag_intact = not step.problems  # bytes outside the archive are no file's
            if self.source.outside:
                inside = (f"they hold: {holds}" if not step.problems
                          else "see the other problems listed")
                step.problems.insert(0, (
                    f"{self.report.bundle}: {'; '.join(self.source.outside)}, which the "
                    "exporter never writes: this is not the file that was exported (a "
                    "self-extracting or polyglot file, or bytes added to it?), and its own "
                    "SHA-256 is not the one the unit's custody log recorded for the export "
                    "(export.completed). The files inside the archive were still checked as "
                    f"usual; {inside}"
                ))  # fmt: skip

    # -- 2. index ---------------------------------------------------------------------------

    def _parse_index(self) -> None:
        data = self.kept.get("data/bundle.json")
        if data is None:
            self.index_problem = (
                "missing from the bundle" if "data/bundle.json" not in self.source.files
                else self.why_unread("data/bundle.json")
            )  # fmt: skip
            return
        try:
            index = _load_json(data)
        except _BadJson as exc:
            self.index_problem = str(exc)
            return
        if not isinstance(index, dict):
            self.index_problem = "not a JSON object"
            return
        self.index = index
        case = index.get("case")
        if isinstance(case, dict) and isinstance(case.get("id"), str):
            self.case_id = case["id"]
        exhibits = index.get("exhibits")
        for number, raw in enumerate(exhibits if isinstance(exhibits, list) else []):
            if not isinstance(raw, dict):
                continue

            def text(key: str, raw: dict[str, Any] = raw) -> str | None:
                value = raw.get(key)
                return value if isinstance(value, str) else None

            files = raw.get("files")
            self.exhibits.append(
                _Exhibit(
                    where=f"bundle.json exhibits[{number}]",
                    number=text("number") or f"exhibit #{number + 1}",
                    capture_id=text("capture_id"),
                    manifest_sha256=text("manifest_sha256"),
                    manifest=text("manifest"),
                    signature=text("signature"),
                    token=text("timestamp_token"),
                    wacz=text("wacz"),
                    files=[f for f in files if isinstance(f, dict)] if isinstance(files, list)
                    else [],
                    raw=raw,
                )
            )

    def _check_index(self, step: _Step) -> None:
        if self.index is None:
            step.fail("bundle.json", self.index_problem or "unreadable")
            return
        index = self.index
        where = "bundle.json"
        if index.get("format") != BUNDLE_FORMAT:
            step.fail(where, f"format is {index.get('format')!r}, not {BUNDLE_FORMAT!r}")
        if index.get("version") != 1:
            step.fail(where, f"version {index.get('version')!r}; this verifier reads version 1")
        revision = index.get("revision", 0)
        if not _is_int(revision) or revision < 0:
            step.fail(where, f"revision {revision!r} is not a whole number of 0 or more")
        elif revision > BUNDLE_REVISION:
            self.note(f"bundle.json says revision {revision} of format version 1; this verifier "
                      f"knows revisions up to {BUNDLE_REVISION}, so what later ones added is "
                      "not checked (the verify.py the bundle carries checks it)")
        if self.case_id is None:
            step.fail(where, "case.id is missing")
        named: list[tuple[str, Any, bool]] = []  # (what, value, may be null)

        def need(obj: Any, key: str, label: str, nullable: bool = False) -> None:
            value = obj.get(key) if isinstance(obj, dict) else None
            named.append((label, value, nullable))

        key = index.get("signing_key")
        need(key, "path", "signing_key.path")
        if not isinstance(key, dict) or _hex32(key.get("key_id")) is None:
            step.fail(where, "signing_key.key_id is not a SHA-256 hex digest")
        anchors = index.get("tsa_certificates")
        if not isinstance(anchors, list):
            step.fail(where, "tsa_certificates is not a list")
        else:
            for number, value in enumerate(anchors):
                named.append((f"tsa_certificates[{number}]", value, False))
        custody = index.get("custody")
        for name in ("entries", "proofs", "checkpoint"):
            need(custody, name, f"custody.{name}")
        need(custody, "checkpoint_token", "custody.checkpoint_token", nullable=True)
        need(index, "case_graph", "case_graph")
        need(index, "report", "report", nullable=True)
        need(index, "verifier", "verifier", nullable=True)
        exhibits = index.get("exhibits")
        if not isinstance(exhibits, list):
            step.fail(where, "exhibits is not a list")
            exhibits = []
        numbers: set[str] = set()
        captures: set[str] = set()
        for number, raw in enumerate(exhibits):
            label = f"exhibits[{number}]"
            if not isinstance(raw, dict):
                step.fail(where, f"{label} is not an object")
                continue
            if not isinstance(raw.get("number"), str):
                step.fail(where, f"{label}.number is missing")
            elif raw["number"] in numbers:
                step.fail(where, f"exhibit number {raw['number']} appears twice")
            else:
                numbers.add(raw["number"])
            if not isinstance(raw.get("capture_id"), str):
                step.fail(where, f"{label}.capture_id is missing")
            elif raw["capture_id"] in captures:
                step.fail(where, f"capture {raw['capture_id']} is two exhibits")
            else:
                captures.add(raw["capture_id"])
            if _hex32(raw.get("manifest_sha256")) is None:
                step.fail(where, f"{label}.manifest_sha256 is not a SHA-256 hex digest")
            for name in ("manifest", "signature"):
                need(raw, name, f"{label}.{name}")
            for name in ("timestamp_token", "wacz"):
                need(raw, name, f"{label}.{name}", nullable=True)
            files = raw.get("files")
            if not isinstance(files, list):
                step.fail(where, f"{label}.files is not a list")
                continue
            for file_number, entry in enumerate(files):
                need(entry, "path", f"{label}.files[{file_number}].path")
        received = index.get("received", [])
        if not isinstance(received, list):
            step.fail(where, "received is not a list")
            received = []
        for number, raw in enumerate(received):
            label = f"received[{number}]"
            if not isinstance(raw, dict):
                step.fail(where, f"{label} is not an object")
                continue
            need(raw, "path", f"{label}.path")
            path = raw.get("path")
            if isinstance(path, str) and not path.startswith("received/"):
                step.fail(path, f"{label} lies outside received/")
            if _hex32(raw.get("sha256")) is None or not _is_int(raw.get("size")):
                step.fail(where, f"{label} has no valid size and sha256")
            if not isinstance(raw.get("id"), str):
                step.fail(where, f"{label}.id is missing")
        for label, value, nullable in named:
            if value is None and nullable:
                continue
            if not isinstance(value, str):
                step.fail(where, f"{label} is missing or not a path")
                continue
            flaw = _path_flaw(value)
            if flaw:
                step.fail(where, f"{label} {value!r}: {flaw}")
            elif "data/" + value not in self.source.files:
                step.fail(value, f"named by bundle.json ({label}) but missing from the bundle")
        step.fact(
            f"case {self._case_label()}, {len(exhibits)} exhibit(s), export "
            f"{index.get('export_id')!r} created {index.get('created_at')!r}"
        )

    def revision(self) -> int:
        """bundle.json's `revision`: 0 when absent (a bundle written before revisions) or not
        a whole number (the index check fails it)."""
        revision = (self.index or {}).get("revision", 0)
        return revision if _is_int(revision) else 0

    def _case_label(self) -> str:
        case = (self.index or {}).get("case")
        if isinstance(case, dict):
            return f"{case.get('reference')!r} ({case.get('id')})"
        return "?"

    # -- 3. signing key ---------------------------------------------------------------------

    def _check_key(self, step: _Step) -> None:
        key_info = (self.index or {}).get("signing_key")
        key_info = key_info if isinstance(key_info, dict) else {}
        path = key_info.get("path")
        bundle_key: ed25519.Ed25519PublicKey | None = None
        if isinstance(path, str):
            pem = self.data(path)
            if pem is None:
                step.fail(path, self.why_unread("data/" + path))
            else:
                bundle_key = _load_ed25519(pem, path, step)
        bundle_id = _key_id(bundle_key) if bundle_key else None
        listed = key_info.get("key_id")
        if bundle_id and isinstance(listed, str) and listed.lower() != bundle_id:
            step.fail(
                "bundle.json",
                f"signing_key.key_id is {listed} but {path} holds key {bundle_id}",
            )
        if self.key_pem is not None:
            pinned = _load_ed25519(self.key_pem, "--key", step)
            if pinned is None:
                return
            pinned_id = _key_id(pinned)
            self.key, self.key_id = pinned, pinned_id
            if bundle_id is not None and bundle_id != pinned_id:
                step.fail(
                    str(path),
                    f"the bundle's signing key {bundle_id} is not the pinned key {pinned_id}",
                )
            step.fact(f"Ed25519 key id {pinned_id} (pinned with --key)")
            return
        self.key, self.key_id = bundle_key, bundle_id
        if bundle_id:
            step.fact(f"Ed25519 key id {bundle_id} (taken from the bundle)")
            self.note(
                f"The signing key was taken from the bundle itself, and anyone can make a bundle "
                f"signed by a key of their own: compare key id {bundle_id} with the key id the "
                "police unit publishes, or pass --key with the unit's public key."
            )

    def _check_bag_signature(self, step: _Step) -> None:
        """The signature over the tag manifest, which lists the manifest that lists every
        payload file: it seals the whole bag, report.pdf, README.txt, verify.py, bag-info.txt
        and all of bundle.json included. Required from revision 3; one an older bundle carries
        is checked all the same."""
        revision = self.revision()
        if BAG_SIGNATURE not in self.source.files:
            if revision >= REVISION_BAG_SIGNED:
                step.fail(BAG_SIGNATURE, f"missing, which revision {REVISION_BAG_SIGNED} "
                                         "requires: nothing then seals the bag as a whole "
                                         "(removed?)")  # fmt: skip
            else:
                step.fact(f"none: revision {revision} bundles do not sign the bag as a whole")
            return
        read, doc = self._json_file(BAG_SIGNATURE, BAG_SIGNATURE, step)
        if not read:
            return
        got = self.digest("tagmanifest-sha256.txt")
        if got is None:
            step.fail(BAG_SIGNATURE, "tagmanifest-sha256.txt is unreadable, so the signature "
                                     "cannot be checked")
            return
        error = bag_signature_problem(doc, self.key, got[0])
        listed = str(_get(doc, "tagmanifest_sha256")).lower()
        if error and listed != got[0] and bag_signature_problem(doc, self.key, listed) is None \
                and (how := self._line_ends_converted("tagmanifest-sha256.txt", listed)):
            step.fail("tagmanifest-sha256.txt", (
                f"its line endings were converted after export ({how}); converted back, it is "
                "the tag manifest signed: nothing else changed, but it is not the file exported"
            ))  # fmt: skip
            return
        if error:
            step.fail(BAG_SIGNATURE, error)
            return
        bag = str(_get(doc, "bag"))
        self.bag_signed = True
        if bag != self.source.name:
            self.note(f"The bag was signed as {bag!r} but is named {self.source.name!r} here "
                      "(its folder or ZIP renamed after export); its content is as signed.")
        step.fact(f"Ed25519 signature over tagmanifest-sha256.txt (SHA-256 {got[0]}) of bag "
                  f"{bag!r} verifies with key {self.key_id}")

    def _load_anchors(self, step: _Step) -> None:
        names = (self.index or {}).get("tsa_certificates")
        for name in names if isinstance(names, list) else []:
            if not isinstance(name, str) or self.data(name) is None:
                continue  # reported by the index check
            try:
                found = load_anchors(self.data(name) or b"", name)
            except Exception as exc:  # cryptography refuses certificates in several ways
                step.fail(name, f"not a readable certificate ({exc})")
                continue
            self.anchors.extend(found)
        bundled = list(self.anchors)
        for number, pem in enumerate(self.trusted_tsa_pems, start=1):
            try:
                self.anchors.extend(load_anchors(pem, f"--trust-tsa #{number}"))
            except Exception as exc:
                step.fail(f"--trust-tsa #{number}", f"not a certificate ({exc})")
        step.fact(
            f"{len(bundled)} from the bundle, {len(self.anchors) - len(bundled)} supplied; "
            "fingerprints in the notes"
        )
        if bundled:
            self.note(
                "Timestamp trust anchors shipped inside the bundle are only as trustworthy as "
                "their fingerprints: compare each SHA-256 fingerprint below with the one the "
                "timestamp authority publishes (or pass --trust-tsa with its certificate)."
            )
        for anchor in self.anchors:
            self.note(
                f"Trust anchor {anchor.label}: {anchor.certificate.subject.rfc4514_string()}, "
                f"SHA-256 fingerprint {anchor.fingerprint}"
            )

    def _timestamp(self, step: _Step, token_path: str, digest: bytes, what: str) -> None:
        token = self.data(token_path)
        if token is None:
            step.fail(token_path, self.why_unread("data/" + token_path))
            return
        if not self.anchors:
            step.fail(token_path, "no trust anchor to check the timestamp against")
            return
        try:
            result = verify_timestamp(token, digest, self.anchors)
        except TimestampInvalid as exc:
            step.fail(token_path, str(exc))
            return
        when = result.gen_time.isoformat().replace("+00:00", "Z")
        step.fact(f"{what} timestamped {when} by {result.tsa_name} (anchor {result.anchor})")
        for text in result.notes:
            self.note(f"{token_path}: {text}")
        if result.is_local:
            self.note(
                f"{token_path}: issued by the capturing system's built-in timestamp authority "
                f"(policy {LOCAL_TSA_POLICY_OID}): its time ({when}) rests only on the capturing "
                "system's clock, not on an independent authority."
            )

    # -- 4. exhibits ------------------------------------------------------------------------

    def _check_exhibit(self, exhibit: _Exhibit) -> None:
        label = exhibit.number
        manifest_doc: dict[str, Any] | None = None
        manifest_digest: bytes | None = None
        with self.step(f"{label} manifest") as step:
            manifest_doc, manifest_digest = self._exhibit_manifest(exhibit, step)
        with self.step(f"{label} signature") as step:
            self._exhibit_signature(exhibit, step)
        with self.step(f"{label} files") as step:
            self._exhibit_files(exhibit, manifest_doc, step)
        with self.step(f"{label} timestamp") as step:
            if exhibit.token is None:
                note = exhibit.raw.get("timestamp_note")
                step.fact(f"no timestamp token ({note or 'no reason given'})")
                self.note(f"{label} has no RFC 3161 timestamp: {note or 'no reason given'}")
            elif manifest_digest is None:
                step.fail(exhibit.token, "cannot be checked: the manifest is unreadable")
            else:
                self._timestamp(step, exhibit.token, manifest_digest, "manifest")
        with self.step(f"{label} WACZ") as step:
            self._exhibit_wacz(exhibit, manifest_doc, step)

    def _exhibit_manifest(
        self, exhibit: _Exhibit, step: _Step
    ) -> tuple[dict[str, Any] | None, bytes | None]:
        if exhibit.manifest is None:
            step.fail(exhibit.where, "names no manifest")
            return None, None
        where = exhibit.manifest
        data = self.data(where)
        if data is None:
            step.fail(where, self.why_unread("data/" + where))
            return None, None
        digest = hashlib.sha256(data).digest()
        listed = _hex32(exhibit.manifest_sha256)
        if listed != digest:
            step.fail(
                where,
                f"SHA-256 is {digest.hex()} but bundle.json manifest_sha256 says "
                f"{exhibit.manifest_sha256}",
            )
        try:
            doc = _load_json(data)
        except _BadJson as exc:
            step.fail(where, str(exc))
            return None, digest
        if not isinstance(doc, dict):
            step.fail(where, "not a JSON object")
            return None, digest
        if doc.get("type") != MANIFEST_TYPE:
            step.fail(where, f"type is {doc.get('type')!r}, not {MANIFEST_TYPE!r}")
        if doc.get("capture_id") != exhibit.capture_id:
            step.fail(
                where,
                f"is the manifest of capture {doc.get('capture_id')!r}, but bundle.json "
                f"says {exhibit.capture_id!r}",
            )
        case = doc.get("case")
        if not isinstance(case, dict) or case.get("id") != self.case_id:
            step.fail(where, f"belongs to case {_get(case, 'id')!r}, not {self.case_id!r}")
        for ours, theirs in (("url", "requested_url"), ("final_url", "final_url"),
                             ("status", "status")):  # fmt: skip
            if ours in exhibit.raw and exhibit.raw[ours] != doc.get(theirs):
                step.fail(
                    where,
                    f"{theirs} is {doc.get(theirs)!r} but bundle.json {ours} says "
                    f"{exhibit.raw[ours]!r}",
                )
        if not isinstance(doc.get("artifacts"), list):
            step.fail(where, "artifacts is not a list")
        fact = f"SHA-256 {digest.hex()}, capture {doc.get('capture_id')}"
        if "title" in doc:  # manifests made before the title was signed have none
            title, cut = doc.get("title"), doc.get("title_truncated")
            if not (title is None or isinstance(title, str)) or not isinstance(cut, bool):
                step.fail(where, "title is not text or null, or title_truncated not true/false")
            elif title is not None:
                fact += f", title {_shown(title)}" + (" (cut when signed)" if cut else "")
        step.fact(fact)
        return doc, digest

    def _exhibit_signature(self, exhibit: _Exhibit, step: _Step) -> None:
        if exhibit.signature is None or exhibit.manifest is None:
            step.fail(exhibit.where, "names no signature or manifest")
            return
        signature = self.data(exhibit.signature)
        manifest = self.data(exhibit.manifest)
        if signature is None:
            step.fail(exhibit.signature, self.why_unread("data/" + exhibit.signature))
            return
        if manifest is None:
            step.fail(exhibit.manifest, "unreadable, so the signature cannot be checked")
            return
        if self.key is None:
            step.fail(exhibit.signature, "no usable signing key to check it with")
            return
        if len(signature) != 64:
            step.fail(exhibit.signature, f"{len(signature)} bytes, not a 64-byte Ed25519 signature")
            return
        try:
            self.key.verify(signature, manifest)
        except InvalidSignature:
            step.fail(
                exhibit.signature,
                f"does not verify over {exhibit.manifest} with key {self.key_id}",
            )
            return
        step.fact(f"Ed25519 signature over {exhibit.manifest} verifies")

    def _exhibit_files(
        self, exhibit: _Exhibit, manifest: dict[str, Any] | None, step: _Step
    ) -> None:
        if manifest is None:
            step.fail(exhibit.manifest or exhibit.where, "unusable, so its files cannot be checked")
            return
        artifacts = manifest.get("artifacts")
        artifacts = artifacts if isinstance(artifacts, list) else []
        where = exhibit.manifest or exhibit.where
        folder = f"exhibits/{exhibit.number}/files/"
        if len(artifacts) != len(exhibit.files):
            step.fail(
                where,
                f"lists {len(artifacts)} artifacts but bundle.json lists {len(exhibit.files)} "
                "files",
            )
        listed: set[str] = set()
        octets = 0
        for number, (artifact, entry) in enumerate(zip(artifacts, exhibit.files, strict=False)):
            path = entry.get("path")
            if not isinstance(artifact, dict):
                step.fail(where, f"artifacts[{number}] is not an object")
                continue
            if not isinstance(path, str):
                continue  # reported by the index check
            listed.add("data/" + path)
            if not path.startswith(folder):
                step.fail(path, f"lies outside {folder}")
            want_sha = artifact.get("sha256")
            want_size = artifact.get("size")
            if _hex32(want_sha) is None or not _is_int(want_size):
                step.fail(where, f"artifacts[{number}] has no valid size and sha256")
                continue
            for key in ("kind", "name", "media_type", "size", "sha256"):
                if key in entry and entry[key] != artifact.get(key):
                    step.fail(
                        path,
                        f"bundle.json says {key} {entry[key]!r} but the signed manifest says "
                        f"{artifact.get(key)!r}",
                    )
            got = self.digest("data/" + path)
            if got is None:
                if "data/" + path in self.source.files:
                    step.fail(path, self.why_unread("data/" + path))
                continue  # a missing file is reported by the index check
            self._differs(step, path, got, want_sha, want_size, "the signed manifest")
            octets += got[1]
        for path in sorted(self.source.files):
            if path.startswith("data/" + folder) and path not in listed:
                step.fail(_rel(path), "not listed in the capture manifest (added?)")
        step.fact(f"{len(listed)} file(s), {_human(octets)}, match the signed manifest")

    def _exhibit_wacz(
        self, exhibit: _Exhibit, manifest: dict[str, Any] | None, step: _Step
    ) -> None:
        if exhibit.wacz is None:
            note = exhibit.raw.get("wacz_note")
            step.fact(f"no WACZ ({note or 'no reason given'})")
            return
        result = self.waczs.get("data/" + exhibit.wacz)
        if result is None:
            step.fail(exhibit.wacz, self.why_unread("data/" + exhibit.wacz))
            return
        step.problems.extend(result.problems)
        artifacts = manifest.get("artifacts") if manifest else None
        warc = [a for a in artifacts or [] if isinstance(a, dict) and a.get("kind") == "warc"]
        if manifest is None:
            step.fail(exhibit.wacz, "cannot be compared with the WARC: the manifest is unusable")
        elif len(warc) != 1:
            step.fail(exhibit.wacz, f"the manifest lists {len(warc)} WARC artifacts, not one")
        elif len(result.warcs) != 1:
            step.fail(exhibit.wacz, f"holds {len(result.warcs)} WARC files, not one")
        else:
            (name, sha), want = next(iter(result.warcs.items())), warc[0].get("sha256")
            if sha != str(want).lower():
                step.fail(
                    exhibit.wacz,
                    f"{name} has SHA-256 {sha}, not the capture's WARC artifact ({want})",
                )
            else:
                step.fact(f"{result.members} members match datapackage.json; {name} is the WARC")
                if result.inflated:
                    step.fact("checked from a temporary copy, as the bundle ZIP compressed it")

    # -- 5. custody -------------------------------------------------------------------------

    def _check_custody(self) -> None:
        index = self.index or {}
        custody = index.get("custody") if isinstance(index.get("custody"), dict) else {}
        assert isinstance(custody, dict)
        entries: list[_Entry] = []
        with self.step("custody entries") as step:
            entries = self._custody_entries(custody, step)
        with self.step("custody checkpoint") as step:
            self._custody_checkpoint(custody, step)
        with self.step("custody proofs") as step:
            self._custody_proofs(custody, entries, step)
        with self.step("custody checkpoint timestamp") as step:
            token = custody.get("checkpoint_token")
            if not isinstance(token, str):
                why = custody.get("checkpoint_token_note") or "no reason given"
                step.fact(f"no timestamp token for the checkpoint ({why})")
                self.note(f"The custody checkpoint carries no RFC 3161 timestamp: {why}")
            elif self.checkpoint_body is None:
                step.fail(token, "cannot be checked: the checkpoint is unusable")
            else:
                self._timestamp(
                    step, token, hashlib.sha256(self.checkpoint_body).digest(), "checkpoint"
                )
        with self.step("custody capture records") as step:
            self._custody_captures(entries, step)
        with self.step("custody export record") as step:
            self._custody_export(entries, step)
        # Bundles made before received material have no such list; from revision 2 on it is
        # required, or dropping the key would drop its checks.
        if "received" in index or self.revision() >= REVISION_RECEIVED_SCOPE:
            with self.step("received material") as step:
                self._received(entries, step)
        if self.against is not None:
            with self.step("custody consistency with older checkpoint") as step:
                self._custody_consistency(step)

    def _custody_entries(self, custody: dict[str, Any], step: _Step) -> list[_Entry]:
        path = custody.get("entries")
        reader = self.entries_reader
        if not isinstance(path, str) or reader is None:
            step.fail("bundle.json", "custody.entries is missing")
            return []
        if "data/" + path not in self.digests:
            step.fail(path, self.why_unread("data/" + path))
            return []
        step.problems.extend(reader.problems)
        if reader.crlf_lines:
            step.fail(path, (
                f"its line endings were converted after export: {reader.crlf_lines} of its "
                f"{reader.lines} lines end CR LF (Windows line ends) where the exporter writes "
                "LF; the entries are checked here as exported, with the CR removed"
            ))  # fmt: skip
        entries = reader.entries
        previous_seq: int | None = None
        previous_leaf: bytes | None = None
        for number, entry in enumerate(entries, start=1):
            where = (
                f"custody entry seq {entry.seq}" if _is_int(entry.seq)
                else f"{path} line {entry.line}"
            )  # fmt: skip
            if not _is_int(entry.seq):
                step.fail(where, "has no integer seq")
            elif previous_seq is not None and entry.seq <= previous_seq:
                step.fail(where, f"comes after seq {previous_seq}: seq must increase")
            case_id = _get(entry.case, "id")
            if case_id != self.case_id:
                step.fail(where, f"belongs to case {case_id!r}, not the bundle's {self.case_id!r}")
            if entry.case_seq != number or not _is_int(entry.case_seq):
                step.fail(
                    where,
                    f"case_seq is {entry.case_seq!r} where {number} comes next (an entry is "
                    "missing, moved or added)",
                )
            want = None if previous_leaf is None else previous_leaf.hex()
            if entry.prev != want:
                before = "it is the first entry" if want is None else (
                    f"the entry before it (seq {previous_seq}) hashes to {want}"
                )  # fmt: skip
                step.fail(
                    where,
                    f"prev_case_hash is {entry.prev!r} but {before}: one of the two was altered, "
                    "or an entry was removed or inserted",
                )
            if _is_int(entry.seq):
                previous_seq = entry.seq
            previous_leaf = entry.leaf
        if not entries and not reader.problems:
            step.fail(path, "holds no entries")
        step.fact(f"{len(entries)} entries of case {self.case_id}, case_seq 1..{len(entries)}")
        return entries

    def _custody_checkpoint(self, custody: dict[str, Any], step: _Step) -> None:
        path = custody.get("checkpoint")
        if not isinstance(path, str):
            step.fail("bundle.json", "custody.checkpoint is missing")
            return
        read, checkpoint = self._json_file("data/" + path, path, step)
        if not read:
            return
        body, root, size, why = self._checkpoint_fields(checkpoint)
        if why or body is None or root is None or size is None:
            step.fail(path, why or "malformed")
            return
        self.checkpoint_body, self.checkpoint_root, self.checkpoint_size = body, root, size
        error = self._checkpoint_signature(checkpoint, body)
        if error:
            step.fail(path, error)
            return
        step.fact(
            f"tree size {size}, root {root.hex()}, signed by key {self.key_id} "
            f"({checkpoint.get('origin')!r}, {checkpoint.get('created_at')!r})"
        )

    def _checkpoint_fields(
        self, checkpoint: Any
    ) -> tuple[bytes | None, bytes | None, int | None, str | None]:
        if not isinstance(checkpoint, dict):
            return None, None, None, "not a JSON object"
        origin = checkpoint.get("origin")
        size = checkpoint.get("tree_size")
        root = _hex32(checkpoint.get("root_hash"))
        if not isinstance(origin, str) or not origin or "\n" in origin:
            return None, None, None, "origin is missing or holds a line break"
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None, None, None, "tree_size is not a non-negative integer"
        if root is None:
            return None, None, None, "root_hash is not a SHA-256 hex digest"
        return checkpoint_body(origin, size, root), root, size, None

    def _checkpoint_signature(self, checkpoint: dict[str, Any], body: bytes) -> str | None:
        return self._signed_by_key(checkpoint, body, "the checkpoint body")

    def _signed_by_key(self, doc: dict[str, Any], message: bytes, what: str) -> str | None:
        """Why a JSON document's `key_id` and base64 `signature` do not sign `message` with
        the signing key; None when they do. Checkpoints and the bag signature share this."""
        return _signature_problem(doc, self.key, message, what)

    def _custody_proofs(self, custody: dict[str, Any], entries: list[_Entry], step: _Step) -> None:
        path = custody.get("proofs")
        if not isinstance(path, str):
            step.fail("bundle.json", "custody.proofs is missing")
            return
        read, doc = self._json_file("data/" + path, path, step)
        if not read:
            return
        if not isinstance(doc, dict) or not isinstance(doc.get("proofs"), list):
            step.fail(path, "not an object with a proofs list")
            return
        size, root = doc.get("tree_size"), _hex32(doc.get("root"))
        if not _is_int(size) or root is None:
            step.fail(path, "tree_size or root is missing or malformed")
            return
        if self.checkpoint_size is None or self.checkpoint_root is None:
            step.fail(path, "cannot be checked: the checkpoint is unusable")
            return
        if size != self.checkpoint_size or root != self.checkpoint_root:
            step.fail(
                path,
                f"proves against tree size {size}, root {root.hex()}, but the checkpoint signs "
                f"size {self.checkpoint_size}, root {self.checkpoint_root.hex()}",
            )
            return
        proofs = doc["proofs"]
        if len(proofs) != len(entries):
            step.fail(path, f"holds {len(proofs)} proofs for {len(entries)} entries")
        proven = 0
        for entry, proof in zip(entries, proofs, strict=False):
            where = f"custody entry seq {entry.seq}"
            if not isinstance(proof, dict):
                step.fail(where, "its proof is not an object")
                continue
            index, nodes = proof.get("leaf_index"), _hex_path(proof.get("path"))
            if proof.get("seq") != entry.seq:
                step.fail(where, f"its proof is for seq {proof.get('seq')!r}")
                continue
            if not _is_int(entry.seq) or index != entry.seq - 1:
                # seq is gapless from 1, so the entry with seq N is leaf N - 1.
                step.fail(where, f"its proof is for leaf {index!r}, not leaf {entry.seq}-1")
                continue
            if nodes is None:
                step.fail(where, "its proof path is not a list of SHA-256 hex digests")
                continue
            try:
                verify_inclusion(entry.leaf, index, size, nodes, root)
            except ProofInvalid as exc:
                step.fail(where, f"not in the checkpoint's tree: {exc}")
                continue
            proven += 1
        step.fact(f"{proven} entries proven in the tree of {size} the checkpoint signs")

    def _custody_captures(self, entries: list[_Entry], step: _Step) -> None:
        by_capture: dict[str, list[_Entry]] = {}
        for entry in entries:
            if entry.action == "capture.recorded" and _get(entry.object, "type") == "capture":
                by_capture.setdefault(str(_get(entry.object, "id")), []).append(entry)
        for exhibit in self.exhibits:
            want = exhibit.manifest_sha256.lower() if exhibit.manifest_sha256 else None
            records = by_capture.get(str(exhibit.capture_id), []) if exhibit.capture_id else []
            if any(isinstance(e.sha256, str) and e.sha256.lower() == want for e in records):
                continue
            for entry in records:
                step.fail(
                    f"custody entry seq {entry.seq}",
                    f"records capture {exhibit.capture_id} with SHA-256 {entry.sha256!r}, but "
                    f"{exhibit.number}'s manifest hashes to {want}",
                )
            if not records:
                step.fail(
                    exhibit.number,
                    f"no capture.recorded custody entry for capture {exhibit.capture_id}",
                )
        step.fact(f"each of {len(self.exhibits)} exhibit(s) has its capture.recorded entry")

    def _custody_export(self, entries: list[_Entry], step: _Step) -> None:
        """The bundle's own export.started entry, which the signed checkpoint covers, is its
        last custody entry and records its exhibits and who exported it, as bundle.json says.

        The bag's manifests are not signed: without this, a forger who rewrites them could drop
        an exhibit (its files, index entry and graph nodes), renumber exhibits, or cut the
        custody entries at the end of the case (with their proofs, or by swapping in an older
        checkpoint of the same log that all the remaining entries fit in)."""
        index = self.index or {}
        export_id = index.get("export_id")
        where = "bundle.json"
        started = [e for e in entries if e.action == "export.started" and export_id is not None
                   and (_get(e.object, "id") == export_id
                        or _get(e.details, "export_id") == export_id)]
        if not started:
            step.fail(where, f"no export.started custody entry for export {export_id!r}: the "
                             "bundle must prove its own request, the last entry before its "
                             "checkpoint (entries cut off at the end?)")
            return
        entry = started[-1]
        here = f"custody entry seq {entry.seq}"
        self.note(f"Custody entry seq {entry.seq} records the request for this export.")
        if entry is not entries[-1]:
            step.fail(here, f"export.started of this export is followed by seq "
                            f"{entries[-1].seq}: the checkpoint is cut right after it")
        recorded = _get(entry.details, "exhibits")
        if isinstance(recorded, list):
            want = [(str(_get(r, "number")), str(_get(r, "capture")),
                     str(_get(r, "manifest_sha256") or "").lower()) for r in recorded]
            got = [(e.number, str(e.capture_id), str(e.manifest_sha256 or "").lower())
                   for e in self.exhibits]
            for number, capture, sha in want:
                if (number, capture, sha) not in got:
                    step.fail(where, f"exhibit {number} (capture {capture}, manifest {sha}) is "
                                     f"recorded by {here} (export.started) but not in the bundle "
                                     "as that exhibit (removed or renumbered?)")
            for number, capture, sha in got:
                if (number, capture, sha) not in want:
                    step.fail(number, f"capture {capture} (manifest {sha}) is not an exhibit "
                                      f"{here} (export.started) records as {number}")
            if got != want and sorted(got) == sorted(want):
                step.fail(where, f"exhibits are not in the order {here} records")
        else:
            self.note(f"{here} (export.started) does not list the exhibits, so the bundle's "
                      "exhibit list is not checked against it.")
        exporter = index.get("exported_by")
        for key in ("id", "name"):
            if _get(entry.actor, key) != _get(exporter, key):
                step.fail(where, f"exported_by.{key} is {_get(exporter, key)!r} but {here} "
                                 f"(export.started) was recorded by {_get(entry.actor, key)!r}")
        case = index.get("case")
        if _get(entry.case, "ref") != _get(case, "reference"):
            step.fail(where, f"case.reference is {_get(case, 'reference')!r} but {here} "
                             f"(export.started) names case {_get(entry.case, 'ref')!r}")
        # Either way round: said lower, it is checked for less (no bag signature); said higher,
        # what it adds is left unchecked as unknown to this verifier, with only a note.
        recorded_revision = _get(entry.details, "revision")
        if _is_int(recorded_revision) and recorded_revision != self.revision():
            claimed = index.get("revision")
            step.fail(where, f"revision is {claimed!r} but {here} (export.started) records "
                             f"revision {recorded_revision}: " + (
                                 "the bundle was made to pass as an older one, which is checked "
                                 "for less (its bag signature?)"
                                 if recorded_revision > self.revision() else
                                 "the bundle was made to pass as a newer one, whose additions "
                                 "a verifier that does not know them leaves unchecked"))
        step.fact(f"{here} records this export, its {len(self.exhibits)} exhibit(s) and who "
                  "exported it, and is the last entry before the checkpoint")

    def _received(self, entries: list[_Entry], step: _Step) -> None:
        """Each received file hashes to what bundle.json says and to what its material.received
        custody entry recorded when it was registered; data/received/ holds nothing else."""
        index = self.index or {}
        if "received" not in index:
            step.fail("bundle.json", f"received is missing, which revision {self.revision()} "
                                     "requires (the list of received material was removed?)")
        items = index.get("received")
        items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        recorded: dict[str, list[_Entry]] = {}
        for entry in entries:
            if entry.action == "material.received" and _get(entry.object, "type") == (
                    "received_file"):
                recorded.setdefault(str(_get(entry.object, "id")), []).append(entry)
        listed: set[str] = set()
        octets = 0
        for number, item in enumerate(items):
            path = item.get("path")
            label = item.get("number") if isinstance(item.get("number"), str) else (
                f"bundle.json received[{number}]")
            if not isinstance(path, str):
                continue  # reported by the index check
            listed.add("data/" + path)
            want_sha = str(item.get("sha256") or "").lower()
            got = self.digest("data/" + path)
            if got is None:
                if "data/" + path in self.source.files:
                    step.fail(path, self.why_unread("data/" + path))
                continue  # a missing file is reported by the index check
            self._differs(step, path, got, want_sha, item.get("size"), "bundle.json")
            records = recorded.get(str(item.get("id")), [])
            if not records:
                step.fail(str(label), f"no material.received custody entry for received file "
                                      f"{item.get('id')!r} ({path})")
            for entry in records:
                said = entry.sha256.lower() if isinstance(entry.sha256, str) else None
                if said == got[0]:
                    continue
                if said is not None and said == self.line_ends.get("data/" + path, ("", 0))[0]:
                    step.fail(path, "its line endings were converted after export (see the "
                                    "bag check); converted back, it has the SHA-256 custody "
                                    f"entry seq {entry.seq} recorded when it was received")
                else:
                    step.fail(path, f"SHA-256 is {got[0]} but custody entry seq {entry.seq} "
                                    f"recorded {entry.sha256!r} when it was received")
            octets += got[1]
        for path in sorted(self.source.files):
            if path.startswith("data/received/") and path not in listed:
                step.fail(_rel(path), "not listed in bundle.json's received material (added?)")
        step.fact(f"{len(listed)} received file(s), {_human(octets)}, match bundle.json and "
                  "their material.received custody entries")
        if self.revision() >= REVISION_RECEIVED_SCOPE:
            self._received_scope(entries, items, step)

    def _received_scope(self, entries: list[_Entry], items: list[dict[str, Any]],
                        step: _Step) -> None:
        """What a bundle of chosen targets leaves out is listed, as its export.started entry
        recorded it, and every received file the custody slice records before that entry is
        either carried or listed: nothing of the case's received material goes missing
        unsaid."""
        index = self.index or {}
        where = "bundle.json"
        targets = index.get("targets")
        if targets is not None and not (isinstance(targets, list) and all(
                isinstance(t, str) for t in targets)):
            step.fail(where, "targets is neither null nor a list of target ids")
            targets = None
        left = index.get("received_left_out")
        if not isinstance(left, list) or not all(
                isinstance(i, dict) and isinstance(i.get("id"), str) for i in left):
            step.fail(where, "received_left_out is not a list of received files, each with an id")
            left = []
        export_id = index.get("export_id")
        started = next((e for e in entries if e.action == "export.started"
                        and export_id is not None and _get(e.object, "id") == export_id), None)
        if started is None:
            step.fail(where, f"no export.started custody entry for export {export_id!r}, "
                             "which records what received material it carries")
            return
        here = f"custody entry seq {started.seq}"
        recorded_targets = _get(started.details, "targets") or []
        if sorted(recorded_targets) != sorted(targets or []):
            step.fail(where, f"targets {targets!r} are not the ones {here} (export.started) "
                             f"records: {recorded_targets!r}")

        def pairs(values: Any) -> dict[str, str]:
            return {str(_get(v, "id")): str(_get(v, "sha256") or "").lower()
                    for v in _as_list(values or []) if isinstance(v, dict)}

        carried, left_pairs = pairs(items), pairs(left)
        for what, listed, key in (("received", carried, "received"),
                                  ("received_left_out", left_pairs, "received_left_out")):
            recorded = pairs(_get(started.details, key))
            for file_id in sorted(set(recorded) ^ set(listed)):
                how = ("is missing from" if file_id in recorded else "is not recorded in")
                step.fail(where, f"received file {file_id} {how} {what} as {here} "
                                 "(export.started) records it")
            for file_id in sorted(set(recorded) & set(listed)):
                if recorded[file_id] != listed[file_id]:
                    step.fail(where, f"{what}: received file {file_id} has SHA-256 "
                                     f"{listed[file_id]} but {here} records {recorded[file_id]}")
        for entry in entries:
            if not (entry.action == "material.received" and _is_int(entry.seq)
                    and _is_int(started.seq) and entry.seq < started.seq):
                continue
            file_id = str(_get(entry.object, "id"))
            if file_id not in carried and file_id not in left_pairs:
                step.fail(f"custody entry seq {entry.seq}",
                          f"received file {file_id} is neither in this bundle nor listed as "
                          "left out (received_left_out)")
        if targets is None:
            step.fact("the whole case was exported: all of its received material is carried")
            return
        answers = sum(1 for i in left if i.get("request_id") is not None)
        step.fact(f"exported for {len(targets)} chosen target(s): {len(left)} received file(s) "
                  f"of the case left out ({answers} answering other requests, "
                  f"{len(left) - answers} from other sources), as {here} records")
        if left:
            shown = ", ".join(f"{i.get('number') or i.get('id')} ({i.get('why') or 'no reason'})"
                              for i in left[:20])
            more = f" and {len(left) - 20} more" if len(left) > 20 else ""
            self.note(f"This bundle holds the evidence of chosen targets only. It leaves out "
                      f"{len(left)} received file(s) of the case: {shown}{more}.")

    def _custody_consistency(self, step: _Step) -> None:
        old = self.against
        where = "older checkpoint"
        body, old_root, old_size, why = self._checkpoint_fields(old)
        if why or body is None or old_root is None or old_size is None or old is None:
            step.fail(where, why or "malformed")
            return
        error = self._checkpoint_signature(old, body)
        if error:
            step.fail(where, error)
            return
        new_size, new_root = self.checkpoint_size, self.checkpoint_root
        if new_size is None or new_root is None:
            step.fail(where, "cannot be compared: the bundle's checkpoint is unusable")
            return
        if old_size > new_size:
            step.fail(
                where,
                f"covers {old_size} entries, more than the bundle's checkpoint ({new_size}): the "
                "log was cut short or forked",
            )
            return
        if old_size == new_size:
            if old_root != new_root:
                step.fail(where, "same tree size as the bundle's checkpoint but a different root")
            else:
                step.fact(f"same tree size {new_size} and root as the bundle's checkpoint")
            return
        if old_size == 0:
            step.fact("the older checkpoint is of the empty log")
            return
        proof = self.consistency
        if not isinstance(proof, dict):
            step.fail(where, f"a consistency proof from size {old_size} to {new_size} is needed")
            return
        nodes = _hex_path(proof.get("path"))
        if proof.get("old_size") != old_size or proof.get("new_size") != new_size:
            step.fail(
                "consistency proof",
                f"is from size {proof.get('old_size')!r} to {proof.get('new_size')!r}, not "
                f"{old_size} to {new_size}",
            )
            return
        if nodes is None:
            step.fail("consistency proof", "path is not a list of SHA-256 hex digests")
            return
        try:
            verify_consistency(old_size, new_size, old_root, new_root, nodes)
        except ProofInvalid as exc:
            step.fail("consistency proof", str(exc))
            return
        step.fact(f"the log of {old_size} entries is a prefix of the bundle's {new_size}")

    # -- 6. CASE graph ----------------------------------------------------------------------

    def _check_graph(self, step: _Step) -> None:
        path = (self.index or {}).get("case_graph")
        if not isinstance(path, str):
            step.fail("bundle.json", "case_graph is missing")
            return
        read, graph = self._json_file("data/" + path, path, step)
        if not read:
            return
        problems: list[str] = []
        files = _graph_files(graph, problems)
        for problem in problems:
            step.fail(path, problem)
        for file_path, (sha256, size) in sorted(files.items()):
            got = self.digest("data/" + file_path)
            if got is None:
                step.fail(file_path, "described by the case graph but missing from the bundle")
                continue
            self._differs(step, file_path, got, sha256, size, "the case graph")
        for exhibit in self.exhibits:
            for entry in exhibit.files:
                named = entry.get("path")
                if isinstance(named, str) and named not in files:
                    step.fail(named, "an exhibit file the case graph does not describe")
        items = (self.index or {}).get("received")
        received = [p for p in (_get(i, "path") for i in _as_list(items or []))
                    if isinstance(p, str)]
        if self.revision() >= REVISION_RECEIVED_IN_GRAPH or any(p in files for p in received):
            for named in received:
                if named not in files:
                    step.fail(named, "a received file the case graph does not describe")
        elif received:
            # Bundles exported before the graph described received material (they have no
            # revision): those files are still checked against bundle.json and their custody
            # entries.
            self.note(f"The case graph describes none of the {len(received)} received file(s): "
                      "it was written before received material was in the graph.")
        step.fact(f"{len(files)} file node(s) agree with the files")


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _key_id(key: ed25519.Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _load_ed25519(pem: bytes, where: str, step: _Step) -> ed25519.Ed25519PublicKey | None:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        step.fail(where, f"not a PEM public key ({exc})")
        return None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        step.fail(where, f"a {type(key).__name__}, not an Ed25519 key")
        return None
    return key


def verify_bundle(
    path: str | os.PathLike[str],
    *,
    key_pem: bytes | None = None,
    trusted_tsa_pems: Sequence[bytes] = (),
    against_checkpoint: dict[str, Any] | None = None,
    consistency_proof: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> VerificationReport:
    """Check a bundle (the ZIP or the unzipped bag folder); every failure is in `problems`."""
    text = os.fspath(path)
    report = VerificationReport(bundle=_input_name(text))
    verifier = _Verifier(
        report,
        key_pem=key_pem,
        trusted_tsa_pems=trusted_tsa_pems,
        against_checkpoint=against_checkpoint,
        consistency_proof=consistency_proof,
        progress=progress,
    )
    try:
        verifier.run(text)
    except Exception as exc:  # the report must always come back; a bug is a failed check
        report.checks.append(Check("verifier", False, f"internal error: {exc}"))
        report.problems.append(f"verifier: internal error: {type(exc).__name__}: {exc}")
    return report


# ---------------------------------------------------------------------------------------------
# Command line


def input_refusal(path: str, *, folder_ok: bool = False) -> str | None:
    """Why `path` is not read as input, or None to read it.

    Only a regular file is read, or a folder where one is asked for: opening a named pipe waits
    for a writer that may never come, and a device or socket may never end (/dev/zero,
    /dev/stdin on a terminal). A path that cannot be looked at is left to the read, whose error
    names it.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or (folder_ok and stat.S_ISDIR(mode)):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))  # fmt: skip
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"is {kind}, not a regular file{' or folder' if folder_ok else ''}; not read"


def key_problem(pem: bytes) -> str | None:
    """Why `pem` cannot be a unit's signing key to pin, in words for whoever passed it; None
    when it is an Ed25519 public key. The wrong file given to --key is the user's mistake, to
    be said before anything is checked, not a bundle whose every signature then fails."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if b"PRIVATE KEY-----" in pem:
            return ("is a private key, not a public key: give the unit's public key, the file "
                    "that begins -----BEGIN PUBLIC KEY-----")
        if b"-----BEGIN CERTIFICATE-----" in pem:
            return ("is a certificate, not the unit's signing key (a timestamp authority's "
                    "certificate goes to --trust-tsa)")
        return ("is not a public key in PEM form (a text file that begins -----BEGIN PUBLIC "
                "KEY-----); a key id is compared by eye with the one the report prints")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return None
    kinds = ((rsa.RSAPublicKey, "an RSA"), (ec.EllipticCurvePublicKey, "an elliptic-curve"),
             (ed448.Ed448PublicKey, "an Ed448"))  # fmt: skip
    kind = next((name for cls, name in kinds if isinstance(key, cls)), "another kind of")
    return f"is {kind} public key, not the Ed25519 key evidence-locker signs with"


def _read_arg_file(option: str, path: str, limit: int) -> bytes:
    """The file an option names, or ValueError saying in plain words why it cannot be read."""
    refusal = input_refusal(path)
    if refusal is not None:
        raise ValueError(f"{option} {path}: {refusal}")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ValueError(f"{option} {path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise ValueError(f"{option} {path}: larger than {_human(limit)}, so not what it asks for")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="verify.py",
        description="Verify an evidence bundle offline: files, signatures, timestamps, custody.",
        epilog="Exit status: 0 when every check holds (VERIFIED); 1 when the bundle was checked "
               "and is NOT VERIFIED (the report names each problem, and any check it could not "
               "run); 2 when nothing could be checked: the bundle is missing, unreadable or not "
               "a bundle, or an option's file is not what the option takes. `evidence verify` "
               "exits the same way.",
    )
    parser.add_argument("bundle", help="the bundle ZIP, or the unzipped bag folder")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--key", metavar="PEM", help="pin the unit's Ed25519 public key")
    parser.add_argument(
        "--trust-tsa", metavar="PEM", action="append", default=[],
        help="also trust this timestamp authority certificate (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--against-checkpoint", metavar="OLD.json",
        help="an older checkpoint you kept; the bundle's log must extend it",
    )  # fmt: skip
    parser.add_argument(
        "--consistency-proof", metavar="FILE",
        help='JSON {"old_size", "new_size", "path"} from the older checkpoint to the bundle\'s',
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2

    try:
        key_pem = _read_arg_file("--key", args.key, MAX_KEY_FILE) if args.key else None
        if key_pem is not None and (problem := key_problem(key_pem)):
            raise ValueError(f"--key {args.key}: {problem}")
        anchors = [_read_arg_file("--trust-tsa", p, MAX_KEY_FILE) for p in args.trust_tsa]
        against = consistency = None
        for option, name in (("--against-checkpoint", args.against_checkpoint),
                             ("--consistency-proof", args.consistency_proof)):  # fmt: skip
            if not name:
                continue
            try:
                doc = _load_json(_read_arg_file(option, name, MAX_JSON))
            except _BadJson as exc:
                raise ValueError(f"{option} {name}: not JSON ({exc})") from None
            if not isinstance(doc, dict):
                raise ValueError(f"{option} {name}: not a JSON object")
            if option == "--against-checkpoint":
                against = doc
            else:
                consistency = doc
    except ValueError as exc:
        print(f"verify: {exc}; nothing was checked", file=sys.stderr)
        return 2
    if not os.path.exists(args.bundle):
        print(f"verify: {args.bundle}: no such file or folder", file=sys.stderr)
        return 2
    refusal = input_refusal(args.bundle, folder_ok=True)
    if refusal is not None:
        print(f"verify: {args.bundle}: {refusal}", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = verify_bundle(
        args.bundle,
        key_pem=key_pem,
        trusted_tsa_pems=anchors,
        against_checkpoint=against,
        consistency_proof=consistency,
        progress=None if args.quiet else progress,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(report.render())
    if report.unreadable:
        return 2
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
