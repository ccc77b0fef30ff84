"""The decision and deconfliction pages: a propose → approve walk through the forms writes what
the API writes, four eyes and the takedown conditions refused on the page, who sees which form,
not found for strangers, CSRF, hostile text, and one supervisor's approval in Chromium."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from capture.browser import BrowserSession
from evidence import cases, custody, decisions, deconfliction, notes, targets, users
from evidence.home import Runtime
from evidence.models import (
    Access,
    Capture,
    CaptureJob,
    CaptureStatus,
    CustodyEntry,
    Decision,
    DeconflictionAgreement,
    JobState,
    Role,
    Target,
)
from tests.api.conftest import (
    Api,
    Caller,
    complete_capture,
    served_app,
    sign_in_on_page,
    walled_page,
)
from tests.api.test_ui import (
    HOSTILE,
    PASSWORD,
    _assert_page_headers,
    _browser_client,
    _count,
    _sign_in,
)
from tests.factories import make_capture

REFERENCE = "OP/2026/21"
QUOTED = quote(REFERENCE, safe="")
URL = "https://www.facebook.com/fast.trips.eu/posts/123"
OTHER_REF = "HARBOUR/SECRET-77"
OTHER_TITLE = "Operation Lantern informant"
SHOTS = Path("/tmp/ui/decisions")


@dataclass
class World:
    nadia: Caller  # investigator, owns the case
    sam: Caller  # supervisor, a reader of the case
    target_id: str
    second_target_id: str


def _world(api: Api) -> World:
    """A case owned by an investigator, a supervisor reading it, two flagged URLs."""
    nadia = api.user("nadia", password=PASSWORD, unit="Border Unit North")
    sam = api.user("sam", Role.SUPERVISOR, password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.create_case(session, nadia.user, reference=REFERENCE,
                                 title="Evros crossings", contact="duty desk North")
        cases.add_member(session, nadia.user, case, sam.user, Access.READ)
        first, _job = targets.flag_target(session, nadia.user, case, reason="advert", url=URL)
        second, _job = targets.flag_target(session, nadia.user, case, reason="advert",
                                           url="https://example.org/second")
        return World(nadia, sam, str(first.id), str(second.id))


def _member(api: Api, world: World, name: str, access: Access, role: Role = Role.INVESTIGATOR,
            ) -> Caller:
    caller = api.user(name, role, password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.case_for(session, world.nadia.user, REFERENCE)
        cases.add_member(session, world.nadia.user, case, caller.user, access)
    return caller


def _propose_directly(api: Api, who: Caller, target_id: str, kind: str,
                      rationale: str = "watch it", **extra: Any) -> str:
    with api.runtime.session() as session:
        case, target = decisions.target_for(session, who.user, uuid.UUID(target_id))
        return str(decisions.propose(session, who.user, case, target, kind=kind,
                                     rationale=rationale, **extra).id)


def _decision_states(api: Api, target_id: str) -> list[str]:
    with api.runtime.session() as session:
        target = session.get(Target, uuid.UUID(target_id))
        assert target is not None
        return [d.state for d in decisions.history(session, target)]


def _client(api: Api, name: str) -> tuple[TestClient, str]:
    """A browser of its own, signed in as `name`; returns it with its form token."""
    client = _browser_client(api)
    return client, _sign_in(client, name)


def _alert(page: str) -> str:
    found = re.search(r'<p class="alert" role="alert"[^>]*>([^<]*)</p>', page)
    assert found, page[:3000]
    return found.group(1)


def _decision_entries(api: Api, target_id: str) -> list[tuple[Any, ...]]:
    """The target's decision entries, with its own ids replaced, to compare two targets."""
    with api.runtime.session() as session:
        described = [custody.describe(e) for e in session.scalars(
            select(CustodyEntry).order_by(CustodyEntry.seq))]
    ours = [e for e in described if e["action"].startswith("decision.")
            and e["details"].get("target") == target_id]
    ids: dict[str, str] = {}

    def plain(value: Any) -> Any:
        if value == target_id:
            return "<target>"
        if isinstance(value, str) and value in ids:
            return ids[value]
        return value

    shaped = []
    for entry in ours:
        ids.setdefault(entry["object"]["id"], f"<decision {len(ids) + 1}>")
        shaped.append((entry["action"], entry["actor"]["name"], entry["object"]["type"],
                       plain(entry["object"]["id"]),
                       tuple(sorted((k, plain(v)) for k, v in entry["details"].items()))))
    return shaped


# --- the walk --------------------------------------------------------------------------------

def test_propose_and_approve_through_the_forms_writes_what_the_api_writes(api: Api) -> None:
    world = _world(api)
    nadia, nadia_token = _client(api, "nadia")
    page = nadia.get(f"/targets/{world.target_id}")
    assert page.status_code == 200, page.text
    _assert_page_headers(page)
    for shown in (URL, "advert", REFERENCE, "No current decision",
                  "Propose a decision", "No captures yet"):
        assert shown in page.text, shown
    assert 'action="/decisions/' not in page.text  # nothing to approve, and not hers to

    proposed = nadia.post(f"/targets/{world.target_id}/decisions", data={
        "csrf_token": nadia_token, "kind": "preserve", "rationale": "Keep the advert's data",
        "preservation_waiver": ""}, follow_redirects=False)
    assert proposed.status_code == 303, proposed.text
    assert proposed.headers["location"] == f"/targets/{world.target_id}?done=proposed"
    shown = nadia.get(proposed.headers["location"])
    assert "Decision proposed." in shown.text and "Keep the advert&#39;s data" in shown.text
    assert "Awaiting a supervisor" in shown.text

    sam, sam_token = _client(api, "sam")
    pending = sam.get(f"/targets/{world.target_id}")
    decision_id = re.search(r'action="/decisions/([0-9a-f-]+)/approve"', pending.text)
    assert decision_id, pending.text
    assert f'action="/decisions/{decision_id.group(1)}/reject"' in pending.text
    assert "Propose a decision" not in pending.text  # a reader of the case proposes nothing
    approved = sam.post(f"/decisions/{decision_id.group(1)}/approve",
                        data={"csrf_token": sam_token, "note": "Capture checked"},
                        follow_redirects=False)
    assert approved.status_code == 303, approved.text
    after = sam.get(approved.headers["location"])
    assert "Decision approved" in after.text and "approved by" in after.text
    assert "Capture checked" in after.text and 'action="/decisions/' not in after.text

    # The same two steps through the API, on the other target, write the same entries.
    made = api.post(world.nadia, f"/api/targets/{world.second_target_id}/decisions",
                    json={"kind": "preserve", "rationale": "Keep the advert's data"})
    assert made.status_code == 201, made.text
    done = api.post(world.sam, f"/api/decisions/{made.json()['id']}/approve",
                    json={"note": "Capture checked"})
    assert done.status_code == 200, done.text
    through_pages = _decision_entries(api, world.target_id)
    assert [e[0] for e in through_pages] == ["decision.proposed", "decision.approved"]
    assert [e[1] for e in through_pages] == ["nadia", "sam"]
    assert through_pages == _decision_entries(api, world.second_target_id)
    # And the API reads back what the forms did.
    listed = api.get(world.nadia, f"/api/targets/{world.target_id}/decisions").json()
    assert listed["current"]["state"] == "approved"
    assert listed["current"]["decided_by_id"] == str(world.sam.user.id)


