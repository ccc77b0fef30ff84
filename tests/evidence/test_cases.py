"""Cases, members and targets through their services: deny by default, managers manage,
closed cases refuse new evidence, and flagging a target queues its capture in one transaction."""

from __future__ import annotations

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
    with pytest.raises(InvalidInput, match="reference"):
        make_case(session, owner, reference="../etc")
    with pytest.raises(InvalidInput, match="title"):
        make_case(session, owner, title="   ")
    with pytest.raises(InvalidInput, match="ISO 3166"):
        make_case(session, owner, jurisdiction="Germany")


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
