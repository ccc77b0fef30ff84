"""Decisions on a target: preserve, take down, preserve then take down, or keep monitoring.

An investigator with write access proposes; a supervisor (or admin) who is not the proposer
approves or rejects (four eyes). A newer proposal supersedes the target's current one, which is
kept with its state set to superseded. A takedown, and the takedown step of a
preserve-then-takedown (its second approval, after the first approves the preservation), is
approved only when the target has a complete capture, no unresolved deconfliction hit, and a
preservation request naming it (or a waiver with a reason on the decision); each missing
condition is refused with its own error. `takedown_conditions` looks them up once, for the
approval and for the page that shows them as a checklist. Every change appends a custody entry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import captures, case_reads, cases, custody, deconfliction, targets
from evidence.canonical import JsonValue
from evidence.errors import (
    AccessDenied,
    CaptureMissing,
    DecisionNotPending,
    DeconflictionHold,
    FourEyesViolation,
    InvalidInput,
    PermissionDenied,
    PreservationMissing,
)
from evidence.models import (
    Access,
    Account,
    Capture,
    CaptureStatus,
    Case,
    Decision,
    DecisionKind,
    DecisionState,
    JobState,
    LegalRequest,
    RequestStatus,
    Role,
    Target,
    User,
    utcnow,
)
from evidence.times import to_the_second
from evidence.words import counted

PRESERVATION_KINDS = frozenset({"eu-epoc-pr", "coe-art29-preservation", "provider-preservation"})
# A request refused, lapsed or withdrawn preserves nothing; any other status counts as generated.
DEAD_REQUEST_STATUSES = frozenset({RequestStatus.REFUSED, RequestStatus.EXPIRED,
                                   RequestStatus.WITHDRAWN})
APPROVER_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})
TAKEDOWN_KINDS = frozenset({DecisionKind.TAKEDOWN, DecisionKind.PRESERVE_THEN_TAKEDOWN})
CURRENT_STATES = (DecisionState.PROPOSED, DecisionState.APPROVED)
# Keys of a request's identifier entries that may name a target, its URL or its account.
_IDENTIFIER_KEYS = ("target_id", "target", "value", "url", "source_url", "platform_account_id")


# --- finding what the caller may see -----------------------------------------------------------


def _check_access(session: Session, actor: User, case: Case, need: Access, missing: str) -> None:
    """Like cases.require_access, but never names the case: the caller addressed an id."""
    if actor.role == Role.AUDITOR:
        raise AccessDenied(missing)
    have = cases.access_of(session, actor, case)
    if have is None:
        raise AccessDenied(missing)
    if cases.ACCESS_ORDER[have] < cases.ACCESS_ORDER[need]:
        raise AccessDenied(f"this needs {need.value} access to case {case.reference!r}; you "
                           f"have {have.value}", status_code=403)


def target_for(
    session: Session, actor: User, target_id: uuid.UUID, *, need: Access = Access.READ
) -> tuple[Case, Target]:
    """The target and its case, for someone with `need` access; anyone else: not found."""
    missing = f"no target {target_id}"
    target = session.get(Target, target_id)
    if target is None:
        raise AccessDenied(missing)
    case = session.get(Case, target.case_id)
    assert case is not None
    _check_access(session, actor, case, need, missing)
    return case, target


def decision_for(
    session: Session, actor: User, decision_id: uuid.UUID, *, need: Access = Access.READ
) -> tuple[Case, Target, Decision]:
    missing = f"no decision {decision_id}"
    decision = session.get(Decision, decision_id)
    if decision is None:
        raise AccessDenied(missing)
    target = session.get(Target, decision.target_id)
    assert target is not None
    case = session.get(Case, target.case_id)
    assert case is not None
    _check_access(session, actor, case, need, missing)
    return case, target, decision


def history(session: Session, target: Target) -> list[Decision]:
    """Every decision on the target, oldest first; superseded and rejected ones included."""
    return list(session.scalars(
        select(Decision).where(Decision.target_id == target.id)
        .order_by(Decision.proposed_at, Decision.id)
    ))


def stage(decision: Decision) -> str | None:
    """For an approved preserve-then-takedown: which step is approved, preserve or takedown."""
    if decision.kind != DecisionKind.PRESERVE_THEN_TAKEDOWN or \
            decision.state != DecisionState.APPROVED:
        return None
    return "takedown" if decision.takedown_approved_at is not None else "preserve"


def _deconfliction_state(session: Session, target: Target) -> dict[str, JsonValue]:
    hits = deconfliction.unresolved_hits(session, target)
    return {"checked_at": custody.format_time(utcnow()),
            "unresolved_hits": [str(h.id) for h in hits]}


# --- proposing ---------------------------------------------------------------------------------


def propose(
    session: Session,
    actor: User,
    case: Case,
    target: Target,
    *,
    kind: DecisionKind | str,
    rationale: str,
    preservation_waiver: str | None = None,
) -> Decision:
    """Propose a decision; the target's current one, if any, is superseded and kept."""
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    try:
        kind = DecisionKind(kind)
    except ValueError as exc:
        choices = ", ".join(k.value for k in DecisionKind)
        raise InvalidInput(f"decision kind must be one of {choices}, not {kind!r}") from exc
    rationale = rationale.strip()
    if not rationale:
        raise InvalidInput("a decision needs a rationale")
    if preservation_waiver is not None:
        preservation_waiver = preservation_waiver.strip() or None
        if preservation_waiver is None:
            raise InvalidInput("a preservation waiver needs a reason")
        if kind not in TAKEDOWN_KINDS:
            raise InvalidInput("a preservation waiver applies only to a takedown")
    current = list(session.scalars(
        select(Decision)
        .where(Decision.target_id == target.id, Decision.state.in_(CURRENT_STATES))
        .order_by(Decision.proposed_at, Decision.id)
    ))
    latest = session.scalars(
        select(Decision).where(Decision.target_id == target.id)
        .order_by(Decision.proposed_at.desc(), Decision.id.desc()).limit(1)
    ).first()
    decision = Decision(
        target_id=target.id, kind=kind, state=DecisionState.PROPOSED, rationale=rationale,
        proposed_by_id=actor.id, preservation_waiver=preservation_waiver,
        supersedes_id=None if latest is None else latest.id,
        deconfliction=_deconfliction_state(session, target),
    )
    session.add(decision)
    session.flush()
    for old in current:
        old.state = DecisionState.SUPERSEDED
        session.flush()
        custody.append(session, actor, action="decision.superseded", case=case,
                       object_type="decision", object_id=old.id,
                       details={"target": str(target.id), "by": str(decision.id)})
    custody.append(
        session, actor, action="decision.proposed", case=case, object_type="decision",
        object_id=decision.id,
        details={"target": str(target.id), "kind": kind.value, "rationale": rationale,
                 "preservation_waiver": preservation_waiver,
                 "supersedes": None if latest is None else str(latest.id)},
    )
    return decision