def test_the_takedown_conditions_are_refused_on_the_page_one_by_one(api: Api) -> None:
    world = _world(api)
    harbour = api.user("harbour.owner", password=PASSWORD, unit="Harbour Unit")
    with api.runtime.session() as session:
        other = cases.create_case(session, harbour.user, reference=OTHER_REF,
                                  title=OTHER_TITLE, contact="Harbour duty +30 210 555 0199")
        targets.flag_target(session, harbour.user, other, reason="informant's lead",
                            url="http://m.facebook.com/fast.trips.eu/posts/123/")
    decision_id = _propose_directly(api, world.nadia, world.target_id, "takedown",
                                    rationale="remove it")
    sam, token = _client(api, "sam")
    approve = f"/decisions/{decision_id}/approve"

    # The page does not offer the approval it knows would be refused, and says why.
    offered = sam.get(f"/targets/{world.target_id}").text
    assert f'action="{approve}"' not in offered
    assert re.search(r'<button type="button" disabled aria-describedby="approve-refused">'
                     r'Approve takedown</button>\s*<p id="approve-refused" class="alert-text">'
                     r'Not yet: No complete capture', offered), offered
    assert f'action="/decisions/{decision_id}/reject"' in offered  # rejecting stays open
    # A post from an older page is refused all the same.
    refused = sam.post(approve, data={"csrf_token": token, "note": "go"})
    assert refused.status_code == 409
    assert _alert(refused.text).startswith("Takedown refused: no complete capture")
    assert "Before a takedown" in refused.text and _kept(refused.text, "note") == "go"
    # The refusal is the reason the approval is not offered: said once, beside the button.
    assert refused.text.count("complete capture of this target exists") == 1
    assert "Not yet:" not in refused.text
    assert ('<button type="button" disabled aria-describedby="decide-refused">Approve '
            'takedown</button>') in refused.text
    complete_capture(api, world.target_id)

    held = sam.post(approve, data={"csrf_token": token})
    assert held.status_code == 409
    assert _alert(held.text).startswith("Takedown refused: deconfliction hold, 2 unresolved "
                                        "hits with another case; call Harbour Unit")
    assert held.text.count("Deconfliction hold") + held.text.count("deconfliction hold") == 1
    assert "Harbour Unit" in held.text and "Harbour duty" in held.text
    assert OTHER_REF not in held.text and OTHER_TITLE not in held.text
    assert _decision_states(api, world.target_id) == ["proposed"]  # rolled back

    # Each side records its agreement on its own hits page.
    nadia, nadia_token = _client(api, "nadia")
    harbour_client, harbour_token = _client(api, "harbour.owner")
    for client, ref, form_token, note in (
            (nadia, QUOTED, nadia_token, "Called Harbour Unit: no objection"),
            (harbour_client, quote(OTHER_REF, safe=""), harbour_token, "Agreed with nadia")):
        hits = client.get(f"/cases/{ref}/hits")
        ids = re.findall(rf'action="/cases/{re.escape(ref)}/hits/([0-9a-f-]+)/resolve"',
                         hits.text)
        assert len(ids) == 2, hits.text
        for hit_id in ids:
            agreed = client.post(f"/cases/{ref}/hits/{hit_id}/resolve",
                                 data={"csrf_token": form_token, "note": note},
                                 follow_redirects=False)
            assert agreed.status_code == 303, agreed.text
    resolved = nadia.get(f"/cases/{QUOTED}/hits")
    assert resolved.text.count('<span class="badge resolved">resolved</span>') == 2
    assert "Called Harbour Unit: no objection" in resolved.text
    assert "Agreed with nadia" not in resolved.text  # the other case's words stay with it
    assert _count(api, "deconfliction.resolved") == 4  # both hits, in both cases' chains

    missing = sam.post(approve, data={"csrf_token": token})
    assert missing.status_code == 409
    assert _alert(missing.text).startswith("Takedown refused: no preservation request")
    assert "or have the takedown proposed again with a preservation waiver" in missing.text
    assert f'href="/cases/{QUOTED}/requests#generate"' in missing.text

    # Proposed again with a waiver, it is approved.
    nadia_page = nadia.post(f"/targets/{world.target_id}/decisions", data={
        "csrf_token": nadia_token, "kind": "takedown", "rationale": "remove it",
        "preservation_waiver": "The platform preserves such posts for a year"},
        follow_redirects=False)
    assert nadia_page.status_code == 303
    page = sam.get(f"/targets/{world.target_id}")
    assert "The platform preserves such posts for a year" in page.text
    assert "waived" in page.text
    new_id = re.search(r'action="/decisions/([0-9a-f-]+)/approve"', page.text)
    assert new_id and new_id.group(1) != decision_id
    assert sam.post(f"/decisions/{new_id.group(1)}/approve", data={"csrf_token": token},
                    follow_redirects=False).status_code == 303
    assert _decision_states(api, world.target_id) == ["superseded", "approved"]
    assert "superseded before a decision" in sam.get(f"/targets/{world.target_id}").text


