"""Targets: URLs and accounts flagged on a case, each flag queueing its first capture."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import cases, custody, deconfliction
from evidence.errors import AccessDenied, Conflict, InvalidInput
from evidence.models import (
    Access,
    Account,
    CaptureJob,
    Case,
    CaseAccount,
    CaseStatus,
    JobState,
    Target,
    TargetKind,
    TargetState,
    User,
    utcnow,
)
from evidence.pagination import Page, paginate

MIN_WATCH_SECONDS = 60


def validate_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not an http or https URL")
    if parts.username is not None or parts.password is not None:
        # It would be kept for good: in the append-only custody log, the capture's signed
        # manifest and every bundle made of the case.
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        raise InvalidInput(
            f"the URL carries a user name or password (before the @ of {shown!r}): it would "
            "be kept in the custody log and every bundle for good; flag the URL without it")
    return url


def flag_target(
    session: Session,
    actor: User,
    case: Case,
    *,
    reason: str,
    url: str | None = None,
    account: Account | None = None,
    watch_interval_seconds: int | None = None,
) -> tuple[Target, CaptureJob]:
    """Flag a URL or an account and queue its capture, both in the caller's transaction."""
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    if (url is None) == (account is None):
        raise InvalidInput("flag either a URL or an account")
    if not reason.strip():
        raise InvalidInput("say why the target is flagged")
    if watch_interval_seconds is not None and watch_interval_seconds < MIN_WATCH_SECONDS:
        raise InvalidInput(f"watch interval must be at least {MIN_WATCH_SECONDS} seconds")
    if url is not None:
        url = validate_url(url)
    elif account is not None:
        url = account.profile_url
    target = Target(
        case_id=case.id,
        kind=TargetKind.URL if account is None else TargetKind.ACCOUNT,
        url=url,
        account_id=None if account is None else account.id,
        reason=reason.strip(),
        flagged_by_id=actor.id,
        watch_interval_seconds=watch_interval_seconds,
        state=TargetState.ACTIVE,
    )
    session.add(target)
    session.flush()
    custody.append(
        session,
        actor,
        action="target.flagged",
        case=case,
        object_type="target",
        object_id=target.id,
        details={
            "url": url,
            "account": None if account is None else str(account.id),
            "reason": target.reason,
            "watch_interval_seconds": watch_interval_seconds,
        },
    )
    deconfliction.register_target(session, actor, case, target)
    job = CaptureJob(
        target_id=target.id, case_id=case.id, state=JobState.QUEUED, requested_by_id=actor.id
    )
    session.add(job)
    session.flush()
    custody.append(
        session,
        actor,
        action="capture.queued",
        case=case,
        object_type="capture_job",
        object_id=job.id,
        details={"target": str(target.id), "url": url},
    )
    return target, job


def schedule_due_watches(session: Session, *, now: datetime | None = None) -> list[CaptureJob]:
    """Queue a re-capture of every watched target whose interval has passed since its last job.

    A target that still has a job queued or running is skipped, so a slow page never piles up
    jobs. Removed targets stay watched, so a page that comes back is seen; resolved targets
    and closed cases are not watched.
    """
    now = now or utcnow()
    busy = select(CaptureJob.target_id).where(
        CaptureJob.state.in_([JobState.QUEUED, JobState.RUNNING]))
    last_job = (
        select(CaptureJob.target_id, func.max(CaptureJob.created_at).label("last"))
        .group_by(CaptureJob.target_id).subquery()
    )
    rows = session.execute(
        select(Target, Case, last_job.c.last)
        .join(Case, Case.id == Target.case_id)
        .outerjoin(last_job, last_job.c.target_id == Target.id)
        .where(
            Target.watch_interval_seconds.is_not(None),
            Target.state.in_([TargetState.ACTIVE, TargetState.REMOVED]),
            Case.status == CaseStatus.OPEN,
            Target.id.not_in(busy),
        )
    ).all()
    queued: list[CaptureJob] = []
    for target, case, last in rows:
        interval = timedelta(seconds=target.watch_interval_seconds or 0)
        if last is not None and _aware(last) + interval > now:
            continue
        job = CaptureJob(target_id=target.id, case_id=case.id, state=JobState.QUEUED,
                         requested_by_id=target.flagged_by_id)
        session.add(job)
        session.flush()
        custody.append(
            session, None, action="capture.queued", case=case, object_type="capture_job",
            object_id=job.id,
            details={"target": str(target.id), "url": target.url, "reason": "watch schedule",
                     "interval_seconds": target.watch_interval_seconds},
        )
        queued.append(job)
    return queued


