"""An API over a fresh migrated database on each backend, called in-process through httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from evidence import users
from evidence.blobstore import FolderStore
from evidence.db import make_engine, make_session_factory
from evidence.home import Runtime
from evidence.models import Role, User
from evidence.settings import Settings
from evidence.signing import Signer


@dataclass
class Caller:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    client: TestClient
    runtime: Runtime

    def user(self, name: str, role: Role = Role.INVESTIGATOR, *, password: str | None = None,
             unit: str | None = "Border Unit") -> Caller:
        with self.runtime.session() as session:
            user = users.create_user(session, None, name=name, role=role, unit=unit,
                                     password=password)
            token = users.issue_token(session, user, user, name="test")
        return Caller(user, token)

    def get(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=caller.headers if caller else {}, **kwargs)

    def post(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers=caller.headers if caller else {}, **kwargs)

    def patch(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.patch(url, headers=caller.headers if caller else {}, **kwargs)

    def delete(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.delete(url, headers=caller.headers if caller else {}, **kwargs)


def build_runtime(home: Path, database_url: str, **settings: Any) -> Runtime:
    engine = make_engine(database_url)
    store = FolderStore(home / "blobs")
    store.create()
    return Runtime(settings=Settings(home=home, database_url=database_url, **settings),
                   engine=engine, sessions=make_session_factory(engine), store=store,
                   signer=Signer.generate())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def served_app(runtime: Runtime) -> Iterator[str]:
    """The app on 127.0.0.1 in a uvicorn thread (no lifespan: no checkpoint loop wanted), for
    a real browser; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    runtime = build_runtime(tmp_path / "home", database_url)
    # Not entered as a context manager: the lifespan's checkpoint loop is not wanted here.
    client = TestClient(create_app(runtime))
    try:
        yield Api(client, runtime)
    finally:
        client.close()
        runtime.close()
