"""Changing and stopping a watch (evidence/targets.py): bounds as `flag` has them, custody
entries with old and new interval and the reason, queued re-captures of a stopped watch
cancelled (a running one and one asked for by hand left alone), write access, and what closing
and reopening a case do to its watches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import cases, custody, jobs, targets
from evidence.errors import AccessDenied, CaseClosed, Conflict, InvalidInput
from evidence.models import Access, CaptureJob, Case, CustodyEntry, JobState, Target, User, utcnow
from tests.factories import make_case, make_user

URL = "http://127.0.0.1:1/advert"


def _watched(session: Session, every: int = 3600) -> tuple[User, Case, Target, CaptureJob]:
    actor = make_user(session)
    case = make_case(session, actor)
    target, first = targets.flag(session, actor, case, reason="advert", url=URL,
                                 watch_interval_seconds=every)
    return actor, case, target, first


def _entries(session: Session, action: str) -> list[dict[str, Any]]:
    return [custody.describe(e) for e in session.scalars(
        select(CustodyEntry).where(CustodyEntry.action == action).order_by(CustodyEntry.seq))]


def _due(session: Session, hours: float) -> list[CaptureJob]:
    return targets.schedule_due_watches(session, now=utcnow() + timedelta(hours=hours))


def _finish(session: Session, job: CaptureJob) -> None:
    claimed = jobs.claim_next(session, worker="w", job_id=job.id)
    assert claimed is not None
    jobs.complete(session, job_id=job.id, worker="w")


def test_a_new_interval_is_recorded_and_the_schedule_follows_it(session: Session) -> None:
    actor, case, target, first = _watched(session)
    _finish(session, first)
    assert targets.change_watch(session, actor, case, target, every_seconds=12 * 3600,
                                reason="  changes twice a day at most ") == []
    assert target.watch_interval_seconds == 12 * 3600
    [entry] = _entries(session, "target.watch_changed")
    assert entry["details"] == {"url": URL, "old_interval_seconds": 3600,
                                "new_interval_seconds": 43200,
                                "reason": "changes twice a day at most"}
    assert entry["actor"]["name"] == actor.name and entry["object"]["id"] == str(target.id)
    assert _due(session, 2) == []  # an hour's interval would have queued one by now
    assert len(_due(session, 13)) == 1
    assert [(w.action, w.old_interval_seconds, w.new_interval_seconds)
            for w in targets.watch_history(session, case, target)] == [
        ("started", None, 3600), ("changed", 3600, 43200)]


def test_the_bounds_are_those_of_flag(session: Session) -> None:
    actor, case, target, _first = _watched(session)
    for seconds, said in ((59, "at least 60 seconds"), (367 * 86400, "at most a year")):
        with pytest.raises(InvalidInput, match=said):
            targets.change_watch(session, actor, case, target, every_seconds=seconds,
                                 reason="r")
        with pytest.raises(InvalidInput, match=said):
            targets.flag(session, actor, case, reason="r", url=URL + "/2",
                         watch_interval_seconds=seconds)
    assert targets.parse_interval("12h") == 43200
    with pytest.raises(InvalidInput, match="at least 60 seconds"):
        targets.parse_interval("30s")
    with pytest.raises(InvalidInput, match="must look like"):
        targets.parse_interval("twice a day")
    with pytest.raises(InvalidInput, match="say why"):
        targets.change_watch(session, actor, case, target, every_seconds=7200, reason="  ")
    with pytest.raises(Conflict, match="already watched every 1h"):
        targets.change_watch(session, actor, case, target, every_seconds=3600, reason="r")
    assert target.watch_interval_seconds == 3600
    assert _entries(session, "target.watch_changed") == []


@pytest.mark.parametrize(("typed", "seconds"), [
    ("90s", 90), ("15m", 900), ("6h", 21600), ("1d", 86400),
    ("1 h", 3600), ("6 hours", 21600), ("30 minutes", 1800), ("1 day", 86400),
    ("2 Hours", 7200), ("90 sec", 90), ("3 hrs", 10800), ("  45 min ", 2700),
    # Digits of another script read as their value; full-width forms are folded.
    ("١٢h", 43200), ("۱۲ hours", 43200), ("१५m", 900), ("１２ｈ", 43200),
])
def test_an_interval_in_each_accepted_form(typed: str, seconds: int) -> None:
    assert targets.parse_interval(typed) == seconds


@pytest.mark.parametrize("typed", [
    "twice a day", "1.5h", "1h30m", "6 hourz", "12 ساعة", "1٢h", "h", "", "-5m", "12 x",
])
def test_an_interval_in_another_form_is_refused_naming_the_accepted_ones(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        targets.parse_interval(typed)
    assert refused.value.message == (
        f"duration {typed!r} must look like 90s, 15m, 6h, 1d, or 90 seconds, 15 minutes, "
        "6 hours, 1 day")


@pytest.mark.parametrize(("typed", "number"), [("12", "12"), ("١٢", "12"), ("90 ", "90")])
def test_a_number_without_a_unit_is_refused_not_guessed(typed: str, number: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        targets.parse_interval(typed)
    assert refused.value.message.startswith(
        f"duration {typed!r} needs a unit: {number}m for minutes or {number}h for hours; "
        "accepted: 90s, 15m")


def test_stopping_cancels_the_queued_recapture_and_no_other(session: Session) -> None:
    actor, case, target, first = _watched(session)
    _finish(session, first)
    [scheduled] = _due(session, 2)
    other, other_first = targets.flag(session, actor, case, reason="other",
                                      url=URL + "/other", watch_interval_seconds=3600)
    _finish(session, other_first)
    cancelled = targets.change_watch(session, actor, case, target, every_seconds=None,
                                     reason="taken down for good")
    assert cancelled == [scheduled.id]
    session.refresh(scheduled)
    assert scheduled.state == JobState.CANCELLED
    assert jobs.claim_next(session, worker="w", job_id=scheduled.id) is None
    assert target.watch_interval_seconds is None
    [stopped] = _entries(session, "target.watch_stopped")
    assert stopped["details"] == {"url": URL, "old_interval_seconds": 3600,
                                  "new_interval_seconds": None, "reason": "taken down for good",
                                  "case_closed": False, "jobs_cancelled": [str(scheduled.id)]}
    [job_entry] = _entries(session, "capture.cancelled")
    assert job_entry["object"]["id"] == str(scheduled.id)
    assert job_entry["details"]["reason"] == "watch stopped: taken down for good"
    # Never re-captured again; the other watch goes on.
    assert [j.target_id for j in _due(session, 30)] == [other.id]
    assert other.watch_interval_seconds == 3600
    with pytest.raises(Conflict, match="not watched"):
        targets.change_watch(session, actor, case, target, every_seconds=None, reason="again")


def test_a_running_recapture_finishes_and_one_asked_for_stays(session: Session) -> None:
    actor, case, target, first = _watched(session)
    _finish(session, first)
    [scheduled] = _due(session, 2)
    assert jobs.claim_next(session, worker="w", job_id=scheduled.id) is not None
    assert targets.change_watch(session, actor, case, target, every_seconds=None,
                                reason="operation ended") == []
    jobs.complete(session, job_id=scheduled.id, worker="w")
    session.refresh(scheduled)
    assert scheduled.state == JobState.DONE

    asked = targets.request_capture(session, actor, case, target, reason="one last look")
    targets.change_watch(session, actor, case, target, every_seconds=3600, reason="back up")
    assert targets.change_watch(session, actor, case, target, every_seconds=None,
                                reason="down again") == []
    session.refresh(asked)
    assert asked.state == JobState.QUEUED


def test_write_access_is_needed(session: Session) -> None:
    actor, case, target, _first = _watched(session)
    reader, stranger = make_user(session), make_user(session)
    cases.add_member(session, actor, case, reader, Access.READ)
    with pytest.raises(AccessDenied, match="needs write access") as refused:
        targets.change_watch(session, reader, case, target, every_seconds=None, reason="r")
    assert refused.value.status_code == 403
    with pytest.raises(AccessDenied) as hidden:
        targets.change_watch(session, stranger, case, target, every_seconds=None, reason="r")
    assert hidden.value.status_code == 404
    assert target.watch_interval_seconds == 3600


def test_closing_a_case_stops_its_watches_and_reopening_restarts_none(session: Session) -> None:
    actor, case, target, first = _watched(session)
    asked = targets.request_capture(session, actor, case, target, reason="again")
    assert asked.id == first.id  # the first capture, still waiting, is that capture
    cases.close_case(session, actor, case, reason="operation ended")
    session.refresh(first)
    assert first.state == JobState.CANCELLED  # a closed case is not captured
    assert target.watch_interval_seconds is None
    [stopped] = _entries(session, "target.watch_stopped")
    assert stopped["details"]["reason"] == "case closed: operation ended"
    assert stopped["details"]["case_closed"] is True
    [closed] = _entries(session, "case.closed")
    assert closed["details"]["watches_stopped"] == [str(target.id)]
    assert closed["details"]["jobs_cancelled"] == [str(first.id)]
    assert _due(session, 24 * 400) == []
    # On a closed case a watch is not restarted.
    with pytest.raises(CaseClosed):
        targets.change_watch(session, actor, case, target, every_seconds=3600, reason="r")

    cases.reopen_case(session, actor, case, reason="appeal")
    [reopened] = _entries(session, "case.reopened")
    assert reopened["details"]["watches_left_stopped"] == [str(target.id)]
    assert target.watch_interval_seconds is None
    assert _due(session, 24 * 400) == []
    assert [t.id for t in targets.watches_stopped_by_close(session, case)] == [target.id]
    targets.change_watch(session, actor, case, target, every_seconds=6 * 3600,
                         reason="watch again for the appeal")
    assert targets.watches_stopped_by_close(session, case) == []
    assert len(_due(session, 24 * 400)) == 1


def test_the_list_shows_what_is_watched_for_members_only(session: Session) -> None:
    actor, case, target, first = _watched(session)
    _finish(session, first)
    [watch] = targets.watched_targets(session, actor)
    assert watch.target.id == target.id and watch.case_reference == case.reference
    assert watch.last_queued_at is not None
    assert watch.next_due_at == watch.last_queued_at + timedelta(hours=1)
    assert targets.watched_targets(session, make_user(session)) == []
    with pytest.raises(AccessDenied):
        targets.watched_targets(session, make_user(session), case)
    targets.change_watch(session, actor, case, target, every_seconds=None, reason="done")
    assert targets.watched_targets(session, actor, case) == []
