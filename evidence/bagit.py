"""Export bundles as BagIt 1.0 bags (RFC 8493) serialised in a ZIP, and verify them offline.

A bundle is what a prosecutor hands over and what anyone, the defence included, checks without
our servers: `BagWriter` streams payload files into the ZIP while hashing them, then writes the
tag files; `validate_bag` re-hashes everything and lists each problem by file; `read_bag` parses
the tag files without hashing the payload. Both read a ZIP that may be hostile.

Decisions, so a reader need not reverse them out of the code:

- Layout. Every entry sits under one top-level folder named after the bag: ``<bag>/bagit.txt``,
  ``<bag>/bag-info.txt``, ``<bag>/manifest-sha256.txt``, ``<bag>/tagmanifest-sha256.txt``,
  extra tag files, and ``<bag>/data/...``. RFC 8493 itself dropped the serialisation section;
  "one bag per archive, unpacking to a single base folder" is the rule of its drafts and of
  common practice, and unzipping then gives a folder any BagIt tool can validate. Reading takes
  what the offline verifier takes (`bundle_verifier.zip_bag`, one rule for both): a bundle
  someone re-zipped, with folder entries or with the bag's files at the top of the ZIP, is read
  as the bag it holds, and `Bag.repacked` says how its ZIP differs from the one written here.
- Tag files are UTF-8 without a BOM, lines end in LF. Readers accept LF, CR and CRLF.
- Manifest paths percent-encode exactly ``%``, CR and LF (as ``%25``, ``%0D``, ``%0A``), as
  RFC 8493 section 2.1.3 requires. The Library of Congress ``bagit`` package (1.9) decodes only
  CR and LF, so it misreads a payload name that contains ``%``; we follow the RFC.
- The bag may be signed: `close(seal=...)` writes the signature over the tag manifest as one
  more tag file, `bundle_verifier.BAG_SIGNATURE`, after it (no manifest lists it; the tag
  manifest cannot list its own signature). Reading sets it aside like the tag manifests, though
  its entry is still read (so its CRC-32 is checked); `validate_bag(signed_by=key)` checks the
  signature with the verifier's own rule (`bundle_verifier.bag_signature_problem`). Without a
  key it is not checked: which key a bundle is signed with is the bundle's business, read from
  bundle.json by verify.py and `evidence verify` (see docs/bundle-format.md).
- Only SHA-256 manifests are written. The validator also checks md5/sha1/sha224/sha384/sha512
  manifests when present, and requires manifest-sha256.txt and tagmanifest-sha256.txt: without
  the tag manifest bag-info.txt could be edited unnoticed.
- Compression. Entries whose format is already compressed are STORED (re-deflating them costs
  CPU and saves next to nothing): images (png, jpg, gif, webp, avif, heic), audio and video
  (mp4, mov, webm, mkv, mp3, m4a, ogg, opus, flac), archives (zip, gz so also warc.gz, bz2, xz,
  zst, 7z, wacz), PDF (its streams are Flate-compressed already), OOXML/ODF/EPUB (ZIP
  containers) and woff/woff2. Everything else is DEFLATED, including MHTML (its base64 parts
  shrink by about a quarter), plain WARC, HTML, JSON and text, unless its first 256 KiB do
  not shrink by 5% at the fastest level (media saved under a name without its extension).
  ``compress=`` overrides.
- Streaming. Data moves in 1 MiB chunks; nothing holds a whole file. Entries whose size is
  unknown in advance are written with ZIP64 headers so they may exceed 4 GiB; the output stream
  need not be seekable (ZIP data descriptors are used then).
- Hostile archives. Before anything is decompressed: the central directory's size and entry
  count, the declared uncompressed total and the sum of compressed sizes (overlapping entries,
  the trick of the densest zip bombs, add up to more than the archive) are bounded; names with
  ``..``, empty parts, a leading ``/``, a drive letter, a backslash or NUL, symlink entries,
  encrypted entries and unknown compression methods are refused and never read, as is an entry
  whose local header or Info-ZIP Unicode Path field (0x7075) names another file than the
  central directory does, or whose local header gives another compression method, flags,
  sizes or CRC-32 (`bundle_verifier.entry_header_flaw`, one rule for both: unzip or a
  streaming extractor would write it under that name, perhaps over a file that was checked, or
  read other bytes), or whose name is an earlier entry's but for letter case
  (`bundle_verifier.name_clash`, the one wording). Entries are read by the verifier's reader
  (`bundle_verifier.entry_chunks`): decompression is cut off at each entry's declared size, so
  a lying header cannot inflate past the bound, bytes the compressed size counts past the end
  of the data fail the entry, and so does content whose CRC-32 is not the one recorded (its
  digests still compared). End records that contradict each other or the central directory
  fail the bag (`bundle_verifier.end_record_flaws`), the entries still read.
  Bytes that belong to no entry (before the first, between two, between the last and the
  central directory, between it and the end records or within them, in a comment, after the
  end record) or to two (overlapping entries) make it not the file written here, though
  zipfile reads past them: a problem of its own (`bundle_verifier.outside_archive`, one rule
  for both), beside whatever else is wrong.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, BinaryIO, Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# The reading half shares the offline verifier's helpers (verify.py, shipped in every bundle),
# so the service and the defence parse a bag the same way.
from evidence.bundle_verifier import (
    BAG_SIGNATURE,
    _BadJson,
    _central_directory_declared,
    _CrcMismatch,
    _listed_path_flaw,
    _load_json,
    _os_metadata,
    _oxum_differs,
    _path_flaw,
    bag_signature_problem,
    end_record_flaws,
    entry_chunks,
    entry_header_flaw,
    name_clash,
    outside_archive,
    same_file_key,
    zip_bag,
)
from evidence.bundle_verifier import _decode_manifest_path as decode_manifest_path
from evidence.bundle_verifier import _human as _human_size
from evidence.bundle_verifier import _ReadError as _EntryUnreadable
from evidence.bundle_verifier import _text_lines as _split_lines
from evidence.errors import EvidenceError, InvalidInput

CHUNK = 1024 * 1024
BAGIT_VERSION = "1.0"
BAG_DECLARATION = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

STORED_SUFFIXES = frozenset(
    {
        # images
        ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".heic", ".heif", ".jxl",
        # audio and video
        ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".3gp",
        ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".ogv", ".opus", ".flac",
        # archives, including .warc.gz, .tar.gz and WACZ (a ZIP)
        ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".wacz",
        # documents that are compressed containers
        ".pdf", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".epub",
        # fonts
        ".woff", ".woff2",
    }
)  # fmt: skip

# Labels the writer computes itself; a caller supplying them would contradict the bag.
COMPUTED_LABELS = frozenset({"bagging-date", "bag-size", "payload-oxum"})

_HASHES = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
_MANIFEST_NAME = re.compile(r"^(tag)?manifest-([a-z0-9]+)\.txt$")
_MANIFEST_LINE = re.compile(r"^([0-9A-Fa-f]+)[ \t]+(.+)$")
_OXUM = re.compile(r"^(\d+)\.(\d+)$")
_RESERVED_TAG_NAMES = frozenset({"bagit.txt", "bag-info.txt", "fetch.txt", BAG_SIGNATURE})
_FILE_MODE = 0o100644 << 16
_DIR_MODE = (0o040755 << 16) | 0x10  # 0x10: the MS-DOS directory flag
_S_IFMT = 0o170000
_S_IFLNK = 0o120000


class BagPathRejected(InvalidInput):
    """A payload or tag path would escape the bag, is reserved, or clashes with another."""


class BagWriterFailed(EvidenceError):
    """A previous write failed half-way; the ZIP is incomplete and must be discarded."""

    status_code = 500


class BagInvalid(EvidenceError):
    """The archive is not a readable bag; `problems` says why, file by file."""

    status_code = 422

    def __init__(self, problems: list[BagProblem]) -> None:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"not a valid bag: {shown}{more}")
        self.problems = problems


@runtime_checkable
class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


PayloadSource = Path | bytes | Readable | BinaryIO | Iterable[bytes]


@dataclass(frozen=True)
class PayloadEntry:
    path: str  # relative to the bag folder, so it starts with "data/"
    size: int
    sha256: str


@dataclass(frozen=True)
class BagSummary:
    name: str
    payload: tuple[PayloadEntry, ...]
    payload_octets: int
    tag_files: Mapping[str, str]  # path -> SHA-256 of every file the tag manifest lists
    tagmanifest_sha256: str  # covers the tag files, which cover the payload: what `seal` signs

    @property
    def payload_oxum(self) -> str:
        return f"{self.payload_octets}.{len(self.payload)}"


class ProblemKind(StrEnum):
    UNREADABLE = "unreadable"
    TOO_LARGE = "too-large"
    UNSAFE_ENTRY = "unsafe-entry"
    DUPLICATE_ENTRY = "duplicate-entry"
    LAYOUT = "layout"
    BAD_DECLARATION = "bad-declaration"
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"
    MISSING_FILE = "missing-file"
    UNLISTED_FILE = "unlisted-file"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    CORRUPT_ENTRY = "corrupt-entry"
    OXUM_MISMATCH = "oxum-mismatch"
    OUTSIDE_ENTRIES = "outside-entries"
    END_RECORD_MISMATCH = "end-record-mismatch"
    BAD_SIGNATURE = "bad-signature"


@dataclass(frozen=True)
class BagProblem:
    path: str  # bag-relative path, a raw ZIP entry name, or the archive's file name
    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what a bag read from outside may make us do."""

    max_entries: int = 200_000
    max_central_directory: int = 64 * 1024 * 1024
    max_total_size: int = 1024**4  # declared uncompressed bytes, all entries together
    max_tag_file_size: int = 256 * 1024 * 1024  # bagit.txt, bag-info.txt and the manifests


