"""Database engines and sessions for SQLite (embedded default) and PostgreSQL (scale).

SQLite runs in WAL mode with foreign keys on and every transaction opened with BEGIN IMMEDIATE,
so two writers never both read the custody log's head and then race to append after it. Long
reads that write nothing (verifying the custody log) use `read_only_scope` instead: a deferred
transaction on SQLite (a WAL snapshot that holds no lock, so recording goes on beside it) and a
READ ONLY one on PostgreSQL.

A unit of work that must end within a time it is given (a stopping worker handing its job back
before it is killed) waits at most `lock_wait` seconds for another writer (`session_scope`):
on SQLite that is BEGIN IMMEDIATE's wait for the write lock (the transaction's only wait, as it
holds the lock from then on); on PostgreSQL each lock it waits for (lock_timeout; a statement
that runs long without waiting for a lock is not cut short). When the time runs out the unit is
rolled back and `DatabaseBusy` says so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from evidence.errors import DatabaseBusy, EvidenceError, StorageFull

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long a connection to PostgreSQL may take to open before it fails (libpq's connect_timeout,
# which the database URL may set instead): a server that does not answer fails a command, a
# worker's claim or a request after this, instead of holding it for ever.
PG_CONNECT_TIMEOUT_S = 10
READ_ONLY_OPTION = "evidence_read_only"  # an execution option: begin a read-only transaction
# An execution option: the seconds a transaction may wait for another writer (`session_scope`).
LOCK_WAIT_OPTION = "evidence_lock_wait"
# SQLite says a full disk as SQLITE_FULL, or, where the WAL or its index could not grow, as
# one of its I/O errors: taken for a full disk when the database's folder has less than this.
FULL_DISK_FREE_BYTES = 1024 * 1024
PG_DISK_FULL = "53100"  # SQLSTATE disk_full
PG_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE lock_not_available: lock_timeout ran out


def normalise_url(url: str) -> str:
    """Let people write postgresql://...; the project's driver is psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # Evidence outlives a power cut: sync the WAL on every commit.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(READ_ONLY_OPTION):
            conn.exec_driver_sql("PRAGMA query_only = ON")  # SQLite's read-only transaction
            conn.exec_driver_sql("BEGIN")
        elif options.get(LOCK_WAIT_OPTION) is None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {_ms(options[LOCK_WAIT_OPTION])}")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            finally:  # the connection goes back to the pool
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")

    @event.listens_for(engine, "rollback")
    @event.listens_for(engine, "commit")
    def _on_end(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("PRAGMA query_only = OFF")  # the connection goes back to the pool


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(READ_ONLY_OPTION):
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        if options.get(LOCK_WAIT_OPTION) is not None:
            # SET LOCAL: until this transaction ends.
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {_ms(options[LOCK_WAIT_OPTION])}")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))  # 0 would mean no limit


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **_with_connect_timeout(url, kwargs))
    _configure_postgresql(engine)
    return engine


def reading_engine(url: str) -> Engine:
    """An engine for reading the database over connections of its own, one at a time (another
    process's or thread's share of a long read): none of `make_engine`'s transaction handling
    (on SQLite no BEGIN IMMEDIATE, so no write lock is taken), PostgreSQL's connect timeout."""
    url = normalise_url(url)
    kwargs: dict[str, Any] = {"poolclass": NullPool}
    return create_engine(url, **(kwargs if is_sqlite(url) else _with_connect_timeout(url, kwargs)))