def test_a_preserve_then_takedown_is_approved_in_two_steps(api: Api) -> None:
    world = _world(api)
    complete_capture(api, world.target_id)
    decision_id = _propose_directly(
        api, world.nadia, world.target_id, "preserve-then-takedown", rationale="both",
        preservation_waiver="preserved by the platform already")
    sam, token = _client(api, "sam")
    first = sam.get(f"/targets/{world.target_id}").text
    # The first approval says it approves the preservation only.
    assert ">Approve the preserve step</button>" in first
    assert "Step 1 of 2: this approves the preservation only" in first
    assert sam.post(f"/decisions/{decision_id}/approve", data={"csrf_token": token},
                    follow_redirects=False).status_code == 303
    page = sam.get(f"/targets/{world.target_id}")
    assert "approved · preserve step" in page.text and "Approve the takedown" in page.text
    assert "<dt>Preserve step approved</dt>" in page.text and "Step 1 of 2" not in page.text
    # Rejecting it now is refused saying how to stop the takedown instead.
    late = sam.post(f"/decisions/{decision_id}/reject",
                    data={"csrf_token": token, "reason": "no takedown after all"})
    assert late.status_code == 409
    assert _alert(late.text).startswith("The preserve step of this preserve-then-takedown "
                                        "decision was approved by sam at ")
    assert _alert(late.text).endswith("so it can no longer be rejected; to stop its takedown, "
                                      "a new decision (preserve or monitor) has to be "
                                      "proposed, which supersedes it.")
    assert _kept(late.text, "reason") == "no takedown after all"
    assert f'action="/decisions/{decision_id}/reject"' not in page.text  # approved already
    assert sam.post(f"/decisions/{decision_id}/approve", data={"csrf_token": token},
                    follow_redirects=False).status_code == 303
    page = sam.get(f"/targets/{world.target_id}")
    assert "approved · takedown step" in page.text and "Takedown approved" in page.text
    assert 'action="/decisions/' not in page.text
    # Nothing is left to approve: the service says so on the page.
    again = sam.post(f"/decisions/{decision_id}/approve", data={"csrf_token": token})
    assert again.status_code == 409
    assert _alert(again.text).startswith("This preserve-then-takedown decision is approved "
                                         "already, both its steps (the takedown by sam at ")
    assert _alert(again.text).endswith("nothing is left to approve.")


# --- who may do what -------------------------------------------------------------------------

def test_four_eyes_the_proposer_may_not_decide_their_own(api: Api) -> None:
    world = _world(api)
    _member(api, world, "boss", Access.WRITE, Role.SUPERVISOR)
    client, token = _client(api, "boss")
    proposed = client.post(f"/targets/{world.target_id}/decisions", data={
        "csrf_token": token, "kind": "monitor", "rationale": "mine"}, follow_redirects=False)
    assert proposed.status_code == 303, proposed.text
    page = client.get(f"/targets/{world.target_id}")
    assert "You proposed this decision" in page.text and 'action="/decisions/' not in page.text
    with api.runtime.session() as session:
        decision_id = session.scalars(select(Decision.id)).one()
    for verb, form in (("approve", {"note": "self"}), ("reject", {"reason": "self"})):
        refused = client.post(f"/decisions/{decision_id}/{verb}",
                              data={"csrf_token": token, **form})
        assert refused.status_code == 409, refused.text
        _assert_page_headers(refused)
        assert _alert(refused.text) == (f"Four eyes: you proposed this decision, so you may "
                                        f"not {verb} it; another supervisor must.")
        assert "Traceback" not in refused.text and "mine" in refused.text
    assert _decision_states(api, world.target_id) == ["proposed"]
    assert _count(api, "decision.approved") == _count(api, "decision.rejected") == 0
    # Another supervisor may: sam rejects it, saying why.
    sam, sam_token = _client(api, "sam")
    assert sam.post(f"/decisions/{decision_id}/reject", data={"csrf_token": sam_token,
                                                              "reason": ""}).status_code == 422
    rejected = sam.post(f"/decisions/{decision_id}/reject", data={
        "csrf_token": sam_token, "reason": "keep preserving"}, follow_redirects=False)
    assert rejected.status_code == 303
    page = sam.get(rejected.headers["location"])
    assert "Decision rejected" in page.text and "rejected by" in page.text
    assert "No current decision: the latest was rejected" in page.text


def _kept(page: str, what: str) -> str | None:
    """What a refused approval ("note") or rejection ("reason") had typed, as the page keeps
    it in view where its form is no longer offered; None when the page shows no such box."""
    found = re.search(rf'<textarea id="kept-{what}" readonly[^>]*>([^<]*)</textarea>', page)
    return None if found is None else html.unescape(found.group(1))


def _typed_in_form(page: str, what: str) -> str:
    found = re.search(rf'<textarea id="{what}" name="{what}"[^>]*>([^<]*)</textarea>', page)
    assert found, page
    return html.unescape(found.group(1))