DEFAULT_LIMITS = ReadLimits()


@dataclass(frozen=True)
class Bag:
    name: str
    version: str
    info: tuple[tuple[str, str], ...]  # bag-info.txt in order; labels may repeat
    manifest: Mapping[str, str]  # payload path -> SHA-256, from manifest-sha256.txt
    tag_manifest: Mapping[str, str]  # tag path -> SHA-256, from tagmanifest-sha256.txt
    sizes: Mapping[str, int]  # every file in the bag -> size its ZIP entry declares
    # How the ZIP differs from the one BagWriter writes (re-packed after export); () when not.
    repacked: tuple[str, ...] = ()
    # Files a desktop wrote that no manifest lists (path -> what wrote it): not bag content, set
    # aside as verify.py sets them aside (and warns of them).
    desktop_metadata: Mapping[str, str] = field(default_factory=dict)

    def info_values(self, label: str) -> list[str]:
        wanted = label.casefold()
        return [value for key, value in self.info if key.casefold() == wanted]

    @property
    def payload_oxum(self) -> tuple[int, int] | None:
        values = self.info_values("Payload-Oxum")
        match = _OXUM.match(values[0]) if len(values) == 1 else None
        return (int(match.group(1)), int(match.group(2))) if match else None


def encode_manifest_path(path: str) -> str:
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def should_compress(name: str) -> bool:
    lowered = name.lower()
    return not any(lowered.endswith(suffix) for suffix in STORED_SUFFIXES)


