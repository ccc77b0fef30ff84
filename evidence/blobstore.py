"""Content-addressed storage for evidence bytes: every object is named by its SHA-256.

`BlobStore` is what callers use; `FolderStore` keeps objects under the data home, and an
S3-compatible backend implements the same methods. Writes stream to a temporary file, are synced
and then renamed into place, so a crash never leaves a partial object under a real name; reads
can re-hash as they stream and refuse bytes that no longer match their name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from evidence.errors import BlobCorrupted, BlobMissing, InvalidInput, StorageFull

CHUNK = 1024 * 1024
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool  # False when an identical object was already stored


def check_address(sha256: str) -> str:
    if not SHA256_HEX.match(sha256):
        raise InvalidInput(f"{sha256!r} is not a SHA-256 hex digest")
    return sha256


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
        """Where the backend keeps the object (a path or URL), for people and exports."""

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

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / ".incoming"

    def create(self) -> bool:
        """Make the folders; True if they did not exist yet."""
        existed = self.incoming.is_dir()
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
        return not existed

    def _path(self, sha256: str) -> Path:
        check_address(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

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
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            final = self._path(sha256)
            if final.exists():
                tmp.unlink()
                return StoredBlob(sha256, size, created=False)
            final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(tmp, 0o440)  # evidence is never rewritten in place
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return StoredBlob(sha256, size, created=True)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
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

    def clean_incoming(self, older_than_seconds: float = 24 * 3600) -> int:
        """Remove temporary files a killed writer left; returns how many.

        Only old ones: other processes may be writing into the same folder right now.
        """
        removed = 0
        cutoff = time.time() - older_than_seconds
        if self.incoming.is_dir():
            for leftover in self.incoming.glob("blob-*.part"):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink(missing_ok=True)
                    removed += 1
        return removed
