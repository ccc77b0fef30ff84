"""Read-only summaries of cases for display (the web pages): counts, latest states, timeline.

Each takes a case (or cases) the caller has already been let into by a service (`cases.case_for`,
`cases.page_cases`, `cases.show_case`), so none of them decides who may see what; they only
summarise rows of those cases for a table, and write nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from evidence.models import Capture, CaptureJob, Case, CustodyEntry, Target, User


@dataclass(frozen=True)
class CaseCounts:
    targets: int
    captures: int


@dataclass(frozen=True)
class Latest:
    """The newest capture and capture job of one target, either of which may be missing."""

    capture: Capture | None
    job: CaptureJob | None


def counts_of(session: Session, case_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, CaseCounts]:
    """How many targets and captures each case has (two grouped queries, whatever the count)."""
    if not case_ids:
        return {}
    targets = {case_id: count for case_id, count in session.execute(
        select(Target.case_id, func.count()).where(Target.case_id.in_(case_ids))
        .group_by(Target.case_id))}
    captures = {case_id: count for case_id, count in session.execute(
        select(Capture.case_id, func.count()).where(Capture.case_id.in_(case_ids))
        .group_by(Capture.case_id))}
    return {cid: CaseCounts(targets.get(cid, 0), captures.get(cid, 0)) for cid in case_ids}


def latest_of(session: Session, case: Case, target_ids: Sequence[uuid.UUID]) -> (
    dict[uuid.UUID, Latest]
):
    """The newest capture and job of each of the case's targets named."""
    if not target_ids:
        return {}
    captures = _newest(session, Capture, Capture.started_at, case, target_ids)
    jobs = _newest(session, CaptureJob, CaptureJob.created_at, case, target_ids)
    return {tid: Latest(captures.get(tid), jobs.get(tid)) for tid in target_ids}


_Row = TypeVar("_Row", Capture, CaptureJob)


def _newest(session: Session, model: type[_Row], stamp: InstrumentedAttribute[datetime],
            case: Case, target_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, _Row]:
    """The row of `model` with the latest `stamp` for each target named (one query); of rows
    stamped alike, the one with the highest id."""
    newest = (
        select(model.target_id, func.max(stamp).label("at"))
        .where(model.case_id == case.id, model.target_id.in_(target_ids))
        .group_by(model.target_id).subquery()
    )
    found: dict[uuid.UUID, _Row] = {}
    for row in session.scalars(
        select(model).join(newest, (model.target_id == newest.c.target_id)
                           & (stamp == newest.c.at))
        .where(model.case_id == case.id).order_by(model.id)
    ):
        found[row.target_id] = row
    return found


@dataclass(frozen=True)
class TimelinePage:
    entries: list[CustodyEntry]
    older_than: int | None  # the `seq` to ask for the next (older) page with, if there is one


def timeline_newest_first(session: Session, case: Case, *, before: int | None,
                          limit: int) -> TimelinePage:
    """A page of the case's custody entries, newest first, older than global `seq` `before`."""
    query = select(CustodyEntry).where(CustodyEntry.case_id == case.id)
    if before is not None:
        query = query.where(CustodyEntry.seq < before)
    rows = list(session.scalars(query.order_by(CustodyEntry.seq.desc()).limit(limit + 1)))
    entries = rows[:limit]
    return TimelinePage(entries, entries[-1].seq if len(rows) > limit else None)


def case_by_id(session: Session, case_id: uuid.UUID) -> Case | None:
    """The case row, for its reference only: access is then checked by `cases.case_for`."""
    return session.get(Case, case_id)


def user_names(session: Session, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Who did what, as the pages name them: display name, else user name ("unknown" for an id
    no user has any more). One query, however many ids."""
    wanted = {i for i in ids if i is not None}
    found = {user_id: "unknown" for user_id in wanted}
    if wanted:
        for user_id, name, display_name in session.execute(
                select(User.id, User.name, User.display_name).where(User.id.in_(wanted))):
            found[user_id] = display_name or name
    return found