# --- approving and rejecting -------------------------------------------------------------------


def _check_decider(session: Session, actor: User, case: Case, decision: Decision,
                   verb: str) -> None:
    if actor.role not in APPROVER_ROLES:
        raise PermissionDenied(f"to {verb} a decision needs the supervisor or admin role; ask "
                               "a supervisor of the case")
    cases.require_open(case)
    if decision.proposed_by_id == actor.id:
        raise FourEyesViolation(
            f"four eyes: you proposed this decision, so you may not {verb} it; another "
            "supervisor must"
        )


def _has_complete_capture(session: Session, target: Target) -> bool:
    return session.scalars(
        select(Capture.id).where(Capture.target_id == target.id, captures.holds_the_page())
        .limit(1)
    ).first() is not None


def _names(identifier: Any, wanted: set[str]) -> bool:
    if isinstance(identifier, str):
        return identifier.strip() in wanted
    if isinstance(identifier, dict):
        return any(isinstance(identifier.get(k), str) and identifier[k].strip() in wanted
                   for k in _IDENTIFIER_KEYS)
    return False


def _target_names(session: Session, target: Target) -> set[str]:
    """The strings a request's identifiers may use for this target: id, URL, account id."""
    names = {str(target.id)}
    if target.url:
        names.add(target.url)
    if target.account_id is not None:
        account = session.get(Account, target.account_id)
        if account is not None:
            names.add(str(account.id))
            if account.platform_account_id:
                names.add(account.platform_account_id)
            if account.profile_url:
                names.add(account.profile_url)
    return names


def preservation_requests(session: Session, case: Case, target: Target) -> list[LegalRequest]:
    """The case's live preservation requests whose identifiers name the target."""
    requests = session.scalars(
        select(LegalRequest).where(LegalRequest.case_id == case.id,
                                   LegalRequest.kind.in_(PRESERVATION_KINDS),
                                   LegalRequest.status.not_in(DEAD_REQUEST_STATUSES))
        .order_by(LegalRequest.created_at, LegalRequest.id)
    ).all()
    names = _target_names(session, target)
    target_url = _normalised(target.url)
    found = []
    for request in requests:
        for identifier in request.identifiers or []:
            if _names(identifier, names) or (
                target_url is not None and _names_url(identifier, target_url)
            ):
                found.append(request)
                break
    return found


