"""The blob stores, the folder under the home and an S3-compatible bucket, held to the same
contract: content addressing, no double writes, no partial objects, reads that catch
corruption, local copies that are verified, streaming with bounded memory, and clear errors
when the bucket cannot be reached."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from evidence.blobstore import CHUNK, FolderStore, S3Store
from evidence.errors import BlobCorrupted, BlobMissing, InvalidInput, StoreUnavailable
from evidence.home import init_home, make_store
from evidence.settings import Settings
from tests.support.net import free_port
from tests.support.s3_server import S3Server


@dataclass
class Backend:
    """A store and what a test needs to reach behind it, as an insider or a crash would."""

    store: FolderStore | S3Store
    server: S3Server | None = None

    def objects(self) -> dict[str, bytes]:
        """Every object the backend holds, by name, read around the store."""
        if isinstance(self.store, FolderStore):
            return {p.name: p.read_bytes() for p in self.store.root.rglob("*")
                    if p.is_file() and ".incoming" not in p.parts}
        assert self.server is not None
        client = self.server.client()
        listed = client.list_objects_v2(Bucket=self.store.bucket).get("Contents", [])
        return {o["Key"].rsplit("/", 1)[-1]: client.get_object(
            Bucket=self.store.bucket, Key=o["Key"])["Body"].read() for o in listed}

    def overwrite(self, sha256: str, data: bytes) -> None:
        """Replace an object's bytes in place, keeping its name."""
        if isinstance(self.store, FolderStore):
            path = Path(self.store.locate(sha256))
            path.chmod(0o600)
            path.write_bytes(data)
            return
        assert self.server is not None
        self.server.client().put_object(Bucket=self.store.bucket, Key=self.store._key(sha256),
                                        Body=data)


