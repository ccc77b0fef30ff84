"""/api/cases/{ref}/requests and /api/requests/*: the legal-request service over HTTP."""

from __future__ import annotations

import hashlib
import html
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import cases, custody, requests, sessions, users
from evidence.models import Access, Case, CustodyEntry, LegalRequest, Role
from tests.api.conftest import Api, Caller
from tests.api.test_ui import PASSWORD, _sign_in
from tests.factories import ARABIC_HANDLE, AUTHORITY_FIELDS, EPOC_PR_FIELDS, make_request_world

BODY = {"kind": "provider-preservation", "platform": "x", "fields": AUTHORITY_FIELDS,
        "date_from": "2025-09-01T00:00:00Z", "date_to": "2026-03-01T23:59:59Z"}


def _setup(api: Api) -> tuple[Caller, str, Any]:
    owner = api.user("liaison", Role.LIAISON)
    with api.runtime.session() as session:
        world = make_request_world(session, api.runtime.store, actor=owner.user,
                                   reference="OP/2026/9")
        reference = world.case.reference
    return owner, f"/api/cases/{quote(reference, safe='')}/requests", world


def _member(api: Api, owner: Caller, reference: str, name: str, role: Role,
            access: Access) -> Caller:
    caller = api.user(name, role)
    with api.runtime.session() as session:
        case = cases.get_case(session, owner.user, reference)
        cases.add_member(session, owner.user, case, caller.user, access)
    return caller


