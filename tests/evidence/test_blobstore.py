"""The folder blob store: content addressing, no double writes, no partial objects, reads that
catch corruption, and streaming with bounded memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence.blobstore import CHUNK, FolderStore
from evidence.errors import BlobCorrupted, BlobMissing, InvalidInput


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    s = FolderStore(tmp_path / "blobs")
    s.create()
    return s


def test_object_is_named_by_its_sha256_and_read_back(store: FolderStore) -> None:
    data = b"screenshot bytes \x00\xff" * 1000
    stored = store.put_bytes(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data) and stored.created
    assert store.read_bytes(stored.sha256) == data
    assert store.size(stored.sha256) == len(data)
    path = Path(store.locate(stored.sha256))
    assert path.name == stored.sha256 and path.parent.name == stored.sha256[2:4]
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert path.stat().st_mode & 0o222 == 0, "evidence objects are stored read-only"


def test_same_bytes_are_stored_once(store: FolderStore) -> None:
    first = store.put_bytes(b"same")
    mtime = Path(store.locate(first.sha256)).stat().st_mtime_ns
    second = store.put_stream(iter([b"sa", b"me"]))
    assert second.sha256 == first.sha256 and not second.created
    assert Path(store.locate(first.sha256)).stat().st_mtime_ns == mtime
    assert list(store.incoming.iterdir()) == []


def test_failed_write_leaves_nothing_behind(store: FolderStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * CHUNK
        raise ConnectionError("browser went away mid-download")

    with pytest.raises(ConnectionError):
        store.put_stream(broken())
    assert list(store.incoming.iterdir()) == []
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_corrupted_object_is_refused_on_read(store: FolderStore) -> None:
    stored = store.put_bytes(b"original evidence" * 100)
    path = Path(store.locate(stored.sha256))
    path.chmod(0o600)
    with path.open("r+b") as fh:
        fh.seek(5)
        fh.write(b"X")
    with pytest.raises(BlobCorrupted, match=stored.sha256):
        store.read_bytes(stored.sha256)
    with pytest.raises(BlobCorrupted):
        store.verify(stored.sha256)
    with store.open(stored.sha256, verify=False) as raw:
        assert raw.read()[5:6] == b"X"


def test_unknown_and_malformed_addresses(store: FolderStore) -> None:
    with pytest.raises(BlobMissing):
        store.open("0" * 64)
    with pytest.raises(InvalidInput):
        store.open("../../etc/passwd")
    assert not store.exists("a" * 64)


def test_large_stream_is_stored_with_bounded_memory(store: FolderStore) -> None:
    total = 256 * CHUNK  # 256 MiB, produced on the fly; never held in memory at once
    block = os.urandom(CHUNK)

    def produce() -> Iterator[bytes]:
        for _ in range(total // CHUNK):
            yield block

    expected = hashlib.sha256()
    for chunk in produce():
        expected.update(chunk)
    tracemalloc.start()
    try:
        stored = store.put_stream(produce())
        reader = store.open(stored.sha256)
        read = 0
        for chunk in reader:
            read += len(chunk)
        reader.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.sha256 == expected.hexdigest() and stored.size == total == read
    assert peak < 8 * CHUNK, f"peak Python memory {peak / CHUNK:.1f} MiB for a 256 MiB object"
