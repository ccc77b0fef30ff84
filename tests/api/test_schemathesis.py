"""Fuzz every operation of the OpenAPI document with schemathesis: no 5xx, and no response the
document does not describe, whatever the input.

Each operation runs against its own fresh world with one of everything (tests/api/world.py),
as the case's owner (a Bearer token), on each backend. Two runs: one with the path filled with
real objects, so generated bodies and queries reach the services; one with generated path values
(malformed references and ids). Bounded and derandomised, so each run is the same.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from evidence.home import init_home, open_runtime
from evidence.settings import Settings
from tests.api.conftest import Api, build_runtime
from tests.api.world import build_world

# status_code_conformance is kept: every route declares 401/404/422 and what else it answers,
# so a status the document does not list is a documentation bug a client would trip over.
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
FUZZ = settings(max_examples=12, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _published_document() -> dict[str, Any]:
    """The app's OpenAPI document; it depends on the code only, not on a database."""
    with tempfile.TemporaryDirectory() as tmp:
        runtime = build_runtime(Path(tmp), "sqlite://")
        try:
            return create_app(runtime).openapi()
        finally:
            runtime.close()


schema = schemathesis.openapi.from_dict(_published_document())


def _without_lifespan(app: Any) -> Any:
    """The app with its lifespan (the checkpoint loop) refused: these tests need no sealing."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # Refusing before the first message is how an app says it has no lifespan.
            raise RuntimeError("no lifespan under test")
        await app(scope, receive, send)

    return wrapped


@dataclass
class World:
    app: Any
    ids: dict[str, str]
    headers: dict[str, str]

    def path_for(self, case: schemathesis.Case) -> dict[str, Any]:
        ids = self.ids
        if "/targets/{target_id}/notes/{note_id}" in case.path:
            ids = {**ids, "note_id": ids["target_note_id"]}
        return {name: ids[name] for name in case.path_parameters or {}}


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    # A home as `evidence init` makes it: the one signing key every checkpoint is signed with
    # (an export verifies the log first), the timestamp authority sealed captures need.
    home = Settings(home=tmp_path / "home", database_url=database_url)
    init_home(home)
    runtime = open_runtime(home)
    app = create_app(runtime)
    try:
        ids, owner = build_world(Api(TestClient(app), runtime), complete=True)
        yield World(_without_lifespan(app), ids, owner.headers)
    finally:
        runtime.close()


@schema.parametrize()
@FUZZ
def test_real_objects_never_5xx_nor_off_schema(case: schemathesis.Case, world: World) -> None:
    case.path_parameters = world.path_for(case)
    case.call_and_validate(app=world.app, headers=world.headers, checks=CHECKS)


@schema.include(path_regex=r"\{").parametrize()
@settings(FUZZ, max_examples=5)
def test_any_path_values_never_5xx_nor_off_schema(case: schemathesis.Case,
                                                  world: World) -> None:
    case.call_and_validate(app=world.app, headers=world.headers, checks=CHECKS)