def _with_connect_timeout(url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL's connect arguments with `PG_CONNECT_TIMEOUT_S`, unless the URL sets one."""
    if "connect_timeout" in make_url(url).query:
        return kwargs
    return {**kwargs, "connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S,
                                       **kwargs.get("connect_args", {})}}


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def storage_full(exc: OperationalError, url: str | URL) -> StorageFull | None:
    """The error as the full disk it is, or None when it is anything else.

    SQLite's "disk I/O error" names no cause: it is taken for a full disk only when the folder
    of the database file has (next to) no space left, as seen now. Its "database or disk is
    full" may also be its temporary files' disk (TMPDIR, where it sorts and builds indexes):
    that one is named when it is the full one and the database's is not.
    """
    orig = exc.orig
    url = make_url(url)
    if url.get_backend_name() == "postgresql":
        if getattr(orig, "sqlstate", None) == PG_DISK_FULL:
            return StorageFull("the database server's disk is full: nothing of this was saved; "
                               "free space on it and try again")
        return None
    name = str(getattr(orig, "sqlite_errorname", ""))
    database = url.database
    if not database or database == ":memory:" or not (
            name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR")):
        return None
    folder = Path(database).resolve().parent
    free = free_bytes(folder)
    if free is None or (name != "SQLITE_FULL" and free >= FULL_DISK_FREE_BYTES):
        return None
    if free >= FULL_DISK_FREE_BYTES:
        temp = temp_folder(sqlite=True)
        temp_free = free_bytes(temp)
        if temp_free is not None and temp_free < FULL_DISK_FREE_BYTES:
            return StorageFull(f"the disk of the temporary folder the database works in ({temp}) "
                               f"is full ({temp_free} bytes free): nothing of this was saved; "
                               "free space on it (or set TMPDIR to a folder with room) and try "
                               "again")
    return StorageFull(f"the disk holding the database ({folder}) is full ({free} bytes free): "
                       "nothing of this was saved; free space on it and try again")


def temp_folder(*, sqlite: bool = False) -> Path:
    """The folder a Unix program keeps its temporary files in, found as SQLite and Chromium
    find it: TMPDIR (for SQLite, SQLITE_TMPDIR before it), else /var/tmp, /usr/tmp, /tmp.
    (Python's `tempfile.gettempdir` passes over a full one, which is the one wanted here.)"""
    for name in ("SQLITE_TMPDIR", "TMPDIR")[0 if sqlite else 1:]:
        value = os.environ.get(name)  # those programs' own settings, read as they read them
        if value and os.path.isdir(value):
            return Path(value)
    for folder in ("/var/tmp", "/usr/tmp", "/tmp"):  # noqa: S108 (only measured, not used)
        if os.path.isdir(folder):
            return Path(folder)
    return Path.cwd()


def free_bytes(folder: Path) -> int | None:
    """The bytes free on the disk of `folder`, or None when it cannot be told."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _lock_wait_ran_out(exc: OperationalError, seconds: float) -> DatabaseBusy | None:
    """The error as the end of a wait of `seconds` for another writer, or None when it is
    anything else."""
    orig = exc.orig
    if str(getattr(orig, "sqlite_errorname", "")).startswith("SQLITE_BUSY"):
        said = f"another process kept the database locked for more than {seconds:g} s"
    elif getattr(orig, "sqlstate", None) == PG_LOCK_NOT_AVAILABLE:
        said = f"another process kept what this needs locked for more than {seconds:g} s"
    else:
        return None
    return DatabaseBusy(said)


@contextmanager
def session_scope(factory: sessionmaker[Session], *,
                  lock_wait: float | None = None) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back when it raises. A full disk is
    raised as `StorageFull`, which says so (the driver's words may not). With `lock_wait`, the
    unit waits at most that many seconds for another writer (see the module's docstring), and
    raises `DatabaseBusy` when the time runs out."""
    bind = factory.kw["bind"]
    session = (factory() if lock_wait is None else
               factory(bind=bind.execution_options(**{LOCK_WAIT_OPTION: lock_wait})))
    try:
        yield session
        session.commit()
    except BaseException as exc:
        session.rollback()
        said: EvidenceError | None = None
        if isinstance(exc, OperationalError):
            said = storage_full(exc, bind.url)
            if said is None and lock_wait is not None:
                said = _lock_wait_ran_out(exc, lock_wait)
        if said is not None:
            raise said from exc
        raise
    finally:
        session.close()


@contextmanager
def read_only_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that only reads (the database refuses a write in it) and does not keep
    writers waiting on SQLite while it reads; it is rolled back at the end."""
    session = factory(bind=factory.kw["bind"].execution_options(**{READ_ONLY_OPTION: True}))
    try:
        yield session
    finally:
        session.rollback()
        session.close()
