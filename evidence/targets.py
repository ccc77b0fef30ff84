"""Targets: URLs and accounts flagged on a case, each flag queueing its first capture."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from evidence import cases, custody
from evidence.errors import InvalidInput
from evidence.models import (
    Access,
    Account,
    CaptureJob,
    Case,
    JobState,
    Target,
    TargetKind,
    TargetState,
    User,
)

MIN_WATCH_SECONDS = 60


def validate_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not an http or https URL")
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
