"""Content-addressed storage for evidence bytes: every object is named by its SHA-256.

`BlobStore` is what callers use; `FolderStore` keeps objects under the data home, `S3Store` in
a bucket of any S3-compatible service. Writes stream to a temporary file while they are hashed
(an object's name is known only at its end) and only then become an object under their name, so
a crash never leaves a partial object under a real name; reads can re-hash as they stream and
refuse bytes that no longer match their name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from evidence.errors import (
    DISK_FULL_ERRNOS,
    BlobCorrupted,
    BlobMissing,
    ConfigurationError,
    InvalidInput,
    StorageFull,
    StoreUnavailable,
)

CHUNK = 1024 * 1024
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# A local copy of an S3 object used this recently is never evicted: a reader elsewhere on the
# machine may have just been handed its path.
CACHE_KEEP_RECENT_SECONDS = 600.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool  # False when an identical object was already stored


def check_address(sha256: str) -> str:
    if not SHA256_HEX.match(sha256):
        raise InvalidInput(f"{sha256!r} is not a SHA-256 hex digest")
    return sha256


def _fanned(sha256: str) -> str:
    """Where an object lies under a store's root: ab/cd/abcd… (no folder holds too many)."""
    return f"{check_address(sha256)[:2]}/{sha256[2:4]}/{sha256}"


class VerifyingReader:
    """Streams an object and raises BlobCorrupted at the end if its bytes hash differently."""

    def __init__(self, raw: BinaryIO, sha256: str, size: int | None = None) -> None:
        self._raw = raw
        self._expected = sha256
        self._size = size
        self._hash = hashlib.sha256()
        self._read = 0
        self._done = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._hash.update(data)
            self._read += len(data)
        if (not data or n < 0) and not self._done:
            self._done = True
            actual = self._hash.hexdigest()
            if actual != self._expected:
                raise BlobCorrupted(
                    f"blob {self._expected} is corrupted: its bytes now hash to {actual}"
                )
            if self._size is not None and self._read != self._size:
                raise BlobCorrupted(
                    f"blob {self._expected} is {self._read} bytes, expected {self._size}"
                )
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(CHUNK)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobStore(ABC):
    """The storage interface; callers never learn which backend holds the bytes."""

    backend: str  # its name, for people: "folder" or "s3"

    @abstractmethod
    def put_stream(self, stream: BinaryIO | Iterable[bytes]) -> StoredBlob:
        """Store bytes read to the end of `stream`; returns their address."""

    @abstractmethod
    def open(self, sha256: str, *, verify: bool = True) -> BinaryIO | VerifyingReader:
        """A stream of the object's bytes; with `verify`, re-hashed as they are read."""

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def size(self, sha256: str) -> int: ...

    @abstractmethod
    def locate(self, sha256: str) -> str:
        """Where the backend keeps the object (a path or an s3:// URL), for people to read."""

    @abstractmethod
    def clean_incoming(self, older_than_seconds: float = 24 * 3600) -> int:
        """Remove the temporary files of writes a killed process never finished; returns how
        many. Only old ones: other processes may be writing right now."""

    @abstractmethod
    def probe(self) -> None:
        """Raise StoreUnavailable unless the store can be written to and read from now."""

    @abstractmethod
    def fetch(self, sha256: str) -> Path:
        """A local file holding the object's bytes, for readers that need a file (image
        hashing, the report's thumbnails): a folder store's own file, or a copy that was
        verified against the name as it was made. Read-only; raises BlobMissing."""

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_stream([data])

    def put_file(self, path: Path) -> StoredBlob:
        with path.open("rb") as fh:
            return self.put_stream(fh)

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as fh:
            return fh.read()

    def verify(self, sha256: str) -> None:
        with self.open(sha256, verify=True) as reader:
            for _ in iter(lambda: reader.read(CHUNK), b""):
                pass