_PROBE = 256 * 1024


def compressible(sample: bytes) -> bool:
    """Whether deflating pays, judged on the start of the content: media saved under a name
    without its extension (a video fetched from `/v?id=1`) is stored like any other video."""
    if len(sample) < 4096:
        return True
    probe = sample[:_PROBE]
    return len(zlib.compress(probe, 1)) < 0.95 * len(probe)


# ---------------------------------------------------------------------------------------------
# Writing


class BagWriter:
    """Streams one bag into a ZIP: `add_file`/`add_tag_file` in any order, then `close` once.

    The output stream stays open and belongs to the caller. If anything raises half-way the ZIP
    is incomplete: discard it.
    """

    def __init__(
        self,
        out: IO[bytes],
        *,
        bag_name: str,
        bagging_time: datetime | None = None,
    ) -> None:
        if not bag_name or "/" in bag_name or "\\" in bag_name or bag_name in (".", ".."):
            raise BagPathRejected(f"{bag_name!r} cannot name the bag's top-level folder")
        self.name = bag_name
        self._time = (bagging_time or datetime.now(UTC)).astimezone(UTC)
        self._zip_time = self._time.timetuple()[:6]
        self._zip = zipfile.ZipFile(out, "w", allowZip64=True)
        self._payload: list[PayloadEntry] = []
        self._tags: dict[str, str] = {}
        # The standard tag files and data/ are claimed up front, so nothing can shadow them.
        self._taken_files = {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "fetch.txt"}
        self._taken_files.update({"tagmanifest-sha256.txt", BAG_SIGNATURE})
        self._taken_dirs = {"data"}
        self._closed = False
        self._broken = False
        with self._writing():
            self._write_entry("bagit.txt", BAG_DECLARATION, compress=True)
            data_dir = self._info(f"{self.name}/data/")
            data_dir.external_attr = _DIR_MODE
            data_dir.compress_size = data_dir.file_size = data_dir.CRC = 0
            self._zip.mkdir(data_dir)  # so an empty payload still unpacks to data/
        self._tags["bagit.txt"] = hashlib.sha256(BAG_DECLARATION).hexdigest()

    def add_file(
        self, path_in_data: str, source: PayloadSource, *, compress: bool | None = None
    ) -> PayloadEntry:
        self._check_open()
        if isinstance(source, str):
            raise TypeError("pass a Path for a file name, not a str")
        path = "data/" + _check_relative(path_in_data)
        self._claim(path)
        with self._writing():
            size, sha256 = self._write_entry(path, source, compress=_choice(path, compress))
        entry = PayloadEntry(path=path, size=size, sha256=sha256)
        self._payload.append(entry)
        return entry

    def add_tag_file(self, name: str, content: bytes, *, compress: bool | None = None) -> str:
        """Adds a file beside bagit.txt (a README, a verifier script); returns its SHA-256."""
        self._check_open()
        path = _check_relative(name)
        lowered = path.lower()
        if (
            lowered in _RESERVED_TAG_NAMES
            or _MANIFEST_NAME.match(lowered)
            or lowered == "data"
            or lowered.startswith("data/")
        ):
            raise BagPathRejected(f"{name!r} is reserved by BagIt")
        self._claim(path)
        with self._writing():
            _, sha256 = self._write_entry(path, content, compress=_choice(path, compress))
        self._tags[path] = sha256
        return sha256

    def abort(self) -> None:
        """Give up on the bag: write nothing more, not even the ZIP's central directory.

        Without it, zipfile writes the directory when the writer is garbage collected, into
        an output the caller has already closed or discarded.
        """
        self._closed = True
        self._broken = True
        self._zip.fp = None

    def close(
        self,
        bag_info: Mapping[str, str | list[str]],
        *,
        seal: Callable[[str, str], bytes] | None = None,
    ) -> BagSummary:
        """Writes bag-info.txt and the manifests, then, given `seal`, its answer for the bag's
        name and the tag manifest's SHA-256 (the signature) as BAG_SIGNATURE, the last entry."""
        self._check_open()
        octets = sum(entry.size for entry in self._payload)
        info = _render_bag_info(
            bag_info,
            computed=[
                ("Bagging-Date", self._time.date().isoformat()),
                ("Bag-Size", _human_size(octets)),
                ("Payload-Oxum", f"{octets}.{len(self._payload)}"),
            ],
        )
        manifest = "".join(
            f"{entry.sha256}  {encode_manifest_path(entry.path)}\n"
            for entry in sorted(self._payload, key=lambda e: e.path)
        ).encode()
        with self._writing():
            for name, content in (("bag-info.txt", info), ("manifest-sha256.txt", manifest)):
                self._tags[name] = self._write_entry(name, content, compress=True)[1]
            tagmanifest = "".join(
                f"{digest}  {encode_manifest_path(name)}\n"
                for name, digest in sorted(self._tags.items())
            ).encode()
            self._write_entry("tagmanifest-sha256.txt", tagmanifest, compress=True)
            tagmanifest_sha256 = hashlib.sha256(tagmanifest).hexdigest()
            if seal is not None:
                self._write_entry(BAG_SIGNATURE, seal(self.name, tagmanifest_sha256),
                                  compress=True)
            self._zip.close()
        self._closed = True
        return BagSummary(
            name=self.name,
            payload=tuple(self._payload),
            payload_octets=octets,
            tag_files=dict(self._tags),
            tagmanifest_sha256=tagmanifest_sha256,
        )

    def _check_open(self) -> None:
        if self._broken:
            raise BagWriterFailed("an earlier write failed; this bag is incomplete")
        if self._closed:
            raise ValueError("the bag is already closed")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._broken = True
            raise

    def _claim(self, path: str) -> None:
        # Folded like Windows and macOS file systems fold names, so the bag unpacks anywhere.
        key = same_file_key(path)
        parents = [key.rsplit("/", n)[0] for n in range(1, key.count("/") + 1)]
        if key in self._taken_files or key in self._taken_dirs:
            raise BagPathRejected(f"{path!r} clashes with a path already in the bag")
        clash = next((p for p in parents if p in self._taken_files), None)
        if clash is not None:
            raise BagPathRejected(f"{path!r} needs a folder where the bag has the file {clash!r}")
        self._taken_files.add(key)
        self._taken_dirs.update(parents)

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._zip_time)
        info.create_system = 3  # Unix, so external_attr carries the permission bits
        return info

    def _write_entry(
        self, path: str, source: PayloadSource, *, compress: bool | None
    ) -> tuple[int, str]:
        """`compress` None: deflate when the first chunk shows that it pays."""
        info = self._info(f"{self.name}/{path}")
        info.external_attr = _FILE_MODE
        chunks = _chunks(source)
        first = next(chunks, b"")
        if compress if compress is not None else compressible(first):
            info.compress_type = zipfile.ZIP_DEFLATED
        known = _known_size(source)
        if known is not None:
            info.file_size = known
        digest = hashlib.sha256()
        size = 0
        # Unknown sizes get ZIP64 headers up front: zipfile cannot widen them afterwards.
        with self._zip.open(info, "w", force_zip64=known is None) as sink:
            for chunk in itertools.chain((first,), chunks):
                digest.update(chunk)
                sink.write(chunk)
                size += len(chunk)
        return size, digest.hexdigest()


