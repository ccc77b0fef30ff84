"""evidence/requests.py: legal requests filled from a case, stored as evidence, tracked."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import accounts, cases, custody, requests
from evidence.blobstore import FolderStore
from evidence.errors import (
    AccessDenied,
    Conflict,
    FourEyesViolation,
    IllegalTransition,
    InvalidInput,
    PermissionDenied,
    PreservationEnded,
    RequestIncomplete,
)
from evidence.models import Access, Artifact, CustodyEntry, LegalRequest, Role
from evidence.request_input import CATEGORIES, TARGETS, About
from evidence.settings import Settings
from legal_forms.instruments.base import add_days
from tests.factories import (
    ARABIC_HANDLE,
    AUTHORITY_FIELDS,
    EPOC_PR_FIELDS,
    make_capture,
    make_request_world,
    make_user,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")  # the issuing authority's calendar
PERIOD = {"date_from": datetime(2025, 9, 1, tzinfo=UTC),
          "date_to": datetime(2026, 3, 1, 23, 59, tzinfo=UTC)}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


def _generate(session: Session, world: Any, store: FolderStore, settings: Settings,
              **overrides: Any) -> Any:  # Any: the row's JSON columns are read freely below
    values: dict[str, Any] = {"kind": "provider-preservation", "platform": "x",
                              "fields": AUTHORITY_FIELDS, "now": T0, **PERIOD}
    values.update(overrides)
    actor = values.pop("actor", world.actor)
    return requests.generate(session, actor, world.case, store=store, settings=settings,
                             **values)


def _entries(session: Session, row: LegalRequest) -> list[dict[str, Any]]:
    found = session.scalars(select(CustodyEntry).where(CustodyEntry.object_id == str(row.id))
                            .order_by(CustodyEntry.seq))
    return [custody.describe(e) for e in found]


def _supervisor(session: Session, world: Any) -> Any:
    boss = make_user(session, role=Role.SUPERVISOR)
    cases.add_member(session, world.actor, world.case, boss, Access.WRITE)
    return boss


def _send(session: Session, world: Any, row: LegalRequest, at: datetime) -> LegalRequest:
    boss = _supervisor(session, world)
    requests.change_status(session, boss, world.case, row.id, "approved", at=at, now=at)
    return requests.change_status(session, world.actor, world.case, row.id, "sent", at=at,
                                  now=at)


# --- filling from the case --------------------------------------------------------------------


def test_a_request_is_filled_from_the_targets_and_their_captures(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    made = _generate(session, world, store, settings)
    row = made.request
    assert row.status == "draft" and row.platform == "x" and row.kind == "provider-preservation"
    assert row.reference_number == f"{world.case.reference}-PRES-1"
    by_value = {i["value"]: i for i in row.identifiers}
    # The X post gives the username from its URL; the account target its id and handle; the
    # Facebook post is not for X and stays out.
    assert set(by_value) == {"smuggler_ar", "1234567890", ARABIC_HANDLE}
    assert by_value["smuggler_ar"]["kind"] == "username"
    assert by_value["smuggler_ar"]["source_url"] == "https://x.com/smuggler_ar/status/1789"
    assert by_value["1234567890"]["kind"] == "user_id"
    post_capture = world.captures[world.x_post.id]
    assert by_value["smuggler_ar"]["capture_id"] == str(post_capture.id)
    assert by_value["smuggler_ar"]["manifest_sha256"] == post_capture.manifest_sha256
    assert by_value["smuggler_ar"]["captured_at"].endswith("+00:00")
    assert row.data_categories == ["subscriber", "user_identification", "traffic", "content"]
    assert row.non_disclosure is True
    assert "Migrant smuggling" in row.fields["values"]["offence"]
    assert row.fields["values"]["case_reference"] == world.case.reference
    names = [d["name"] for d in row.deadlines]
    assert "ask for an extension before" in names  # X: at least 7 days before expiry


def test_a_request_concerns_the_targets_whose_captures_it_cites_and_their_accounts(
        session: Session, store: FolderStore, settings: Settings) -> None:
    """What an export of chosen targets carries of the platforms' answers rests on this."""
    from evidence import targets

    world = make_request_world(session, store)
    about_all = _generate(session, world, store, settings).request
    about_post = _generate(session, world, store, settings,
                           target_ids=[world.x_post.id]).request
    # The same account flagged again later (say, by a colleague): the request cites the first
    # target's capture only, and concerns this one too.
    again, _ = targets.flag_target(session, world.actor, world.case, reason="seen again",
                                   account=world.account)
    concerned = requests.request_targets(session, world.case)
    assert concerned[about_all.id] == {world.x_post.id, world.x_account.id, again.id}
    assert concerned[about_post.id] == {world.x_post.id}
    assert requests.requests_concerning(session, world.case, [again.id]) == {about_all.id}
    assert requests.requests_concerning(session, world.case, [world.fb_post.id]) == set()
    assert requests.requests_concerning(session, world.case, [world.x_post.id]) == {
        about_all.id, about_post.id}


