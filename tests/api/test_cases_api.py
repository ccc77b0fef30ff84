"""The case model over HTTP: cases, members, accounts, targets, captures, downloads, timeline."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from sqlalchemy import select

from evidence import cases, targets
from evidence.models import CaptureJob, CustodyEntry, JobState, Role
from tests.api.conftest import Api, Caller
from tests.factories import make_capture

CASE = {"reference": "OP-2026-014", "title": "Crossing adverts, Evros",
        "offence": "Migrant smuggling", "jurisdiction": "gr"}


def _case(api: Api, caller: Caller, **overrides: Any) -> dict[str, Any]:
    made = api.post(caller, "/api/cases", json={**CASE, **overrides})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _actions(api: Api, reference: str) -> list[str]:
    with api.runtime.session() as session:
        case = session.scalars(select(cases.Case).where(cases.Case.reference == reference)).one()
        return list(session.scalars(select(CustodyEntry.action)
                                    .where(CustodyEntry.case_id == case.id)
                                    .order_by(CustodyEntry.seq)))


def test_create_list_show_update_close_and_reopen(api: Api) -> None:
    nadia = api.user("nadia")
    made = _case(api, nadia)
    assert made["reference"] == "OP-2026-014" and made["jurisdiction"] == "GR"
    assert made["status"] == "open" and made["access"] == "manage"
    assert made["owning_unit"] == "Border Unit"
    listed = api.get(nadia, "/api/cases").json()
    assert [c["reference"] for c in listed["items"]] == ["OP-2026-014"] and listed["next"] is None
    shown = api.get(nadia, "/api/cases/OP-2026-014")
    assert shown.status_code == 200 and shown.json()["title"] == CASE["title"]
    changed = api.patch(nadia, "/api/cases/OP-2026-014",
                        json={"title": "Evros and Thrace", "handling_code": "RESTRICTED"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Evros and Thrace"
    assert changed.json()["offence"] == "Migrant smuggling"  # fields not sent are kept
    assert changed.json()["contact"] is None
    contact = api.patch(nadia, "/api/cases/OP-2026-014", json={"contact": "Duty desk, ext. 214"})
    assert contact.json()["contact"] == "Duty desk, ext. 214"
    bad = api.patch(nadia, "/api/cases/OP-2026-014", json={"jurisdiction": "Greece"})
    assert bad.status_code == 422 and "ISO 3166" in bad.json()["message"]
    closed = api.post(nadia, "/api/cases/OP-2026-014/close", json={"reason": "referred"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = api.post(nadia, "/api/cases/OP-2026-014/close", json={})
    assert again.status_code == 409 and again.json()["error"] == "Conflict"
    reopened = api.post(nadia, "/api/cases/OP-2026-014/reopen", json={})
    assert reopened.json()["status"] == "open" and reopened.json()["closed_at"] is None
    duplicate = api.post(nadia, "/api/cases", json=CASE)
    assert duplicate.status_code == 409 and duplicate.json()["error"] == "DuplicateReference"
    assert _actions(api, "OP-2026-014") == [
        "case.created", "case.member_added", "case.viewed", "case.updated", "case.updated",
        "case.closed", "case.reopened",
    ]


def test_members_are_added_changed_and_removed_by_managers(api: Api) -> None:
    nadia, petros = api.user("nadia"), api.user("petros")
    auditor = api.user("aud", Role.AUDITOR)
    _case(api, nadia)
    assert api.get(petros, "/api/cases/OP-2026-014").status_code == 404
    added = api.post(nadia, "/api/cases/OP-2026-014/members",
                     json={"user": "petros", "access": "read"})
    assert added.status_code == 200 and added.json()["access"] == "read"
    assert api.get(petros, "/api/cases/OP-2026-014").json()["access"] == "read"
    # A reader sees the case, so is told why a change is refused: 403, not 404.
    refused = api.post(petros, "/api/cases/OP-2026-014/targets",
                       json={"url": "https://example.org/a", "reason": "advert"})
    assert refused.status_code == 403
    members = api.get(petros, "/api/cases/OP-2026-014/members").json()
    assert {(m["user"], m["access"]) for m in members} == {("nadia", "manage"), ("petros", "read")}
    no_auditors = api.post(nadia, "/api/cases/OP-2026-014/members", json={"user": "aud"})
    assert no_auditors.status_code == 422 and "auditor" in no_auditors.json()["message"]
    assert auditor.user.role == "auditor"
    ghost = api.post(nadia, "/api/cases/OP-2026-014/members", json={"user": "ghost"})
    assert ghost.status_code == 404
    last = api.delete(nadia, "/api/cases/OP-2026-014/members/nadia")
    assert last.status_code == 409 and "last manager" in last.json()["message"]
    assert api.delete(nadia, "/api/cases/OP-2026-014/members/petros").status_code == 204
    assert api.get(petros, "/api/cases/OP-2026-014").status_code == 404


def test_accounts_targets_and_closed_case_refusals(api: Api) -> None:
    nadia = api.user("nadia")
    _case(api, nadia)
    account = {"platform": "Facebook", "platform_account_id": "100089123456789",
               "handle": "fast.trips.eu", "profile_url": "https://www.facebook.com/fast.trips.eu"}
    linked = api.post(nadia, "/api/cases/OP-2026-014/accounts", json=account)
    assert linked.status_code == 201, linked.text
    assert linked.json()["platform"] == "facebook"
    account_id = linked.json()["id"]
    renamed = api.post(nadia, "/api/cases/OP-2026-014/accounts",
                       json={**account, "handle": "fast.trips.2"})
    assert renamed.status_code == 200 and renamed.json()["id"] == account_id
    assert renamed.json()["handle"] == "fast.trips.2"
    flagged = api.post(nadia, "/api/cases/OP-2026-014/targets",
                       json={"url": "https://example.org/advert/1", "reason": "offers crossings",
                             "watch_interval_seconds": 3600})
    assert flagged.status_code == 201, flagged.text
    target = flagged.json()["target"]
    assert target["kind"] == "url" and target["watch_interval_seconds"] == 3600
    assert flagged.json()["job"]["state"] == "queued"
    by_account = api.post(nadia, "/api/cases/OP-2026-014/targets",
                          json={"account_id": account_id, "reason": "the seller's profile"})
    assert by_account.status_code == 201, by_account.text
    assert by_account.json()["target"]["url"] == "https://www.facebook.com/fast.trips.eu"
    shown_account = api.get(nadia, f"/api/cases/OP-2026-014/accounts/{account_id}").json()
    assert [t["kind"] for t in shown_account["targets"]] == ["account"]
    both = api.post(nadia, "/api/cases/OP-2026-014/targets",
                    json={"url": "https://example.org/", "account_id": account_id,
                          "reason": "x"})
    assert both.status_code == 422
    not_http = api.post(nadia, "/api/cases/OP-2026-014/targets",
                        json={"url": "javascript:alert(1)", "reason": "x"})
    assert not_http.status_code == 422 and "http" in not_http.json()["message"]
    listed = api.get(nadia, "/api/cases/OP-2026-014/targets").json()["items"]
    assert len(listed) == 2
    shown = api.get(nadia, f"/api/cases/OP-2026-014/targets/{target['id']}").json()
    assert shown["captures"] == [] and [j["state"] for j in shown["jobs"]] == ["queued"]
    recapture = api.post(nadia, f"/api/cases/OP-2026-014/targets/{target['id']}/captures",
                         json={"reason": "edited"})
    assert recapture.status_code == 202 and recapture.json()["state"] == "queued"
    # The flag's capture is still waiting: asking again is that capture, not another.
    assert recapture.json()["id"] == shown["jobs"][0]["id"]

    assert api.post(nadia, "/api/cases/OP-2026-014/close", json={}).status_code == 200
    for url, body in [
        ("/api/cases/OP-2026-014/targets", {"url": "https://example.org/2", "reason": "r"}),
        (f"/api/cases/OP-2026-014/targets/{target['id']}/captures", {"reason": "again"}),
        ("/api/cases/OP-2026-014/accounts", {"platform": "x", "platform_account_id": "2"}),
    ]:
        refused = api.post(nadia, url, json=body)
        assert refused.status_code == 409, (url, refused.text)
        assert refused.json() == {"error": "CaseClosed",
                                  "message": "case 'OP-2026-014' is closed"}
    with api.runtime.session() as session:
        jobs = session.scalars(select(CaptureJob.state)).all()
    # Closing cancelled the two captures queued before it; nothing was queued while closed.
    assert sorted(jobs) == [JobState.CANCELLED] * 2


def test_capture_detail_and_artifact_download_are_recorded(api: Api) -> None:
    nadia, petros = api.user("nadia"), api.user("petros")
    _case(api, nadia)
    api.post(nadia, "/api/cases/OP-2026-014/members", json={"user": "petros"})
    with api.runtime.session() as session:
        case = cases.get_case(session, nadia.user, "OP-2026-014")
        target, _job = targets.flag_target(session, nadia.user, case, reason="advert",
                                           url="https://example.org/advert")
        capture = make_capture(session, case, target, api.runtime.store,
                               comparison={"summary": "text changed"})
        capture_id, target_id = capture.id, target.id
    listed = api.get(petros, "/api/cases/OP-2026-014/captures").json()["items"]
    assert [c["id"] for c in listed] == [str(capture_id)]
    by_target = api.get(petros, f"/api/cases/OP-2026-014/captures?target={target_id}").json()
    assert len(by_target["items"]) == 1
    detail = api.get(petros, f"/api/cases/OP-2026-014/captures/{capture_id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["status"] == "partial" and body["comparison"] == {"summary": "text changed"}
    assert [s["name"] for s in body["steps"]] == ["navigate", "pdf"]
    assert body["steps"][1]["error"] == "timed out"
    assert {a["kind"] for a in body["artifacts"]} == {"screenshot", "dom"}
    dom = next(a for a in body["artifacts"] if a["kind"] == "dom")
    shown_target = api.get(petros, f"/api/cases/OP-2026-014/targets/{target_id}").json()
    assert [c["id"] for c in shown_target["captures"]] == [str(capture_id)]

    download = api.get(petros, dom["download"])
    assert download.status_code == 200
    data = b"<html><body>advert</body></html>"
    assert download.content == data
    digest = hashlib.sha256(data).hexdigest()
    assert download.headers["x-content-sha256"] == digest == dom["sha256"]
    assert download.headers["repr-digest"] == (
        f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:")
    assert download.headers["content-type"].startswith("text/html")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]
    assert download.headers["content-disposition"] == 'attachment; filename="dom.html"'
    with api.runtime.session() as session:
        entry = session.scalars(select(CustodyEntry).where(
            CustodyEntry.action == "artifact.downloaded")).one()
    assert entry.actor_id == petros.user.id and entry.sha256 == digest
    assert entry.object_id == dom["id"]
    assert _actions(api, "OP-2026-014")[-2:] == ["capture.viewed", "artifact.downloaded"]


def test_ids_of_another_case_are_not_found(api: Api) -> None:
    nadia = api.user("nadia")
    _case(api, nadia, reference="A-1")
    _case(api, nadia, reference="B-1")
    flagged = api.post(nadia, "/api/cases/A-1/targets",
                       json={"url": "https://example.org/a", "reason": "advert"}).json()
    target_id = flagged["target"]["id"]
    assert api.get(nadia, f"/api/cases/A-1/targets/{target_id}").status_code == 200
    wrong = api.get(nadia, f"/api/cases/B-1/targets/{target_id}")
    assert wrong.status_code == 404 and wrong.json()["error"] == "AccessDenied"
    assert api.post(nadia, f"/api/cases/B-1/targets/{target_id}/notes",
                    json={"body": "x"}).status_code == 404


def test_notes_are_append_only_revisions(api: Api) -> None:
    nadia = api.user("nadia")
    _case(api, nadia)
    made = api.post(nadia, "/api/cases/OP-2026-014/notes", json={"body": "First thought"})
    assert made.status_code == 201, made.text
    note = made.json()
    assert note["revision"] == 1 and note["body"] == "First thought"
    revised = api.post(nadia, f"/api/cases/OP-2026-014/notes/{note['id']}/revisions",
                       json={"body": "Second thought"})
    assert revised.status_code == 201
    detail = api.get(nadia, f"/api/cases/OP-2026-014/notes/{note['id']}").json()
    assert detail["revision"] == 2 and detail["body"] == "Second thought"
    assert [(r["revision"], r["body"]) for r in detail["revisions"]] == [
        (1, "First thought"), (2, "Second thought")]
    assert detail["revisions"][0]["body_sha256"] == hashlib.sha256(b"First thought").hexdigest()
    flagged = api.post(nadia, "/api/cases/OP-2026-014/targets",
                       json={"url": "https://example.org/a", "reason": "advert"}).json()
    tid = flagged["target"]["id"]
    on_target = api.post(nadia, f"/api/cases/OP-2026-014/targets/{tid}/notes",
                         json={"body": "Phone number matches"})
    assert on_target.status_code == 201 and on_target.json()["target_id"] == tid
    tnote = on_target.json()["id"]
    assert api.post(nadia, f"/api/cases/OP-2026-014/targets/{tid}/notes/{tnote}/revisions",
                    json={"body": "Phone and IBAN match"}).json()["revision"] == 2
    case_notes = api.get(nadia, "/api/cases/OP-2026-014/notes").json()["items"]
    assert [n["body"] for n in case_notes] == ["Second thought"]
    target_notes = api.get(nadia, f"/api/cases/OP-2026-014/targets/{tid}/notes").json()["items"]
    assert [(n["revision"], n["body"]) for n in target_notes] == [(2, "Phone and IBAN match")]
    # A target's note is not reachable as another target's, nor a case note as a target's.
    assert api.get(nadia, f"/api/cases/OP-2026-014/targets/{tid}/notes/{note['id']}"
                   ).status_code == 404
    assert api.post(nadia, "/api/cases/OP-2026-014/notes", json={"body": "  "}).status_code == 422
    # The database itself refuses to rewrite history.
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    with api.runtime.engine.connect() as conn:
        try:
            conn.execute(text("UPDATE note_revisions SET body = 'forged'"))
            raise AssertionError("note revisions were changed")
        except DBAPIError:
            conn.rollback()
    actions = _actions(api, "OP-2026-014")
    assert actions.count("note.added") == 2 and actions.count("note.revised") == 2


def test_the_offence_details_are_created_patched_and_shown(api: Api) -> None:
    nadia, petros, stranger = api.user("nadia"), api.user("petros"), api.user("stranger")
    made = _case(api, nadia, offence_provision="Art. 29 Law 4251/2014", max_penalty_years=10,
                 facts="Adverts offer crossings of the Evros for payment.")
    assert made["offence_provision"] == "Art. 29 Law 4251/2014"
    assert made["max_penalty_years"] == 10 and made["facts"].startswith("Adverts")
    api.post(nadia, "/api/cases/OP-2026-014/members", json={"user": "petros", "access": "write"})
    url = "/api/cases/OP-2026-014"
    change = {"facts": "Adverts and a Telegram channel.", "max_penalty_years": 7.5}
    # Changing the case is a manager's work: a writer is told so, a stranger sees no case.
    refused = api.patch(petros, url, json=change)
    assert refused.status_code == 403 and "manage" in refused.json()["message"]
    hidden = api.patch(stranger, url, json=change)
    assert hidden.status_code == 404 and hidden.json()["message"] == "no case 'OP-2026-014'"
    changed = api.patch(nadia, url, json=change)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["facts"] == change["facts"] and body["max_penalty_years"] == 7.5
    assert body["offence_provision"] == "Art. 29 Law 4251/2014"  # not sent, kept
    assert api.get(petros, url).json()["max_penalty_years"] == 7.5
    for bad, message in [({"max_penalty_years": 0}, "more than 0"),
                         ({"max_penalty_years": 250}, "at most 100"),
                         ({"max_penalty_years": "life"}, None),
                         ({"facts": "x" * 100_001}, None)]:
        answer = api.patch(nadia, url, json=bad)
        assert answer.status_code == 422, (bad, answer.text)
        assert message is None or message in answer.json()["message"]
    cleared = api.patch(nadia, url, json={"max_penalty_years": None, "facts": None})
    assert cleared.json()["max_penalty_years"] is None and cleared.json()["facts"] is None
    timeline = api.get(nadia, f"{url}/timeline").json()["items"]
    updates = [e["details"]["changes"] for e in timeline if e["action"] == "case.updated"]
    assert len(updates) == 2
    assert updates[0]["max_penalty_years"] == {"from": "10", "to": "7.5"}
    assert set(updates[0]["facts"]) == {"from_sha256", "to_sha256"}
    assert "Telegram" not in str(timeline)  # the facts' text stays out of the custody log


def test_a_watched_target_shows_its_latest_captures_and_pages_the_rest(api: Api) -> None:
    """A page watched every hour gathers thousands of captures: the target shows the latest
    50 and its jobs' latest 20, newest first, and every capture a page at a time."""
    nadia = api.user("nadia")
    _case(api, nadia)
    with api.runtime.session() as session:
        case = cases.get_case(session, nadia.user, "OP-2026-014")
        target, _job = targets.flag_target(session, nadia.user, case, reason="advert",
                                           url="https://example.org/advert")
        made = [str(make_capture(session, case, target, api.runtime.store).id)
                for _ in range(53)]
        for _ in range(24):
            _job.state = JobState.DONE  # carried out; a capture still queued is not doubled
            _job = targets.request_capture(session, nadia.user, case, target, reason="again")
        target_id = target.id
    shown = api.get(nadia, f"/api/cases/OP-2026-014/targets/{target_id}").json()
    newest_first = made[::-1]
    assert [c["id"] for c in shown["captures"]] == newest_first[:50]
    assert shown["captures_total"] == 53 and len(shown["jobs"]) == 20
    jobs_at = [j["created_at"] for j in shown["jobs"]]
    assert jobs_at == sorted(jobs_at, reverse=True)
    page = api.get(nadia, shown["all_captures"] + "&newest_first=true&limit=50").json()
    assert [c["id"] for c in page["items"]] == newest_first[:50]
    rest = api.get(nadia, page["next"]).json()
    assert [c["id"] for c in rest["items"]] == newest_first[50:] and rest["next"] is None
    oldest = api.get(nadia, shown["all_captures"] + "&limit=3").json()
    assert [c["id"] for c in oldest["items"]] == made[:3]


