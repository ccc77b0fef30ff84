"""/api/health says what answers: the database and the blob store, folder or bucket."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from evidence.blobstore import S3Store
from evidence.home import Runtime
from tests.support.net import free_port
from tests.support.s3_server import S3Server


def _health(runtime: Runtime) -> dict[str, object]:
    with TestClient(create_app(runtime)) as client:
        response = client.get("/api/health")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_health_names_the_blob_store_and_whether_it_answers(
    tmp_path: Path, runtime: Runtime, s3_server: S3Server,
) -> None:
    folder = _health(runtime)
    assert (folder["status"], folder["blob_store"], folder["blob_store_backend"]) == (
        "ok", "ok", "folder")
    bucket = S3Store(s3_server.new_bucket(), "", tmp_path / "cache",
                     endpoint_url=s3_server.url)
    up = _health(dataclasses.replace(runtime, store=bucket))
    assert (up["status"], up["blob_store"], up["blob_store_backend"]) == ("ok", "ok", "s3")
    down = S3Store("evidence", "", tmp_path / "cache",
                   endpoint_url=f"http://127.0.0.1:{free_port()}")
    degraded = _health(dataclasses.replace(runtime, store=down))
    assert degraded["status"] == "degraded" and degraded["database"] == "ok"
    assert degraded["blob_store"] == "unavailable: StoreUnavailable"
    (tmp_path / "home" / "blobs").rename(tmp_path / "moved")
    gone = _health(runtime)
    assert (gone["status"], gone["blob_store"]) == ("degraded",
                                                    "unavailable: StoreUnavailable")