def _choice(path: str, compress: bool | None) -> bool | None:
    """The caller's choice; else stored for a compressed format's name; else decided by content."""
    if compress is not None:
        return compress
    return None if should_compress(path) else False


def _known_size(source: PayloadSource) -> int | None:
    if isinstance(source, Path):
        return source.stat().st_size
    if isinstance(source, bytes | bytearray | memoryview):
        return len(source)
    return None


def _chunks(source: PayloadSource) -> Iterator[bytes]:
    if isinstance(source, Path):
        with source.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
    elif isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])
    elif isinstance(source, Readable):
        while chunk := source.read(CHUNK):
            yield chunk
    else:
        for chunk in source:
            if chunk:
                yield bytes(chunk)


def _check_relative(path: str) -> str:
    reason = _path_flaw(path)
    if reason:
        raise BagPathRejected(f"{path!r}: {reason}")
    return path


def _render_bag_info(
    bag_info: Mapping[str, str | list[str]], *, computed: list[tuple[str, str]]
) -> bytes:
    lines: list[str] = []
    for label, values in bag_info.items():
        if label.casefold() in COMPUTED_LABELS:
            raise InvalidInput(f"bag-info label {label!r} is computed by the writer")
        if not label or ":" in label or "\r" in label or "\n" in label or label != label.strip():
            raise InvalidInput(
                f"bag-info label {label!r} must be non-empty, without ':' or line breaks, and "
                "not start or end with whitespace"
            )
        for value in [values] if isinstance(values, str) else values:
            if "\r" in value or "\n" in value:
                raise InvalidInput(f"bag-info value for {label!r} must be a single line")
            lines.append(f"{label}: {value}\n")
    lines.extend(f"{label}: {value}\n" for label, value in computed)
    return "".join(lines).encode()


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class _Opened:
    """What survived the archive-level checks: the bag folder's safe files, by bag path."""

    handle: BinaryIO  # the ZIP file, read through `bundle_verifier.entry_chunks`
    size: int
    name: str
    files: dict[str, zipfile.ZipInfo]
    repacked: tuple[str, ...] = ()
    desktop_metadata: tuple[tuple[str, str], ...] = ()  # outside the bag