def _normalised(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        return deconfliction.normalise_url(url)
    except InvalidInput:
        return None


def _names_url(identifier: Any, normalised: str) -> bool:
    values = [identifier] if isinstance(identifier, str) else (
        [identifier.get(k) for k in _IDENTIFIER_KEYS] if isinstance(identifier, dict) else [])
    return any(isinstance(v, str) and _normalised(v) == normalised for v in values)


@dataclass(frozen=True)
class TakedownConditions:
    """What approving a takedown of the target needs, each condition looked up once: the page
    shows it as a checklist and `approve` refuses with the first of `unmet`."""

    complete_capture: bool
    unresolved_hits: int
    # The other units holding the target, each with its contact, to call about the hits.
    calls: tuple[str, ...]
    preservation_requests: tuple[LegalRequest, ...]
    preservation_waiver: str | None
    # Each unmet condition's refusal, in the order above: capture, deconfliction, preservation.
    unmet: tuple[CaptureMissing | DeconflictionHold | PreservationMissing, ...]

    @property
    def refusal(self) -> CaptureMissing | DeconflictionHold | PreservationMissing | None:
        return self.unmet[0] if self.unmet else None


def takedown_conditions(session: Session, case: Case, target: Target,
                        decision: Decision) -> TakedownConditions:
    """Whether a takedown of `target` under `decision` may be approved now, and why not."""
    unmet: list[CaptureMissing | DeconflictionHold | PreservationMissing] = []
    complete = _has_complete_capture(session, target)
    if not complete:
        unmet.append(CaptureMissing(f"takedown refused: {_capture_missing(session, target)}"))
    hits = deconfliction.unresolved_hits(session, target)
    calls = tuple(sorted({
        f"{other.owning_unit or 'a unit'} ({deconfliction.contact_of(session, other)})"
        for other in (session.get(Case, deconfliction.other_case_id(h, case.id))
                      for h in hits) if other is not None
    }))
    if hits:
        held_by = "another case" if len(calls) <= 1 else "other cases"
        unmet.append(DeconflictionHold(
            f"takedown refused: deconfliction hold, {counted(len(hits), 'unresolved hit')} with "
            f"{held_by}; call {', '.join(calls)}, then each case records its agreement on its "
            "deconfliction hits"
        ))
    requests = tuple(preservation_requests(session, case, target))
    if decision.preservation_waiver is None and not requests:
        unmet.append(PreservationMissing(f"takedown refused: {_preservation_missing(decision)}"))
    return TakedownConditions(
        complete_capture=complete, unresolved_hits=len(hits), calls=calls,
        preservation_requests=requests, preservation_waiver=decision.preservation_waiver,
        unmet=tuple(unmet))


def _capture_missing(session: Session, target: Target) -> str:
    """Why no complete capture exists yet, and what makes one."""
    waiting = [j for j in targets.jobs_of(session, target, unfinished_only=True)
               if j.state in (JobState.QUEUED, JobState.RUNNING)]
    if waiting:
        return ("no complete capture of this target exists yet, and one is queued or under "
                "way; approve once it is complete")
    tried = session.scalars(select(Capture.id).where(Capture.target_id == target.id)
                            .limit(1)).first() is not None
    answered = session.scalars(
        select(Capture.http_status).where(Capture.target_id == target.id,
                                          Capture.status == CaptureStatus.COMPLETE)
        .order_by(Capture.started_at.desc()).limit(1)).first()
    if answered is not None:
        return ("no capture of this target holds the page: each complete one kept an error "
                f"answer (the latest: {captures.http_answer(answered)}), not the page to take "
                "down; capture it again when it loads, and approve once that capture is complete")
    if tried:
        return ("no capture of this target is complete (each is partial or failed); capture it "
                "again and approve once a capture is complete")
    return "no capture of this target exists; capture it and approve once a capture is complete"


*_FIRST, _LAST = sorted(PRESERVATION_KINDS)
_KINDS_OF_PRESERVATION = f"{', '.join(_FIRST)} or {_LAST}"


def _preservation_missing(decision: Decision) -> str:
    """What the takedown of `decision` lacks when no preservation request names the target."""
    if stage(decision) == "preserve":
        # Its preserve step is approved: what it approved is a request, not made yet.
        return (f"the preserve step is approved, but no preservation request ("
                f"{_KINDS_OF_PRESERVATION}) names this target yet; have one generated naming "
                "it, then approve the takedown (or, if none is needed, have the decision "
                "proposed again with a preservation waiver saying why)")
    return (f"no preservation request ({_KINDS_OF_PRESERVATION}) names this target, and the "
            "decision waives none; have one generated naming it, or have the takedown proposed "
            "again with a preservation waiver saying why none is needed")


_DONE = {"approve": "approved", "reject": "rejected"}


def _where_now(decision: Decision) -> str:
    if decision.state == DecisionState.PROPOSED:
        return "awaiting approval"
    if stage(decision) == "preserve":
        return "its preserve step approved"
    return f"{decision.state} since"


def not_pending(session: Session, decision: Decision, verb: str) -> DecisionNotPending:
    """Why `decision` can no longer be approved or rejected (`verb`): decided or superseded
    meanwhile, by whom and when, and what the supervisor does instead."""
    done = _DONE[verb]
    this = f"this {decision.kind} decision"
    if decision.state == DecisionState.SUPERSEDED:
        target = session.get(Target, decision.target_id)
        assert target is not None
        # The newest is never superseded itself: only a newer proposal supersedes.
        newest = history(session, target)[-1]
        by = case_reads.user_names(session, [newest.proposed_by_id])[newest.proposed_by_id]
        return DecisionNotPending(
            f"{this} has been superseded: a newer decision was proposed, a {newest.kind} by "
            f"{by} at {to_the_second(newest.proposed_at)}, {_where_now(newest)}; read it before "
            f"you decide, as this one can no longer be {done}")
    names = case_reads.user_names(session, [decision.decided_by_id,
                                            decision.takedown_approved_by_id])
    decider = names.get(decision.decided_by_id, "unknown") if decision.decided_by_id else "unknown"
    at = "" if decision.decided_at is None else f" at {to_the_second(decision.decided_at)}"
    if decision.state == DecisionState.REJECTED:
        if verb == "reject":
            return DecisionNotPending(f"{this} was rejected already, by {decider}{at}; nothing "
                                      "is left to reject")
        return DecisionNotPending(
            f"{this} was rejected by {decider}{at}, so it can no longer be approved; their "
            "reason is in the decision history; if a decision is still needed, it has to be "
            "proposed again")
    if verb == "approve":
        if decision.takedown_approved_at is not None and decision.takedown_approved_by_id:
            at = to_the_second(decision.takedown_approved_at)
            return DecisionNotPending(
                f"{this} is approved already, both its steps (the takedown by "
                f"{names[decision.takedown_approved_by_id]} at {at}); nothing is left to "
                "approve")
        return DecisionNotPending(f"{this} was approved already, by {decider}{at}; nothing is "
                                  "left to approve")
    if stage(decision) == "preserve":
        return DecisionNotPending(
            f"the preserve step of {this} was approved by {decider}{at}, so it can no longer be "
            "rejected; to stop its takedown, a new decision (preserve or monitor) has to be "
            "proposed, which supersedes it")
    return DecisionNotPending(
        f"{this} was approved by {decider}{at}, so it can no longer be rejected; to change "
        "course, a new decision has to be proposed, which supersedes it")


def approval_step(decision: Decision) -> str | None:
    """What approving `decision` now approves: "takedown" (a takedown proposal, or the second
    step of an approved preserve-then-takedown), "preserve" (the first step of a
    preserve-then-takedown), None (a proposal of no step), or "nothing" when nothing is left
    to approve (`not_pending` says why)."""
    if decision.state == DecisionState.PROPOSED:
        if decision.kind == DecisionKind.TAKEDOWN:
            return "takedown"
        return "preserve" if decision.kind == DecisionKind.PRESERVE_THEN_TAKEDOWN else None
    if decision.state == DecisionState.APPROVED and stage(decision) == "preserve":
        return "takedown"
    return "nothing"


def approve(
    session: Session, actor: User, case: Case, target: Target, decision: Decision, *,
    note: str | None = None,
) -> Decision:
    """Approve a proposal, or the takedown step of an approved preserve-then-takedown."""
    _check_decider(session, actor, case, decision, "approve")
    now = utcnow()
    step = approval_step(decision)
    if step == "nothing":
        raise not_pending(session, decision, "approve")
    if step == "takedown":
        refusal = takedown_conditions(session, case, target, decision).refusal
        if refusal is not None:
            raise refusal
        decision.takedown_approved_by_id = actor.id
        decision.takedown_approved_at = now
    if decision.state == DecisionState.PROPOSED:
        decision.state = DecisionState.APPROVED
        decision.decided_by_id = actor.id
        decision.decided_at = now
        decision.decision_note = note
    decision.deconfliction = _deconfliction_state(session, target)
    session.flush()
    custody.append(
        session, actor, action="decision.approved", case=case, object_type="decision",
        object_id=decision.id,
        details={"target": str(target.id), "kind": decision.kind, "step": step, "note": note},
    )
    return decision


def reject(
    session: Session, actor: User, case: Case, target: Target, decision: Decision, *,
    reason: str,
) -> Decision:
    _check_decider(session, actor, case, decision, "reject")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the decision is rejected")
    if decision.state != DecisionState.PROPOSED:
        raise not_pending(session, decision, "reject")
    decision.state = DecisionState.REJECTED
    decision.decided_by_id = actor.id
    decision.decided_at = utcnow()
    decision.decision_note = reason
    session.flush()
    custody.append(
        session, actor, action="decision.rejected", case=case, object_type="decision",
        object_id=decision.id,
        details={"target": str(target.id), "kind": decision.kind, "reason": reason},
    )
    return decision