@pytest.fixture(params=["folder", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "folder":
        folder = FolderStore(tmp_path / "blobs")
        folder.create()
        return Backend(folder)
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = S3Store(server.new_bucket(), "evidence", tmp_path / "cache",
                     endpoint_url=server.url)
    bucket.create()
    return Backend(bucket, server)


def test_object_is_named_by_its_sha256_and_read_back(blobs: Backend) -> None:
    store = blobs.store
    data = b"screenshot bytes \x00\xff" * 1000
    stored = store.put_bytes(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data) and stored.created
    assert store.read_bytes(stored.sha256) == data
    assert store.size(stored.sha256) == len(data)
    assert store.exists(stored.sha256)
    assert blobs.objects() == {stored.sha256: data}
    where = store.locate(stored.sha256)
    if isinstance(store, S3Store):
        assert where == f"s3://{store.bucket}/evidence/{stored.sha256[:2]}/" \
                        f"{stored.sha256[2:4]}/{stored.sha256}"
    else:
        assert Path(where).name == stored.sha256
        assert Path(where).parent.name == stored.sha256[2:4]
    local = store.fetch(stored.sha256)
    assert local.read_bytes() == data
    assert local.stat().st_mode & 0o222 == 0, "evidence objects are kept read-only"


def test_same_bytes_are_stored_once(blobs: Backend) -> None:
    store = blobs.store
    first = store.put_bytes(b"same")
    # Were the second write to store the bytes again, it would undo this edit.
    blobs.overwrite(first.sha256, b"edited behind the store's back")
    second = store.put_stream(iter([b"sa", b"me"]))
    assert second.sha256 == first.sha256 and not second.created
    assert blobs.objects() == {first.sha256: b"edited behind the store's back"}
    assert list(store.incoming.iterdir()) == []


def test_failed_write_leaves_nothing_behind(blobs: Backend) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * CHUNK
        raise ConnectionError("browser went away mid-download")

    with pytest.raises(ConnectionError):
        blobs.store.put_stream(broken())
    assert list(blobs.store.incoming.iterdir()) == []
    assert blobs.objects() == {}


def test_corrupted_object_is_refused_on_read(blobs: Backend) -> None:
    store = blobs.store
    stored = store.put_bytes(b"original evidence" * 100)
    blobs.overwrite(stored.sha256, b"origXnal evidence" + b"original evidence" * 99)
    with pytest.raises(BlobCorrupted, match=stored.sha256):
        store.read_bytes(stored.sha256)
    with pytest.raises(BlobCorrupted):
        store.verify(stored.sha256)
    with store.open(stored.sha256, verify=False) as raw:
        assert raw.read()[4:5] == b"X"


def test_a_local_copy_is_made_only_of_bytes_that_match_their_name(tmp_path: Path,
                                                                   s3_server: S3Server) -> None:
    """A machine that did not write an object copies it down to read it as a file; a copy
    of altered bytes is refused and nothing is kept."""
    bucket = s3_server.new_bucket()
    writer = S3Store(bucket, "", tmp_path / "writer", endpoint_url=s3_server.url)
    reader = S3Store(bucket, "", tmp_path / "reader", endpoint_url=s3_server.url)
    good = writer.put_bytes(b"a viewport screenshot")
    bad = writer.put_bytes(b"a full-page screenshot")
    s3_server.client().put_object(Bucket=bucket, Key=writer._key(bad.sha256), Body=b"swapped")
    assert reader.fetch(good.sha256).read_bytes() == b"a viewport screenshot"
    with pytest.raises(BlobCorrupted, match=bad.sha256):
        reader.fetch(bad.sha256)
    kept = [p.name for p in (tmp_path / "reader").rglob("*") if p.is_file()]
    assert kept == [good.sha256]
    with pytest.raises(BlobMissing):
        reader.fetch("0" * 64)


def test_unknown_and_malformed_addresses(blobs: Backend) -> None:
    store = blobs.store
    with pytest.raises(BlobMissing):
        store.open("0" * 64)
    with pytest.raises(BlobMissing):
        store.size("0" * 64)
    with pytest.raises(InvalidInput):
        store.open("../../etc/passwd")
    assert not store.exists("a" * 64)


def test_large_stream_is_stored_with_bounded_memory(blobs: Backend) -> None:
    store = blobs.store
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


def test_a_bucket_that_cannot_be_reached_is_a_clear_error(tmp_path: Path,
                                                          s3_server: S3Server) -> None:
    missing = S3Store("no-such-bucket", "", tmp_path / "cache", endpoint_url=s3_server.url)
    with pytest.raises(StoreUnavailable, match="s3://no-such-bucket/ could not be reached"):
        missing.create()
    down = S3Store("evidence", "", tmp_path / "cache",
                   endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable, match="could not look up blob"):
        down.put_bytes(b"a capture while the service is down")
    with pytest.raises(StoreUnavailable, match="could not read blob"):
        down.open("a" * 64)
    assert list((tmp_path / "cache" / ".incoming").iterdir()) == []


def test_the_home_keeps_blobs_where_the_settings_say(tmp_path: Path,
                                                     s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path}/e.db",
                        store_url=f"s3://{bucket}/unit-7", s3_endpoint_url=s3_server.url)
    report = init_home(settings)
    assert any(f"blob store s3://{bucket}/unit-7 answers" in line for line in report.done)
    store = make_store(settings)
    assert isinstance(store, S3Store)
    stored = store.put_bytes(b"kept in the bucket")
    listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [
        f"unit-7/{stored.sha256[:2]}/{stored.sha256[2:4]}/{stored.sha256}"]
    assert not (tmp_path / "home" / "blobs").exists()
    assert isinstance(make_store(Settings(home=tmp_path / "home")), FolderStore)
    with pytest.raises(Exception, match="is not s3://BUCKET"):
        make_store(Settings(home=tmp_path / "home", store_url="minio://bucket"))




def _aged(store: S3Store, ages: dict[str, float]) -> None:
    """Set when each local copy was last used, `ages[sha256]` seconds ago."""
    now = time.time()
    for sha256, age in ages.items():
        os.utime(store.local.fetch(sha256), (now - age, now - age))


def _local(store: S3Store) -> set[str]:
    return {p.name for p in store.local.root.rglob("*")
            if p.is_file() and ".incoming" not in p.parts}


def test_local_copies_past_the_limit_go_least_recently_used_first(tmp_path: Path,
                                                                  s3_server: S3Server) -> None:
    """A worker's disk does not fill with copies of everything it ever captured or compared:
    past the limit the copies used longest ago go, and one that is needed again comes back
    down from the bucket, verified."""
    bucket = s3_server.new_bucket()
    store = S3Store(bucket, "", tmp_path / "cache", endpoint_url=s3_server.url,
                    cache_limit=3500, keep_recent_seconds=0)
    a, b, c = (store.put_bytes(bytes([n]) * 1000) for n in b"abc")
    _aged(store, {a.sha256: 300, b.sha256: 200, c.sha256: 100})
    store.fetch(a.sha256)  # used again now: b is now the copy used longest ago
    d = store.put_bytes(b"d" * 1000)  # 4000 bytes of copies, over the limit
    assert _local(store) == {a.sha256, c.sha256, d.sha256}
    assert b.sha256 in Backend(store, s3_server).objects()  # the bucket keeps every object
    assert store.fetch(b.sha256).read_bytes() == b"b" * 1000
    assert b.sha256 in _local(store)


def test_a_copy_the_bucket_lacks_or_one_just_used_is_never_removed(tmp_path: Path,
                                                                   s3_server: S3Server) -> None:
    bucket, cache = s3_server.new_bucket(), tmp_path / "cache"
    uploaded = S3Store(bucket, "", cache, endpoint_url=s3_server.url).put_bytes(b"u" * 1000)
    down = S3Store(bucket, "", cache, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable):
        down.put_bytes(b"o" * 1000)  # the local copy is made, the upload fails
    only_here = hashlib.sha256(b"o" * 1000).hexdigest()
    _aged(down, {only_here: 300, uploaded.sha256: 200})
    store = S3Store(bucket, "", cache, endpoint_url=s3_server.url, cache_limit=2500,
                    keep_recent_seconds=0)
    newest = store.put_bytes(b"n" * 1000)  # 3000 bytes of copies on this machine
    assert _local(store) == {only_here, newest.sha256}
    assert only_here not in Backend(store, s3_server).objects()

    recent = S3Store(bucket, "", tmp_path / "recent", endpoint_url=s3_server.url,
                     cache_limit=1500, keep_recent_seconds=3600)
    for n in b"xyz":
        recent.put_bytes(bytes([n]) * 1000)
    trim = recent.trim_cache()
    assert (trim.removed, trim.held) == (0, 3000)  # each was used within the hour
    assert len(_local(recent)) == 3


def test_the_settings_bound_the_local_copies(tmp_path: Path, s3_server: S3Server) -> None:
    url = f"s3://{s3_server.new_bucket()}"
    bounded = make_store(Settings(home=tmp_path, store_url=url, s3_endpoint_url=s3_server.url,
                                  blob_cache_max_bytes=5 * 1024**3))
    unbounded = make_store(Settings(home=tmp_path, store_url=url,
                                    s3_endpoint_url=s3_server.url, blob_cache_max_bytes=0))
    assert isinstance(bounded, S3Store) and isinstance(unbounded, S3Store)
    assert (bounded.cache_limit, unbounded.cache_limit) == (5 * 1024**3, None)