def test_a_refused_approval_or_rejection_keeps_what_was_typed_in_view(api: Api) -> None:
    world = _world(api)
    boss_caller = _member(api, world, "boss", Access.WRITE, Role.SUPERVISOR)
    boss, boss_token = _client(api, "boss")
    sam, sam_token = _client(api, "sam")
    typed = f"Checked the capture {HOSTILE} & the advert's price"

    # Four eyes: the form is not the proposer's, but what they typed stays on the page.
    own = _propose_directly(api, boss_caller, world.target_id, "monitor", rationale="mine")
    for verb, field in (("approve", "note"), ("reject", "reason")):
        refused = boss.post(f"/decisions/{own}/{verb}",
                            data={"csrf_token": boss_token, field: typed})
        assert refused.status_code == 409
        assert _alert(refused.text).startswith("Four eyes: you proposed this decision")
        assert _kept(refused.text, field) == typed
        assert "<script" not in refused.text and "You proposed this decision" in refused.text
        assert 'action="/decisions/' not in refused.text

    # A note too long comes back in the form that sends it, with no second box.
    too_long = sam.post(f"/decisions/{own}/approve",
                        data={"csrf_token": sam_token, "note": "x" * 2001})
    assert too_long.status_code == 422 and _kept(too_long.text, "note") is None
    assert _typed_in_form(too_long.text, "note") == "x" * 2001

    # Superseded while the supervisor wrote: the note is kept, but not put in the form that
    # approves the newer decision, which they have not read yet.
    newer = _propose_directly(api, world.nadia, world.target_id, "preserve",
                              rationale="keep the data")
    late = sam.post(f"/decisions/{own}/approve", data={"csrf_token": sam_token, "note": typed})
    assert late.status_code == 409
    assert _alert(late.text).startswith("This monitor decision has been superseded: a newer "
                                        "decision was proposed, a preserve by nadia at ")
    assert _alert(late.text).endswith(", awaiting approval; read it before you decide, as this "
                                      "one can no longer be approved.")
    # Said above the newer decision, with a link to it, before its form.
    assert f'<a href="#decision-{newer}">Read the newer decision</a>' in late.text
    assert (late.text.index('id="decide-refused"') < late.text.index(f'id="decision-{newer}"')
            < late.text.index(f'action="/decisions/{newer}/approve"'))
    assert "keep the data" in late.text
    assert _kept(late.text, "note") == typed
    assert _typed_in_form(late.text, "note") == ""

    # Decided by someone else meanwhile: nothing is left to approve or reject, and the page,
    # with no current decision, still shows what was typed.
    assert boss.post(f"/decisions/{newer}/reject", data={
        "csrf_token": boss_token, "reason": "not needed"}, follow_redirects=False
    ).status_code == 303
    for verb, field in (("approve", "note"), ("reject", "reason")):
        gone = sam.post(f"/decisions/{newer}/{verb}", data={"csrf_token": sam_token,
                                                            field: typed})
        assert gone.status_code == 409
        assert _alert(gone.text).startswith(
            "This preserve decision was rejected by boss at " if verb == "approve"
            else "This preserve decision was rejected already, by boss at ")
        assert "propose a new one" not in gone.text
        assert "No current decision: the latest was rejected" in gone.text
        assert _kept(gone.text, field) == typed
    # Superseded by a decision since rejected: the link goes to it in the history.
    older = sam.post(f"/decisions/{own}/approve", data={"csrf_token": sam_token, "note": typed})
    assert older.status_code == 409 and ", rejected since; read it" in _alert(older.text)
    assert f'<a href="#history-{newer}">Read the newer decision</a>' in older.text
    assert f'<tr id="history-{newer}">' in older.text
    assert _decision_states(api, world.target_id) == ["superseded", "rejected"]
    assert _count(api, "decision.approved") == 0


def test_a_reader_may_not_propose_and_an_investigator_may_not_approve(api: Api) -> None:
    world = _world(api)
    _member(api, world, "rita", Access.READ)
    reader, reader_token = _client(api, "rita")
    page = reader.get(f"/targets/{world.target_id}")
    assert page.status_code == 200 and URL in page.text
    assert "Propose a decision" not in page.text and 'name="rationale"' not in page.text
    refused = reader.post(f"/targets/{world.target_id}/decisions", data={
        "csrf_token": reader_token, "kind": "monitor", "rationale": "r"})
    assert refused.status_code == 403 and "needs write access" in _alert(refused.text)
    assert _decision_states(api, world.target_id) == []

    decision_id = _propose_directly(api, world.nadia, world.target_id, "monitor")
    _member(api, world, "ivan", Access.WRITE)
    investigator, token = _client(api, "ivan")
    page = investigator.get(f"/targets/{world.target_id}")
    assert "Propose a decision" in page.text and 'action="/decisions/' not in page.text
    for verb, form in (("approve", {}), ("reject", {"reason": "no"})):
        refused = investigator.post(f"/decisions/{decision_id}/{verb}",
                                    data={"csrf_token": token, **form})
        assert refused.status_code == 403, refused.text
        assert "needs the supervisor or admin role" in _alert(refused.text)
    assert _decision_states(api, world.target_id) == ["proposed"]

    # A closed case takes no decisions, through the page either.
    with api.runtime.session() as session:
        cases.close_case(session, world.nadia.user,
                         cases.case_for(session, world.nadia.user, REFERENCE))
    sam, sam_token = _client(api, "sam")
    assert 'action="/decisions/' not in sam.get(f"/targets/{world.target_id}").text
    closed = sam.post(f"/decisions/{decision_id}/approve", data={"csrf_token": sam_token})
    assert closed.status_code == 409 and "is closed" in _alert(closed.text)
    assert "Propose a decision" not in investigator.get(f"/targets/{world.target_id}").text


def test_a_proposal_the_service_refuses_comes_back_with_what_was_typed(api: Api) -> None:
    world = _world(api)
    client, token = _client(api, "nadia")
    path = f"/targets/{world.target_id}/decisions"
    empty = client.post(path, data={"csrf_token": token, "kind": "", "rationale": ""})
    assert empty.status_code == 422
    assert _alert(empty.text) == ("Choose what to do with the target. Give a rationale (at "
                                  "most 5,000 characters).")
    waiver = client.post(path, data={"csrf_token": token, "kind": "monitor",
                                     "rationale": "keep watching",
                                     "preservation_waiver": "not needed"})
    assert waiver.status_code == 422
    assert _alert(waiver.text) == "A preservation waiver applies only to a takedown."
    assert '<input type="radio" name="kind" value="monitor" checked>' in waiver.text
    assert ">keep watching</textarea>" in waiver.text and ">not needed</textarea>" in waiver.text
    assert _decision_states(api, world.target_id) == []


