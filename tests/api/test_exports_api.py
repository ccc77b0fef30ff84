"""Exports over HTTP: who may make one, the bundle it keeps, its download and custody."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from evidence import bundle_verifier, cases, targets, users
from evidence.home import Runtime
from evidence.models import CustodyEntry, Role
from tests.factories import make_sealed_capture


def _bearer(runtime: Runtime, name: str, role: Role) -> dict[str, str]:
    with runtime.session() as s:
        user = users.create_user(s, None, name=name, role=role, unit="Unit")
        token = users.issue_token(s, user, user, name="test")
    return {"Authorization": f"Bearer {token}"}


def test_prosecutor_exports_downloads_and_the_defence_can_verify(
    runtime: Runtime, tmp_path: Path
) -> None:
    _bearer(runtime, "ines", Role.INVESTIGATOR)
    ivan = _bearer(runtime, "ivan", Role.INVESTIGATOR)
    petra = _bearer(runtime, "petra", Role.PROSECUTOR)
    stranger = _bearer(runtime, "sam", Role.PROSECUTOR)
    with runtime.session() as s:
        investigator = users.get_user(s, "ines")
        case = cases.create_case(s, investigator, reference="OP/2026/9", title="Adverts")
        cases.add_member(s, investigator, case, users.get_user(s, "petra"), access="read")
        cases.add_member(s, investigator, case, users.get_user(s, "ivan"), access="write")
        target, _ = targets.flag_target(s, investigator, case, url="https://t.me/crossings",
                                        reason="advert")
        make_sealed_capture(s, runtime, case, target, actor=investigator)
    client = TestClient(create_app(runtime))
    base = "/api/cases/OP%2F2026%2F9/exports"

    # ines made the case and manages it, so she may; ivan only works on it.
    refused = client.post(base, json={}, headers=ivan)
    assert refused.status_code == 403 and "prosecutor" in refused.json()["message"]
    assert client.post(base, json={}, headers=stranger).status_code == 404
    assert client.post(base, json={}).status_code == 401

    made = client.post(base, json={}, headers=petra)
    assert made.status_code == 201, made.text
    done = made.json()
    assert done["exhibits"] == 1

    listed = client.get(base, headers=petra).json()["items"]
    assert [e["id"] for e in listed] == [done["id"]]
    assert client.get(base, headers=stranger).status_code == 404

    got = client.get(done["download"], headers=petra)
    assert got.status_code == 200
    assert got.headers["X-Content-SHA256"] == done["bundle_sha256"]
    assert hashlib.sha256(got.content).hexdigest() == done["bundle_sha256"]
    assert client.get(done["download"], headers=stranger).status_code == 404
    assert client.get(done["download"], headers=ivan).status_code == 403
    with zipfile.ZipFile(io.BytesIO(got.content)) as zf:
        assert any(n.endswith("data/verify.py") for n in zf.namelist())
    bundle = tmp_path / "downloaded.zip"
    bundle.write_bytes(got.content)
    report = bundle_verifier.verify_bundle(bundle)
    assert report.ok, report.render()

    with runtime.session() as s:
        actions = [e.action for e in s.scalars(
            select(CustodyEntry).where(CustodyEntry.case_id == case.id)
            .order_by(CustodyEntry.seq))]
    assert actions[-3:] == ["export.started", "export.completed", "export.downloaded"]


def test_export_of_a_case_without_captures_is_refused_clearly(runtime: Runtime) -> None:
    petra = _bearer(runtime, "petra", Role.PROSECUTOR)
    with runtime.session() as s:
        cases.create_case(s, users.get_user(s, "petra"), reference="EMPTY-1", title="Nothing")
    client = TestClient(create_app(runtime))
    answer = client.post("/api/cases/EMPTY-1/exports", json={}, headers=petra)
    assert answer.status_code == 422
    assert "no capture" in answer.json()["message"]
    bad = client.post("/api/cases/EMPTY-1/exports", json={"targets": ["nope"]}, headers=petra)
    assert bad.status_code == 422
