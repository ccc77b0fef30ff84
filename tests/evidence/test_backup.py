"""`evidence backup DEST`: a consistent copy of an embedded home (SQLite, blob folder, keys),
taken while the system records, that is itself a data home whose custody log verifies; a blob
that no longer hashes stops it and nothing is left behind; the backup is recorded in the
source's custody log; admins only; a server database is refused with what to use instead."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from evidence import backup, bundle_verifier, bundles, cases, custody, users
from evidence.cli import _load_plugins, main_group
from evidence.errors import BackupFailed, ConfigurationError, Conflict, PermissionDenied
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import Artifact, Case, CustodyEntry, Export, Role
from evidence.settings import Settings
from tests.factories import case_with_a_capture


def _home(home: Path, database_url: str | None = None) -> Runtime:
    settings = Settings(home=home, database_url=database_url)
    init_home(settings)
    return open_runtime(settings)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Runtime]:
    """An embedded home (its database in it, as `evidence init` makes it) with investigator
    ines's case, a sealed capture, and a kept bundle of it."""
    runtime = _home(tmp_path / "home")
    with runtime.session() as s:
        users.create_user(s, None, name="ines", role=Role.INVESTIGATOR)
    case_with_a_capture(runtime, "ines", "OP-1", url="https://t.me/crossings", files=[
        ("screenshot", "screenshot-full.png", "image/png", b"\x89PNG crossing tonight"),
        ("dom", "dom.html", "text/html", b"<html>boats leave at 2am</html>"),
    ])
    bundles.export_and_keep(runtime, "ines", reference="OP-1")
    yield runtime
    runtime.close()


def _referenced(runtime: Runtime) -> set[str]:
    with runtime.session() as s:
        return set(s.scalars(select(Artifact.sha256))) | {
            str(h) for h in s.scalars(select(Export.bundle_sha256)) if h}


def _entries(runtime: Runtime) -> int:
    with runtime.session() as s:
        return int(s.scalar(select(func.count()).select_from(CustodyEntry)) or 0)


def test_a_backup_is_a_home_of_its_own_whose_log_verifies(world: Runtime, tmp_path: Path) -> None:
    dest = tmp_path / "backups" / "2026-12-03"
    dest.parent.mkdir()
    said: list[str] = []
    before = _entries(world)
    report = backup.backup_home(world, "admin", dest, progress=said.append)
    assert report.entries == before and report.blobs == len(_referenced(world))
    assert said and "verif" in said[-1]
    # Every blob is there, under its hash, whole; the keys keep their modes.
    copy = open_runtime(world.settings.model_copy(update={"home": dest, "database_url": None}))
    try:
        for sha256 in _referenced(world):
            copy.store.verify(sha256)
        assert os.stat(dest / "keys" / "signing.key").st_mode & 0o777 == 0o600
        assert (dest / "keys" / "signing.pub").read_bytes() == (
            world.settings.public_key_path.read_bytes())
        with copy.read_session() as s:
            verified = custody.verify_log(s, copy.verifier)
        assert verified.ok and verified.entries == before
        # The bundle kept in the copy verifies offline, as the original's does.
        with copy.session() as s:
            kept = s.scalars(select(Export.bundle_sha256)).one()
        path = tmp_path / "bundle.zip"
        path.write_bytes(copy.store.read_bytes(str(kept)))
        assert bundle_verifier.verify_bundle(path).ok
    finally:
        copy.close()
    # The database is one file: nothing was left in a write-ahead log beside it.
    assert not (dest / "evidence.db-wal").exists() or (dest / "evidence.db-wal").stat(
        ).st_size == 0
    plain = sqlite3.connect(f"file:{dest / 'evidence.db'}?immutable=1", uri=True)
    assert plain.execute("SELECT count(*) FROM custody_entries").fetchone()[0] == before
    plain.close()
    # What it holds, in its manifest; the source records the backup, the copy does not.
    manifest = json.loads((dest / backup.MANIFEST).read_bytes())
    assert manifest["custody"]["entries"] == before
    assert manifest["blobs"]["count"] == report.blobs
    assert set(manifest["files"]) >= {"evidence.db", "keys/signing.key", "keys/signing.pub",
                                      "keys/deconfliction.key", "tsa/tsa-key.pem"}
    assert manifest["files"]["keys/signing.key"] == hashlib.sha256(
        (dest / "keys" / "signing.key").read_bytes()).hexdigest()
    assert hashlib.sha256((dest / backup.MANIFEST).read_bytes()).hexdigest() == (
        report.manifest_sha256)
    with world.session() as s:
        entry = s.scalars(select(CustodyEntry).order_by(CustodyEntry.seq.desc())).first()
        assert entry is not None and entry.action == "home.backed_up"
        assert entry.sha256 == report.manifest_sha256
    assert _entries(world) == before + 1
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]


def test_recording_goes_on_during_a_backup_and_the_copy_is_one_moment(
    world: Runtime, tmp_path: Path,
) -> None:
    stop = threading.Event()
    appended: list[int] = []

    def record() -> None:
        while not stop.is_set():
            with world.session() as s:
                case = s.scalars(select(Case)).one()
                custody.append(s, None, action="case.viewed", case=case)
            appended.append(1)

    writer = threading.Thread(target=record)
    writer.start()
    try:
        report = backup.backup_home(world, "admin", tmp_path / "b")
    finally:
        stop.set()
        writer.join()
    assert appended  # the writer was not held up for the whole backup
    copy = open_runtime(world.settings.model_copy(update={"home": tmp_path / "b",
                                                          "database_url": None}))
    try:
        with copy.read_session() as s:
            verified = custody.verify_log(s, copy.verifier)
        assert verified.ok and verified.entries == report.entries
    finally:
        copy.close()


