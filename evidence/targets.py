"""Targets: URLs and accounts flagged on a case, each flag queueing its first capture."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import cases, custody, deconfliction, jobs
from evidence.errors import AccessDenied, Conflict, InvalidInput
from evidence.models import (
    Access,
    Account,
    Capture,
    CaptureJob,
    Case,
    CaseAccount,
    CaseMember,
    CaseStatus,
    CustodyEntry,
    JobState,
    Target,
    TargetKind,
    TargetState,
    User,
    utcnow,
)
from evidence.pagination import Page, paginate
from evidence.platforms import display_name

MIN_WATCH_SECONDS = 60
MAX_WATCH_SECONDS = 366 * 24 * 3600
UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# What a watch interval may be typed as: a whole number and a unit, short or in words, with or
# without a space between. Said next to every place one is typed, and in the refusal.
INTERVAL_FORMS = "90s, 15m, 6h, 1d, or 90 seconds, 15 minutes, 6 hours, 1 day"
UNIT_WORDS = {
    **{word: "s" for word in ("s", "sec", "secs", "second", "seconds")},
    **{word: "m" for word in ("m", "min", "mins", "minute", "minutes")},
    **{word: "h" for word in ("h", "hr", "hrs", "hour", "hours")},
    **{word: "d" for word in ("d", "day", "days")},
}
# Digits of any script count (١٢ is 12, as int() reads it), each number in one script; the
# unit is one of UNIT_WORDS, in ASCII letters once compatibility forms are folded.
DURATION = re.compile(r"(\d+)\s*([a-z]*)")
# The reason the schedule gives the jobs it queues: a stopped watch cancels those only.
WATCH_SCHEDULE = "watch schedule"


def check_watch_interval(seconds: int) -> int:
    """The interval, if a watch may re-capture that often (and no less often than yearly)."""
    if seconds < MIN_WATCH_SECONDS:
        raise InvalidInput(f"watch interval must be at least {MIN_WATCH_SECONDS} seconds")
    if seconds > MAX_WATCH_SECONDS:
        raise InvalidInput("watch interval must be at most a year")
    return seconds


def parse_interval(text: str) -> int:
    """A watch interval as typed (one of INTERVAL_FORMS), in seconds, within the bounds.

    The one reading of a typed interval, for the web form and the command line alike (the
    API takes seconds). Full-width forms are folded (１２ｈ is 12h) and digits of another
    script read as their value (١٢h is 12h, shown back as 12h); a number mixing scripts, a
    number without a unit, a fraction or two units are refused, saying what is accepted.
    """
    folded = unicodedata.normalize("NFKC", text).strip().casefold()
    match = DURATION.fullmatch(folded)
    if match is None or _mixed_scripts(match.group(1)) or (
            match.group(2) and match.group(2) not in UNIT_WORDS):
        raise InvalidInput(f"duration {text!r} must look like {INTERVAL_FORMS}")
    number, unit = match.group(1), match.group(2)
    if not unit:
        raise InvalidInput(f"duration {text!r} needs a unit: {int(number)}m for minutes or "
                           f"{int(number)}h for hours; accepted: {INTERVAL_FORMS}")
    return check_watch_interval(int(number) * UNITS[UNIT_WORDS[unit]])


def _mixed_scripts(digits: str) -> bool:
    """Whether the digits come from more than one script (1٢): a slip, not a number."""
    return len({ord(d) - unicodedata.digit(d) for d in digits}) > 1


def format_interval(seconds: int) -> str:
    """The interval in the largest unit it is a whole number of: 12h, 90m, 2d."""
    for unit, size in UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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


@dataclass(frozen=True)
class TargetName:
    """A target as the investigator and the liaison officer name it: its URL, or an account's
    "@handle on Platform" with its profile URL beside it. The one place targets are named for
    display (pages, lists, refusals)."""

    url: str | None  # the URL flagged, or the account's profile URL
    account: str | None = None  # "@handle", or "account <id>" for an account without one
    platform: str | None = None  # the account's platform, by its display name

    def __str__(self) -> str:
        if self.account is None:
            return self.url or "a target"
        return f"{self.account} on {self.platform}" if self.platform else self.account


def account_name(account: Account) -> TargetName:
    handle = (account.handle or "").strip().lstrip("@")
    return TargetName(url=account.profile_url,
                      account=f"@{handle}" if handle else f"account {account.platform_account_id}",
                      platform=display_name(account.platform))


def target_name(target: Target, account: Account | None) -> TargetName:
    """`account`: the target's account (None for a URL target)."""
    if account is not None:
        return account_name(account)
    if target.url is None:
        return TargetName(url=None, account=f"account {target.account_id}")
    return TargetName(url=target.url)


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
    if watch_interval_seconds is not None:
        check_watch_interval(watch_interval_seconds)
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
            details={"target": str(target.id), "url": target.url, "reason": WATCH_SCHEDULE,
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
    gone: str | None, present_before: bool, seen_at: datetime, capture_id: str,
) -> str | None:
    """Mark the target removed when a capture finds it gone after the capture before found it
    there (`present_before`): it disappeared. Active again if it returns.

    A target gone at its first capture, or at every one so far, is not marked removed: one
    404 (or a platform's "not available" page) is as often a mistyped URL, a login wall, a
    geo-block or a passing fault as a removal, and nothing shows the page was ever there. Its
    captures say what the URL answered. Returns the custody action written, if the state
    changed. The first time it is seen gone is kept: it dates a takedown taking effect, or
    evidence vanishing.
    """
    if gone is not None and present_before and target.state == TargetState.ACTIVE:
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