@dataclass
class _TagData:
    version: str = ""
    info: list[tuple[str, str]] = field(default_factory=list)
    manifests: dict[str, dict[str, str]] = field(default_factory=dict)  # alg -> path -> hex
    tag_manifests: dict[str, dict[str, str]] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)  # tag files parsed above, as read


def read_bag(zip_path: Path | str, *, limits: ReadLimits = DEFAULT_LIMITS) -> Bag:
    """Parses the tag files; raises `BagInvalid` if they or the archive are wrong.

    The payload is not hashed: `validate_bag` does that.
    """
    problems: list[BagProblem] = []
    with _open_bag(Path(zip_path), limits, problems) as opened:
        if opened is None:
            raise BagInvalid(problems)
        tags = _read_tag_files(opened, limits, problems)
        if problems:
            raise BagInvalid(problems)
        return Bag(
            name=opened.name,
            version=tags.version,
            info=tuple(tags.info),
            manifest=tags.manifests.get("sha256", {}),
            tag_manifest=tags.tag_manifests.get("sha256", {}),
            sizes={path: info.file_size for path, info in opened.files.items()},
            repacked=opened.repacked,
            desktop_metadata=_desktop_metadata(opened, tags),
        )


def validate_bag(
    zip_path: Path | str,
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    signed_by: Ed25519PublicKey | None = None,
) -> list[BagProblem]:
    """Every reason the bag is not complete and valid; an empty list means it is.

    Given `signed_by`, the bag must also carry BAG_SIGNATURE, that key's signature over its
    tag manifest, checked as verify.py checks it (`bundle_verifier.bag_signature_problem`).
    Without a key the signature is read (so a damaged entry is named) but not checked."""
    problems: list[BagProblem] = []
    with _open_bag(Path(zip_path), limits, problems) as opened:
        if opened is None:
            return problems
        tags = _read_tag_files(opened, limits, problems)
        _verify_contents(opened, tags, problems)
        if signed_by is not None:
            _check_signature(opened, tags, signed_by, problems)
        elif BAG_SIGNATURE in opened.files:
            _read_entry(opened, BAG_SIGNATURE, problems)
    return problems


def _check_signature(
    opened: _Opened, tags: _TagData, key: Ed25519PublicKey, problems: list[BagProblem]
) -> None:
    if BAG_SIGNATURE not in opened.files:
        problems.append(BagProblem(BAG_SIGNATURE, ProblemKind.MISSING_FILE,
                                   "missing: nothing then seals the bag as a whole (removed?)"))
        return
    tagmanifest = tags.raw.get("tagmanifest-sha256.txt")
    content = _read_entry(opened, BAG_SIGNATURE, problems)
    if tagmanifest is None or content is None:
        return  # unreadable or missing: already reported
    try:
        problem = bag_signature_problem(_load_json(content), key,
                                        hashlib.sha256(tagmanifest).hexdigest())
    except _BadJson as exc:
        problem = str(exc)
    if problem:
        problems.append(BagProblem(BAG_SIGNATURE, ProblemKind.BAD_SIGNATURE, problem))


@contextmanager
def _open_bag(
    zip_path: Path, limits: ReadLimits, problems: list[BagProblem]
) -> Iterator[_Opened | None]:
    """Opens the ZIP after bounding it, and checks every entry name before any is read."""
    label = zip_path.name
    try:
        handle = zip_path.open("rb")
    except OSError as exc:
        problems.append(BagProblem(label, ProblemKind.UNREADABLE, str(exc)))
        yield None
        return
    with handle:
        try:
            archive_size = handle.seek(0, io.SEEK_END)
            refusal = _central_directory_refusal(handle, archive_size, limits)
            if refusal:
                problems.append(BagProblem(label, ProblemKind.TOO_LARGE, refusal))
                yield None
                return
            handle.seek(0)
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            problems.append(
                BagProblem(label, ProblemKind.UNREADABLE, f"not a readable ZIP archive: {exc}")
            )
            yield None
            return
        with archive:
            yield _check_entries(archive, handle, label, archive_size, limits, problems)


def _central_directory_refusal(handle: BinaryIO, archive_size: int, limits: ReadLimits) -> str:
    """Reads the end-of-central-directory record, so a huge directory is refused unparsed."""
    declared = _central_directory_declared(handle, archive_size)
    if declared is None:
        return ""  # zipfile will say it is not a ZIP
    entries, cd_size = declared
    if entries > limits.max_entries:
        return f"archive declares {entries} entries, more than the limit of {limits.max_entries}"
    if cd_size > limits.max_central_directory:
        return (
            f"archive's central directory is {cd_size} bytes, more than the limit of "
            f"{limits.max_central_directory}"
        )
    return ""