def test_a_stranger_gets_the_not_found_page_for_targets_decisions_and_hits(api: Api) -> None:
    world = _world(api)
    decision_id = _propose_directly(api, world.nadia, world.target_id, "monitor")
    hits_path = f"/cases/{QUOTED}/hits"
    # Signed out, every page sends to sign-in and back.
    for path in (f"/targets/{world.target_id}", hits_path):
        answer = api.client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert parse_qs(urlsplit(answer.headers["location"]).query)["next"] == [path]
    api.user("stranger", password=PASSWORD)
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    for name in ("stranger", "aud"):
        client, token = _client(api, name)
        answers = [
            client.get(f"/targets/{world.target_id}"),
            client.post(f"/targets/{world.target_id}/decisions",
                        data={"csrf_token": token, "kind": "monitor", "rationale": "x"}),
            client.post(f"/decisions/{decision_id}/approve", data={"csrf_token": token}),
            client.post(f"/decisions/{decision_id}/reject",
                        data={"csrf_token": token, "reason": "x"}),
            client.get(hits_path),
            client.post(f"{hits_path}/{uuid.uuid4()}/resolve",
                        data={"csrf_token": token, "note": "x"}),
            # ... the same as what does not exist at all.
            client.get(f"/targets/{uuid.uuid4()}"),
            client.get("/targets/not-a-target"),
            client.post(f"/decisions/{uuid.uuid4()}/approve", data={"csrf_token": token}),
            client.get("/cases/NO-SUCH-CASE/hits"),
        ]
        for answer in answers:
            assert answer.status_code == 404, (name, answer.text)
            _assert_page_headers(answer)
            assert REFERENCE not in answer.text and "facebook" not in answer.text
        assert len({a.text for a in answers}) == 1
    assert _decision_states(api, world.target_id) == ["proposed"]


def test_posts_without_the_sessions_token_are_refused(api: Api) -> None:
    world = _world(api)
    decision_id = _propose_directly(api, world.nadia, world.target_id, "monitor")
    sam, _token = _client(api, "sam")
    _other, other_token = _client(api, "sam")
    nadia, _nadia_token = _client(api, "nadia")
    posts = [
        (nadia, f"/targets/{world.target_id}/decisions",
         {"kind": "preserve", "rationale": "forged"}),
        (sam, f"/decisions/{decision_id}/approve", {"note": "forged"}),
        (sam, f"/decisions/{decision_id}/reject", {"reason": "forged"}),
        (nadia, f"/cases/{QUOTED}/hits/{uuid.uuid4()}/resolve", {"note": "forged"}),
    ]
    for client, path, form in posts:
        for sent in ({}, {"csrf_token": ""}, {"csrf_token": "forged"},
                     {"csrf_token": other_token}):
            refused = client.post(path, data={**form, **sent}, follow_redirects=False)
            assert refused.status_code == 403, (path, sent)
            assert "Form refused" in refused.text
    assert _decision_states(api, world.target_id) == ["proposed"]
    with api.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(DeconflictionAgreement)) == 0
    assert sam.get("/").status_code == 200  # still signed in


# --- what the pages show ---------------------------------------------------------------------

def test_hostile_text_is_shown_as_text(api: Api) -> None:
    nadia = api.user("nadia", password=PASSWORD, unit=HOSTILE)
    sam = api.user("sam", Role.SUPERVISOR, password=PASSWORD)
    other_owner = api.user("other", password=PASSWORD, unit=f"{HOSTILE} unit")
    hostile_url = "https://example.org/?q=<script>alert(3)</script>"
    with api.runtime.session() as session:
        case = cases.create_case(session, nadia.user, reference="OP-9", title=HOSTILE)
        cases.add_member(session, nadia.user, case, sam.user, Access.READ)
        target, _job = targets.flag_target(session, nadia.user, case, url=hostile_url,
                                           reason='"><img src=x onerror=alert(2)>')
        other = cases.create_case(session, other_owner.user, reference="OTHER-9",
                                  title="other", contact=f"{HOSTILE} desk")
        targets.flag_target(session, other_owner.user, other, url=hostile_url, reason="x")
        decisions.propose(session, nadia.user, case, target, kind="takedown",
                          rationale=f"{HOSTILE} rationale",
                          preservation_waiver=f"{HOSTILE} waiver")
        target_id = target.id
    client, token = _client(api, "sam")
    page = client.get(f"/targets/{target_id}")
    refused = client.post(f"/decisions/{_only_decision(api)}/reject",
                          data={"csrf_token": token, "reason": "x" * 5001})
    hits = client.get("/cases/OP-9/hits")
    assert refused.status_code == 422 and "Say why the decision is rejected" in refused.text
    for answer in (page, refused, hits):
        assert answer.status_code in (200, 422), answer.text
        assert "<script" not in answer.text.lower()
        assert "<img src=x" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; rationale" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; waiver" in page.text
    assert "https://example.org/?q=&lt;script&gt;alert(3)&lt;/script&gt;" in page.text
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; desk" in hits.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; unit" in hits.text


def _only_decision(api: Api) -> str:
    with api.runtime.session() as session:
        return str(session.scalars(select(Decision.id)).one())


def test_the_hits_page_shows_whom_to_call_and_nothing_else(api: Api) -> None:
    world = _world(api)
    harbour = api.user("harbour.owner", password=PASSWORD, unit="Harbour Unit")
    with api.runtime.session() as session:
        other = cases.create_case(session, harbour.user, reference=OTHER_REF,
                                  title=OTHER_TITLE, facts="informant Kostas")
        other_target, _job = targets.flag_target(
            session, harbour.user, other, reason="lead from informant Kostas",
            url="https://facebook.com/fast.trips.eu/posts/123?utm_source=x")
        other_target_id = str(other_target.id)
    _member(api, world, "rita", Access.READ)
    reader, reader_token = _client(api, "rita")
    page = reader.get(f"/cases/{QUOTED}/hits")
    assert page.status_code == 200
    _assert_page_headers(page)
    assert page.text.count("Harbour Unit") >= 2 and "harbour.owner" in page.text
    assert "Same URL" in page.text and "Same account" in page.text
    assert f'href="/targets/{world.target_id}"' in page.text and URL in page.text
    for secret in (OTHER_REF, OTHER_TITLE, "Kostas", other_target_id, "utm_source"):
        assert secret not in page.text, secret
    # What the API shows of the hits, and not more.
    api_hits = api.get(world.nadia, f"/api/cases/{QUOTED}/deconfliction/hits").json()["items"]
    assert {h["id"] for h in api_hits} == set(re.findall(r'id="hit-([0-9a-f-]+)"', page.text))
    # A reader has no form, and a post is refused with the service's reason.
    assert "Record this case" not in page.text
    refused = reader.post(f"/cases/{QUOTED}/hits/{api_hits[0]['id']}/resolve",
                          data={"csrf_token": reader_token, "note": "ok"})
    assert refused.status_code == 403 and "needs write access" in _alert(refused.text)

    nadia, token = _client(api, "nadia")
    hit = api_hits[0]["id"]
    empty = nadia.post(f"/cases/{QUOTED}/hits/{hit}/resolve",
                       data={"csrf_token": token, "note": "  "})
    assert empty.status_code == 422
    assert _alert(empty.text).startswith("Say what was agreed with the other unit")
    first = nadia.post(f"/cases/{QUOTED}/hits/{hit}/resolve",
                       data={"csrf_token": token, "note": "Called them"},
                       follow_redirects=False)
    assert first.status_code == 303
    shown = nadia.get(first.headers["location"])
    assert "Your case&#39;s agreement is recorded" in shown.text
    assert "the other case's agreement is awaited" in shown.text
    twice = nadia.post(f"/cases/{QUOTED}/hits/{hit}/resolve",
                       data={"csrf_token": token, "note": "again"})
    assert twice.status_code == 409 and "has already agreed" in _alert(twice.text)
    assert _count(api, "deconfliction.agreed") == 1


