"""Decisions and deconfliction over HTTP: four eyes, supersede, the takedown conditions, hits."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from evidence import cases
from evidence.models import LegalRequest, Role
from tests.api.conftest import Api, Caller, complete_capture

URL = "https://www.facebook.com/fast.trips.eu/posts/123"
OTHER_REF = "HARBOUR/SECRET-77"
OTHER_TITLE = "Operation Lantern informant"


def _case(api: Api, owner: Caller, reference: str, title: str) -> None:
    answer = api.post(owner, "/api/cases", json={"reference": reference, "title": title})
    assert answer.status_code == 201, answer.text


def _flag(api: Api, owner: Caller, reference: str, url: str) -> str:
    answer = api.post(owner, f"/api/cases/{quote(reference, safe='')}/targets",
                      json={"url": url, "reason": "advert"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["target"]["id"])


def _grant(api: Api, owner: Caller, reference: str, user: Caller, access: str) -> None:
    answer = api.post(owner, f"/api/cases/{quote(reference, safe='')}/members",
                      json={"user": user.user.name, "access": access})
    assert answer.status_code in (200, 201), answer.text


def _world(api: Api) -> tuple[Caller, Caller, str]:
    nadia = api.user("nadia", unit="Border Unit North")
    sam = api.user("sam", Role.SUPERVISOR)
    _case(api, nadia, "NORTH-1", "Evros crossings")
    _grant(api, nadia, "NORTH-1", sam, "read")
    return nadia, sam, _flag(api, nadia, "NORTH-1", URL)


def _propose(api: Api, who: Caller, target_id: str, **body: Any) -> Any:
    return api.post(who, f"/api/targets/{target_id}/decisions", json=body)


def test_four_eyes_and_supersede_keep_history(api: Api) -> None:
    nadia, sam, target_id = _world(api)
    first = _propose(api, nadia, target_id, kind="monitor", rationale="watch")
    assert first.status_code == 201, first.text
    second = _propose(api, nadia, target_id, kind="preserve", rationale="keep")
    assert second.json()["supersedes_id"] == first.json()["id"]
    listed = api.get(nadia, f"/api/targets/{target_id}/decisions").json()
    assert [d["state"] for d in listed["items"]] == ["superseded", "proposed"]
    assert listed["current"]["id"] == second.json()["id"]

    decision_id = second.json()["id"]
    refused = api.post(nadia, f"/api/decisions/{decision_id}/approve", json={})
    assert refused.status_code == 403 and "supervisor" in refused.json()["message"]
    # A supervisor who proposed may not approve their own proposal.
    _grant(api, nadia, "NORTH-1", sam, "write")
    own = _propose(api, sam, target_id, kind="monitor", rationale="mine").json()
    four_eyes = api.post(sam, f"/api/decisions/{own['id']}/approve", json={})
    assert four_eyes.status_code == 409
    assert four_eyes.json()["error"] == "FourEyesViolation"
    assert "four eyes" in four_eyes.json()["message"]
    stale = api.post(sam, f"/api/decisions/{decision_id}/approve", json={})
    assert stale.status_code == 409 and stale.json()["error"] == "DecisionNotPending"
    # It says what became of it and what to do: read the newer one.
    assert stale.json()["message"].startswith("this preserve decision has been superseded: a "
                                              "newer decision was proposed, a monitor by sam "
                                              "at ")
    assert stale.json()["message"].endswith("read it before you decide, as this one can no "
                                            "longer be approved")

    boss = api.user("boss", Role.SUPERVISOR)
    _grant(api, nadia, "NORTH-1", boss, "read")
    rejected = api.post(boss, f"/api/decisions/{own['id']}/reject",
                        json={"reason": "keep it preserved"})
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    assert rejected.json()["decided_by_id"] == str(boss.user.id)
    history = api.get(nadia, f"/api/targets/{target_id}/decisions").json()
    assert [d["state"] for d in history["items"]] == ["superseded", "superseded", "rejected"]
    assert history["current"] is None


def test_takedown_conditions_are_refused_each_with_its_own_409(api: Api) -> None:
    nadia, sam, target_id = _world(api)
    harbour = api.user("harbour.owner", unit="Harbour Unit")
    _case(api, harbour, OTHER_REF, OTHER_TITLE)
    other_target = _flag(api, harbour, OTHER_REF, "http://m.facebook.com/fast.trips.eu/posts/123/")

    decision = _propose(api, nadia, target_id, kind="takedown", rationale="remove it").json()
    approve = f"/api/decisions/{decision['id']}/approve"
    messages = []

    answer = api.post(sam, approve, json={})
    assert answer.status_code == 409 and answer.json()["error"] == "CaptureMissing"
    messages.append(answer.json()["message"])
    complete_capture(api, target_id)

    answer = api.post(sam, approve, json={})
    assert answer.status_code == 409 and answer.json()["error"] == "DeconflictionHold"
    messages.append(answer.json()["message"])
    assert "Harbour Unit" in answer.text
    assert OTHER_REF not in answer.text and OTHER_TITLE not in answer.text

    # Both owners see the hits, naming only the other's unit and contact.
    mine = api.get(nadia, "/api/cases/NORTH-1/deconfliction/hits")
    theirs = api.get(harbour, f"/api/cases/{quote(OTHER_REF, safe='')}/deconfliction/hits")
    assert mine.status_code == theirs.status_code == 200
    assert {h["kind"] for h in mine.json()["items"]} == {"url", "account"}
    assert {(h["other_unit"], h["other_contact"]) for h in mine.json()["items"]} == {
        ("Harbour Unit", "harbour.owner")}
    assert {(h["other_unit"], h["other_contact"]) for h in theirs.json()["items"]} == {
        ("Border Unit North", "nadia")}
    assert {h["target_id"] for h in mine.json()["items"]} == {target_id}
    assert {h["target_id"] for h in theirs.json()["items"]} == {other_target}
    assert "Evros" not in theirs.text and "NORTH-1" not in theirs.text
    assert OTHER_REF not in mine.text and OTHER_TITLE not in mine.text
    assert other_target not in mine.text and target_id not in theirs.text

    # Resolving: each side records who agreed; one side alone does not unblock.
    for hit in mine.json()["items"]:
        done = api.post(nadia, f"/api/cases/NORTH-1/deconfliction/hits/{hit['id']}/resolve",
                        json={"note": "Called Harbour Unit; no objection"})
        assert done.status_code == 200 and done.json()["resolved"] is False
    assert api.post(sam, approve, json={}).json()["error"] == "DeconflictionHold"
    again = api.post(nadia, f"/api/cases/NORTH-1/deconfliction/hits/{hit['id']}/resolve",
                     json={"note": "twice"})
    assert again.status_code == 409
    for hit in theirs.json()["items"]:
        done = api.post(harbour, f"/api/cases/{quote(OTHER_REF, safe='')}/deconfliction/hits/"
                        f"{hit['id']}/resolve", json={"note": "Agreed with nadia"})
        assert done.status_code == 200 and done.json()["resolved"] is True
        agreed = {(a["this_case"], a["user"], a["unit"], a["note"])
                  for a in done.json()["agreements"]}
        assert agreed == {(True, "harbour.owner", "Harbour Unit", "Agreed with nadia"),
                          (False, "nadia", "Border Unit North", None)}
    shown = api.get(nadia, f"/api/cases/NORTH-1/deconfliction/hits/{hit['id']}").json()
    assert shown["resolved"] and len(shown["agreements"]) == 2
    # A page at a time, and the unresolved ones alone (none left).
    first = api.get(nadia, "/api/cases/NORTH-1/deconfliction/hits?limit=1").json()
    assert len(first["items"]) == 1 and first["next"]
    second = api.get(nadia, first["next"]).json()
    assert [h["id"] for h in first["items"] + second["items"]] == [
        h["id"] for h in mine.json()["items"]] and second["next"] is None
    assert api.get(nadia, "/api/cases/NORTH-1/deconfliction/hits?unresolved=true"
                   ).json()["items"] == []

    answer = api.post(sam, approve, json={})
    assert answer.status_code == 409 and answer.json()["error"] == "PreservationMissing"
    messages.append(answer.json()["message"])
    assert len(set(messages)) == 3

    with api.runtime.session() as session:
        session.add(LegalRequest(
            case_id=cases.get_case(session, nadia.user, "NORTH-1").id,
            kind="coe-art29-preservation", platform="facebook", created_by_id=nadia.user.id,
            identifiers=[{"kind": "url", "value": URL, "target_id": target_id}]))
    answer = api.post(sam, approve, json={"note": "all three conditions met"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "approved" and body["takedown_approved_by_id"] == str(sam.user.id)
    timeline = api.get(nadia, "/api/cases/NORTH-1/timeline?limit=200").json()["items"]
    actions = [e["action"] for e in timeline]
    assert "decision.approved" in actions and "deconfliction.resolved" in actions


def test_a_waiver_on_the_proposal_meets_the_preservation_condition(api: Api) -> None:
    nadia, sam, target_id = _world(api)
    complete_capture(api, target_id)
    plain = _propose(api, nadia, target_id, kind="takedown", rationale="remove").json()
    refused = api.post(sam, f"/api/decisions/{plain['id']}/approve", json={})
    assert refused.json()["error"] == "PreservationMissing"
    waived = _propose(api, nadia, target_id, kind="preserve-then-takedown", rationale="remove",
                      preservation_waiver="Platform already confirmed preservation by phone")
    assert waived.status_code == 201
    approve = f"/api/decisions/{waived.json()['id']}/approve"
    first = api.post(sam, approve, json={})
    assert first.json()["stage"] == "preserve"
    second = api.post(sam, approve, json={})
    assert second.status_code == 200 and second.json()["stage"] == "takedown"


def test_strangers_and_bad_input(api: Api) -> None:
    nadia, _sam, target_id = _world(api)
    stranger = api.user("stranger", Role.SUPERVISOR)
    assert _propose(api, stranger, target_id, kind="monitor", rationale="r").status_code == 404
    decision = _propose(api, nadia, target_id, kind="monitor", rationale="r").json()
    for path in (f"/api/decisions/{decision['id']}/approve",
                 f"/api/decisions/{decision['id']}/reject"):
        answer = api.post(stranger, path, json={"reason": "x"} if "reject" in path else {})
        assert answer.status_code == 404 and "NORTH-1" not in answer.text
    assert api.get(stranger, f"/api/decisions/{decision['id']}").status_code == 404
    assert api.get(nadia, f"/api/decisions/{uuid.uuid4()}").status_code == 404
    bad = _propose(api, nadia, target_id, kind="delete-everything", rationale="r")
    assert bad.status_code == 422
    reader = api.user("reader")
    _grant(api, nadia, "NORTH-1", reader, "read")
    assert _propose(api, reader, target_id, kind="monitor", rationale="r").status_code == 403
    assert api.get(reader, f"/api/targets/{target_id}/decisions").status_code == 200