def test_a_case_body_is_refused_for_all_its_problems_at_once(api: Api) -> None:
    nadia = api.user("nadia")
    for body, where in [
        ({"reference": "", "title": "", "jurisdiction": "XX1"},
         ["reference", "title", "jurisdiction"]),
        ({"reference": "../etc", "title": " ", "jurisdiction": "EL", "max_penalty_years": 0},
         ["reference", "title", "max_penalty_years", "jurisdiction"]),
    ]:
        answer = api.post(nadia, "/api/cases", json=body)
        assert answer.status_code == 422, answer.text
        refused = answer.json()
        assert refused["error"] == "InvalidInput"
        assert [d["loc"] for d in refused["details"]] == [["body", w] for w in where]
    said = {d["loc"][1]: d["msg"] for d in refused["details"]}
    assert "is written 'GR'" in said["jurisdiction"] and "needs a title" in said["title"]
    _case(api, nadia)
    edit = api.patch(nadia, "/api/cases/OP-2026-014",
                     json={"title": " ", "jurisdiction": "UK", "contact": "x" * 501})
    assert edit.status_code == 422
    assert [d["loc"] for d in edit.json()["details"]] == [
        ["body", "title"], ["body", "jurisdiction"], ["body", "contact"]]
    assert api.get(nadia, "/api/cases/OP-2026-014").json()["jurisdiction"] == "GR"


