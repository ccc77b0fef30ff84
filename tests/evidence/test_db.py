"""The database connection the system runs on: SQLite in WAL mode with foreign keys enforced,
PostgreSQL through psycopg 3 from a plain postgresql:// URL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from evidence import migrate
from evidence.db import make_engine, make_session_factory, normalise_url, session_scope
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