def _hit_ids(page: str) -> list[str]:
    return re.findall(r'id="hit-([0-9a-f-]+)"', page)


def test_the_hits_page_pages_and_puts_unresolved_hits_first(
    api: Api, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("api.ui.decisions.HITS_PER_PAGE", 2)
    world = _world(api)
    harbour = api.user("harbour.owner", password=PASSWORD, unit="Harbour Unit")
    with api.runtime.session() as session:
        other = cases.create_case(session, harbour.user, reference=OTHER_REF, title="t")
        mine = cases.case_for(session, world.nadia.user, REFERENCE)
        for n in range(5):
            url = f"https://example.org/crossing/{n}"
            targets.flag_target(session, harbour.user, other, reason="lead", url=url)
            targets.flag_target(session, world.nadia.user, mine, reason="advert", url=url)
    every = [h["id"] for h in api.get(
        world.nadia, f"/api/cases/{QUOTED}/deconfliction/hits").json()["items"]]
    assert len(every) == 5
    with api.runtime.session() as session:  # the two oldest settled by both cases
        mine = cases.case_for(session, world.nadia.user, REFERENCE)
        other = cases.case_for(session, harbour.user, OTHER_REF)
        for hit in every[:2]:
            deconfliction.agree(session, world.nadia.user, mine, uuid.UUID(hit), note="ok")
            deconfliction.agree(session, harbour.user, other, uuid.UUID(hit), note="ok")

    nadia, token = _client(api, "nadia")
    page = nadia.get(f"/cases/{QUOTED}/hits")
    assert page.status_code == 200
    # The unresolved ones first, two to a page, with the counts and a link to the rest.
    assert _hit_ids(page.text) == every[2:4]
    assert "3 unresolved" in page.text and "Unresolved (3)" in page.text
    assert "All (5)" in page.text
    newer = re.search(r'<a href="([^"]+)">Newer hits</a>', page.text)
    assert newer
    second = nadia.get(newer.group(1).replace("&amp;", "&"))
    assert _hit_ids(second.text) == every[4:] and "Newer hits" not in second.text
    assert "back to the oldest" in second.text
    every_page = nadia.get(f"/cases/{QUOTED}/hits?show=all")
    assert _hit_ids(every_page.text) == every[:2]

    # Agreeing to a hit on the second page brings the investigator back to that page.
    cursor = parse_qs(urlsplit(newer.group(1).replace("&amp;", "&")).query)["cursor"][0]
    done = nadia.post(f"/cases/{QUOTED}/hits/{every[4]}/resolve",
                      data={"csrf_token": token, "note": "Called Harbour Unit",
                            "show": "unresolved", "cursor": cursor}, follow_redirects=False)
    assert done.status_code == 303
    back = urlsplit(done.headers["location"])
    assert parse_qs(back.query)["cursor"] == [cursor] and back.fragment == f"hit-{every[4]}"
    shown = nadia.get(done.headers["location"])
    assert _hit_ids(shown.text) == every[4:]
    assert "This case has agreed; the other case" in shown.text
    # Refused on that page, the same page comes back with the reason beside the hit.
    again = nadia.post(f"/cases/{QUOTED}/hits/{every[4]}/resolve",
                       data={"csrf_token": token, "note": "again", "show": "unresolved",
                             "cursor": cursor})
    assert again.status_code == 409 and _hit_ids(again.text) == every[4:]
    assert "has already agreed" in _alert(again.text)

    # All settled: the page says so and shows every hit.
    with api.runtime.session() as session:
        mine = cases.case_for(session, world.nadia.user, REFERENCE)
        other = cases.case_for(session, harbour.user, OTHER_REF)
        for hit in every[2:]:
            if hit != every[4]:
                deconfliction.agree(session, world.nadia.user, mine, uuid.UUID(hit), note="ok")
            deconfliction.agree(session, harbour.user, other, uuid.UUID(hit), note="ok")
    settled = nadia.get(f"/cases/{QUOTED}/hits")
    assert "all resolved" in settled.text and _hit_ids(settled.text) == every[:2]
    empty = nadia.get(f"/cases/{QUOTED}/hits?show=unresolved")
    assert _hit_ids(empty.text) == [] and "No unresolved hits" in empty.text
    bad = nadia.get(f"/cases/{QUOTED}/hits?cursor=garbage")
    assert bad.status_code == 422 and "cursor" in bad.text


# --- in Chromium -----------------------------------------------------------------------------

@pytest.fixture
def served(api: Api) -> Iterator[str]:
    with served_app(api.runtime) as url:
        yield url


def _world_for_the_browser(api: Api) -> str:
    runtime: Runtime = api.runtime
    with runtime.session() as session:
        nadia = users.create_user(session, None, name="nadia", role=Role.INVESTIGATOR,
                                  unit="Border Unit", password=PASSWORD,
                                  display_name="Nadia Haddad")
        sam = users.create_user(session, None, name="sam", role=Role.SUPERVISOR,
                                unit="Border Unit", password=PASSWORD,
                                display_name="Sam Okafor")
        harbour = users.create_user(session, None, name="harbour", role=Role.INVESTIGATOR,
                                    unit="Harbour Unit", display_name="Eleni Markou")
        case = cases.create_case(session, nadia, reference="OP/2026/14",
                                 title="Crossing adverts on Facebook",
                                 contact="duty desk +30 210 555 0100")
        cases.add_member(session, nadia, case, sam, Access.WRITE)
        target, _job = targets.flag_target(
            session, nadia, case, url=URL,
            reason="Advert offering boat crossings to Italy, with prices and a phone number")
        capture = session.get(Capture, make_capture(session, case, target, runtime.store).id)
        assert capture is not None
        capture.status = CaptureStatus.COMPLETE
        other = cases.create_case(session, harbour, reference=OTHER_REF, title=OTHER_TITLE,
                                  contact="Harbour duty officer +30 210 555 0199")
        targets.flag_target(session, harbour, other, reason="lead", url=URL)
        decisions.propose(session, nadia, case, target, kind="monitor",
                          rationale="Watch the advert for a week first")
        decisions.propose(session, nadia, case, target, kind="preserve-then-takedown",
                          rationale="Have the platform keep the account data, then remove "
                                    "the advert before the next crossing")
        return str(target.id)


@pytest.mark.browser
def test_a_supervisor_approves_a_decision_someone_else_proposed_in_chromium(
    api: Api, served: str,
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    target_id = _world_for_the_browser(api)
    with BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served, refused_status=409) as page:  # a refused approval

        page.goto(f"{served}/targets/{target_id}")
        assert urlsplit(page.url).path == "/login"
        sign_in_on_page(page, "sam", PASSWORD)
        page.get_by_role("heading", name="Current decision").wait_for()
        assert urlsplit(page.url).path == f"/targets/{target_id}"
        current = page.locator("#current")
        assert "preserve-then-takedown" in current.inner_text()
        assert "Nadia Haddad" in current.inner_text()
        assert page.locator("table.decisions tbody tr").count() == 2
        # Rejecting does not look like approving.
        approve = page.get_by_role("button", name="Approve the preserve step")
        reject = page.get_by_role("button", name="Reject")
        colour = "b => getComputedStyle(b).backgroundColor"
        assert approve.evaluate(colour) != reject.evaluate(colour)
        page.screenshot(path=SHOTS / "target-pending.png", full_page=True)

        page.fill("#note", "Capture checked; preservation first")
        page.click("button:has-text('Approve the preserve step')")
        page.get_by_role("status").wait_for()
        assert "Decision approved" in page.get_by_role("status").inner_text()
        assert "preserve step" in current.inner_text()
        assert "Sam Okafor" in current.inner_text()
        page.screenshot(path=SHOTS / "target-approved.png", full_page=True)

        # The takedown step waits for the other unit: the approval is not offered, and the
        # page says why beside it.
        takedown = page.get_by_role("button", name="Approve the takedown")
        assert takedown.is_disabled()
        why = page.locator("#" + (takedown.get_attribute("aria-describedby") or "none"))
        assert why.inner_text().startswith("Not yet: Deconfliction hold, 2 unresolved")
        assert "Harbour Unit" in why.inner_text()
        assert page.locator("#note").count() == 0
        assert OTHER_REF not in page.content()
        page.screenshot(path=SHOTS / "target-refused.png", full_page=True)
        page.set_viewport_size({"width": 420, "height": 900})
        takedown.scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "target-refused-420.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        page.set_viewport_size({"width": 1280, "height": 900})

        page.click("text=See the case's hits")
        page.get_by_role("heading", name="Deconfliction hits of OP/2026/14").wait_for()
        assert page.locator("section.card[id^=hit-]").count() == 2
        assert "Harbour duty officer" in page.content()
        page.screenshot(path=SHOTS / "hits.png", full_page=True)
        first = page.locator("section.card[id^=hit-]").first
        first.locator("textarea").fill("Called Harbour duty officer: no objection after "
                                       "Friday")
        first.locator("button").click()
        page.get_by_role("status").wait_for()
        assert "other case's agreement is awaited" in page.content()
        page.screenshot(path=SHOTS / "hits-agreed.png", full_page=True)
    assert _count(api, "decision.approved") == 1
    assert _count(api, "deconfliction.agreed") == 1


@pytest.mark.browser
def test_a_refused_approval_keeps_the_note_typed_in_chromium(api: Api, served: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    nadia = api.user("nadia", password=PASSWORD, unit="Border Unit")
    sam = api.user("sam", Role.SUPERVISOR, password=PASSWORD)
    harbour = api.user("harbour", unit="Harbour Unit")
    with api.runtime.session() as session:
        case = cases.create_case(session, nadia.user, reference="OP/2026/14",
                                 title="Crossing adverts on Facebook",
                                 contact="duty desk +30 210 555 0100")
        cases.add_member(session, nadia.user, case, sam.user, Access.WRITE)
        target, _job = targets.flag_target(session, nadia.user, case, url=URL,
                                           reason="Advert offering boat crossings to Italy")
        target_id = str(target.id)
        decisions.propose(session, nadia.user, case, target, kind="takedown",
                          rationale="Remove the advert before the next crossing",
                          preservation_waiver="The platform keeps such posts for a year")
    complete_capture(api, target_id)
    note = (f"Checked the capture of {HOSTILE} the advert: prices and phone number match "
            "the informant's account; remove it today")
    with BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served, refused_status=409) as page:
        page.goto(f"{served}/targets/{target_id}")
        sign_in_on_page(page, "sam", PASSWORD)
        page.get_by_role("heading", name="Current decision").wait_for()
        page.fill("#note", note)
        # While sam writes, another unit flags the same advert: the approval is now refused.
        with api.runtime.session() as session:
            other = cases.create_case(session, harbour.user, reference=OTHER_REF,
                                      title=OTHER_TITLE, contact="Harbour duty officer")
            targets.flag_target(session, harbour.user, other, reason="lead", url=URL)
        page.get_by_role("button", name="Approve takedown").click()
        page.get_by_role("alert").wait_for()

        alert = page.get_by_role("alert")
        assert alert.inner_text().startswith("Takedown refused: deconfliction hold")
        kept = page.get_by_label("Your approval note")
        assert kept.input_value() == note and kept.get_attribute("readonly") is not None
        assert kept.get_attribute("aria-describedby") == alert.get_attribute("id")
        assert page.locator("#current form[action$='/approve']").count() == 0
        # The refusal is why the button is disabled: said once, and the button points to it.
        disabled = page.get_by_role("button", name="Approve takedown")
        assert disabled.is_disabled()
        assert disabled.get_attribute("aria-describedby") == alert.get_attribute("id")
        assert page.get_by_text("Not yet").count() == 0
        assert page.content().lower().count("deconfliction hold") == 1
        assert OTHER_REF not in page.content()
        page.screenshot(path=SHOTS / "target-approval-refused-note.png", full_page=True)
        page.set_viewport_size({"width": 420, "height": 900})
        page.screenshot(path=SHOTS / "target-approval-refused-note-420.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
    assert _count(api, "decision.approved") == 0


def test_a_target_is_captured_again_from_its_page(api: Api) -> None:
    world = _world(api)
    nadia, token = _client(api, "nadia")
    page = nadia.get(f"/targets/{world.target_id}")
    assert f'action="/targets/{world.target_id}/captures"' in page.text
    with api.runtime.session() as session:
        job = session.scalars(select(CaptureJob).where(
            CaptureJob.target_id == uuid.UUID(world.target_id))).one()
        job.state = JobState.DONE  # the flag's capture was made
    queued_before = _count(api, "capture.queued")
    asked = nadia.post(f"/targets/{world.target_id}/captures", data={"csrf_token": token},
                       follow_redirects=False)
    assert asked.status_code == 303
    shown = nadia.get(asked.headers["location"]).text
    assert "A new capture is queued" in shown and "capture queued" in shown
    # Asked again while it waits: the waiting capture, not another.
    assert nadia.post(f"/targets/{world.target_id}/captures",
                      data={"csrf_token": token}).status_code == 200
    with api.runtime.session() as session:
        states = sorted(session.scalars(select(CaptureJob.state).where(
            CaptureJob.target_id == uuid.UUID(world.target_id))))
    assert states == [JobState.DONE, JobState.QUEUED]
    assert _count(api, "capture.queued") == queued_before + 1
    # A reader of the case has no button, and a forged post is refused.
    sam, sam_token = _client(api, "sam")
    assert "Capture again" not in sam.get(f"/targets/{world.target_id}").text
    refused = sam.post(f"/targets/{world.target_id}/captures", data={"csrf_token": sam_token})
    assert refused.status_code == 403 and "Capture again" not in refused.text


def test_the_target_page_pages_its_captures_newest_first(
    api: Api, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("api.ui.decisions.CAPTURES_PER_PAGE", 2)
    world = _world(api)
    with api.runtime.session() as session:
        case = cases.case_for(session, world.nadia.user, REFERENCE)
        target = session.get(Target, uuid.UUID(world.target_id))
        assert target is not None
        made = [str(make_capture(session, case, target, api.runtime.store).id)
                for _ in range(5)]
    nadia, _token = _client(api, "nadia")
    newest = made[::-1]

    def shown(page: str) -> list[str]:
        return re.findall(r'<td class="nowrap"><a href="/captures/([0-9a-f-]+)">', page)

    first = nadia.get(f"/targets/{world.target_id}")
    assert shown(first.text) == newest[:2] and "5, newest first" in first.text
    pages = [shown(first.text)]
    page = first.text
    while older := re.search(r'<a href="([^"]+)">Older captures</a>', page):
        page = nadia.get(older.group(1).replace("&amp;", "&")).text
        assert "Newest captures" in page
        pages.append(shown(page))
    assert pages == [newest[:2], newest[2:4], newest[4:]]

    # A form posted from the second page comes back to it: refused, and done.
    nadia, token = _client(api, "nadia")
    second = nadia.get(re.findall(r'<a href="([^"]+)">Older captures</a>', first.text)[0]
                       .replace("&amp;", "&")).text
    cursor = re.search(r'name="captures_cursor" value="([^"]+)"', second)
    assert cursor, second[:3000]
    form = {"csrf_token": token, "kind": "preserve", "captures_cursor": html.unescape(
        cursor.group(1))}
    refused = nadia.post(f"/targets/{world.target_id}/decisions",
                         data={**form, "rationale": ""}, follow_redirects=False)
    assert refused.status_code == 422 and shown(refused.text) == newest[2:4]
    done = nadia.post(f"/targets/{world.target_id}/decisions",
                      data={**form, "rationale": "Keep it"}, follow_redirects=False)
    assert done.status_code == 303
    back = nadia.get(done.headers["location"]).text
    assert "Decision proposed." in back and shown(back) == newest[2:4]


def test_the_target_page_forms_come_back_to_the_page_of_notes_they_were_sent_from(
    api: Api, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("api.ui.decisions.NOTES_PER_PAGE", 2)
    world = _world(api)
    with api.runtime.session() as session:
        case = cases.case_for(session, world.nadia.user, REFERENCE)
        for n in range(5):
            notes.add_note(session, world.nadia.user, case, body=f"note number {n}",
                           target_id=uuid.UUID(world.target_id))
    nadia, token = _client(api, "nadia")

    def shown(page: str) -> list[str]:
        return re.findall(r"note number (\d)", page)

    def form_inputs(page: str, action: str) -> dict[str, str]:
        form = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>',
                         page, re.S)
        assert form, page[:3000]
        return {html.unescape(n): html.unescape(v) for n, v in re.findall(
            r'<input type="hidden" name="([^"]*)" value="([^"]*)">', form.group(1))}

    first = nadia.get(f"/targets/{world.target_id}").text
    assert shown(first) == ["0", "1"]
    more = re.search(r'<a href="([^"]+)">More notes</a>', first)
    assert more, first[:3000]
    second = nadia.get(html.unescape(more.group(1))).text
    assert shown(second) == ["2", "3"]

    action = f"/targets/{world.target_id}/decisions"
    form = {**form_inputs(second, action), "kind": "preserve"}
    assert form["csrf_token"] == token
    refused = nadia.post(action, data={**form, "rationale": ""}, follow_redirects=False)
    assert refused.status_code == 422 and shown(refused.text) == ["2", "3"]
    done = nadia.post(action, data={**form, "rationale": "Keep it"}, follow_redirects=False)
    assert done.status_code == 303
    back = nadia.get(done.headers["location"]).text
    assert "Decision proposed." in back and shown(back) == ["2", "3"]