# The verifier's `_Zip` screens entries too, but into text against fixed limits; here every
# refusal keeps its ProblemKind and the caller's ReadLimits, which `validate_bag` callers rely on.
def _check_entries(
    archive: zipfile.ZipFile,
    handle: BinaryIO,
    label: str,
    archive_size: int,
    limits: ReadLimits,
    problems: list[BagProblem],
) -> _Opened | None:
    infos = archive.infolist()
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_total_size:
        problems.append(
            BagProblem(
                label,
                ProblemKind.TOO_LARGE,
                f"entries declare {declared} bytes uncompressed, more than the limit of "
                f"{limits.max_total_size} (zip bomb?)",
            )
        )
        return None
    packed = sum(info.compress_size for info in infos)
    if packed > archive_size:
        problems.append(
            BagProblem(
                label,
                ProblemKind.TOO_LARGE,
                f"entries' compressed sizes add up to {packed} bytes in a {archive_size}-byte "
                "archive: they overlap (zip bomb)",
            )
        )
        return None
    # The verifier's rule (one home): bytes before the first entry, between entries, in the
    # comment or after the end record are not the file the exporter wrote, though zipfile reads
    # past them. The entries are still checked, so the problem list says what else is wrong.
    for flaw in end_record_flaws(handle, archive_size, infos):  # still read, as zipfile lists
        problems.append(BagProblem(label, ProblemKind.END_RECORD_MISMATCH, flaw))
    outside = outside_archive(handle, archive_size, infos, archive.start_dir)
    if outside:
        problems.append(
            BagProblem(
                label,
                ProblemKind.OUTSIDE_ENTRIES,
                f"{'; '.join(outside)}, which the exporter never writes: this is not the file "
                "that was exported",
            )
        )

    safe: list[zipfile.ZipInfo] = []
    seen: dict[str, str] = {}
    for info in infos:
        name = info.filename
        kind, reason = _entry_flaw(info)
        if not reason:
            # The verifier's rule: an entry `unzip` or a streaming extractor would name after
            # another file (its Unicode Path field, its local header) could land on one that
            # was checked, and one whose local header gives another compression method, sizes
            # or CRC-32 would be read as other bytes than those checked.
            kind, reason = ProblemKind.UNSAFE_ENTRY, entry_header_flaw(handle, archive_size, info)
        if reason:
            problems.append(BagProblem(name, kind, reason))
            continue
        key = same_file_key(name)
        if key in seen:
            problems.append(BagProblem(name, ProblemKind.DUPLICATE_ENTRY,
                                       f"refused unread: {name_clash(name, seen[key])}"))
            continue
        seen[key] = name
        safe.append(info)

    # Which entries are the bag: the verifier's rule, so the service and verify.py agree on a
    # re-packed bundle (bag at the top of the ZIP, folder entries).
    bag = zip_bag(safe)
    for where, message in bag.problems:
        problems.append(BagProblem(where or label, ProblemKind.LAYOUT, message))
    if bag.prefix is None:
        return None
    if not any(path.startswith("data/") for path in bag.files) and not any(
        info.is_dir() and info.orig_filename == bag.prefix + "data/" for info in safe
    ):
        problems.append(BagProblem("data/", ProblemKind.LAYOUT, "the payload folder is missing"))
    name = bag.prefix.rstrip("/") or label.removesuffix(".zip")
    return _Opened(handle=handle, size=archive_size, name=name, files=bag.files,
                   repacked=tuple(bag.repacked), desktop_metadata=tuple(bag.desktop_metadata))


def _entry_flaw(info: zipfile.ZipInfo) -> tuple[ProblemKind, str | None]:
    flaw = _path_flaw(info.filename.removesuffix("/") if info.is_dir() else info.filename)
    if flaw:
        return ProblemKind.UNSAFE_ENTRY, flaw
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        return ProblemKind.UNSAFE_ENTRY, "symbolic link entry; unpacking it could write elsewhere"
    if info.flag_bits & 0x1:
        return ProblemKind.UNSUPPORTED, "encrypted entry"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return ProblemKind.UNSUPPORTED, f"compression method {info.compress_type} is not allowed"
    return ProblemKind.UNSAFE_ENTRY, None


def _read_tag_files(opened: _Opened, limits: ReadLimits, problems: list[BagProblem]) -> _TagData:
    tags = _TagData()

    def load(path: str) -> bytes | None:
        info = opened.files[path]
        if info.file_size > limits.max_tag_file_size:
            problems.append(
                BagProblem(
                    path,
                    ProblemKind.TOO_LARGE,
                    f"{info.file_size} bytes, more than the tag-file limit of "
                    f"{limits.max_tag_file_size}",
                )
            )
            return None
        data = _read_entry(opened, path, problems)
        if data is not None:
            tags.raw[path] = data
        return data

    if "bagit.txt" not in opened.files:
        # Opened without it only when the rest is one of our bags (`zip_bag`): removed after export.
        problems.append(BagProblem("bagit.txt", ProblemKind.BAD_DECLARATION,
                                   "missing: removed after export (every bag holds one)"))
    elif (declaration := load("bagit.txt")) is not None:
        tags.version = _parse_declaration(declaration, problems)

    if "bag-info.txt" in opened.files and (info := load("bag-info.txt")) is not None:
        tags.info = _parse_bag_info(info, problems)

    if "fetch.txt" in opened.files:
        problems.append(
            BagProblem(
                "fetch.txt",
                ProblemKind.UNSUPPORTED,
                "the bag expects payload fetched from the network; it cannot be checked offline",
            )
        )

    for path in opened.files:
        match = _MANIFEST_NAME.match(path)
        if not match:
            continue
        is_tag, algorithm = bool(match.group(1)), match.group(2)
        if algorithm not in _HASHES:
            problems.append(
                BagProblem(path, ProblemKind.UNSUPPORTED, f"unknown algorithm {algorithm!r}")
            )
            continue
        content = load(path)
        if content is None:
            continue
        entries = _parse_manifest(path, content, algorithm, is_tag, problems)
        (tags.tag_manifests if is_tag else tags.manifests)[algorithm] = entries

    for required in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        if required not in opened.files:
            problems.append(
                BagProblem(required, ProblemKind.MISSING_FILE, "missing; every bundle carries it")
            )
    return tags


