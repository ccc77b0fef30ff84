"""Targets: URLs and accounts flagged on a case, each flag queueing a capture."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from api.deps import CaseRef, CurrentUser, DbSession, PageParams, quote_ref
from api.schemas import (
    ERROR_RESPONSES,
    CaptureRequestCreate,
    CaptureSummary,
    ErrorRead,
    JobRead,
    PageRead,
    TargetCreate,
    TargetDetail,
    TargetFlagged,
    TargetRead,
    TargetWatchChanged,
    TargetWatchUpdate,
)
from evidence import capture_reads, captures, cases, targets
from evidence.models import Access

router = APIRouter(prefix="/api/cases/{ref}/targets", tags=["targets"],
                   responses=ERROR_RESPONSES)
LATEST_CAPTURES = 50
REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorRead, "description": "Needs write access."},
    409: {"model": ErrorRead, "description": "The case is closed."}}


@router.post("", response_model=TargetFlagged, status_code=status.HTTP_201_CREATED,
             responses=REFUSED)
def flag_target(ref: CaseRef, body: TargetCreate, session: DbSession, actor: CurrentUser) -> (
    TargetFlagged
):
    """Flag a URL, or an account linked to the case, with a reason; queues its capture."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    target, job = targets.flag(session, actor, case, reason=body.reason, url=body.url,
                               account_id=body.account_id,
                               watch_interval_seconds=body.watch_interval_seconds)
    return TargetFlagged(target=TargetRead.model_validate(target), job=JobRead.model_validate(job))


@router.get("", response_model=PageRead[TargetRead])
def list_targets(ref: CaseRef, session: DbSession, actor: CurrentUser, paging: PageParams) -> (
    PageRead[TargetRead]
):
    """The case's targets, oldest first."""
    case = cases.case_for(session, actor, ref)
    page = targets.page_targets(session, case, limit=paging.limit, cursor=paging.cursor)
    return PageRead[TargetRead](items=[TargetRead.model_validate(t) for t in page.items],
                                next=paging.next_link(page.next_cursor))


@router.get("/{target_id}", response_model=TargetDetail)
def show_target(ref: CaseRef, target_id: uuid.UUID, session: DbSession,
                actor: CurrentUser) -> TargetDetail:
    """One target with its latest captures and capture jobs, newest first (a watched target
    gathers one of each an hour): every capture, a page at a time, from `all_captures`."""
    case = cases.case_for(session, actor, ref)
    target = targets.get_target(session, case, target_id)
    latest = capture_reads.page_captures(session, case, target_id=target.id,
                                         limit=LATEST_CAPTURES, cursor=None, newest_first=True)
    total = capture_reads.count_captures(session, case, target.id)
    since = captures.since_previous(session, latest.items)
    return TargetDetail(
        **TargetRead.model_validate(target).model_dump(),
        captures=[CaptureSummary.of(c, since[c.id]) for c in latest.items],
        captures_total=total,
        all_captures=f"/api/cases/{quote_ref(case.reference)}/captures?target={target.id}",
        jobs=[JobRead.model_validate(j) for j in targets.jobs_of(session, target)],
    )


@router.post("/{target_id}/captures", response_model=JobRead,
             status_code=status.HTTP_202_ACCEPTED, responses=REFUSED)
def request_capture(ref: CaseRef, target_id: uuid.UUID, body: CaptureRequestCreate,
                    session: DbSession, actor: CurrentUser) -> JobRead:
    """Queue another capture of the target, to be compared with its last one."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    target = targets.get_target(session, case, target_id)
    job = targets.request_capture(session, actor, case, target, reason=body.reason)
    return JobRead.model_validate(job)


@router.patch("/{target_id}/watch", response_model=TargetWatchChanged,
              responses={**REFUSED, 409: {"model": ErrorRead, "description":
                         "The case is closed (a watch may be stopped, not started), the "
                         "target is resolved, not watched, or already at that interval."}})
def change_watch(ref: CaseRef, target_id: uuid.UUID, body: TargetWatchUpdate,
                 session: DbSession, actor: CurrentUser) -> TargetWatchChanged:
    """Re-capture the target at another interval, or stop watching it (null), with a reason;
    stopping cancels the re-captures it queued that no worker has started."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    target = targets.get_target(session, case, target_id)
    cancelled = targets.change_watch(session, actor, case, target,
                                     every_seconds=body.watch_interval_seconds,
                                     reason=body.reason)
    return TargetWatchChanged(target=TargetRead.model_validate(target),
                              jobs_cancelled=cancelled)