def test_a_blob_that_no_longer_hashes_stops_the_backup_and_leaves_nothing(
    world: Runtime, tmp_path: Path,
) -> None:
    with world.session() as s:
        shot = s.scalars(select(Artifact.sha256).where(Artifact.kind == "screenshot")).one()
    path = Path(world.store.locate(shot))
    os.chmod(path, 0o640)
    path.write_bytes(b"\x89PNG edited later")
    before = _entries(world)
    with pytest.raises(BackupFailed, match=f"blob {shot} cannot be copied whole") as caught:
        backup.backup_home(world, "admin", tmp_path / "b")
    assert "screenshot" in caught.value.message and "OP-1" in caught.value.message
    assert list(tmp_path.iterdir()) == [world.settings.home_path] or not any(
        p.name.startswith((".b", "b")) for p in tmp_path.iterdir())
    assert _entries(world) == before  # no backup, so none recorded


def test_a_backup_never_writes_over_anything_and_needs_an_admin(
    world: Runtime, tmp_path: Path,
) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(Conflict, match="already exists"):
        backup.backup_home(world, "admin", tmp_path / "taken")
    with pytest.raises(BackupFailed, match="not a folder"):
        backup.backup_home(world, "admin", tmp_path / "nowhere" / "b")
    with pytest.raises(BackupFailed, match="inside the home"):
        backup.backup_home(world, "admin", world.settings.home_path / "b")
    with pytest.raises(PermissionDenied, match="needs an admin"):
        backup.backup_home(world, "ines", tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["taken"]


def test_a_server_database_is_refused_with_what_to_use(
    tmp_path: Path, postgresql_database_url: str,
) -> None:
    runtime = _home(tmp_path / "home", postgresql_database_url)
    try:
        with pytest.raises(ConfigurationError, match="pg_dump"):
            backup.backup_home(runtime, "admin", tmp_path / "b")
    finally:
        runtime.close()
    assert not (tmp_path / "b").exists()


def test_the_command_line_backup_and_a_verify_of_the_copy(world: Runtime, tmp_path: Path) -> None:
    env = {"EVIDENCE_HOME": str(world.settings.home_path), "EVIDENCE_USER": "admin"}
    _load_plugins(main_group)
    runner = CliRunner()
    made = runner.invoke(main_group, ["backup", str(tmp_path / "b")], env=env,
                         catch_exceptions=False)
    assert made.exit_code == 0, made.output
    assert f"backup made at {tmp_path / 'b'}" in made.output
    again = runner.invoke(main_group, ["backup", "--json", str(tmp_path / "b")], env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    verify = runner.invoke(main_group, ["custody", "verify", "--json"],
                           env={"EVIDENCE_HOME": str(tmp_path / "b")}, catch_exceptions=False)
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.output)["ok"] is True
    with world.session() as s:
        assert cases.case_named(s, "OP-1") is not None


# A process backing up the home that stalls while copying blobs, after saying so; the test
# then kills it, as a power cut or `kill -9` would.
_STALLING_BACKUP = textwrap.dedent("""
    import sys, time
    from evidence import backup
    from evidence.home import open_runtime
    from evidence.settings import Settings

    def stall(*args, **kwargs):
        print("copying", flush=True)
        time.sleep(600)

    backup._copy_blobs = stall
    runtime = open_runtime(Settings(home=sys.argv[1]))
    backup.backup_home(runtime, "admin", backup.Path(sys.argv[2]))
""")


def test_a_killed_backup_never_looks_like_one_and_the_next_clears_it(
    world: Runtime, tmp_path: Path,
) -> None:
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", _STALLING_BACKUP, str(world.settings.home_path),
         str(shelf / "monday")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "copying\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert not (shelf / "monday").exists()
    (left,) = shelf.iterdir()
    assert left.name.startswith(".monday.partial-") and (left / backup.WORK_MARK).is_file()
    # Not an hour old yet: it could be a backup still running; the next one leaves it.
    said: list[str] = []
    backup.backup_home(world, "admin", shelf / "tuesday", progress=said.append)
    assert left.exists() and not any("unfinished backup" in m for m in said)
    long_ago = time.time() - 2 * backup.DEAD_AFTER_SECONDS
    for path in [left, *left.rglob("*")]:
        os.utime(path, (long_ago, long_ago))
    someone_elses = shelf / ".photos.partial-1234"
    someone_elses.mkdir()
    os.utime(someone_elses, (long_ago, long_ago))
    backup.backup_home(world, "admin", shelf / "wednesday", progress=said.append)
    assert not left.exists() and someone_elses.exists()
    assert any("removed 1 unfinished backup(s)" in m for m in said)
    assert sorted(p.name for p in shelf.iterdir()) == [".photos.partial-1234", "tuesday",
                                                       "wednesday"]
    assert not (shelf / "tuesday" / backup.WORK_MARK).exists()
