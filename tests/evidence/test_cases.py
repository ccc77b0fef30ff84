"""Cases, members and targets through their services: deny by default, managers manage,
closed cases refuse new evidence, and flagging a target queues its capture in one transaction."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import cases, custody, targets
from evidence.errors import (
    AccessDenied,
    CaseClosed,
    Conflict,
    DuplicateReference,
    InvalidInput,
)
from evidence.models import Access, CaptureJob, CustodyEntry, JobState, TargetState
from tests.factories import make_case, make_user


def _actions(session: Session, case_id: object) -> list[str]:
    return list(session.scalars(
        select(CustodyEntry.action).where(CustodyEntry.case_id == case_id)
        .order_by(CustodyEntry.seq)
    ))


def test_creator_manages_and_others_cannot_see_the_case(session: Session) -> None:
    owner = make_user(session, name="owner", unit="Border Unit")
    stranger = make_user(session, name="stranger")
    case = make_case(session, owner, reference="OP-9", jurisdiction="de")
    assert case.jurisdiction == "DE" and case.owning_unit == "Border Unit"
    assert [c.reference for c in cases.list_cases(session, owner)] == ["OP-9"]
    assert cases.list_cases(session, stranger) == []
    with pytest.raises(AccessDenied) as hidden:
        cases.get_case(session, stranger, "OP-9")
    assert hidden.value.status_code == 404
    assert str(hidden.value) == str(AccessDenied("no case 'OP-9'"))
    with pytest.raises(AccessDenied, match="no case 'NOPE'"):
        cases.get_case(session, owner, "NOPE")


def test_bad_case_input_is_refused_clearly(session: Session) -> None:
    owner = make_user(session)
    make_case(session, owner, reference="DUP-1")
    with pytest.raises(DuplicateReference, match="already exists"):
        make_case(session, owner, reference="DUP-1")
    with pytest.raises(DuplicateReference, match=r"'DUP-1' already exists \('dup-1' differs only"):
        make_case(session, owner, reference="dup-1")
    with pytest.raises(InvalidInput, match="one line"):
        make_case(session, owner, title="Crossings\nOP-2 | forged row")
    with pytest.raises(InvalidInput, match="at most 500 characters, not 501"):
        make_case(session, owner, title="t" * 501)
    with pytest.raises(InvalidInput, match="reference"):
        make_case(session, owner, reference="../etc")
    with pytest.raises(InvalidInput, match="title"):
        make_case(session, owner, title="   ")
    with pytest.raises(InvalidInput, match="ISO 3166"):
        make_case(session, owner, jurisdiction="Germany")


def test_every_bad_value_of_a_case_is_refused_at_once_each_by_its_field(
        session: Session) -> None:
    owner = make_user(session)
    make_case(session, owner, reference="DUP-1")
    with pytest.raises(InvalidInput) as opening:
        cases.create_case(session, owner, reference="dup-1", title=" ", jurisdiction="EL",
                          max_penalty_years="life")
    assert opening.value.fields == {
        "reference": "case 'DUP-1' already exists ('dup-1' differs only in capital letters)",
        "title": "a case needs a title",
        "max_penalty_years": "maximum penalty 'life' is not a number of years",
        "jurisdiction": "jurisdiction 'EL' is written 'GR' in ISO 3166-1"}
    assert opening.value.message == "; ".join(opening.value.fields.values())
    assert [d["loc"] for d in opening.value.details or []] == [
        ["body", "reference"], ["body", "title"], ["body", "max_penalty_years"],
        ["body", "jurisdiction"]]
    case = make_case(session, owner, reference="OP-7")
    with pytest.raises(InvalidInput) as editing:
        cases.update_case(session, owner, case, {"title": None, "jurisdiction": "Germany",
                                                 "offence": "Smuggling"})
    assert list(editing.value.fields) == ["title", "jurisdiction"]
    assert case.offence is None  # nothing changed
    assert [c.reference for c in cases.list_cases(session, owner)] == ["DUP-1", "OP-7"]


@pytest.mark.parametrize(("given", "message"), [
    ("ZZ", "'ZZ' is not an ISO 3166-1 country code"),
    ("QQ-NY", "'QQ' is not an ISO 3166-1 country code"),
    ("uk", "'UK' is written 'GB'"),
    ("EL", "'EL' is written 'GR'"),
])
def test_a_jurisdiction_is_a_country_that_exists(
        session: Session, given: str, message: str) -> None:
    owner = make_user(session)
    with pytest.raises(InvalidInput, match=message) as refused:
        make_case(session, owner, jurisdiction=given)
    assert refused.value.status_code == 422
    case = make_case(session, owner, jurisdiction=" us-ca ")
    assert case.jurisdiction == "US-CA"
    with pytest.raises(InvalidInput, match=message):
        cases.update_case(session, owner, case, {"jurisdiction": given})
    assert case.jurisdiction == "US-CA"
    assert make_case(session, owner, jurisdiction="xk").jurisdiction == "XK"


def test_blank_details_are_no_details_and_blank_clears_the_jurisdiction(session: Session) -> None:
    owner = make_user(session)
    case = make_case(session, owner, offence="   ", jurisdiction=" ", handling_code="")
    assert (case.offence, case.jurisdiction, case.handling_code) == (None, None, None)
    cases.update_case(session, owner, case, {"jurisdiction": "gr", "offence": "Smuggling"})
    cases.update_case(session, owner, case, {"jurisdiction": "", "offence": "  "})
    assert (case.offence, case.jurisdiction) == (None, None)
    last = _entries(session, case.id, "case.updated")[-1]["details"]["changes"]  # type: ignore[index]
    assert last == {"jurisdiction": {"from": "GR", "to": None},
                    "offence": {"from": "Smuggling", "to": None}}


def test_a_closed_case_is_not_changed_until_reopened(session: Session) -> None:
    owner = make_user(session)
    case = make_case(session, owner, title="Boats")
    cases.close_case(session, owner, case, reason="trial over")
    with pytest.raises(CaseClosed) as closed:
        cases.update_case(session, owner, case, {"title": "Other boats"})
    assert closed.value.status_code == 409 and case.title == "Boats"
    assert _entries(session, case.id, "case.updated") == []
    cases.reopen_case(session, owner, case, reason="new lead")
    cases.update_case(session, owner, case, {"title": "Other boats"})
    assert case.title == "Other boats"


def test_members_and_their_access_levels(session: Session) -> None:
    owner = make_user(session)
    reader = make_user(session)
    case = make_case(session, owner)
    cases.add_member(session, owner, case, reader, Access.READ)
    assert cases.get_case(session, reader, case.reference).id == case.id
    with pytest.raises(AccessDenied) as denied:
        cases.get_case(session, reader, case.reference, need=Access.WRITE)
    assert denied.value.status_code == 403  # they can see it, so say why, not "not found"
    with pytest.raises(AccessDenied):
        cases.add_member(session, reader, case, make_user(session), Access.READ)
    cases.add_member(session, owner, case, reader, Access.WRITE)
    with pytest.raises(Conflict, match="last manager"):
        cases.remove_member(session, owner, case, owner)
    with pytest.raises(Conflict, match="last manager"):
        cases.add_member(session, owner, case, owner, Access.WRITE)  # nor demoted
    assert cases.access_of(session, owner, case) == Access.MANAGE
    cases.remove_member(session, owner, case, reader)
    with pytest.raises(AccessDenied):
        cases.get_case(session, reader, case.reference)
    assert _actions(session, case.id) == [
        "case.created", "case.member_added", "case.member_added", "case.member_changed",
        "case.member_removed",
    ]


def test_closed_case_refuses_new_targets_until_reopened(session: Session) -> None:
    owner = make_user(session)
    case = make_case(session, owner)
    cases.close_case(session, owner, case, reason="trial over")
    with pytest.raises(CaseClosed) as closed:
        targets.flag_target(session, owner, case, url="https://example.org/ad", reason="ad")
    assert closed.value.status_code == 409
    with pytest.raises(Conflict, match="already closed"):
        cases.close_case(session, owner, case)
    cases.reopen_case(session, owner, case)
    targets.flag_target(session, owner, case, url="https://example.org/ad", reason="ad")
    assert _actions(session, case.id)[-4:] == [
        "case.closed", "case.reopened", "target.flagged", "capture.queued"]


def test_flagging_a_target_queues_its_capture(session: Session) -> None:
    owner = make_user(session)
    case = make_case(session, owner)
    target, job = targets.flag_target(
        session, owner, case, url=" https://www.facebook.com/some.page/posts/1 ",
        reason="advertises crossings", watch_interval_seconds=3600,
    )
    assert target.url == "https://www.facebook.com/some.page/posts/1"
    assert target.state == TargetState.ACTIVE
    queued = session.scalars(select(CaptureJob).where(CaptureJob.target_id == target.id)).all()
    assert [j.id for j in queued] == [job.id] and job.state == JobState.QUEUED
    entries = [custody.describe(e) for e in session.scalars(
        select(CustodyEntry).where(CustodyEntry.case_id == case.id).order_by(CustodyEntry.seq))]
    flagged = entries[-2]
    assert flagged["action"] == "target.flagged"
    assert flagged["details"]["reason"] == "advertises crossings"
    assert entries[-1]["object"] == {"type": "capture_job", "id": str(job.id)}


@pytest.mark.parametrize("url", ["ftp://example.org/x", "javascript:alert(1)", "example.org",
                                 "http://"])
def test_only_web_urls_can_be_flagged(session: Session, url: str) -> None:
    owner = make_user(session)
    case = make_case(session, owner)
    with pytest.raises(InvalidInput, match="not an http or https URL"):
        targets.flag_target(session, owner, case, url=url, reason="r")


@pytest.mark.parametrize("url", ["http://user:s3cretpass@example.org/ad#x",
                                 "https://agent@example.org/", "http://:pw@example.org/"])
def test_a_url_with_a_password_in_it_is_refused_without_keeping_the_password(
        session: Session, url: str) -> None:
    owner = make_user(session)
    case = make_case(session, owner)
    with pytest.raises(InvalidInput, match="carries a user name or password") as refused:
        targets.flag_target(session, owner, case, url=url, reason="r")
    assert "s3cretpass" not in refused.value.message and "pw@" not in refused.value.message
    assert "example.org" in refused.value.message


def test_a_url_is_one_target_per_case(session: Session) -> None:
    owner = make_user(session)
    case, other = make_case(session, owner), make_case(session, owner)
    target, _job = targets.flag(session, owner, case, url="https://example.org/ad", reason="r")
    with pytest.raises(Conflict, match=f"already flagged in case {case.reference}") as again:
        targets.flag(session, owner, case, url=" https://example.org/ad ", reason="r2")
    assert str(target.id) in again.value.message and "capture it again" in again.value.message
    elsewhere, _job = targets.flag(session, owner, other, url="https://example.org/ad",
                                   reason="r")
    assert elsewhere.id != target.id


def test_reader_cannot_flag(session: Session) -> None:
    owner = make_user(session)
    reader = make_user(session)
    case = make_case(session, owner)
    cases.add_member(session, owner, case, reader, Access.READ)
    with pytest.raises(AccessDenied):
        targets.flag_target(session, reader, case, url="https://example.org/", reason="r")
    with pytest.raises(InvalidInput, match="at least 60 seconds"):
        targets.flag_target(session, owner, case, url="https://example.org/", reason="r",
                            watch_interval_seconds=5)


def _entries(session: Session, case_id: object, action: str) -> list[dict[str, object]]:
    return [custody.describe(e) for e in session.scalars(
        select(CustodyEntry).where(CustodyEntry.case_id == case_id,
                                   CustodyEntry.action == action).order_by(CustodyEntry.seq))]


FACTS = "Adverts offer crossings of the Evros river for payment.\nThe same phone number recurs."


def test_a_case_holds_what_legal_requests_say_of_its_offence(session: Session) -> None:
    owner = make_user(session)
    case = make_case(session, owner, offence="Migrant smuggling",
                     offence_provision="  § 96 AufenthG ", max_penalty_years=10, facts=FACTS)
    assert (case.offence_provision, case.max_penalty_years, case.facts) == (
        "§ 96 AufenthG", 10.0, FACTS)
    session.expire_all()
    assert cases.get_case(session, owner, case.reference).max_penalty_years == 10.0
    created = _entries(session, case.id, "case.created")[0]["details"]
    assert isinstance(created, dict)
    assert created["offence_provision"] == "§ 96 AufenthG"
    assert created["max_penalty_years"] == "10"  # custody entries hold no floats
    # The facts may name people: the log keeps their hash, as for notes, never the text.
    assert created["facts_sha256"] == hashlib.sha256(FACTS.encode()).hexdigest()
    assert "Evros" not in str(created)
    bare = make_case(session, owner, facts="   ", offence_provision="")
    assert (bare.facts, bare.offence_provision, bare.max_penalty_years) == (None, None, None)


def test_an_update_changes_only_what_is_named_in_one_custody_entry(session: Session) -> None:
    owner = make_user(session)
    case = make_case(session, owner, title="Boats", offence="Smuggling", max_penalty_years=5)
    cases.update_case(session, owner, case, {
        "facts": FACTS, "offence_provision": "§ 96 AufenthG", "max_penalty_years": "7.5",
        "title": "Boats", "jurisdiction": "de"})
    assert (case.facts, case.offence_provision, case.max_penalty_years) == (
        FACTS, "§ 96 AufenthG", 7.5)
    assert (case.title, case.offence, case.jurisdiction) == ("Boats", "Smuggling", "DE")
    updates = _entries(session, case.id, "case.updated")
    assert len(updates) == 1
    changes = updates[0]["details"]["changes"]  # type: ignore[index]
    assert set(changes) == {"facts", "offence_provision", "max_penalty_years", "jurisdiction"}
    assert changes["facts"] == {"from_sha256": None,
                                "to_sha256": hashlib.sha256(FACTS.encode()).hexdigest()}
    assert changes["max_penalty_years"] == {"from": "5", "to": "7.5"}
    assert changes["offence_provision"] == {"from": None, "to": "§ 96 AufenthG"}
    # Nothing changed: no entry. Clearing is a change like any other.
    cases.update_case(session, owner, case, {"facts": FACTS, "max_penalty_years": 7.5})
    assert len(_entries(session, case.id, "case.updated")) == 1
    cases.update_case(session, owner, case, {"facts": "", "max_penalty_years": None})
    assert case.facts is None and case.max_penalty_years is None
    last = _entries(session, case.id, "case.updated")[-1]["details"]["changes"]  # type: ignore[index]
    assert last["max_penalty_years"] == {"from": "7.5", "to": None}
    assert last["facts"]["to_sha256"] is None


@pytest.mark.parametrize(("years", "message"), [
    (0, "more than 0"), (-3, "more than 0"), (100.5, "at most 100"), (float("inf"), "at most 100"),
    (float("nan"), "at most 100"), ("life", "not a number of years"), (True, "not a number"),
])
def test_a_maximum_penalty_must_be_a_sane_number_of_years(
        session: Session, years: object, message: str) -> None:
    owner = make_user(session)
    with pytest.raises(InvalidInput, match=message) as refused:
        make_case(session, owner, max_penalty_years=years)
    assert refused.value.status_code == 422
    case = make_case(session, owner, max_penalty_years=100)  # the bound itself is allowed
    with pytest.raises(InvalidInput, match=message):
        cases.update_case(session, owner, case, {"max_penalty_years": years})  # type: ignore[dict-item]
    assert case.max_penalty_years == 100.0


def test_only_managers_update_a_case_and_strangers_do_not_see_it(session: Session) -> None:
    owner = make_user(session)
    writer = make_user(session)
    stranger = make_user(session)
    case = make_case(session, owner)
    cases.add_member(session, owner, case, writer, Access.WRITE)
    with pytest.raises(AccessDenied) as refused:
        cases.update_case(session, writer, case, {"facts": "x"})
    assert refused.value.status_code == 403
    with pytest.raises(AccessDenied) as hidden:
        cases.update_case(session, stranger, case, {"facts": "x"})
    assert hidden.value.status_code == 404
    with pytest.raises(InvalidInput, match="cannot change status"):
        cases.update_case(session, owner, case, {"status": "closed"})
    with pytest.raises(InvalidInput, match="title"):
        cases.update_case(session, owner, case, {"title": "  "})
    with pytest.raises(InvalidInput, match="facts must be text"):
        cases.update_case(session, owner, case, {"facts": 3.0})
    assert case.facts is None and _entries(session, case.id, "case.updated") == []