def _chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(stream, "read", None)
    if read is None:
        yield from stream
        return
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return
        yield chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderStore(BlobStore):
    """Objects at ROOT/ab/cd/abcd…; temporary files in ROOT/.incoming on the same file system."""

    backend = "folder"

    def __init__(self, root: Path, *, fsync_each: bool = True) -> None:
        self.root = root
        self.incoming = root / ".incoming"
        # Each blob is on disk before put returns; a bulk copy that syncs the whole file
        # system once at its end (a backup) turns this off.
        self.fsync_each = fsync_each

    def create(self) -> bool:
        """Make the folders; True if they did not exist yet."""
        existed = self.incoming.is_dir()
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
        return not existed

    def _path(self, sha256: str) -> Path:
        return self.root / _fanned(sha256)

    def put_stream(self, stream: BinaryIO | Iterable[bytes]) -> StoredBlob:
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.incoming, prefix="blob-", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(stream):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                if self.fsync_each:
                    os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            final = self._path(sha256)
            if final.exists():
                tmp.unlink()
                return StoredBlob(sha256, size, created=False)
            final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(tmp, 0o440)  # evidence is never rewritten in place
            os.replace(tmp, final)
            if self.fsync_each:
                _fsync_dir(final.parent)
            return StoredBlob(sha256, size, created=True)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in DISK_FULL_ERRNOS:
                raise StorageFull(
                    f"blob store {self.root} is full; nothing was stored ({size} bytes read)"
                ) from exc
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open(self, sha256: str, *, verify: bool = True) -> BinaryIO | VerifyingReader:
        path = self._path(sha256)
        try:
            raw = path.open("rb")
        except FileNotFoundError as exc:
            raise BlobMissing(f"no blob {sha256} in {self.root}") from exc
        return VerifyingReader(raw, sha256) if verify else raw

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise BlobMissing(f"no blob {sha256} in {self.root}") from exc

    def locate(self, sha256: str) -> str:
        return str(self._path(sha256))

    def probe(self) -> None:
        if not (self.root.is_dir() and os.access(self.root, os.R_OK | os.W_OK | os.X_OK)):
            raise StoreUnavailable(f"blob store {self.root} is not a folder this process may "
                                   "read and write")

    def fetch(self, sha256: str) -> Path:
        path = self._path(sha256)
        if not path.is_file():
            raise BlobMissing(f"no blob {sha256} in {self.root}")
        return path

    def clean_incoming(self, older_than_seconds: float = 24 * 3600) -> int:
        removed = 0
        cutoff = time.time() - older_than_seconds
        if self.incoming.is_dir():
            for leftover in self.incoming.glob("blob-*.part"):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink(missing_ok=True)
                    removed += 1
        return removed