def _read_entry(opened: _Opened, path: str, problems: list[BagProblem]) -> bytes | None:
    chunks: list[bytes] = []
    try:
        for chunk in entry_chunks(opened.handle, opened.size, opened.files[path]):
            chunks.append(chunk)
    except _CrcMismatch as exc:  # read whole: its bytes are still compared with the manifest
        problems.append(BagProblem(path, ProblemKind.CORRUPT_ENTRY, str(exc)))
    except (_EntryUnreadable, OSError) as exc:
        problems.append(BagProblem(path, ProblemKind.CORRUPT_ENTRY, f"cannot be read: {exc}"))
        return None
    return b"".join(chunks)


def _text_lines(path: str, content: bytes, problems: list[BagProblem]) -> list[str] | None:
    if content.startswith(b"\xef\xbb\xbf"):
        problems.append(BagProblem(path, ProblemKind.MALFORMED, "starts with a byte-order mark"))
        content = content[3:]
    try:
        return _split_lines(content)
    except UnicodeDecodeError as exc:
        problems.append(BagProblem(path, ProblemKind.MALFORMED, f"not UTF-8: {exc}"))
        return None


def _parse_declaration(content: bytes, problems: list[BagProblem]) -> str:
    lines = _text_lines("bagit.txt", content, problems)
    if lines is None:
        return ""
    fields = [line.split(":", 1) for line in lines]
    if len(lines) != 2 or any(len(f) != 2 for f in fields):
        problems.append(
            BagProblem(
                "bagit.txt",
                ProblemKind.BAD_DECLARATION,
                "must be exactly two lines: 'BagIt-Version: M.N' and "
                "'Tag-File-Character-Encoding: UTF-8'",
            )
        )
        return ""
    (version_label, version), (encoding_label, encoding) = ((a, b.strip()) for a, b in fields)
    if version_label != "BagIt-Version" or encoding_label != "Tag-File-Character-Encoding":
        problems.append(
            BagProblem(
                "bagit.txt",
                ProblemKind.BAD_DECLARATION,
                "lines must be 'BagIt-Version' then 'Tag-File-Character-Encoding'",
            )
        )
    if version != BAGIT_VERSION:
        problems.append(
            BagProblem(
                "bagit.txt",
                ProblemKind.UNSUPPORTED,
                f"BagIt version {version!r}; only {BAGIT_VERSION} is read",
            )
        )
    if encoding.upper() != "UTF-8":
        problems.append(
            BagProblem("bagit.txt", ProblemKind.UNSUPPORTED, f"tag files encoded as {encoding!r}")
        )
    return version


def _parse_bag_info(content: bytes, problems: list[BagProblem]) -> list[tuple[str, str]]:
    lines = _text_lines("bag-info.txt", content, problems)
    info: list[tuple[str, str]] = []
    for number, line in enumerate(lines or [], start=1):
        if line[:1] in (" ", "\t"):
            if not info:
                problems.append(
                    BagProblem(
                        "bag-info.txt", ProblemKind.MALFORMED, f"line {number}: starts indented"
                    )
                )
                continue
            label, value = info[-1]
            info[-1] = (label, value + "\n" + line.lstrip(" \t"))
            continue
        label, colon, value = line.partition(":")
        if not colon or not label or label != label.strip():
            problems.append(
                BagProblem(
                    "bag-info.txt",
                    ProblemKind.MALFORMED,
                    f"line {number}: expected 'Label: value' with no space around the label",
                )
            )
            continue
        info.append((label, value[1:] if value[:1] in (" ", "\t") else value))
    oxum = [value for label, value in info if label.casefold() == "payload-oxum"]
    if len(oxum) > 1:
        problems.append(
            BagProblem("bag-info.txt", ProblemKind.MALFORMED, "Payload-Oxum appears more than once")
        )
    elif oxum and not _OXUM.match(oxum[0]):
        problems.append(
            BagProblem(
                "bag-info.txt",
                ProblemKind.MALFORMED,
                f"Payload-Oxum {oxum[0]!r} is not OctetCount.StreamCount",
            )
        )
    return info


