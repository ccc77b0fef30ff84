"""Deny by default, checked on every route the app publishes, not on a hand-kept list.

The walk reads the OpenAPI document, fills each path with real ids from a case the caller is
not a member of, and sends the documented example body. A stranger must get 404 (never 200,
403 or 500), so a case's existence does not leak; nobody without credentials gets past 401; an
auditor reads the custody timeline of any case and nothing else of it.
"""

from __future__ import annotations

from typing import Any

from evidence import captures, cases, targets
from evidence.models import Role
from tests.api.conftest import Api
from tests.api.world import OTHER_REFERENCE, REFERENCE, build_world

METHODS = ("get", "post", "put", "patch", "delete")
PUBLIC = {("get", "/api/health")}
# Routes about the caller or across cases: each is checked below for what it must not show.
NOT_CASE_SCOPED = {
    ("get", "/api/health"), ("post", "/api/auth/login"), ("post", "/api/auth/logout"),
    ("get", "/api/auth/me"), ("get", "/api/cases"), ("post", "/api/cases"),
    ("get", "/api/audit/cases"),
    ("get", "/api/requests/due"), ("get", "/api/requests/stats"),
    # Search across the caller's cases: see test_search_shows_a_stranger_nothing_of_a_case.
    ("get", "/api/search"), ("get", "/api/images/similar"), ("post", "/api/images/similar"),
    # Admins only, whoever is named: see tests/api/test_users_api.py.
    ("post", "/api/users/{user}/disable"), ("post", "/api/users/{user}/enable"),
}
# Routes addressed by the id of an object inside a case (decisions, by target or decision id):
# walked exactly like case-scoped routes, the id standing in for the reference.
ADDRESSED_BY_ID = {
    ("post", "/api/targets/{target_id}/decisions"), ("get", "/api/targets/{target_id}/decisions"),
    ("get", "/api/decisions/{decision_id}"), ("post", "/api/decisions/{decision_id}/approve"),
    ("post", "/api/decisions/{decision_id}/reject"),
}


def _example(schema: dict[str, Any], operation: dict[str, Any]) -> Any:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    ref = content["schema"]["$ref"].rsplit("/", 1)[1]
    examples = schema["components"]["schemas"][ref].get("examples")
    assert examples, f"request body {ref} has no example in the OpenAPI document"
    return examples[0]


def _url(path: str, ids: dict[str, str]) -> str:
    if "/targets/{target_id}/notes/{note_id}" in path:
        ids = {**ids, "note_id": ids["target_note_id"]}
    return path.format(**ids)


def test_every_route_hides_a_case_from_those_who_may_not_see_it(api: Api) -> None:
    ids, owner = build_world(api)
    stranger = api.user("stranger")
    auditor = api.user("aud", Role.AUDITOR)
    # The document itself is not public either.
    assert api.client.get("/api/openapi.json").status_code == 401
    assert api.client.get("/api/docs").status_code == 401
    schema = api.client.get("/api/openapi.json", headers=owner.headers).json()
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
            assert "{ref}" in path or (method, path) in ADDRESSED_BY_ID, (
                f"{method} {path} is neither case-scoped nor reviewed")
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
    for across in ("/api/requests/due?within=999d", "/api/requests/stats"):
        assert api.client.get(across, headers=stranger.headers).json() == []
        assert api.client.get(across, headers=auditor.headers).json() == []
    audit = api.client.get("/api/audit/cases", headers=auditor.headers).json()
    assert [c["reference"] for c in audit["items"]] == [REFERENCE, OTHER_REFERENCE]
    assert set(audit["items"][0]) == {"id", "reference", "status", "created_at"}


def test_the_walk_reaches_real_objects(api: Api) -> None:
    """The ids the walk uses are real: their owner reads every case-scoped GET route."""
    ids, owner = build_world(api)
    schema = api.client.get("/api/openapi.json", headers=owner.headers).json()
    reached = 0
    for path, operations in schema["paths"].items():
        if "get" in operations and ("{ref}" in path or ("get", path) in ADDRESSED_BY_ID):
            answer = api.client.get(_url(path, ids), headers=owner.headers)
            assert answer.status_code == 200, (path, answer.text)
            reached += 1
    assert reached >= 12


def test_an_auditor_reads_the_timeline_of_any_case(api: Api) -> None:
    ids, _owner = build_world(api)
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


def test_search_shows_a_stranger_nothing_of_a_case(api: Api) -> None:
    """The cross-case search routes answer a stranger or an auditor with nothing of the case."""
    from tests.factories import make_text_capture

    ids, owner = build_world(api)
    with api.runtime.session() as session:
        case = cases.get_case(session, owner.user, REFERENCE)
        target, _job = targets.flag_target(session, owner.user, case, reason="advert",
                                           url="https://example.org/ad2")
        capture = make_text_capture(session, case, target, api.runtime.store,
                                    text="Hidden advert crossing", images=["0123456789abcdef"])
        artifact = next(a for a in captures.artifacts_of(session, capture.id) if a.phash)
    stranger = api.user("stranger")
    auditor = api.user("aud", Role.AUDITOR)
    assert api.client.get("/api/search", params={"q": "advert"},
                          headers=owner.headers).json()["items"]
    for who in (stranger, auditor):
        found = api.client.get("/api/search", params={"q": "advert"}, headers=who.headers)
        assert found.status_code == 200 and found.json()["items"] == []
        scoped = api.client.get("/api/search", params={"q": "advert", "case": REFERENCE},
                                headers=who.headers)
        assert scoped.status_code == 404 and "Hidden" not in scoped.text
        similar = api.client.get("/api/images/similar", params={"artifact": str(artifact.id)},
                                 headers=who.headers)
        assert similar.status_code == 404 and similar.json()["message"].startswith("no ")
        other = api.client.get("/api/images/similar", params={"artifact": ids["artifact_id"]},
                               headers=who.headers)
        assert other.status_code == 404
        upload = api.client.post("/api/images/similar", params={"distance": 16},
                                 files={"image": ("x.png", _tiny_png(), "image/png")},
                                 headers=who.headers)
        assert upload.status_code == 200 and upload.json()["items"] == []


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(out, "PNG")
    return out.getvalue()