def _missing(exc: Any) -> bool:
    """Whether an S3 ClientError says the object is not there."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


@dataclass
class CacheTrim:
    """What `S3Store.trim_cache` did."""

    removed: int = 0
    freed: int = 0
    held: int = 0  # bytes of local copies left
    kept_unique: int = 0  # copies past the limit kept because the bucket lacks them


class S3Store(BlobStore):
    """Objects at s3://BUCKET/PREFIX/ab/cd/abcd… on AWS or any S3-compatible service (MinIO,
    Ceph, ...), for many workers on many machines sharing one store.

    The machine's local copies are a `FolderStore` (`cache`): a write goes there first, hashed
    as it streams (an object's name is known only at its end), and is then uploaded under its
    name unless the bucket already holds it. S3 shows an object only once it is whole, so a
    killed writer leaves no partial object, only a spool file that `clean_incoming` removes. A
    copy made by downloading is verified against the name before it is kept. The bucket is never
    created here: whoever runs the service sets its retention (Object Lock) and access.
    """

    backend = "s3"

    def __init__(self, bucket: str, prefix: str, cache: Path, *,
                 endpoint_url: str | None = None, client: Any = None,
                 cache_limit: int | None = None,
                 keep_recent_seconds: float = CACHE_KEEP_RECENT_SECONDS) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.local = FolderStore(cache)
        self.incoming = self.local.incoming
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 3, "mode": "standard"},
                          connect_timeout=10, read_timeout=60))
        # Parts of 8 MiB, two at a time: a large upload holds a few parts in memory, no more.
        self._transfer = TransferConfig(multipart_threshold=8 * CHUNK,
                                        multipart_chunksize=8 * CHUNK, max_concurrency=2)
        self.url = f"s3://{bucket}/{self.prefix}"
        # The local copies are a cache: past `cache_limit` bytes, the least recently used of
        # those the bucket holds go (`trim_cache`); None keeps every copy.
        self.cache_limit = cache_limit
        self.keep_recent_seconds = keep_recent_seconds
        self._cached: int | None = None  # bytes of local copies, as this process last counted
        self._added = 0  # bytes of copies this process made since it last counted them

    @classmethod
    def from_url(cls, url: str, cache: Path, *, endpoint_url: str | None = None,
                 cache_limit: int | None = None) -> S3Store:
        """`s3://BUCKET` or `s3://BUCKET/PREFIX`."""
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ConfigurationError(f"EVIDENCE_STORE_URL {url!r} is not s3://BUCKET[/PREFIX]")
        bucket, _, prefix = url[5:].partition("/")
        return cls(bucket, prefix, cache, endpoint_url=endpoint_url, cache_limit=cache_limit)

    def _key(self, sha256: str) -> str:
        return self.prefix + _fanned(sha256)

    def _unavailable(self, exc: Exception, doing: str) -> StoreUnavailable:
        return StoreUnavailable(f"blob store {self.url} could not {doing}: {exc}")

    def _head(self, sha256: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket,
                                                                Key=self._key(sha256)))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise self._unavailable(exc, f"look up blob {sha256}") from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc, f"look up blob {sha256}") from exc

    def probe(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc, "be reached (does the bucket exist, and may these "
                                         "credentials use it?)") from exc

    def create(self) -> bool:
        """Check that the bucket answers; make the local cache. True if the cache is new."""
        self.probe()
        return self.local.create()

    def put_stream(self, stream: BinaryIO | Iterable[bytes]) -> StoredBlob:
        from botocore.exceptions import BotoCoreError, ClientError

        kept = self.local.put_stream(stream)
        created = self._head(kept.sha256) is None
        if created:
            try:
                # The service checks the SHA-256 of what it receives (of each part of a large
                # object) and refuses bytes damaged on the way.
                self.client.upload_file(str(self.local.fetch(kept.sha256)), self.bucket,
                                        self._key(kept.sha256),
                                        ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                                        Config=self._transfer)
            except (BotoCoreError, ClientError) as exc:
                raise self._unavailable(exc, f"store blob {kept.sha256}") from exc
        self._used(kept.sha256, kept.size if kept.created else 0)
        return StoredBlob(kept.sha256, kept.size, created=created)

    def open(self, sha256: str, *, verify: bool = True) -> BinaryIO | VerifyingReader:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            if _missing(exc):
                raise BlobMissing(f"no blob {sha256} in {self.url}") from exc
            raise self._unavailable(exc, f"read blob {sha256}") from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc, f"read blob {sha256}") from exc
        body = cast(BinaryIO, obj["Body"])
        return VerifyingReader(body, sha256, size=obj.get("ContentLength")) if verify else body

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise BlobMissing(f"no blob {sha256} in {self.url}")
        return int(head["ContentLength"])

    def locate(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self._key(sha256)}"

    def fetch(self, sha256: str) -> Path:
        added = 0
        if not self.local.exists(sha256):
            # Re-hashed as it comes down: altered bytes raise before anything is kept.
            with self.open(sha256, verify=True) as reader:
                copied = self.local.put_stream(reader)
            added = copied.size if copied.created else 0
        self._used(sha256, added)
        return self.local.fetch(sha256)

    def clean_incoming(self, older_than_seconds: float = 24 * 3600) -> int:
        return self.local.clean_incoming(older_than_seconds)

    # --- the local copies as a bounded cache ------------------------------------------------

    def _used(self, sha256: str, added: int) -> None:
        """A local copy was just made (`added` bytes) or used: mark its use, keep the limit."""
        if not added:
            # The modification time is the last use, the order of eviction. A copy another
            # user made keeps its order; one another process just removed is not needed here.
            with contextlib.suppress(OSError):
                os.utime(self.local.locate(sha256))
        if self.cache_limit is None:
            return
        if self._cached is None or self._added > self.cache_limit // 10:
            # Other processes on this machine (the server, more workers) add copies too: count
            # what is on disk at first and after each tenth of the limit this process added.
            self._cached, self._added = sum(size for _, size, _ in self._copies()), 0
        else:
            self._cached += added
            self._added += added
        if self._cached > self.cache_limit:
            self.trim_cache()

    def _copies(self) -> Iterator[tuple[float, int, Path]]:
        """(last use, size, path) of every local copy; spool files are not copies."""
        for path in self.local.root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*"):
            try:
                info = path.stat()
            except FileNotFoundError:  # another process on this machine removed it
                continue
            yield info.st_mtime, info.st_size, path

    def trim_cache(self) -> CacheTrim:
        """Remove the least recently used local copies until they hold at most 90% of the
        limit. Only copies the bucket holds go, and none used in the last
        `keep_recent_seconds` (a reader in another process may have just fetched it); a copy
        the bucket lacks (its upload failed) is kept, for it is the only one."""
        if self.cache_limit is None:
            raise ConfigurationError("this store's local copies have no limit to trim to")
        copies = sorted(self._copies())
        held = sum(size for _, size, _ in copies)
        goal = self.cache_limit * 9 // 10
        recent = time.time() - self.keep_recent_seconds
        trim = CacheTrim()
        for used, size, path in copies:
            if held <= goal or used > recent:
                break
            head = self._head(path.name) if SHA256_HEX.match(path.name) else None
            if head is None or head.get("ContentLength") != size:
                trim.kept_unique += 1
                continue
            path.unlink(missing_ok=True)
            held -= size
            trim.removed += 1
            trim.freed += size
        self._cached, self._added = held, 0
        trim.held = held
        if trim.removed or trim.kept_unique:
            log.info("blob cache %s: removed %d local copies (%d bytes), %d bytes left; kept %d "
                     "the bucket does not hold", self.local.root, trim.removed, trim.freed, held,
                     trim.kept_unique)
        return trim
