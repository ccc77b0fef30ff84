"""The database connection the system runs on: SQLite in WAL mode with foreign keys enforced,
PostgreSQL through psycopg 3 from a plain postgresql:// URL."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError

from evidence import migrate
from evidence.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    make_engine,
    make_session_factory,
    normalise_url,
    read_only_scope,
    session_scope,
)
from evidence.errors import DatabaseBusy
from evidence.models import CaseMember


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'evidence.db'}")
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        engine.dispose()


def test_a_row_pointing_at_nothing_is_refused(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(IntegrityError), session_scope(make_session_factory(engine)) as s:
            s.add(CaseMember(case_id=uuid.uuid4(), user_id=uuid.uuid4(), access="read"))
    finally:
        engine.dispose()


def test_plain_postgresql_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u@h:5432/db").startswith("postgresql+psycopg://")
    assert normalise_url("postgres://u:p%40ss@h/db") == "postgresql+psycopg://u:p%40ss@h/db"
    assert normalise_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_a_read_only_transaction_keeps_no_writer_waiting_and_writes_nothing(
    database_url: str
) -> None:
    """Verifying a large custody log reads for seconds; recording must go on meanwhile (on
    SQLite an ordinary transaction holds the only write lock from its start)."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    recorded = threading.Event()

    def record() -> None:
        with session_scope(factory) as s:
            s.execute(text("CREATE TABLE IF NOT EXISTS side_notes (x INTEGER)"))
        recorded.set()

    with read_only_scope(factory) as reading:
        before = reading.scalar(text("SELECT count(*) FROM custody_entries"))
        writer = threading.Thread(target=record)
        writer.start()
        assert recorded.wait(10), "a writer waited on the read-only transaction"
        writer.join()
        with pytest.raises(OperationalError if engine.dialect.name == "sqlite" else
                           InternalError, match=r"read-only|readonly"):
            reading.execute(text("CREATE TABLE refused (x INTEGER)"))
    assert before == 0
    engine.dispose()
    # The connection goes back to the pool writable: the next ordinary transaction on it writes.
    one = make_engine(database_url, pool_size=1, max_overflow=0)
    factory = make_session_factory(one)
    with read_only_scope(factory) as reading:
        reading.scalar(text("SELECT 1"))
    with session_scope(factory) as s:
        s.execute(text("DROP TABLE side_notes"))
    one.dispose()


def test_a_unit_given_a_lock_wait_gives_up_on_a_writer_holding_on_and_says_so(
    database_url: str
) -> None:
    """A worker that must stop within its grace waits only so long for another writer (on
    SQLite one holding the write lock, on PostgreSQL one holding the row), changing nothing;
    the connection goes back to the pool waiting as long as any other unit waits."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    factory = make_session_factory(engine)
    other = make_engine(database_url)
    try:
        with session_scope(factory) as s:
            s.execute(text("CREATE TABLE side_notes (x INTEGER)"))
            s.execute(text("INSERT INTO side_notes VALUES (1)"))
        said = ("another process kept the database locked for more than 0.5 s"
                if engine.dialect.name == "sqlite" else
                "another process kept what this needs locked for more than 0.5 s")
        with other.connect() as holder, holder.begin():
            holder.execute(text("SELECT x FROM side_notes FOR UPDATE"
                                if engine.dialect.name == "postgresql" else
                                "SELECT x FROM side_notes"))
            with pytest.raises(DatabaseBusy, match=f"^{said}$"), session_scope(
                    factory, lock_wait=0.5) as s:
                s.execute(text("UPDATE side_notes SET x = 2"))
        with session_scope(factory) as s:
            assert s.scalar(text("SELECT x FROM side_notes")) == 1
            if engine.dialect.name == "sqlite":
                assert s.scalar(text("PRAGMA busy_timeout")) == SQLITE_BUSY_TIMEOUT_MS
            else:
                assert s.scalar(text("SHOW lock_timeout")) == "0"
            s.execute(text("UPDATE side_notes SET x = 2"))
            s.execute(text("DROP TABLE side_notes"))
    finally:
        other.dispose()
        engine.dispose()
