"""Databases for the tests: every test that touches one runs on SQLite and, when
EVIDENCE_TEST_DATABASE_URL is set, again on PostgreSQL; the same tests, not a copy.

Schemas are built by the Alembic migrations (so the migrations are tested too). `session` gives
a transaction that is rolled back after the test; `database_url` gives a fresh migrated database
for tests that must commit (concurrency, tampering, the CLI).
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from evidence import migrate
from evidence.db import make_engine, normalise_url
from evidence.home import Runtime, init_home, open_runtime
from evidence.settings import Settings
from tests.support.s3_server import S3Server

PG_URL = os.environ.get("EVIDENCE_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"]


class Databases:
    """Creates databases for one backend from a migrated template, and drops them at the end."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self.created: list[str] = []
        self.template = self._new_name("tpl")
        if backend == "sqlite":
            self._template_file = workdir / "template.db"
            self.template_url = f"sqlite:///{self._template_file}"
        else:
            assert PG_URL is not None
            self._admin_url = normalise_url(PG_URL)
            self._admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
            self._create(self.template)
            self.template_url = self._url_for(self.template)
        engine = make_engine(self.template_url)
        migrate.upgrade(engine)
        engine.dispose()

    def _new_name(self, kind: str) -> str:
        return f"evl_test_{kind}_{uuid.uuid4().hex[:12]}"

    def _url_for(self, name: str) -> str:
        return make_url(self._admin_url).set(database=name).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None,
                tablespace: str | None = None) -> None:
        suffix = f" TEMPLATE {template}" if template else ""
        suffix += f' TABLESPACE "{tablespace}"' if tablespace else ""
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        self.created.append(name)

    def new_url(self, *, tablespace: str | None = None) -> str:
        """A fresh database at the head revision (on PostgreSQL, in `tablespace` if given)."""
        if self.backend == "sqlite":
            assert tablespace is None, "SQLite has no tablespaces"
            target = self.workdir / f"{uuid.uuid4().hex}.db"
            shutil.copyfile(self._template_file, target)
            return f"sqlite:///{target}"
        name = self._new_name("db")
        self._create(name, template=self.template, tablespace=tablespace)
        return self._url_for(name)

    @property
    def admin(self) -> Engine:
        """The PostgreSQL server as its superuser, outside any test database (autocommit)."""
        assert self.backend == "postgresql", "only PostgreSQL has a server to administer"
        return self._admin

    def drop(self, url: str) -> None:
        """Drop one database now (to free the tablespace it is in), not at the end."""
        name = make_url(url).database
        if self.backend == "sqlite" or name not in self.created:
            return
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.remove(name)

    def drop_all(self) -> None:
        if self.backend == "sqlite":
            return
        with self._admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


# A test stuck this long (seen once in CI: a Chromium walk waiting on a browser call that has no
# time bound of its own, as evaluate and close have none; a walk now bounds them itself, see
# `walk_context` in tests/api/conftest.py) ends the run with every thread's traceback, instead
# of holding CI until it is killed with nothing said.
TEST_HANG_SECONDS = 900


@pytest.fixture(autouse=True)
def _no_test_hangs_for_ever(request: pytest.FixtureRequest) -> Iterator[None]:
    def give_up() -> None:  # on the timer's thread, while the test's thread is stuck
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)  # say it where the run's output goes
        print(f"\n{request.node.nodeid} ran past {TEST_HANG_SECONDS} s: every thread as it "
              "stands, then the run ends", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(1)

    timer = threading.Timer(TEST_HANG_SECONDS, give_up)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgresql" and not PG_URL:
        pytest.skip("PostgreSQL run needs EVIDENCE_TEST_DATABASE_URL (./dev test sets it in CI)")
    return name


@pytest.fixture(scope="session")
def databases(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(backend, tmp_path_factory.mktemp(f"db-{backend}"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def shared_engine(databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.new_url())
    yield engine
    engine.dispose()


@pytest.fixture
def session(shared_engine: Engine) -> Iterator[Session]:
    """A session whose whole test runs in one transaction that is rolled back at the end."""
    connection = shared_engine.connect()
    outer = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint",
                 expire_on_commit=False)
    try:
        yield db
    finally:
        db.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def database_url(databases: Databases) -> str:
    """A fresh, migrated, empty database that the test may commit to."""
    return databases.new_url()


@pytest.fixture
def runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    """A data home made by `init_home` over a fresh database, opened as a process opens it."""
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    init_home(settings)
    rt = open_runtime(settings)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3-compatible service on 127.0.0.1 (moto's server, its own process)."""
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def postgresql_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """Databases for tests of behaviour only PostgreSQL has (row locks, advisory locks)."""
    if not PG_URL:
        pytest.skip("PostgreSQL-only test needs EVIDENCE_TEST_DATABASE_URL (CI sets it)")
    dbs = Databases("postgresql", tmp_path_factory.mktemp("db-postgresql-only"))
    yield dbs
    dbs.drop_all()


@pytest.fixture
def postgresql_database_url(postgresql_databases: Databases) -> str:
    return postgresql_databases.new_url()