def _aware(moment: datetime) -> datetime:
    # SQLite hands back aggregate results without the column type's UTC conversion.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def record_presence(
    session: Session, actor: User | None, target: Target, case: Case, *,
    gone: str | None, seen_at: datetime, capture_id: str,
) -> str | None:
    """Mark the target removed the first time a capture finds it gone, active if it returns.

    Returns the custody action written, if the state changed. The first time it is seen gone
    is kept: it dates a takedown taking effect, or evidence vanishing.
    """
    if gone is not None and target.state == TargetState.ACTIVE:
        target.state = TargetState.REMOVED
        target.removed_first_seen_at = seen_at
        action = "target.removed"
    elif gone is None and target.state == TargetState.REMOVED:
        target.state = TargetState.ACTIVE
        action = "target.reappeared"
    else:
        return None
    session.flush()
    custody.append(
        session, actor, action=action, case=case, object_type="target", object_id=target.id,
        details={"reason": gone, "seen_at": custody.format_time(seen_at),
                 "capture": capture_id},
    )
    return action


def refuse_a_second_target(session: Session, case: Case, url: str) -> None:
    """One target per URL and case, for whoever flags (API, web UI, `evidence watch`): a second
    would split the URL's captures, changes and decisions in two and double every deconfliction
    hit on it. (`evidence capture` captures an already flagged URL again instead.)"""
    flagged = find_url_target(session, case, url)
    if flagged is not None:
        raise Conflict(
            f"{flagged.url} is already flagged in case {case.reference} (target {flagged.id}, "
            f"flagged {custody.format_time(flagged.flagged_at)[:10]}): capture it again from "
            "that target")


def find_url_target(session: Session, case: Case, url: str) -> Target | None:
    """The case's target for exactly this URL, if it has one that is not resolved."""
    return session.scalars(
        select(Target)
        .where(Target.case_id == case.id, Target.url == validate_url(url),
               Target.state != TargetState.RESOLVED)
        .order_by(Target.flagged_at)
        .limit(1)
    ).first()


def request_capture(
    session: Session, actor: User, case: Case, target: Target, *, reason: str
) -> CaptureJob:
    """Queue another capture of a flagged target, to be compared with its previous one.

    A capture of the target still waiting in the queue is that capture: it is returned, and no
    other is queued (forty clicks made forty jobs, ahead of every other unit's captures).
    """
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    waiting = session.scalars(
        select(CaptureJob).where(CaptureJob.target_id == target.id,
                                 CaptureJob.state == JobState.QUEUED)
        .order_by(CaptureJob.created_at).limit(1)).first()
    if waiting is not None:
        return waiting
    job = CaptureJob(target_id=target.id, case_id=case.id, state=JobState.QUEUED,
                     requested_by_id=actor.id)
    session.add(job)
    session.flush()
    custody.append(
        session, actor, action="capture.queued", case=case, object_type="capture_job",
        object_id=job.id, details={"target": str(target.id), "url": target.url,
                                   "reason": reason},
    )
    return job


# --- used by the HTTP API ----------------------------------------------------------------------

MAX_WATCH_SECONDS = 366 * 24 * 3600


def flag(
    session: Session,
    actor: User,
    case: Case,
    *,
    reason: str,
    url: str | None = None,
    account_id: uuid.UUID | None = None,
    watch_interval_seconds: int | None = None,
) -> tuple[Target, CaptureJob]:
    """Flag a URL, or an account already linked to the case, and queue its capture."""
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    if watch_interval_seconds is not None and watch_interval_seconds > MAX_WATCH_SECONDS:
        raise InvalidInput("watch interval must be at most a year")
    account = None
    if account_id is not None:
        account = session.scalars(
            select(Account)
            .join(CaseAccount, CaseAccount.account_id == Account.id)
            .where(CaseAccount.case_id == case.id, Account.id == account_id)
        ).first()
        if account is None:
            raise AccessDenied(f"no account {account_id} in case {case.reference!r}")
        if account.profile_url is None:
            raise InvalidInput("the account has no profile URL to capture; link it with one")
    if url is not None:
        refuse_a_second_target(session, case, url)
    return flag_target(session, actor, case, reason=reason, url=url, account=account,
                       watch_interval_seconds=watch_interval_seconds)


def get_target(session: Session, case: Case, target_id: uuid.UUID) -> Target:
    """The case's target; a target of another case is not found."""
    target = session.scalars(
        select(Target).where(Target.id == target_id, Target.case_id == case.id)
    ).first()
    if target is None:
        raise AccessDenied(f"no target {target_id} in case {case.reference!r}")
    return target


def page_targets(
    session: Session, case: Case, *, limit: int, cursor: str | None
) -> Page[Target]:
    return paginate(session, select(Target).where(Target.case_id == case.id),
                    key=(Target.flagged_at, Target.id), limit=limit, cursor=cursor)


JOBS_LISTED = 20  # a watched target makes a job per capture: the latest few are what matters


def jobs_of(session: Session, target: Target, *, unfinished_only: bool = False,
            limit: int = JOBS_LISTED) -> list[CaptureJob]:
    """The target's latest capture jobs, newest first (only those not done, if asked)."""
    query = select(CaptureJob).where(CaptureJob.target_id == target.id)
    if unfinished_only:
        query = query.where(CaptureJob.state != JobState.DONE)
    return list(session.scalars(
        query.order_by(CaptureJob.created_at.desc(), CaptureJob.id.desc()).limit(limit)))
