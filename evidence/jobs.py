"""The capture job queue: rows in the database that any number of workers on any hosts claim.

A job is `queued` until a worker claims it; the claim makes it `running` under a lease that the
worker renews while it works. A worker that dies stops renewing, and once the lease has run out
the next `claim_next` takes the job over (a claim counts as an attempt, so a page that kills
every worker that opens it still ends `failed`). A failed attempt goes back to `queued` after an
exponential backoff until `max_attempts` is spent, then the job is `failed` with its reason.
A job still `queued` may be `cancelled` (its watch stopped, its case closed); a running one
finishes. A worker that stops (a deploy, a restart) hands its job back (`release`): queued again
at once, the attempt it used not counted, as the stop said nothing about the page.

Every transition appends a custody entry in the caller's transaction; the services here flush
and never commit. Workers get ids (`ClaimedJob`), never ORM objects.

On PostgreSQL a claim locks its row with `FOR UPDATE SKIP LOCKED`, so workers never wait on one
another's candidate rows; on SQLite every transaction begins with BEGIN IMMEDIATE and already
holds the database's only write lock. Lease times come from the calling worker's clock, so hosts
must keep their clocks in step to well within a lease.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from evidence import custody
from evidence.canonical import JsonValue
from evidence.errors import Conflict, InvalidInput, NotFound
from evidence.models import CaptureJob, Case, JobState, Target, User, utcnow

BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0
DEFAULT_LEASE_SECONDS = 300.0


class LeaseLost(Conflict):
    """The job is no longer leased to this worker: it must drop its work and write nothing."""


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run one attempt of a job."""

    job_id: uuid.UUID
    target_id: uuid.UUID
    case_id: uuid.UUID
    url: str | None
    attempt: int
    max_attempts: int
    worker: str
    lease_until: datetime
    requested_by_id: uuid.UUID | None
    # The worker whose lease ran out, when this claim took its job over.
    reclaimed_from: str | None = None


def new_worker_id() -> str:
    """A lease owner name unique across hosts and restarts: host, process id and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def run_after_for(
    attempt: int,
    *,
    now: datetime,
    base_seconds: float = BACKOFF_BASE_SECONDS,
    cap_seconds: float = BACKOFF_CAP_SECONDS,
) -> datetime:
    """When a job whose attempt number `attempt` failed may run again: base * 2**(attempt-1)."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, not {attempt}")
    # The exponent is bounded so a huge attempt count cannot overflow before the cap applies.
    delay = min(cap_seconds, base_seconds * 2.0 ** min(attempt - 1, 64))
    return now + timedelta(seconds=delay)