def _refuse_a_second_account_target(session: Session, case: Case, account: Account) -> None:
    """One target per account and case, as per URL (`refuse_a_second_target`)."""
    flagged = session.scalars(
        select(Target)
        .where(Target.case_id == case.id, Target.account_id == account.id,
               Target.state != TargetState.RESOLVED)
        .order_by(Target.flagged_at).limit(1)).first()
    if flagged is not None:
        raise Conflict(
            f"{account_name(account)} is already flagged in case {case.reference} (target "
            f"{flagged.id}, flagged {custody.format_time(flagged.flagged_at)[:10]}): capture it "
            "again from that target")


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
        _refuse_a_second_account_target(session, case, account)
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


# --- changing and stopping a watch -------------------------------------------------------------

WATCH_ACTIONS = ("target.flagged", "target.watch_changed", "target.watch_stopped")


def change_watch(
    session: Session,
    actor: User,
    case: Case,
    target: Target,
    *,
    every_seconds: int | None,
    reason: str,
) -> list[uuid.UUID]:
    """Watch the target every `every_seconds` from now on (starting a watch where there was
    none), or stop watching it (None): a page taken down for good, an operation ended.

    Stopping cancels the re-captures the schedule queued that no worker has started (a running
    one finishes; a capture someone asked for stays); returns the ids of the jobs cancelled.
    A closed case's watches were stopped when it closed: one may be stopped, not restarted.
    """
    cases.require_access(session, actor, case, Access.WRITE)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the watch is changed or stopped")
    old = target.watch_interval_seconds
    if every_seconds is None:
        if old is None:
            raise Conflict(f"target {target.id} is not watched")
        return _stop_watch(session, actor, case, target, reason=reason)
    cases.require_open(case)
    check_watch_interval(every_seconds)
    if target.state == TargetState.RESOLVED:
        raise Conflict(f"target {target.id} is resolved: it is not watched any more")
    if old == every_seconds:
        raise Conflict(f"target {target.id} is already watched every "
                       f"{format_interval(every_seconds)}")
    target.watch_interval_seconds = every_seconds
    session.flush()
    custody.append(
        session, actor, action="target.watch_changed", case=case, object_type="target",
        object_id=target.id,
        details={"url": target.url, "old_interval_seconds": old,
                 "new_interval_seconds": every_seconds, "reason": reason},
    )
    return []


def _stop_watch(session: Session, actor: User | None, case: Case, target: Target, *,
                reason: str, case_closed: bool = False) -> list[uuid.UUID]:
    old = target.watch_interval_seconds
    target.watch_interval_seconds = None
    session.flush()
    if case_closed:
        cancelled: list[uuid.UUID] = []  # the close cancels every job of the case
    else:
        cancelled = jobs.cancel_queued(session, actor, case_id=case.id, target_id=target.id,
                                       reason=f"watch stopped: {reason}",
                                       only=_scheduled_jobs(session, target))
    custody.append(
        session, actor, action="target.watch_stopped", case=case, object_type="target",
        object_id=target.id,
        details={"url": target.url, "old_interval_seconds": old, "new_interval_seconds": None,
                 "reason": reason, "case_closed": case_closed,
                 "jobs_cancelled": [str(i) for i in cancelled]},
    )
    return cancelled


def _scheduled_jobs(session: Session, target: Target) -> set[uuid.UUID]:
    """The target's queued jobs the watch schedule made, as their custody entries say."""
    queued = [str(i) for i in session.scalars(select(CaptureJob.id).where(
        CaptureJob.target_id == target.id, CaptureJob.state == JobState.QUEUED))]
    if not queued:
        return set()
    entries = session.scalars(select(CustodyEntry).where(
        CustodyEntry.object_type == "capture_job", CustodyEntry.object_id.in_(queued),
        CustodyEntry.action == "capture.queued"))
    return {uuid.UUID(entry.object_id or "") for entry in entries
            if custody.describe(entry)["details"].get("reason") == WATCH_SCHEDULE}


