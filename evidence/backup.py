"""A backup of the data home that is itself a data home: `evidence backup DEST`.

Copying the home's folder while the system runs is not a backup: the SQLite database keeps its
latest transactions in a write-ahead file beside it, so a copy of `evidence.db` alone can lack
them, and a copy taken while a transaction commits can be torn. Here the database is copied
with SQLite's online backup (one consistent snapshot; recording goes on meanwhile), every blob
that snapshot refers to is copied through its hash (a blob that no longer hashes to its address
stops the backup, so a backup never passes rot on as evidence), the keys go with them, and the
copy is then opened as a home of its own and its custody log verified before it is given its
name. Until then it is a hidden folder beside DEST, removed if anything fails.

The finished backup holds `BACKUP.json` (what was copied, with hashes, and the custody log's size
and root as verified) and is recorded in the source's custody log. To restore, run the system
over the backup (`evidence serve --home DEST`) or put it where the home was.

On PostgreSQL the database is the server's to back up (pg_dump, or the server's own continuous
archiving), and an S3 bucket is the object store's (versioning, replication); this command
refuses there rather than copy half a system.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evidence import custody, deconfliction, export_leases, fixity, manifests, migrate
from evidence.blobstore import FolderStore
from evidence.canonical import canonical_json
from evidence.errors import (
    BackupFailed,
    BlobMissing,
    ConfigurationError,
    Conflict,
    EvidenceError,
    PermissionDenied,
)
from evidence.home import Runtime, open_runtime
from evidence.models import Role, utcnow
from evidence.settings import Settings
from evidence.users import resolve_actor

MANIFEST = "BACKUP.json"
WORK_MARK = ".evidence-backup-in-progress"  # in the hidden folder a backup is written in
DEAD_AFTER_SECONDS = 3600.0  # a backup's work folder untouched this long: its process died
FORMAT = "evidence-locker home backup 1"
PROGRESS_EVERY_SECONDS = 2.0

Progress = Callable[[str], None]


@dataclass
class BackupReport:
    destination: str
    entries: int
    tree_size: int
    root_hash: str
    blobs: int
    bytes: int
    manifest_sha256: str

    def summary(self) -> str:
        return (f"backup made at {self.destination}: {self.entries} custody entries verified "
                f"(latest checkpoint: {self.tree_size} entries, root {self.root_hash}), "
                f"{self.blobs} blobs ({self.bytes} bytes) copied and re-hashed, keys copied; "
                f"{MANIFEST} sha256 {self.manifest_sha256}. It is a data home: "
                f"`evidence serve --home {self.destination}` runs the system over it.")


def _sqlite_file(runtime: Runtime) -> Path:
    url = runtime.engine.url
    if url.get_backend_name() != "sqlite":
        raise ConfigurationError(
            "the database is on a server (PostgreSQL): back it up with the server's own tools "
            "(pg_dump, continuous archiving), and an S3 store with the bucket's versioning or "
            "replication; `evidence backup` copies an embedded home (SQLite and a blob folder)")
    if not url.database or url.database == ":memory:":
        raise ConfigurationError("the database is in memory: there is nothing on disk to back up")
    return Path(url.database)


def _check_destination(home: Path, dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        raise Conflict(f"{dest} already exists: a backup never writes over anything; name a "
                       "new folder")
    if not dest.parent.is_dir():
        raise BackupFailed(f"cannot make the backup: {dest.parent} is not a folder")
    if dest.resolve().is_relative_to(home.resolve()):
        raise BackupFailed(f"cannot make the backup inside the home it copies ({home})")


def clear_dead_backups(parent: Path) -> int:
    """Remove the work folders that killed backups left in `parent` (marked as a backup's,
    untouched for an hour: a live one writes all the time); returns how many."""
    cutoff = time.time() - DEAD_AFTER_SECONDS
    removed = 0
    for path in parent.glob(".*.partial-*"):
        with contextlib.suppress(OSError):
            if ((path / WORK_MARK).is_file()
                    and export_leases.newest_change(path) < cutoff):
                shutil.rmtree(path)
                removed += 1
    return removed


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copy2(source, target)  # keeps the mode: private keys stay 0600
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())


def _copy_keys(settings: Settings, work: Path) -> list[Path]:
    """The signing key pair, the deconfliction key and the built-in timestamp authority."""
    home = settings.home_path
    wanted = [settings.signing_key_path, settings.public_key_path,
              deconfliction.key_path(settings)]
    if settings.tsa_path.is_dir():
        wanted += sorted(p for p in settings.tsa_path.iterdir() if p.is_file())
    copied = []
    for source in wanted:
        if not source.is_file():
            continue  # a deconfliction secret given in the environment has no file
        if not source.resolve().is_relative_to(home.resolve()):
            continue  # kept outside the home by the settings: not the home's to copy
        target = work / source.resolve().relative_to(home.resolve())
        _copy_file(source, target)
        copied.append(target)
    return copied


def _snapshot_database(runtime: Runtime, target: Path) -> None:
    """One consistent copy of the whole database, taken while others go on writing."""
    raw = runtime.engine.raw_connection()
    copy = sqlite3.connect(target)
    try:
        raw.driver_connection.backup(copy)  # type: ignore[union-attr]
        # The copy is one file: its write-ahead log folded in, none left beside it.
        copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        copy.close()
        raw.close()
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())


def _copy_blobs(runtime: Runtime, copy: Runtime, store: FolderStore,
                say: Progress) -> tuple[int, int]:
    """Every blob the copied database refers to, into the copy's store, which hashes what it
    writes: a blob whose bytes no longer hash to its address stops the backup."""
    blobs = size = 0
    said_at = time.monotonic()
    for sha256, rows in fixity.blob_holders(copy, None):
        # The copy's store hashes what it writes (once): that must be the address it came from.
        problem = None
        try:
            with runtime.store.open(sha256, verify=False) as reader:
                kept = store.put_stream(reader)
            if kept.sha256 != sha256:
                problem = f"its bytes now hash to {kept.sha256}"
        except BlobMissing as exc:
            problem = str(exc)
        if problem is not None:
            held_by = "; ".join(fixity.describe_holder(row) for row in rows)
            raise BackupFailed(
                f"backup not made: blob {sha256} cannot be copied whole ({problem}); held by "
                f"{held_by}. Run `evidence store check` to see every problem, and restore the "
                "blob from an earlier backup")
        blobs += 1
        size += kept.size
        if time.monotonic() - said_at >= PROGRESS_EVERY_SECONDS:
            said_at = time.monotonic()
            say(f"copied {blobs} blobs, {size} bytes")
    return blobs, size


def _file_hashes(work: Path, files: list[Path]) -> dict[str, str]:
    out = {}
    for path in sorted(files):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        out[path.relative_to(work).as_posix()] = digest.hexdigest()
    return out


def backup_home(runtime: Runtime, actor_name: str | None, dest: Path, *,
                progress: Progress | None = None) -> BackupReport:
    """Copy the home to `dest` (a new folder), verify the copy, and record the backup."""
    say = progress or (lambda _msg: None)
    settings = runtime.settings
    home = settings.home_path
    _sqlite_file(runtime)
    if settings.store_url:
        raise ConfigurationError(
            "the blobs are in an S3 bucket: back it up with the bucket's versioning or "
            "replication, and the database with its own tools; `evidence backup` copies an "
            "embedded home (SQLite and a blob folder)")
    with runtime.session() as session:
        actor = resolve_actor(session, actor_name)
        if actor.role != Role.ADMIN:
            raise PermissionDenied("a backup holds every case's evidence: it needs an admin")
        made_by = actor.name
    dest = dest.expanduser().absolute()
    _check_destination(home, dest)
    if cleared := clear_dead_backups(dest.parent):
        say(f"removed {cleared} unfinished backup(s) left in {dest.parent} by killed runs")
    work = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
    copy: Runtime | None = None
    try:
        work.mkdir(mode=0o700)
        (work / WORK_MARK).write_text(f"backup of {home} to {dest}, pid {os.getpid()}\n",
                                      encoding="utf-8")
        say("copying the database (one consistent snapshot)")
        _snapshot_database(runtime, work / "evidence.db")
        keys = _copy_keys(settings, work)
        # Blobs are not synced one by one: the whole copy is, once, before it gets its name.
        store = FolderStore(work / "blobs", fsync_each=False)
        store.create()
        copy = open_runtime(settings.model_copy(update={"home": work, "database_url": None}))
        say("copying the blobs the database refers to, each re-hashed")
        blobs, size = _copy_blobs(runtime, copy, store, say)
        say("verifying the copy's custody log")
        with copy.read_session() as session:
            report = custody.verify_log(session, copy.verifier,
                                        tsa_trust=manifests.trusted_roots(copy.settings))
            latest = custody.latest_checkpoint(session)
            tree_size, root_hash = ((0, "-") if latest is None
                                    else (latest.tree_size, latest.root_hash.hex()))
        revision = migrate.current_revision(copy.engine)
        if not report.ok:
            raise BackupFailed(f"backup not made: the copied custody log does not verify: "
                               f"{report.summary()}")
        copy.close()
        copy = None
        document = {
            "format": FORMAT,
            "made_at": custody.format_time(utcnow()),
            "made_by": made_by,
            "source_home": str(home),
            "schema_revision": revision,
            "custody": {
                "entries": report.entries, "checkpoints": report.checkpoints,
                "latest_checkpoint": None if latest is None else {
                    "tree_size": tree_size, "root_hash": root_hash},
            },
            "blobs": {"count": blobs, "bytes": size,
                      "what": "every blob the database refers to, copied through its hash"},
            "files": _file_hashes(work, [work / "evidence.db", *keys]),
        }
        data = canonical_json(document)
        (work / MANIFEST).write_bytes(data)
        (work / WORK_MARK).unlink()
        os.sync()  # every file of the copy on disk before it is given DEST's name
        os.rename(work, dest)
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except EvidenceError:
        raise
    except OSError as exc:
        raise BackupFailed(f"backup not made: cannot write at {dest.parent}: "
                           f"{exc.strerror or exc}") from exc
    except sqlite3.Error as exc:  # a full disk, as SQLite reports it
        raise BackupFailed(f"backup not made: the database could not be copied: {exc}") from exc
    finally:
        if copy is not None:
            copy.close()
        shutil.rmtree(work, ignore_errors=True)

    result = BackupReport(
        destination=str(dest), entries=report.entries,
        tree_size=tree_size, root_hash=root_hash,
        blobs=blobs, bytes=size, manifest_sha256=hashlib.sha256(data).hexdigest())
    with runtime.session() as session:
        custody.append(session, resolve_actor(session, actor_name), action="home.backed_up",
                       object_type="backup", sha256=result.manifest_sha256,
                       details={"to": result.destination, "entries": result.entries,
                                "tree_size": result.tree_size, "root_hash": result.root_hash,
                                "blobs": blobs, "bytes": size})
    return result