def _parse_manifest(
    path: str, content: bytes, algorithm: str, is_tag: bool, problems: list[BagProblem]
) -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, line in enumerate(_text_lines(path, content, problems) or [], start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line)
        if not match or len(match.group(1)) != _HASHES[algorithm]:
            problems.append(
                BagProblem(
                    path,
                    ProblemKind.MALFORMED,
                    f"line {number}: expected a {algorithm} hex digest, whitespace and a path",
                )
            )
            continue
        listed = decode_manifest_path(match.group(2))
        flaw = _listed_path_flaw(listed, not is_tag)
        if flaw:
            problems.append(
                BagProblem(path, ProblemKind.MALFORMED, f"line {number}: {listed!r}: {flaw}")
            )
        elif listed in entries:
            problems.append(
                BagProblem(path, ProblemKind.MALFORMED, f"line {number}: {listed!r} listed twice")
            )
        else:
            entries[listed] = match.group(1).lower()
    return entries


def _verify_contents(opened: _Opened, tags: _TagData, problems: list[BagProblem]) -> None:
    octets = streams = 0
    present: set[str] = set()
    desktop = _desktop_metadata(opened, tags)
    for path in opened.files:
        is_payload = path.startswith("data/")
        match = _MANIFEST_NAME.match(path)
        if (match and match.group(1)) or path == BAG_SIGNATURE:
            continue  # tag manifests, and the signature over one, are listed by no manifest
        manifests = tags.manifests if is_payload else tags.tag_manifests
        if path in desktop:
            continue  # not bag content; `Bag.desktop_metadata` names it, as verify.py warns
        if path in tags.raw:
            digests = {alg: hashlib.new(alg, tags.raw[path]).hexdigest() for alg in manifests}
            size = len(tags.raw[path])
        else:
            hashed = _hash_entry(opened, path, manifests, problems)
            if hashed is None:
                continue
            digests, size = hashed
        present.add(path)
        if is_payload:
            octets += size
            streams += 1
        for algorithm, listed in manifests.items():
            manifest_name = f"{'' if is_payload else 'tag'}manifest-{algorithm}.txt"
            expected = listed.get(path)
            if expected is None:
                problems.append(
                    BagProblem(path, ProblemKind.UNLISTED_FILE, f"not listed in {manifest_name}")
                )
            elif expected != digests[algorithm]:
                problems.append(
                    BagProblem(
                        path,
                        ProblemKind.CHECKSUM_MISMATCH,
                        f"{algorithm} is {digests[algorithm]} but {manifest_name} says {expected}",
                    )
                )

    for is_payload, manifests in ((True, tags.manifests), (False, tags.tag_manifests)):
        for algorithm, listed in manifests.items():
            manifest_name = f"{'' if is_payload else 'tag'}manifest-{algorithm}.txt"
            for path in listed:
                if path not in present and path in opened.files:
                    continue  # unreadable: already reported as corrupt
                if path == "bagit.txt":
                    continue  # a missing declaration is already reported as such
                if path not in present:
                    problems.append(
                        BagProblem(
                            path,
                            ProblemKind.MISSING_FILE,
                            f"listed in {manifest_name} but not in the bag",
                        )
                    )
    stated = [value for label, value in tags.info if label.casefold() == "payload-oxum"]
    match = _OXUM.match(stated[0]) if len(stated) == 1 else None
    if match and (int(match.group(1)), int(match.group(2))) != (octets, streams):
        problems.append(
            BagProblem(
                "bag-info.txt",
                ProblemKind.OXUM_MISMATCH,
                # The verifier's wording (one home), naming the payload problems that explain it.
                _oxum_differs((int(match.group(1)), int(match.group(2))), (octets, streams),
                              [p.path[5:] for p in problems if p.path.startswith("data/")]),
            )
        )


def _desktop_metadata(opened: _Opened, tags: _TagData) -> dict[str, str]:
    """Files a desktop wrote (`.DS_Store`, `._*` ...) that no manifest lists, by path, with what
    wrote them: outside the bag (`__MACOSX/`) or inside it. Set aside, as the verifier does."""
    listed = {p for m in (*tags.manifests.values(), *tags.tag_manifests.values()) for p in m}
    found = dict(opened.desktop_metadata)
    for path in opened.files:
        what = _os_metadata(path)
        if what and path not in listed:
            found[path] = what
    return found


def _hash_entry(
    opened: _Opened, path: str, manifests: Mapping[str, object], problems: list[BagProblem]
) -> tuple[dict[str, str], int] | None:
    info = opened.files[path]
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in manifests}
    size = 0
    try:
        # The verifier's reader: cut off at the declared size (a lying header cannot inflate
        # past it), and failing an entry whose declared size it does not fill, or whose
        # compressed size holds bytes past the end of its data.
        for chunk in entry_chunks(opened.handle, opened.size, info):
            size += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
    except _CrcMismatch as exc:  # read whole: its digests are still compared
        problems.append(BagProblem(path, ProblemKind.CORRUPT_ENTRY, str(exc)))
    except (_EntryUnreadable, OSError) as exc:
        problems.append(BagProblem(path, ProblemKind.CORRUPT_ENTRY, f"cannot be read: {exc}"))
        return None
    return {algorithm: h.hexdigest() for algorithm, h in hashers.items()}, size