def stop_watches_of_closing_case(session: Session, actor: User, case: Case, *,
                                 reason: str | None) -> tuple[list[Target], list[uuid.UUID]]:
    """What closing a case does to its watches (called by `cases.close_case`): each is stopped
    with its own custody entry, and every capture of the case not yet started is cancelled, so
    a closed case is not captured again. Reopening does not restart them."""
    watched = list(session.scalars(
        select(Target).where(Target.case_id == case.id,
                             Target.watch_interval_seconds.is_not(None))
        .order_by(Target.flagged_at, Target.id)))
    said = "case closed" + (f": {reason}" if reason else "")
    for target in watched:
        _stop_watch(session, actor, case, target, reason=said, case_closed=True)
    cancelled = jobs.cancel_queued(session, actor, case_id=case.id, reason=said)
    return watched, cancelled


def watches_stopped_by_close(session: Session, case: Case) -> list[Target]:
    """The targets whose watch the case's last closing stopped and nobody has restarted."""
    closed = session.scalars(
        select(CustodyEntry).where(CustodyEntry.case_id == case.id,
                                   CustodyEntry.action == "case.closed")
        .order_by(CustodyEntry.seq.desc()).limit(1)).first()
    if closed is None:
        return []
    ids = [uuid.UUID(i) for i in custody.describe(closed)["details"].get("watches_stopped", [])]
    if not ids:
        return []
    return list(session.scalars(
        select(Target).where(Target.id.in_(ids), Target.watch_interval_seconds.is_(None))
        .order_by(Target.flagged_at, Target.id)))


@dataclass(frozen=True)
class WatchChange:
    """One line of a target's watch history, from its custody entries."""

    at: datetime
    actor_id: uuid.UUID | None
    action: str  # started (flagged watched), changed, stopped
    old_interval_seconds: int | None
    new_interval_seconds: int | None
    reason: str | None


def watch_history(session: Session, case: Case, target: Target) -> list[WatchChange]:
    """How the target's watch began, changed and stopped, oldest first."""
    changes: list[WatchChange] = []
    for entry in custody.entries_for_object(session, case, "target", target.id):
        if entry.action not in WATCH_ACTIONS:
            continue
        details = custody.describe(entry)["details"]
        if entry.action == "target.flagged":
            if details.get("watch_interval_seconds") is None:
                continue
            changes.append(WatchChange(entry.recorded_at, entry.actor_id, "started", None,
                                       details["watch_interval_seconds"], details.get("reason")))
        else:
            changes.append(WatchChange(
                entry.recorded_at, entry.actor_id, entry.action.removeprefix("target.watch_"),
                details.get("old_interval_seconds"), details.get("new_interval_seconds"),
                details.get("reason")))
    return changes


@dataclass(frozen=True)
class Watch:
    """A watched target as `evidence watch list` shows it."""

    target: Target
    case_reference: str
    case_open: bool
    last_queued_at: datetime | None  # the newest capture job of the target
    next_due_at: datetime  # when the schedule queues the next re-capture (at the earliest)
    last_captured_at: datetime | None  # the newest capture that finished


def watched_targets(session: Session, actor: User, case: Case | None = None) -> list[Watch]:
    """The watched targets of the case, or of every case the actor is a member of."""
    last_job = (select(CaptureJob.target_id, func.max(CaptureJob.created_at).label("last"))
                .group_by(CaptureJob.target_id).subquery())
    last_capture = (select(Capture.target_id, func.max(Capture.finished_at).label("last"))
                    .group_by(Capture.target_id).subquery())
    query = (
        select(Target, Case.reference, Case.status, last_job.c.last, last_capture.c.last)
        .join(Case, Case.id == Target.case_id)
        .outerjoin(last_job, last_job.c.target_id == Target.id)
        .outerjoin(last_capture, last_capture.c.target_id == Target.id)
        .where(Target.watch_interval_seconds.is_not(None))
        .order_by(Case.reference, Target.flagged_at, Target.id)
    )
    if case is not None:
        cases.require_access(session, actor, case, Access.READ)
        query = query.where(Target.case_id == case.id)
    else:
        query = query.join(CaseMember, (CaseMember.case_id == Case.id)
                           & (CaseMember.user_id == actor.id))
    watches = []
    for target, reference, status, queued_at, captured_at in session.execute(query).all():
        queued_at = None if queued_at is None else _aware(queued_at)
        interval = timedelta(seconds=target.watch_interval_seconds or 0)
        watches.append(Watch(
            target=target, case_reference=reference, case_open=status == CaseStatus.OPEN,
            last_queued_at=queued_at,
            next_due_at=utcnow() if queued_at is None else queued_at + interval,
            last_captured_at=None if captured_at is None else _aware(captured_at)))
    return watches
