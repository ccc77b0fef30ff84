"""Deny by default, checked on every route the app publishes, not on a hand-kept list.

The walk reads the OpenAPI document, fills each path with real ids from a case the caller is
not a member of, and sends the documented example body. A stranger must get 404 (never 200,
403 or 500), so a case's existence does not leak; nobody without credentials gets past 401; an
auditor reads the custody timeline of any case and nothing else of it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from evidence import accounts, captures, cases, notes, targets
from evidence.models import Export, Role
from tests.api.conftest import Api, Caller
from tests.factories import make_capture

METHODS = ("get", "post", "put", "patch", "delete")
PUBLIC = {("get", "/api/health")}
# Routes about the caller or across cases: each is checked below for what it must not show.
NOT_CASE_SCOPED = {
    ("get", "/api/health"), ("post", "/api/auth/login"), ("post", "/api/auth/logout"),
    ("get", "/api/auth/me"), ("get", "/api/cases"), ("post", "/api/cases"),
    ("get", "/api/audit/cases"),
}
REFERENCE = "OP/2026/7"  # a '/' in it: the walk also proves such references route


def _example(schema: dict[str, Any], operation: dict[str, Any]) -> Any:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    ref = content["schema"]["$ref"].rsplit("/", 1)[1]
    examples = schema["components"]["schemas"][ref].get("examples")
    assert examples, f"request body {ref} has no example in the OpenAPI document"
    return examples[0]


def _world(api: Api) -> tuple[dict[str, str], Caller]:
    """A case with one of everything, made by its owner; returns ids to fill paths with."""
    owner = api.user("owner")
    with api.runtime.session() as session:
        case = cases.create_case(session, owner.user, reference=REFERENCE, title="Hidden case")
        account, _ = accounts.link_account(session, owner.user, case, platform="facebook",
                                           platform_account_id="1000",
                                           profile_url="https://example.org/p")
        target, _job = targets.flag_target(session, owner.user, case, reason="advert",
                                           url="https://example.org/ad")
        capture = make_capture(session, case, target, api.runtime.store)
        artifacts = captures.artifacts_of(session, capture.id)
        case_note = notes.add_note(session, owner.user, case, body="case note")
        target_note = notes.add_note(session, owner.user, case, body="target note",
                                     target_id=target.id)
        # A kept bundle (its bytes need not be a real bundle for routing and access).
        bundle = api.runtime.store.put_bytes(b"PK\x05\x06" + b"\x00" * 18)
        export = Export(case_id=case.id, requested_by_id=owner.user.id,
                        bundle_sha256=bundle.sha256, size=bundle.size)
        session.add(export)
        session.flush()
        return {"ref": quote(REFERENCE, safe=""), "target_id": str(target.id),
                "capture_id": str(capture.id), "artifact_id": str(artifacts[0].id),
                "account_id": str(account.id), "note_id": str(case_note.note.id),
                "target_note_id": str(target_note.note.id), "user": "owner",
                "export_id": str(export.id)}, owner


def _url(path: str, ids: dict[str, str]) -> str:
    if "/targets/{target_id}/notes/{note_id}" in path:
        ids = {**ids, "note_id": ids["target_note_id"]}
    return path.format(**ids)


def test_every_route_hides_a_case_from_those_who_may_not_see_it(api: Api) -> None:
    ids, _owner = _world(api)
    stranger = api.user("stranger")
    auditor = api.user("aud", Role.AUDITOR)
    schema = api.client.get("/api/openapi.json").json()
    walked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            walked += 1
            url = _url(path, ids)
            body = _example(schema, operation)

            def call(headers: dict[str, str], url: str = url, method: str = method,
                     body: Any = body) -> Any:
                return api.client.request(method.upper(), url, json=body, headers=headers)

            anonymous = call({})
            if (method, path) in PUBLIC:
                assert anonymous.status_code == 200
                continue
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert anonymous.json()["error"] in ("NotAuthenticated", "LoginFailed")
            if (method, path) in NOT_CASE_SCOPED:
                continue
            assert "{ref}" in path, f"{method} {path} is neither case-scoped nor reviewed"
            for who in (stranger, auditor):
                answer = call(who.headers)
                if who is auditor and method == "get" and path.endswith("/timeline"):
                    assert answer.status_code == 200, answer.text
                    continue
                assert answer.status_code == 404, (who.user.name, method, path, answer.text)
                assert answer.json()["message"].startswith("no "), answer.json()
                assert "owner" not in answer.text and "Hidden" not in answer.text
    assert walked >= 30, f"only {walked} routes walked"

    # The routes that are not about one case show the stranger nothing of it either.
    listed = api.client.get("/api/cases", headers=stranger.headers).json()
    assert listed["items"] == []
    assert api.client.get("/api/audit/cases", headers=stranger.headers).status_code == 404
    audit = api.client.get("/api/audit/cases", headers=auditor.headers).json()
    assert [c["reference"] for c in audit["items"]] == [REFERENCE]
    assert set(audit["items"][0]) == {"id", "reference", "status", "created_at"}


def test_the_walk_reaches_real_objects(api: Api) -> None:
    """The ids the walk uses are real: their owner reads every case-scoped GET route."""
    ids, owner = _world(api)
    schema = api.client.get("/api/openapi.json").json()
    reached = 0
    for path, operations in schema["paths"].items():
        if "get" in operations and "{ref}" in path:
            answer = api.client.get(_url(path, ids), headers=owner.headers)
            assert answer.status_code == 200, (path, answer.text)
            reached += 1
    assert reached >= 12


def test_an_auditor_reads_the_timeline_of_any_case(api: Api) -> None:
    ids, _owner = _world(api)
    auditor = api.user("aud", Role.AUDITOR)
    timeline = api.client.get(f"/api/cases/{ids['ref']}/timeline", headers=auditor.headers)
    assert timeline.status_code == 200
    entries = timeline.json()["items"]
    assert entries[0]["action"] == "case.created" and entries[0]["case_seq"] == 1
    assert [e["case_seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert all(len(e["leaf_hash"]) == 64 for e in entries)
    assert "artifact" not in {e["object"]["type"] for e in entries if e["object"]}
    missing = api.client.get("/api/cases/NOPE/timeline", headers=auditor.headers)
    assert missing.status_code == 404