def test_an_account_is_linked_by_its_handle_and_its_id_recorded_later(api: Api) -> None:
    nadia = api.user("nadia")
    _case(api, nadia)
    accounts_url = "/api/cases/OP-2026-014/accounts"
    # The profile URL shows the handle alone: it is read from it.
    linked = api.post(nadia, accounts_url, json={
        "platform": "instagram", "profile_url": "https://www.instagram.com/Fast.Trips/"})
    assert linked.status_code == 201, linked.text
    assert (linked.json()["handle"], linked.json()["platform_account_id"]) == ("Fast.Trips", None)
    account_id = linked.json()["id"]
    # The same handle in other letters, typed with an @: the same account.
    again = api.post(nadia, accounts_url, json={"platform": "instagram", "handle": "@fast.trips"})
    assert again.status_code == 200 and again.json()["id"] == account_id
    flagged = api.post(nadia, "/api/cases/OP-2026-014/targets",
                       json={"account_id": account_id, "reason": "advertises crossings"})
    assert flagged.status_code == 201, flagged.text
    neither = api.post(nadia, accounts_url, json={"platform": "instagram",
                                                  "profile_url": "https://www.instagram.com/p/A1/"})
    assert neither.status_code == 422
    assert neither.json()["message"] == (
        "an account needs its platform and the platform's stable account id or, until the id "
        "is known, its handle")

    id_url = f"{accounts_url}/{account_id}/platform-account-id"
    recorded = api.put(nadia, id_url, json={"platform_account_id": "17841400123"})
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["platform_account_id"] == "17841400123"
    assert "account.id_recorded" in _actions(api, "OP-2026-014")
    assert api.put(nadia, id_url, json={"platform_account_id": "17841400123"}).status_code == 200
    changed = api.put(nadia, id_url, json={"platform_account_id": "5"})
    assert changed.status_code == 409
    assert changed.json() == {
        "error": "AccountIdKnown",
        "message": "@Fast.Trips on Instagram already has Instagram's id 17841400123: an "
                   "account's id does not change; flag the account with the other id if it is "
                   "another one"}
    # Another account holds the id: named, not merged.
    other = api.post(nadia, accounts_url, json={"platform": "instagram", "handle": "sea.taxi"})
    held = api.put(nadia, f"{accounts_url}/{other.json()['id']}/platform-account-id",
                   json={"platform_account_id": "17841400123"})
    assert held.status_code == 409
    assert held.json()["message"].startswith(
        f"Instagram's id 17841400123 is already held by @Fast.Trips on Instagram in this case "
        f"(account {account_id}): the two are not merged")
    empty = api.put(nadia, id_url, json={"platform_account_id": ""})
    assert empty.status_code == 422
    assert api.put(nadia, f"{accounts_url}/{'0' * 8}-0000-0000-0000-{'0' * 12}/"
                          "platform-account-id",
                   json={"platform_account_id": "1"}).status_code == 404
    assert api.post(nadia, "/api/cases/OP-2026-014/close", json={}).status_code == 200
    closed = api.put(nadia, f"{accounts_url}/{other.json()['id']}/platform-account-id",
                     json={"platform_account_id": "77"})
    assert closed.status_code == 409 and closed.json()["error"] == "CaseClosed"