def test_the_documents_are_artifacts_named_in_the_custody_entry(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    made = _generate(session, world, store, settings)
    row = made.request
    pdf = session.get(Artifact, row.pdf_artifact_id)
    document = session.get(Artifact, row.json_artifact_id)
    assert pdf is not None and document is not None
    assert (pdf.kind, pdf.media_type, pdf.capture_id, pdf.case_id) == (
        "request-pdf", "application/pdf", None, world.case.id)
    assert document.kind == "request-json"
    assert pdf.sha256 == hashlib.sha256(made.pdf).hexdigest() == row.pdf_sha256
    assert store.read_bytes(pdf.sha256) == made.pdf
    assert store.read_bytes(document.sha256) == made.json
    assert made.pdf.startswith(b"%PDF")
    entries = _entries(session, row)
    assert [e["action"] for e in entries] == ["request.generated"]
    assert entries[0]["sha256"] == pdf.sha256
    assert entries[0]["details"]["json"]["sha256"] == document.sha256
    # The JSON carries the same fields as the PDF.
    rendered = json.loads(made.json)
    values = {f["name"]: f["value"] for s in rendered["sections"] for f in s["fields"]}
    assert values == row.fields["values"]
    assert {a["value"] for a in rendered["annex"]} == {i["value"] for i in row.identifiers}


def test_the_pdf_shows_the_case_urls_and_utc_capture_times(
        session: Session, store: FolderStore, settings: Settings, tmp_path: Path) -> None:
    world = make_request_world(session, store)
    made = _generate(session, world, store, settings)
    path = tmp_path / "request.pdf"
    path.write_bytes(made.pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout
    squashed = "".join(text.split())
    assert "https://x.com/smuggler_ar/status/1789" in squashed
    assert "smuggler_ar" in text and "1234567890" in text
    assert "UTC" in text and made.request.reference_number in text


def test_every_missing_field_is_listed_at_once_and_nothing_is_stored(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    with pytest.raises(RequestIncomplete) as caught:
        _generate(session, world, store, settings, kind="eu-epoc-pr", fields={},
                  date_from=None, date_to=None)
    problems = caught.value.problems
    text = "\n".join(problems)
    for expected in ("issuing authority: name is not set", "issuing authority: time_zone",
                     "issuing authority: email", "Summary of the facts",
                     "Applicable statutory provision", "Designated establishment or legal",
                     "File number of the issuing authority"):
        assert expected in text, expected
    assert len(problems) >= 7
    # Each also says what it is about, for a form to place it at its input.
    found = {p.message: p for p in caught.value.found}
    assert list(found) == problems
    named = found[next(p for p in problems if p.startswith("issuing authority: name"))]
    assert (named.about, named.missing) == (About("authority", "issuing.name"), True)
    facts = found[next(p for p in problems if "Summary of the facts" in p)]
    assert (facts.about, facts.missing) == (About("field", "facts"), True)
    assert caught.value.status_code == 422
    assert session.scalars(select(LegalRequest)).first() is None
    actions = {e.action for e in custody.entries_for_case(session, world.case)}
    assert "request.generated" not in actions


def test_problems_with_targets_and_fields_are_listed_too(
        session: Session, store: FolderStore, settings: Settings) -> None:
    from evidence import targets

    world = make_request_world(session, store)
    fresh, _ = targets.flag_target(session, world.actor, world.case, reason="new advert",
                                   url="https://x.com/other_seller")
    with pytest.raises(RequestIncomplete) as caught:
        _generate(session, world, store, settings,
                  target_ids=[fresh.id, world.fb_post.id],
                  fields={**AUTHORITY_FIELDS, "no_such_field": "x", "issuing.role": "sheriff"},
                  categories=["subscriber", "gossip"])
    text = "\n".join(caught.value.problems)
    assert "has no complete or partial capture" in text
    assert "is not on X" in text
    assert "'no_such_field'" in text
    assert "role 'sheriff'" in text
    assert "'gossip'" in text
    about = {p.about for p in caught.value.found}
    assert {About("fields", "no_such_field"), About("authority", "issuing.role"), TARGETS,
            CATEGORIES} <= about


@pytest.mark.parametrize(("overrides", "named"), [
    ({"kind": "letter-to-santa"}, "eu-epoc-pr"),  # the known kinds are listed
    ({"platform": "myspace"}, "facebook"),  # and the known platforms
])
def test_an_unknown_kind_or_platform_is_the_cores_invalid_input(
        session: Session, store: FolderStore, settings: Settings, overrides: dict[str, str],
        named: str) -> None:
    # The instruments sit behind evidence.legal_instruments; their errors reach callers (and the
    # API's answer, which names the class) as the core's own.
    world = make_request_world(session, store)
    with pytest.raises(InvalidInput, match=named) as caught:
        _generate(session, world, store, settings, **overrides)
    assert type(caught.value) is InvalidInput


def test_an_eu_preservation_order_with_a_validating_prosecutor(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    made = _generate(session, world, store, settings, kind="eu-epoc-pr", fields=EPOC_PR_FIELDS)
    row = made.request
    assert row.reference_number.endswith("-EPOCPR-1")
    assert "Twitter International" in row.fields["values"]["addressee"]
    assert row.fields["values"]["validating_authority"] == "Staatsanwaltschaft Dresden"
    assert row.deadlines[0]["name"].startswith("preservation ends")


def test_the_offence_details_come_from_the_case_and_a_field_overrides_them(
        session: Session, store: FolderStore, settings: Settings) -> None:
    facts = "Adverts offering crossings of the EU external border for payment."
    world = make_request_world(session, store, offence_provision="§ 96 AufenthG",
                               max_penalty_years=10, facts=facts)
    from_case = {k: v for k, v in EPOC_PR_FIELDS.items()
                 if k not in ("offence_provision", "facts", "max_penalty_years")}
    made = _generate(session, world, store, settings, kind="eu-epoc-pr", fields=from_case)
    values = made.request.fields["values"]
    assert values["offence_provision"] == "§ 96 AufenthG" and values["facts"] == facts
    assert made.request.fields["input"]["case"]["max_penalty_years"] == 10
    overridden = _generate(session, world, store, settings, kind="eu-epoc-pr",
                           fields={**from_case, "facts": "Typed in for this request.",
                                   "max_penalty_years": "5", "offence_provision": "  "})
    values = overridden.request.fields["values"]
    assert values["facts"] == "Typed in for this request."
    assert overridden.request.fields["input"]["case"]["max_penalty_years"] == 5
    assert values["offence_provision"] == "§ 96 AufenthG"  # a blank field does not erase it
    assert world.case.facts == facts  # the request's value is not written back to the case


def test_standing_authority_details_come_from_settings(
        session: Session, store: FolderStore, tmp_path: Path) -> None:
    world = make_request_world(session, store)
    standing = {k.split(".", 1)[1]: v for k, v in AUTHORITY_FIELDS.items()}
    file = tmp_path / "authority.json"
    file.write_text(json.dumps({"issuing": {**standing, "name": "From the file"}}), "utf-8")
    settings = Settings(home=tmp_path, authority_file=file, authority_name="From settings")
    made = _generate(session, world, store, settings, fields={})
    assert made.request.fields["input"]["issuing"]["name"] == "From settings"
    assert made.request.fields["input"]["issuing"]["time_zone"] == "Europe/Berlin"
    overridden = _generate(session, world, store, settings,
                           fields={"issuing.name": "Typed in"})
    assert overridden.request.fields["input"]["issuing"]["name"] == "Typed in"
    assert overridden.request.reference_number.endswith("-PRES-2")


# --- access -----------------------------------------------------------------------------------


def test_a_stranger_sees_nothing_and_a_reader_changes_nothing(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    row = _generate(session, world, store, settings).request
    stranger = make_user(session)
    with pytest.raises(AccessDenied) as caught:
        _generate(session, world, store, settings, actor=stranger)
    assert caught.value.status_code == 404
    with pytest.raises(AccessDenied) as caught:
        requests.request_for(session, stranger, row.id)
    assert caught.value.status_code == 404 and world.case.reference not in caught.value.message
    with pytest.raises(AccessDenied):
        requests.list_requests(session, stranger, world.case)
    assert requests.due(session, stranger, within=timedelta(days=400), now=T0) == []
    assert requests.stats(session, stranger) == []
    reader = make_user(session, role=Role.SUPERVISOR)
    cases.add_member(session, world.actor, world.case, reader, Access.READ)
    assert [r.id for r in requests.list_requests(session, reader, world.case)] == [row.id]
    with pytest.raises(AccessDenied) as caught:
        requests.change_status(session, reader, world.case, row.id, "approved", now=T0)
    assert caught.value.status_code == 403


# --- lifecycle --------------------------------------------------------------------------------


def test_the_lifecycle_moves_one_legal_step_at_a_time_each_in_custody(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    row = _generate(session, world, store, settings).request
    with pytest.raises(IllegalTransition):
        requests.change_status(session, world.actor, world.case, row.id, "sent", now=T0)
    with pytest.raises(PermissionDenied):  # a liaison officer does not approve
        requests.change_status(session, world.actor, world.case, row.id, "approved", now=T0)
    boss = _supervisor(session, world)
    t1 = T0 + timedelta(hours=1)
    requests.change_status(session, boss, world.case, row.id, "approved", at=t1, now=t1)
    t2 = T0 + timedelta(hours=2)
    requests.change_status(session, world.actor, world.case, row.id, "sent", at=t2, now=t2)
    assert row.sent_at == t2 and row.fields["deadlines_provisional"] is False
    ends = next(d for d in row.deadlines if d["name"] == "preservation ends")
    # 90 days on the Berlin calendar: the summer-time change keeps the wall-clock hour.
    assert datetime.fromisoformat(ends["due"]) == add_days(t2, 90, BERLIN)
    assert datetime.fromisoformat(ends["due"]) == t2 + timedelta(days=90, hours=-1)
    t3 = T0 + timedelta(days=2)
    requests.change_status(session, world.actor, world.case, row.id, "acknowledged",
                           platform_reference="X-LE-778", at=t3, now=t3)
    with pytest.raises(InvalidInput):  # a refusal says why
        requests.change_status(session, world.actor, world.case, row.id, "refused", now=t3)
    with pytest.raises(InvalidInput):
        requests.change_status(session, world.actor, world.case, row.id, "refused",
                               refusal=["bad-weather"], now=t3)
    requests.change_status(session, world.actor, world.case, row.id, "refused",
                           refusal=["no-longer-held", "not-competent-authority"],
                           answer="Account deleted before receipt.", at=t3, now=t3)
    assert row.platform_reference == "X-LE-778"
    assert row.refusal_reasons == ["no-longer-held", "not-competent-authority"]
    assert row.answered_at == t3 and row.approved_by_id == boss.id
    with pytest.raises(IllegalTransition):
        requests.change_status(session, world.actor, world.case, row.id, "fulfilled", now=t3)
    entries = _entries(session, row)
    assert [e["action"] for e in entries] == [
        "request.generated", "request.approved", "request.sent", "request.acknowledged",
        "request.refused"]
    assert all(e["sha256"] == row.pdf_sha256 for e in entries)
    assert entries[-1]["details"]["refusal"][0] == {
        "code": "no-longer-held", "label": requests.REFUSAL_REASONS["no-longer-held"]}
    described = requests.describe(row, world.case.reference)
    assert described["refusal_reasons"][1]["code"] == "not-competent-authority"


def test_the_drafter_of_a_request_may_not_approve_it(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    boss = _supervisor(session, world)
    row = _generate(session, world, store, settings, actor=boss).request
    with pytest.raises(FourEyesViolation, match=r"you drafted request .*-PRES-1, so you may not"):
        requests.change_status(session, boss, world.case, row.id, "approved", now=T0)
    assert row.status == "draft" and row.approved_by_id is None
    other = _supervisor(session, world)
    requests.change_status(session, other, world.case, row.id, "approved", now=T0)
    assert row.approved_by_id == other.id
    assert [e["action"] for e in _entries(session, row)] == ["request.generated",
                                                             "request.approved"]


def test_a_change_cannot_be_dated_in_the_future(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    row = _generate(session, world, store, settings).request
    boss = _supervisor(session, world)
    with pytest.raises(InvalidInput):
        requests.change_status(session, boss, world.case, row.id, "approved",
                               at=T0 + timedelta(days=1), now=T0)


def test_a_request_not_sent_is_withdrawn_for_a_reason_and_has_no_deadline(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    wrong = _generate(session, world, store, settings).request
    approved = _generate(session, world, store, settings).request
    boss = _supervisor(session, world)
    requests.change_status(session, boss, world.case, approved.id, "approved", now=T0)
    assert wrong.deadlines and wrong.due_at is not None  # provisional, until now
    t1 = T0 + timedelta(hours=1)
    for reason in (None, "", "   "):  # the reason is what the log keeps of why
        with pytest.raises(InvalidInput, match="needs the reason why it is not to be sent"):
            requests.change_status(session, world.actor, world.case, wrong.id, "withdrawn",
                                   reason=reason, now=t1)
    with pytest.raises(InvalidInput, match="only when a request is withdrawn"):
        requests.change_status(session, boss, world.case, wrong.id, "approved",
                               reason="why not", now=t1)
    # Not sent, it has no platform's reference or answer to record (nor has a lapse).
    for step, given in (("approved", {"platform_reference": "LE-1"}),
                        ("withdrawn", {"answer": "Received.", "reason": "wrong account"})):
        with pytest.raises(InvalidInput, match=(
                r"is recorded only with the steps sent, acknowledged, fulfilled, refused$")):
            requests.change_status(session, boss, world.case, wrong.id, step, now=t1,
                                   **given)  # type: ignore[arg-type]
    assert wrong.status == "draft" and wrong.platform_reference is None
    for row in (wrong, approved):
        requests.change_status(session, world.actor, world.case, row.id, "withdrawn",
                               reason=" Drafted for the wrong account. ", at=t1, now=t1)
        assert row.status == "withdrawn" and row.deadlines == [] and row.due_at is None
        assert row.sent_at is None
        entry = _entries(session, row)[-1]
        assert entry["action"] == "request.withdrawn"
        assert entry["details"]["reason"] == "Drafted for the wrong account."
        assert entry["details"]["from"] in ("draft", "approved") and entry["details"][
            "due_at"] is None
        described = requests.describe(row, world.case.reference)
        assert described["withdrawn"] == {"at": t1.isoformat(),
                                          "reason": "Drafted for the wrong account."}
        assert described["deadlines"] == [] and not described["deadlines_provisional"]
        for step in ("approved", "sent", "withdrawn"):  # final
            with pytest.raises(IllegalTransition, match="none \\(final\\)"):
                requests.change_status(session, boss, world.case, row.id, step,
                                       reason="again" if step == "withdrawn" else None, now=t1)
    # Once sent, it is the platform's to answer: it ends as refused or expired, not withdrawn.
    sent = _send(session, world, _generate(session, world, store, settings).request, T0)
    with pytest.raises(IllegalTransition, match="cannot become withdrawn"):
        requests.change_status(session, world.actor, world.case, sent.id, "withdrawn",
                               reason="changed our mind", now=t1)
    assert requests.due(session, world.actor, within=timedelta(days=400), now=t1,
                        case=world.case) != []
    assert {i.request.id for i in requests.due(
        session, world.actor, within=timedelta(days=400), now=t1)} == {sent.id}


def test_a_withdrawn_extension_gives_the_deadline_back_and_may_be_made_again(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    original = _send(session, world, _generate(session, world, store, settings).request, T0)
    at = T0 + timedelta(days=80)
    renewal = requests.extend(session, world.actor, original.id, store=store, now=at).request
    assert requests.extension_refusal(session, original, now=at) is not None
    requests.change_status(session, world.actor, world.case, renewal.id, "withdrawn",
                           reason="Wrong period typed.", at=at, now=at)
    assert requests.extensions_of(session, [original.id], live_only=True) == {}
    assert requests.extension_refusal(session, original, now=at) is None
    again = requests.extend(session, world.actor, original.id, store=store, now=at).request
    assert again.previous_request_id == original.id and again.status == "draft"


# --- deadlines and extensions -----------------------------------------------------------------


def test_due_lists_x_extension_seven_days_before_expiry(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    x = _generate(session, world, store, settings).request
    fb = _generate(session, world, store, settings, platform="facebook").request
    _send(session, world, x, T0)
    _send(session, world, fb, T0)
    # 70 days in, looking 14 days ahead: X wants the extension by day 83; Facebook's 90 days
    # are still beyond the horizon.
    soon = requests.due(session, world.actor, within=timedelta(days=14),
                        now=T0 + timedelta(days=70))
    assert [(i.request.platform, i.deadline) for i in soon] == [
        ("x", "ask for an extension before")]
    assert soon[0].due == add_days(T0, 83, BERLIN)
    assert "extend" in soon[0].action and not soon[0].overdue
    later = requests.due(session, world.actor, within=timedelta(days=14),
                         now=T0 + timedelta(days=85))
    assert [(i.request.platform, i.deadline, i.overdue) for i in later] == [
        ("x", "ask for an extension before", True),
        ("x", "preservation ends", False),  # same time: by reference (X's was made first)
        ("facebook", "preservation ends", False),
    ]


def test_due_of_one_case_and_a_refused_extension_gives_the_deadline_back(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    other = make_request_world(session, store, actor=world.actor)
    mine = _generate(session, world, store, settings).request
    theirs = _generate(session, other, store, settings).request
    _send(session, world, mine, T0)
    _send(session, other, theirs, T0)
    at = T0 + timedelta(days=85)
    both = requests.due(session, world.actor, within=timedelta(days=14), now=at)
    assert {i.request.id for i in both} == {mine.id, theirs.id}
    one = requests.due(session, world.actor, within=timedelta(days=14), now=at, case=world.case)
    assert {i.request.id for i in one} == {mine.id}
    # The extension, once sent, carries the deadline; refused, it hands it back to the original.
    renewal = requests.extend(session, world.actor, mine.id, store=store, now=at).request
    _send(session, world, renewal, at)
    assert mine.id not in {i.request.id for i in requests.due(
        session, world.actor, within=timedelta(days=14), now=at, case=world.case)}
    requests.change_status(session, world.actor, world.case, renewal.id, "refused",
                           refusal=["no-longer-held"], at=at, now=at)
    back = requests.due(session, world.actor, within=timedelta(days=14), now=at, case=world.case)
    assert mine.id in {i.request.id for i in back}
    assert requests.extensions_of(session, [mine.id])[mine.id] == [renewal]
    assert requests.extensions_of(session, [mine.id], live_only=True) == {}


def test_an_extension_is_generated_from_the_original(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    original = _generate(session, world, store, settings).request
    with pytest.raises(Conflict):  # nothing to extend before it is sent
        requests.extend(session, world.actor, original.id, store=store, now=T0)
    _send(session, world, original, T0)
    now = T0 + timedelta(days=80)
    made: Any = requests.extend(session, world.actor, original.id, store=store, now=now)
    renewal = made.request
    assert renewal.kind == "provider-preservation" and renewal.status == "draft"
    assert renewal.previous_request_id == original.id
    assert renewal.reference_number.endswith("-PRES-2")
    assert renewal.identifiers == original.identifiers
    assert original.reference_number in renewal.fields["values"]["basis"]
    with pytest.raises(Conflict):
        requests.extend(session, world.actor, original.id, store=store, now=now)
    # While the renewal is a draft the original still shows, pointing at it.
    items = requests.due(session, world.actor, within=timedelta(days=14), now=now)
    assert items and all(renewal.reference_number in i.action for i in items)
    _send(session, world, renewal, now)
    items = requests.due(session, world.actor, within=timedelta(days=14), now=now)
    assert original.id not in {i.request.id for i in items}
    assert _entries(session, renewal)[0]["details"]["previous"] == original.reference_number


def test_an_epoc_pr_is_extended_with_annex_vi(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    original = _generate(session, world, store, settings, kind="eu-epoc-pr",
                         fields=EPOC_PR_FIELDS).request
    _send(session, world, original, T0)
    made: Any = requests.extend(session, world.actor, original.reference_number, store=store,
                           now=T0 + timedelta(days=50))
    extension = made.request
    assert extension.kind == "eu-epoc-pr-extension"
    assert extension.reference_number.endswith("-EPOCPRX-1")
    values = extension.fields["values"]
    assert values["original_reference"] == original.reference_number
    assert values["original_issued_at"] == T0.strftime("%Y-%m-%d %H:%M:%S UTC")
    names = [d["name"] for d in extension.deadlines]
    assert names == ["send the extension before", "extended preservation ends"]


def _due(row: Any, name: str) -> datetime:  # Any: the JSON column is read freely
    return datetime.fromisoformat(next(d["due"] for d in row.deadlines if d["name"] == name))


def test_a_renewal_runs_on_from_the_end_of_the_current_period(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    first = _generate(session, world, store, settings).request
    _send(session, world, first, T0)  # 2 March 2026, 10:00 in Berlin
    # X keeps 90 days (platform registry): to 31 May, 10:00 in Berlin.
    assert _due(first, "preservation ends") == datetime(2026, 5, 31, 8, 0, tzinfo=UTC)

    # Renewed on 21 May and sent on 26 May: the new 90 days follow on from 31 May, not from
    # the day it was sent (that would end on 24 August).
    renewal: Any = requests.extend(session, world.actor, first.id, store=store,
                                   now=datetime(2026, 5, 21, 9, 0, tzinfo=UTC)).request
    ends = datetime(2026, 8, 29, 8, 0, tzinfo=UTC)
    assert _due(renewal, "preservation ends") == ends  # already so in the draft
    assert "whose preservation period ends 2026-05-31 08:00:00 UTC" in (
        renewal.fields["values"]["basis"])
    _send(session, world, renewal, datetime(2026, 5, 26, 9, 0, tzinfo=UTC))
    assert _due(renewal, "preservation ends") == ends
    # X wants a renewal 7 days before the end of what it renews (registry notes).
    assert _due(renewal, "send the renewal before") == datetime(2026, 5, 24, 8, 0, tzinfo=UTC)
    assert requests.period_end(session, renewal) == ends
    # X states no extension length: the first period's is assumed, and the request says so.
    assert any("no extension length for X" in w for w in renewal.fields["warnings"])

    # 18 U.S.C. 2703(f)(2) extends the 90 days once: the renewal is not renewed again, and
    # what is due says so instead of proposing it.
    before_end = datetime(2026, 8, 20, 9, 0, tzinfo=UTC)
    statute = ("18 U.S.C. 2703(f)(2) allows one renewal: records are retained for 90 days, "
               '"which shall be extended for an additional 90-day period upon a renewed '
               'request"')
    with pytest.raises(Conflict) as again:
        requests.extend(session, world.actor, renewal.id, store=store, now=before_end)
    assert str(again.value) == (
        f"request {renewal.reference_number} cannot be renewed again: {statute}; make a new "
        "preservation request or serve legal process")
    actions = {i.action for i in requests.due(session, world.actor, within=timedelta(days=14),
                                              now=before_end) if i.request.id == renewal.id}
    assert actions == {f"follow up with the platform; no extension: {again.value}"}
    # A renewal that ran and lapsed counts too: the original is not renewed a second time.
    other = _generate(session, world, store, settings).request
    _send(session, world, other, T0)
    lapsed = requests.extend(session, world.actor, other.id, store=store,
                             now=datetime(2026, 5, 21, 9, 0, tzinfo=UTC)).request
    _send(session, world, lapsed, datetime(2026, 5, 22, 9, 0, tzinfo=UTC))
    gone = datetime(2026, 5, 23, 9, 0, tzinfo=UTC)
    requests.change_status(session, world.actor, world.case, lapsed.id, "expired", at=gone,
                           now=gone)
    with pytest.raises(Conflict, match=r"cannot be renewed again: 18 U\.S\.C\. 2703\(f\)\(2\)"):
        requests.extend(session, world.actor, other.id, store=store, now=gone)


def test_a_renewal_sent_after_the_preservation_ended_is_recorded_with_the_gap(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    first = _generate(session, world, store, settings).request
    _send(session, world, first, T0)  # X: 90 days, to 31 May 08:00 UTC
    renewal: Any = requests.extend(session, world.actor, first.id, store=store,
                                   now=datetime(2026, 5, 21, 9, 0, tzinfo=UTC)).request
    # Generated in time, but only sent on 3 June: recorded as sent, and as late.
    late = datetime(2026, 6, 3, 9, 0, tzinfo=UTC)
    _send(session, world, renewal, late)
    assert renewal.status == "sent" and renewal.sent_at == late
    gap = ("sent 2026-06-03 09:00 UTC, after the preservation it extends ended on "
           "2026-05-31 08:00 UTC: the platform was not bound to keep the data from "
           "2026-05-31 08:00 UTC until it was sent")
    entry = _entries(session, renewal)[-1]
    assert entry["action"] == "request.sent"
    assert entry["details"]["sent_after_preservation_ended"] == "2026-05-31T08:00:00+00:00"
    assert entry["details"]["note"] == gap
    assert requests.describe(renewal, world.case.reference)["sent_late"] == {
        "preservation_ended_at": "2026-05-31T08:00:00+00:00",
        "sent_at": "2026-06-03T09:00:00+00:00", "extends": True, "note": gap}
    # What is due says so, instead of a clean continuation.
    items = [i for i in requests.due(session, world.actor, within=timedelta(days=120),
                                     now=late) if i.request.id == renewal.id]
    assert items and all(i.gap == gap for i in items)
    assert all(i.to_dict()["gap"] == gap for i in items)
    # Sent in time, nothing of the kind is said.
    second = _generate(session, world, store, settings).request
    _send(session, world, second, T0)
    in_time: Any = requests.extend(session, world.actor, second.id, store=store,
                                   now=datetime(2026, 5, 21, 9, 0, tzinfo=UTC)).request
    _send(session, world, in_time, datetime(2026, 5, 31, 7, 59, tzinfo=UTC))
    assert requests.describe(in_time, world.case.reference)["sent_late"] is None
    assert "note" not in _entries(session, in_time)[-1]["details"]
    assert all(i.gap is None for i in requests.due(
        session, world.actor, within=timedelta(days=120), now=late)
        if i.request.id == in_time.id)


def test_an_ended_or_expired_preservation_is_not_extended(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    lapsed = _generate(session, world, store, settings).request
    _send(session, world, lapsed, T0)
    # Its 90 days ended on 31 May at 08:00 UTC: from that moment on there is nothing to extend.
    at_the_end = datetime(2026, 5, 31, 8, 0, tzinfo=UTC)
    with pytest.raises(PreservationEnded) as ended:
        requests.extend(session, world.actor, lapsed.id, store=store, now=at_the_end)
    assert str(ended.value) == (
        f"the preservation under request {lapsed.reference_number} ended 2026-05-31 08:00 UTC: "
        "an ended preservation cannot be extended; make a new preservation request")
    requests.change_status(session, world.actor, world.case, lapsed.id, "expired",
                           at=at_the_end, now=at_the_end)
    with pytest.raises(PreservationEnded, match="is expired: an ended preservation cannot be "):
        requests.extend(session, world.actor, lapsed.id, store=store, now=at_the_end)
    # A minute before its end it still could have been.
    running = _generate(session, world, store, settings).request
    _send(session, world, running, T0)
    made = requests.extend(session, world.actor, running.id, store=store,
                           now=at_the_end - timedelta(minutes=1))
    assert made.request.previous_request_id == running.id
    assert session.scalars(select(LegalRequest).where(
        LegalRequest.previous_request_id == lapsed.id)).all() == []


def test_a_platform_extends_as_often_as_the_registry_says(
        session: Session, store: FolderStore, settings: Settings) -> None:
    from evidence import targets
    from tests.factories import make_capture

    world = make_request_world(session, store)
    video, _ = targets.flag_target(session, world.actor, world.case, reason="crossing advert",
                                   url="https://www.tiktok.com/@seller/video/7234567890")
    make_capture(session, world.case, video, store)
    first = _generate(session, world, store, settings, platform="tiktok").request
    _send(session, world, first, T0)
    # TikTok: 90 days, extendable once by 90 days (platform registry).
    assert _due(first, "preservation ends") == datetime(2026, 5, 31, 8, 0, tzinfo=UTC)
    renewal: Any = requests.extend(session, world.actor, first.id, store=store,
                                   now=datetime(2026, 5, 1, 9, 0, tzinfo=UTC)).request
    _send(session, world, renewal, datetime(2026, 5, 2, 9, 0, tzinfo=UTC))
    assert _due(renewal, "preservation ends") == datetime(2026, 8, 29, 8, 0, tzinfo=UTC)
    assert renewal.fields["warnings"] == []  # the extension's length is the registry's
    # The statute and TikTok's guidelines agree: one renewal; the refusal names both.
    why = (f"request {renewal.reference_number} cannot be renewed again: 18 U.S.C. 2703(f)(2) "
           "allows one renewal: records are retained for 90 days, \"which shall be extended for "
           "an additional 90-day period upon a renewed request\"; TikTok extends a preservation "
           "at most 1 time(s) (platform registry); make a new preservation request or serve "
           "legal process")
    with pytest.raises(Conflict) as refused:
        requests.extend(session, world.actor, renewal.id, store=store,
                        now=datetime(2026, 8, 1, 9, 0, tzinfo=UTC))
    assert str(refused.value) == why
    # What is due says so instead of proposing the extension.
    items = [(i.deadline, i.due, i.action) for i in requests.due(
        session, world.actor, within=timedelta(days=30),
        now=datetime(2026, 8, 1, 9, 0, tzinfo=UTC)) if i.request.id == renewal.id]
    assert items == [("preservation ends", datetime(2026, 8, 29, 8, 0, tzinfo=UTC),
                      f"follow up with the platform; no extension: {why}")]


def test_an_epoc_pr_is_extended_once_by_30_days_from_the_end_of_its_60(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    original = _generate(session, world, store, settings, kind="eu-epoc-pr",
                         fields=EPOC_PR_FIELDS).request
    _send(session, world, original, T0)
    assert requests.period_end(session, original) == datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    first = requests.extend(session, world.actor, original.id, store=store,
                            now=datetime(2026, 4, 20, 9, 0, tzinfo=UTC)).request
    # Refused by the provider (say, sent incomplete), it extended nothing: another may be made
    # while the 60 days run.
    _send(session, world, first, datetime(2026, 4, 21, 9, 0, tzinfo=UTC))
    at = datetime(2026, 4, 22, 9, 0, tzinfo=UTC)
    requests.change_status(session, world.actor, world.case, first.id, "refused",
                           refusal=["incomplete"], at=at, now=at)
    extension: Any = requests.extend(session, world.actor, original.id, store=store,
                                     now=at).request
    _send(session, world, extension, datetime(2026, 4, 28, 9, 0, tzinfo=UTC))
    # 30 days on from the end of the 60, however late in them it was sent.
    assert _due(extension, "extended preservation ends") == datetime(2026, 5, 31, 8, 0,
                                                                     tzinfo=UTC)
    assert extension.fields["values"]["new_end"] == "2026-05-31 08:00:00 UTC"
    once = ("Regulation (EU) 2023/1543, Art. 11(1) allows one extension: the obligation to "
            "preserve \"shall cease after 60 days\", and \"during that 60-day period\" the "
            "issuing authority may extend it \"by an additional 30-day period\"")
    with pytest.raises(Conflict) as again:
        requests.extend(session, world.actor, original.id, store=store,
                        now=datetime(2026, 4, 29, 9, 0, tzinfo=UTC))
    assert str(again.value) == (f"request {original.reference_number} is already extended by "
                                f"{extension.reference_number} (sent): {once}")
    with pytest.raises(Conflict) as onwards:
        requests.extend(session, world.actor, extension.id, store=store,
                        now=datetime(2026, 5, 20, 9, 0, tzinfo=UTC))
    assert str(onwards.value) == (
        f"request {extension.reference_number} cannot be extended again: {once}; make a new "
        "preservation request or serve legal process")
    # What is due stops proposing one for the extension as it nears its end.
    actions = {i.action for i in requests.due(
        session, world.actor, within=timedelta(days=14),
        now=datetime(2026, 5, 20, 9, 0, tzinfo=UTC)) if i.request.id == extension.id}
    assert actions == {"follow up with the platform"}
    # An extension that ran and lapsed was the one there is, as much as a running one.
    requests.change_status(session, world.actor, world.case, extension.id, "expired",
                           at=datetime(2026, 4, 29, 9, 0, tzinfo=UTC),
                           now=datetime(2026, 4, 29, 9, 0, tzinfo=UTC))
    with pytest.raises(Conflict) as lapsed:
        requests.extend(session, world.actor, original.id, store=store,
                        now=datetime(2026, 4, 29, 10, 0, tzinfo=UTC))
    assert str(lapsed.value) == (
        f"request {original.reference_number} cannot be extended again: {once}; make a new "
        "preservation request or serve legal process")


def test_an_epoc_pr_extension_sent_after_the_60_days_extends_nothing(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    original = _generate(session, world, store, settings, kind="eu-epoc-pr",
                         fields=EPOC_PR_FIELDS).request
    _send(session, world, original, T0)  # the 60 days end on 1 May, 08:00 UTC
    extension: Any = requests.extend(session, world.actor, original.id, store=store,
                                     now=datetime(2026, 4, 28, 9, 0, tzinfo=UTC)).request
    # Generated in time, sent on 4 May: recorded as sent, and as too late to extend anything.
    late = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    _send(session, world, extension, late)
    ended = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    gap = ("sent 2026-05-04 09:00 UTC, after the preservation it extends ended on "
           "2026-05-01 08:00 UTC: Regulation (EU) 2023/1543, Art. 11(1) lets the issuing "
           "authority extend the preservation only \"during that 60-day period\": the 30-day "
           "extension could not revive a preservation that had already ended; the platform has "
           "not been bound to keep the data since 2026-05-01 08:00 UTC")
    assert requests.describe(extension, world.case.reference)["sent_late"] == {
        "preservation_ended_at": "2026-05-01T08:00:00+00:00",
        "sent_at": "2026-05-04T09:00:00+00:00", "extends": False, "note": gap}
    assert _entries(session, extension)[-1]["details"]["note"] == gap
    # No date after the 60 days is shown: not 31 May, which would read as data kept till then.
    assert requests.period_end(session, extension) == ended
    assert extension.due_at == ended
    assert [(d["name"], d["due"]) for d in extension.deadlines] == [
        ("send the extension before", "2026-05-01T08:00:00+00:00"),
        ("preservation ended before the extension was sent", "2026-05-01T08:00:00+00:00")]
    assert "could not revive the preservation" in extension.deadlines[1]["note"]
    # What is due lists that end, overdue though it fell before the sending, and says so.
    items = [i for i in requests.due(session, world.actor, within=timedelta(days=14), now=late)
             if i.case_reference == world.case.reference]
    assert [(i.request.id, i.deadline, i.due, i.overdue, i.gap) for i in items] == [
        (extension.id, "preservation ended before the extension was sent", ended, True, gap)]
    assert items[0].action == (f"not extended: make a new preservation request at once, then "
                               f"record this one: evidence request status {extension.id} "
                               "expired")
    # Sent a minute before the end, it extends by 30 days, as before.
    other = _generate(session, world, store, settings, kind="eu-epoc-pr",
                      fields=EPOC_PR_FIELDS).request
    _send(session, world, other, T0)
    in_time: Any = requests.extend(session, world.actor, other.id, store=store,
                                   now=datetime(2026, 4, 28, 9, 0, tzinfo=UTC)).request
    _send(session, world, in_time, ended - timedelta(minutes=1))
    assert requests.describe(in_time, world.case.reference)["sent_late"] is None
    assert requests.period_end(session, in_time) == datetime(2026, 5, 31, 8, 0, tzinfo=UTC)


def test_parse_within() -> None:
    assert requests.parse_within("14d") == timedelta(days=14)
    assert requests.parse_within("36h") == timedelta(hours=36)
    assert requests.parse_within("2w") == timedelta(days=14)
    assert requests.parse_within("3") == timedelta(days=3)
    with pytest.raises(InvalidInput):
        requests.parse_within("soon")


# --- statistics -------------------------------------------------------------------------------


def test_stats_give_counts_and_median_response_per_platform(
        session: Session, store: FolderStore, settings: Settings) -> None:
    world = make_request_world(session, store)
    for hours in (10, 40, 20):
        row = _generate(session, world, store, settings, platform="facebook").request
        _send(session, world, row, T0)
        answered = T0 + timedelta(hours=hours)
        requests.change_status(session, world.actor, world.case, row.id, "fulfilled",
                               at=answered, now=answered)
    _generate(session, world, store, settings)  # an X draft: counted, no response time
    found = {s.platform: s for s in requests.stats(session, world.actor)}
    assert found["facebook"].total == 3 and found["facebook"].by_status == {"fulfilled": 3}
    assert found["facebook"].median_response_hours == 20
    assert found["facebook"].median_fulfilment_hours == 20
    assert found["x"].by_status == {"draft": 1} and found["x"].median_response_hours is None


@pytest.mark.parametrize(("text", "hours"), [("14d", 14 * 24), (" 36h ", 36), ("2w", 14 * 24),
                                             ("7", 7 * 24), ("3660d", 3660 * 24)])
def test_a_period_to_look_ahead_is_hours_days_or_weeks(text: str, hours: int) -> None:
    assert requests.parse_within(text) == timedelta(hours=hours)


@pytest.mark.parametrize(("text", "message"), [
    ("soon", "'soon' is not a period such as 14d"),
    ("3661d", "'3661d' is longer than ten years"),
    ("99999999d", "'99999999d' is longer than ten years"),
    ("9" * 40 + "w", "is longer than ten years"),
])
def test_a_period_that_is_none_or_too_long_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as refused:
        requests.parse_within(text)
    assert refused.value.status_code == 422


def test_a_problem_names_an_account_target_by_its_handle(
        session: Session, store: FolderStore, settings: Settings) -> None:
    """It was named by its profile URL (https://x.com/i/user/1234567890), not as the liaison
    officer knows it."""
    world = make_request_world(session, store)
    with pytest.raises(RequestIncomplete) as caught:
        _generate(session, world, store, settings, platform="facebook",
                  target_ids=[world.x_account.id])
    assert (f"target {world.x_account.id} (@{ARABIC_HANDLE} on X (formerly Twitter)) is not on "
            "Facebook") in "\n".join(caught.value.problems)


def test_an_account_flagged_by_its_handle_is_named_by_it_and_its_profile_without_a_user_id(
        session: Session, store: FolderStore, settings: Settings, tmp_path: Path) -> None:
    world = make_request_world(session, store)
    target, _ = accounts.flag_account(session, world.actor, world.case, platform="instagram",
                                      profile_url="https://www.instagram.com/fast.trips",
                                      reason="advertises crossings")
    capture = make_capture(session, world.case, target, store)
    made = _generate(session, world, store, settings, platform="instagram")
    assert [(i["kind"], i["value"], i["source_url"]) for i in made.request.identifiers] == [
        ("username", "fast.trips", "https://www.instagram.com/fast.trips")]
    assert made.request.identifiers[0]["capture_id"] == str(capture.id)
    path = tmp_path / "request.pdf"
    path.write_bytes(made.pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "fast.trips" in text and "https://www.instagram.com/fast.trips" in "".join(
        text.split())
    assert "user_id" not in text and "None" not in text