def test_generate_list_show_and_download(api: Api) -> None:
    owner, base, world = _setup(api)
    made = api.post(owner, base, json=BODY)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["status"] == "draft" and body["reference"] == "OP/2026/9-PRES-1"
    assert {i["value"] for i in body["identifiers"]} == {"smuggler_ar", "1234567890",
                                                        ARABIC_HANDLE}
    assert body["deadlines_provisional"] is True
    listed = api.get(owner, base).json()
    assert [r["id"] for r in listed["items"]] == [body["id"]] and listed["next"] is None
    second = api.post(owner, base, json=BODY).json()
    first_page = api.get(owner, base, params={"limit": 1}).json()
    assert [r["id"] for r in first_page["items"]] == [body["id"]]
    assert [r["id"] for r in api.get(owner, first_page["next"]).json()["items"]] == [
        second["id"]]
    shown = api.get(owner, f"{base}/{body['id']}")
    assert shown.status_code == 200 and shown.json()["pdf_sha256"] == body["pdf_sha256"]

    pdf = api.get(owner, body["document"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["X-Content-SHA256"] == body["pdf_sha256"]
    assert hashlib.sha256(pdf.content).hexdigest() == body["pdf_sha256"]
    document = api.get(owner, body["document"], params={"format": "json"})
    assert hashlib.sha256(document.content).hexdigest() == body["json_sha256"]
    assert json.loads(document.content)["reference"] == body["reference"]
    with api.runtime.session() as session:
        actions = list(session.scalars(
            select(CustodyEntry.action).where(CustodyEntry.case_id == world.case.id)))
        downloads = list(session.scalars(select(CustodyEntry.sha256).where(
            CustodyEntry.action == "request.document_downloaded")))
    assert "request.generated" in actions
    assert downloads == [body["pdf_sha256"], body["json_sha256"]]


def test_missing_fields_are_all_in_one_422(api: Api) -> None:
    owner, base, _world = _setup(api)
    answer = api.post(owner, base, json={"kind": "eu-epoc-pr", "platform": "x"})
    assert answer.status_code == 422
    message = answer.json()["message"]
    assert answer.json()["error"] == "RequestIncomplete"
    for expected in ("issuing authority: name", "issuing authority: time_zone",
                     "Summary of the facts", "Applicable statutory provision"):
        assert expected in message
    # Each problem also says what of the input it is about, for a client to place it.
    details = answer.json()["details"]
    assert [d["msg"] for d in details] == [line.removeprefix("- ")
                                           for line in message.splitlines()[1:]]
    assert {"loc": ["authority", "issuing.name"], "type": "missing"}.items() <= {
        **next(d for d in details if d["loc"] == ["authority", "issuing.name"])}.items()
    assert next(d for d in details if d["loc"] == ["field", "facts"])["type"] == "missing"
    assert any(d["loc"] == ["field", "issuing_state"] and d["type"] == "invalid"
               for d in details)
    assert api.get(owner, base).json()["items"] == []


def test_lifecycle_over_http_with_roles_and_access(api: Api) -> None:
    owner, base, world = _setup(api)
    reference = world.case.reference
    made = api.post(owner, base, json=BODY).json()
    status_url = f"{base}/{made['id']}/status"
    assert api.post(owner, status_url, json={"status": "sent"}).status_code == 409
    assert api.post(owner, status_url, json={"status": "approved"}).status_code == 403
    boss = _member(api, owner, reference, "boss", Role.SUPERVISOR, Access.WRITE)
    reader = _member(api, owner, reference, "reader", Role.SUPERVISOR, Access.READ)
    assert api.get(reader, f"{base}/{made['id']}").status_code == 200
    assert api.post(reader, status_url, json={"status": "approved"}).status_code == 403
    assert api.post(reader, base, json=BODY).status_code == 403
    approved = api.post(boss, status_url, json={"status": "approved"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    sent = api.post(owner, status_url, json={"status": "sent"}).json()
    assert sent["deadlines_provisional"] is False and sent["sent_at"] is not None
    refused = api.post(owner, status_url, json={
        "status": "refused", "platform_reference": "LE-1", "refusal": ["not-stored"],
        "answer": "No such data."})
    assert refused.status_code == 200, refused.text
    assert refused.json()["refusal_reasons"] == [
        {"code": "not-stored", "label": "The data requested are not stored by the provider"}]
    assert api.post(owner, status_url, json={"status": "fulfilled"}).status_code == 409

    stats = api.get(owner, "/api/requests/stats").json()
    assert stats[0]["platform"] == "x" and stats[0]["by_status"] == {"refused": 1}
    assert stats[0]["median_response_hours"] is not None
    assert api.get(owner, "/api/requests/due", params={"within": "soon"}).status_code == 422


def test_a_wrong_draft_is_withdrawn_over_http_with_its_reason(api: Api) -> None:
    owner, base, world = _setup(api)
    made = api.post(owner, base, json=BODY).json()
    status_url = f"{base}/{made['id']}/status"
    reader = _member(api, owner, world.case.reference, "reader", Role.SUPERVISOR, Access.READ)
    without = api.post(owner, status_url, json={"status": "withdrawn"})
    assert without.status_code == 422 and "needs the reason" in without.text
    assert api.post(reader, status_url, json={"status": "withdrawn",
                                              "reason": "no"}).status_code == 403
    withdrawn = api.post(owner, status_url, json={
        "status": "withdrawn", "reason": "Drafted for the wrong account."})
    assert withdrawn.status_code == 200, withdrawn.text
    body = withdrawn.json()
    assert body["status"] == "withdrawn" and body["deadlines"] == [] and body["due_at"] is None
    assert body["withdrawn"]["reason"] == "Drafted for the wrong account."
    assert body["withdrawn"]["at"] is not None
    assert api.get(owner, f"{base}/{made['id']}").json()["withdrawn"] == body["withdrawn"]
    again = api.post(owner, status_url, json={"status": "withdrawn", "reason": "twice"})
    assert again.status_code == 409 and "none (final)" in again.text
    with api.runtime.session() as session:
        entry = session.scalars(select(CustodyEntry).where(
            CustodyEntry.action == "request.withdrawn")).one()
        assert custody.describe(entry)["details"]["reason"] == "Drafted for the wrong account."
    stats = api.get(owner, "/api/requests/stats").json()
    assert stats[0]["by_status"] == {"withdrawn": 1}
    assert api.get(owner, "/api/requests/due", params={"within": "90d"}).json() == []


def test_the_drafter_of_a_request_cannot_approve_it(api: Api) -> None:
    owner, base, world = _setup(api)
    reference = world.case.reference
    drafter = _member(api, owner, reference, "sam", Role.SUPERVISOR, Access.WRITE)
    other = _member(api, owner, reference, "pia", Role.PROSECUTOR, Access.WRITE)
    made = api.post(drafter, base, json=BODY).json()
    status_url = f"{base}/{made['id']}/status"

    refused = api.post(drafter, status_url, json={"status": "approved"})
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "FourEyesViolation",
        "message": "four eyes: you drafted request OP/2026/9-PRES-1, so you may not approve it; "
                   "another supervisor, prosecutor or admin of the case must"}
    shown = api.get(drafter, f"{base}/{made['id']}").json()
    assert shown["status"] == "draft" and shown["approved_at"] is None

    approved = api.post(other, status_url, json={"status": "approved"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    # The drafter may take the next step, sending it, as anyone with write access.
    assert api.post(drafter, status_url, json={"status": "sent"}).status_code == 200

    # An extension is drafted by whoever generates it: the same rule holds for it.
    extension = api.post(other, f"{base}/{made['id']}/extension").json()
    own = api.post(other, f"{base}/{extension['id']}/status", json={"status": "approved"})
    assert own.status_code == 409 and own.json()["error"] == "FourEyesViolation"
    assert api.post(drafter, f"{base}/{extension['id']}/status",
                    json={"status": "approved"}).status_code == 200
    with api.runtime.session() as session:
        approvals = list(session.execute(
            select(CustodyEntry.actor_id, CustodyEntry.object_id)
            .where(CustodyEntry.action == "request.approved").order_by(CustodyEntry.seq)))
    assert approvals == [(other.user.id, made["id"]), (drafter.user.id, extension["id"])]


def test_due_and_extension_over_http(api: Api) -> None:
    owner, base, world = _setup(api)
    boss = _member(api, owner, world.case.reference, "boss", Role.SUPERVISOR, Access.WRITE)
    made = api.post(owner, base, json=BODY).json()
    status_url = f"{base}/{made['id']}/status"
    api.post(boss, status_url, json={"status": "approved"})
    api.post(owner, status_url, json={"status": "sent"})
    due = api.get(owner, "/api/requests/due", params={"within": "100d"}).json()
    assert [d["deadline"] for d in due] == ["ask for an extension before", "preservation ends"]
    assert due[0]["reference"] == made["reference"] and due[0]["case"] == "OP/2026/9"
    extension = api.post(owner, f"{base}/{made['id']}/extension")
    assert extension.status_code == 201, extension.text
    assert extension.json()["previous_request_id"] == made["id"]
    assert api.post(owner, f"{base}/{made['id']}/extension").status_code == 409


def _preservation_sent(session: Session, api: Api, owner: Caller, boss: Caller, case: Case, *,
                       kind: str, fields: dict[str, str], days_ago: int) -> LegalRequest:
    """A preservation of X generated, approved and sent `days_ago` days ago."""
    start = datetime.now(UTC) - timedelta(days=days_ago)
    sent = requests.generate(
        session, owner.user, case, store=api.runtime.store, settings=api.runtime.settings,
        kind=kind, platform="x", fields=fields,
        date_from=datetime(2025, 9, 1, tzinfo=UTC), date_to=datetime(2026, 3, 1, tzinfo=UTC),
        now=start).request
    requests.change_status(session, boss.user, case, sent.id, "approved", at=start)
    requests.change_status(session, owner.user, case, sent.id, "sent", at=start)
    return sent


def test_an_extension_sent_after_the_preservation_ended_is_recorded_as_late(api: Api) -> None:
    owner, base, world = _setup(api)
    boss = _member(api, owner, world.case.reference, "boss", Role.SUPERVISOR, Access.WRITE)
    with api.runtime.session() as session:
        case = cases.get_case(session, owner.user, world.case.reference)
        first = _preservation_sent(session, api, owner, boss, case, kind="provider-preservation",
                                   fields=AUTHORITY_FIELDS, days_ago=100)
        ends = requests.period_end(session, first)
        assert ends is not None and ends < datetime.now(UTC)
        renewal = requests.extend(session, owner.user, first.id, store=api.runtime.store,
                                  now=ends - timedelta(days=3)).request
        renewal_id = str(renewal.id)
    status_url = f"{base}/{renewal_id}/status"
    assert api.post(boss, status_url, json={"status": "approved"}).status_code == 200
    sent = api.post(owner, status_url, json={"status": "sent"})
    assert sent.status_code == 200, sent.text  # what happened is recorded
    late = sent.json()["sent_late"]
    assert datetime.fromisoformat(late["preservation_ended_at"]) == ends
    assert late["sent_at"] == sent.json()["sent_at"]
    when = ends.strftime("%Y-%m-%d %H:%M UTC")
    assert f"after the preservation it extends ended on {when}: the platform was not bound " \
        f"to keep the data from {when} until it was sent" in late["note"]
    with api.runtime.session() as session:
        entry = session.scalars(select(CustodyEntry).where(
            CustodyEntry.object_id == renewal_id, CustodyEntry.action == "request.sent")).one()
    details = custody.describe(entry)["details"]
    assert datetime.fromisoformat(details["sent_after_preservation_ended"]) == ends
    assert details["note"] == late["note"]
    due = api.get(owner, "/api/requests/due", params={"within": "200d"}).json()
    mine = [d for d in due if d["id"] == renewal_id]
    assert mine and all(d["gap"] == late["note"] for d in mine)


def test_an_epoc_pr_is_extended_once_and_not_by_an_extension_sent_too_late(api: Api) -> None:
    owner, base, world = _setup(api)
    boss = _member(api, owner, world.case.reference, "boss", Role.SUPERVISOR, Access.WRITE)
    with api.runtime.session() as session:
        case = cases.get_case(session, owner.user, world.case.reference)
        # its 60 days ended ten days ago
        original = _preservation_sent(session, api, owner, boss, case, kind="eu-epoc-pr",
                                      fields=EPOC_PR_FIELDS, days_ago=70)
        ends = requests.period_end(session, original)
        assert ends is not None and ends < datetime.now(UTC)
        # One extension refused by the provider (it extended nothing), then another, made in
        # time but sent only now.
        refused = requests.extend(session, owner.user, original.id, store=api.runtime.store,
                                  now=ends - timedelta(days=5)).request
        requests.change_status(session, boss.user, case, refused.id, "approved",
                               at=ends - timedelta(days=5))
        requests.change_status(session, owner.user, case, refused.id, "sent",
                               at=ends - timedelta(days=5))
        requests.change_status(session, owner.user, case, refused.id, "refused",
                               refusal=["incomplete"], at=ends - timedelta(days=4))
        extension = requests.extend(session, owner.user, original.id, store=api.runtime.store,
                                    now=ends - timedelta(days=3)).request
        extension_id = str(extension.id)
    status_url = f"{base}/{extension_id}/status"
    assert api.post(boss, status_url, json={"status": "approved"}).status_code == 200
    sent = api.post(owner, status_url, json={"status": "sent"})
    assert sent.status_code == 200, sent.text  # what happened is recorded
    shown = sent.json()
    late = shown["sent_late"]
    assert late["extends"] is False
    assert datetime.fromisoformat(late["preservation_ended_at"]) == ends
    assert ("the 30-day extension could not revive a preservation that had already ended"
            in late["note"])
    # The end it shows is the one that passed, not 30 days after it.
    assert datetime.fromisoformat(shown["due_at"]) == ends
    assert all(datetime.fromisoformat(d["due"]) == ends for d in shown["deadlines"])
    due = [d for d in api.get(owner, "/api/requests/due", params={"within": "60d"}).json()
           if d["case"] == world.case.reference]
    assert [(d["id"], d["deadline"], d["overdue"], d["gap"]) for d in due] == [
        (extension_id, "preservation ended before the extension was sent", True, late["note"])]
    assert due[0]["action"].startswith("not extended: make a new preservation request at once")
    # The case's list of requests does not show the EPOC-PR as extended by it.
    with api.runtime.session() as session:
        me = users.get_user(session, "liaison")
        sessions.set_password(session, me, me, PASSWORD)
    _sign_in(api.client, "liaison")
    listed = html.unescape(api.client.get(base.removeprefix("/api")).text)
    assert f"ended: {extension.reference_number} was sent too late" in listed
    assert f"extended by {extension.reference_number}" not in listed
    # The refused one did not count, this one does: no third, quoting the Regulation.
    again = api.post(owner, f"{base}/{original.id}/extension")
    assert again.status_code == 409
    assert again.json()["message"] == (
        f"request {original.reference_number} is already extended by "
        f"{extension.reference_number} (sent): Regulation (EU) 2023/1543, Art. 11(1) allows one "
        "extension: the obligation to preserve \"shall cease after 60 days\", and \"during that "
        "60-day period\" the issuing authority may extend it \"by an additional 30-day period\"")
    onwards = api.post(owner, f"{base}/{extension_id}/extension")
    assert onwards.status_code == 409
    assert onwards.json()["message"].startswith(
        f"request {extension.reference_number} cannot be extended again: Regulation (EU) "
        "2023/1543, Art. 11(1) allows one extension")