def _moment(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise ValueError("naive datetime: job times must carry a time zone")
    return now


def _lease_seconds(lease_seconds: float) -> timedelta:
    if not lease_seconds > 0:
        raise InvalidInput(f"a lease must last some time, not {lease_seconds} seconds")
    return timedelta(seconds=lease_seconds)


def _record(
    session: Session,
    actor: User | None,
    job: CaptureJob,
    action: str,
    details: dict[str, JsonValue],
) -> None:
    case = session.get(Case, job.case_id)
    if case is None:
        raise NotFound(f"capture job {job.id} names a case that does not exist")
    custody.append(
        session,
        actor,
        action=action,
        case=case,
        object_type="capture_job",
        object_id=job.id,
        details={"attempt": job.attempts, **details},
    )


def _lock_job(session: Session, job_id: uuid.UUID) -> CaptureJob:
    # FOR UPDATE (compiled away on SQLite) holds the row against a concurrent reclaim until
    # the caller commits; populate_existing reads the locked row, not a stale identity-map copy.
    job = session.scalars(
        select(CaptureJob)
        .where(CaptureJob.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if job is None:
        raise NotFound(f"no capture job {job_id}")
    return job


def _require_lease(job: CaptureJob, worker: str) -> None:
    if job.state != JobState.RUNNING or job.lease_owner != worker:
        holder = f"leased to {job.lease_owner}" if job.state == JobState.RUNNING else job.state
        raise LeaseLost(f"capture job {job.id} is no longer leased to {worker} (it is {holder})")


def _end_lease(session: Session, job_id: uuid.UUID, worker: str, now: datetime) -> CaptureJob:
    """`worker`'s job, locked, its lease ended; the caller gives it its new state."""
    job = _lock_job(session, job_id)
    _require_lease(job, worker)
    job.lease_owner = None
    job.lease_until = None
    job.updated_at = now
    return job


def claim_next(
    session: Session,
    *,
    worker: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    actor: User | None = None,
    now: datetime | None = None,
    job_id: uuid.UUID | None = None,
) -> ClaimedJob | None:
    """Claim the oldest runnable job for `worker`, or None when no job is runnable now.

    Runnable: queued with `run_after` reached, or running under a lease that has run out (its
    worker died). A job whose lease ran out on its last allowed attempt is failed instead.
    With `job_id`, only that job is considered (the command line carrying out its own flag).
    """
    now = _moment(now)
    lease = _lease_seconds(lease_seconds)
    if not worker:
        raise InvalidInput("a worker must name itself to hold a lease")
    runnable = or_(
        and_(CaptureJob.state == JobState.QUEUED, CaptureJob.run_after <= now),
        and_(CaptureJob.state == JobState.RUNNING, CaptureJob.lease_until < now),
    )
    if job_id is not None:
        runnable = and_(runnable, CaptureJob.id == job_id)
    query = (
        select(CaptureJob)
        .where(runnable)
        .order_by(CaptureJob.run_after, CaptureJob.created_at, CaptureJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    while True:
        job = session.scalars(query).first()
        if job is None:
            return None
        reclaimed = job.state == JobState.RUNNING
        reclaimed_from, expired_at = job.lease_owner, job.lease_until
        if reclaimed and job.attempts >= job.max_attempts:
            _fail_abandoned(session, actor, job, worker=worker, now=now)
            continue
        job.state = JobState.RUNNING
        job.attempts += 1
        job.lease_owner = worker
        job.lease_until = now + lease
        job.updated_at = now
        session.flush()
        details: dict[str, JsonValue] = {
            "worker": worker,
            "lease_until": custody.format_time(job.lease_until),
        }
        if not reclaimed:
            _record(session, actor, job, "capture.claimed", details)
        else:
            details["reclaimed_from"] = reclaimed_from
            details["lease_expired_at"] = (
                None if expired_at is None else custody.format_time(expired_at)
            )
            _record(session, actor, job, "capture.reclaimed", details)
        target = session.get(Target, job.target_id)
        return ClaimedJob(
            job_id=job.id,
            target_id=job.target_id,
            case_id=job.case_id,
            url=None if target is None else target.url,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            worker=worker,
            lease_until=job.lease_until,
            requested_by_id=job.requested_by_id,
            reclaimed_from=reclaimed_from if reclaimed else None,
        )


def _fail_abandoned(
    session: Session, actor: User | None, job: CaptureJob, *, worker: str, now: datetime
) -> None:
    owner = job.lease_owner
    expired_at = job.lease_until
    job.state = JobState.FAILED
    job.error = (
        f"worker {owner} stopped renewing its lease on attempt {job.attempts} "
        f"of {job.max_attempts}"
    )
    job.lease_owner = None
    job.lease_until = None
    job.updated_at = now
    session.flush()
    _record(session, actor, job, "capture.failed", {
        "worker": worker,
        "error": job.error,
        "retryable": False,
        "abandoned_by": owner,
        "lease_expired_at": None if expired_at is None else custody.format_time(expired_at),
    })


def renew_lease(
    session: Session,
    *,
    job_id: uuid.UUID,
    worker: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> bool:
    """Extend `worker`'s lease; False, changing nothing, when the job is no longer its own.

    On False the worker must abandon the attempt without writing results. A lease that ran out
    but was not yet taken over is still the worker's. Renewals are not custody transitions and
    append no entry.
    """
    now = _moment(now)
    lease = _lease_seconds(lease_seconds)
    job = _lock_job(session, job_id)
    if job.state != JobState.RUNNING or job.lease_owner != worker:
        return False
    job.lease_until = now + lease
    job.updated_at = now
    session.flush()
    return True


def complete(
    session: Session,
    *,
    job_id: uuid.UUID,
    worker: str,
    capture_id: uuid.UUID | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> None:
    """Mark the job done by `worker`; raises LeaseLost if the job was taken over meanwhile.

    Call it in the same transaction that stores the capture, so a lost lease rolls both back.
    On PostgreSQL call it before appending other custody entries in that transaction: it waits
    for the job's row lock, and waiting while holding the custody append lock can deadlock with
    a worker taking the job over.
    """
    job = _end_lease(session, job_id, worker, _moment(now))
    job.state = JobState.DONE
    job.error = None
    session.flush()
    _record(session, actor, job, "capture.done", {
        "worker": worker,
        "capture": None if capture_id is None else str(capture_id),
    })


def fail(
    session: Session,
    *,
    job_id: uuid.UUID,
    worker: str,
    error: str,
    retryable: bool = True,
    backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
    actor: User | None = None,
    now: datetime | None = None,
) -> JobState:
    """Record a failed attempt: back to queued after a backoff while attempts remain and the
    error is retryable, else `failed` with the reason. Returns the job's new state."""
    now = _moment(now)
    error = error.strip()
    if not error:
        raise InvalidInput("say why the capture failed")
    job = _end_lease(session, job_id, worker, now)
    job.error = error
    details: dict[str, JsonValue] = {"worker": worker, "error": error, "retryable": retryable}
    if retryable and job.attempts < job.max_attempts:
        job.state = JobState.QUEUED
        job.run_after = run_after_for(job.attempts, now=now, base_seconds=backoff_base_seconds)
        session.flush()
        details["run_after"] = custody.format_time(job.run_after)
        _record(session, actor, job, "capture.retry_scheduled", details)
    else:
        job.state = JobState.FAILED
        session.flush()
        _record(session, actor, job, "capture.failed", details)
    return JobState(job.state)


def release(
    session: Session,
    *,
    job_id: uuid.UUID,
    worker: str,
    reason: str,
    actor: User | None = None,
    now: datetime | None = None,
) -> None:
    """Hand `worker`'s job back unfinished, as a worker that stops does: queued again, runnable
    at once in its place in the queue, the attempt it used not counted. Raises LeaseLost if the
    job is no longer the worker's (taken over, or handed back already)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the job is handed back")
    job = _end_lease(session, job_id, worker, _moment(now))
    attempt = job.attempts
    job.state = JobState.QUEUED
    job.attempts -= 1
    session.flush()
    # The attempt handed back, said as not counted (the job's count is one less again).
    _record(session, actor, job, "capture.released", {
        "worker": worker, "reason": reason, "attempt": attempt, "counted": False})


def cancel_queued(
    session: Session,
    actor: User | None,
    *,
    case_id: uuid.UUID,
    target_id: uuid.UUID | None = None,
    reason: str,
    only: set[uuid.UUID] | None = None,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Cancel the case's (or one target's) jobs no worker has claimed yet, each with a custody
    entry; running jobs are left to finish. With `only`, just those of the given ids.

    Returns the ids of the jobs cancelled. A job a worker claims meanwhile is running by the
    time its row lock is held here, and is left alone.
    """
    now = _moment(now)
    query = select(CaptureJob.id).where(CaptureJob.case_id == case_id,
                                        CaptureJob.state == JobState.QUEUED)
    if target_id is not None:
        query = query.where(CaptureJob.target_id == target_id)
    cancelled: list[uuid.UUID] = []
    for job_id in session.scalars(query.order_by(CaptureJob.created_at, CaptureJob.id)).all():
        if only is not None and job_id not in only:
            continue
        job = _lock_job(session, job_id)
        if job.state != JobState.QUEUED:
            continue
        job.state = JobState.CANCELLED
        job.error = reason  # shown with the job, as a failure's reason is
        job.updated_at = now
        session.flush()
        _record(session, actor, job, "capture.cancelled", {"reason": reason})
        cancelled.append(job.id)
    return cancelled
