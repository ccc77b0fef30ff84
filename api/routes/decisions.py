"""Decisions on a target (preserve, takedown, preserve-then-takedown, monitor) and their
four-eyes approval. Addressed by target and decision id; a caller who may not see the case is
told the id does not exist."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from api.deps import CurrentUser, DbSession
from api.schemas import ERROR_RESPONSES, ErrorRead
from api.schemas_decisions import (
    DecisionApprove,
    DecisionCreate,
    DecisionList,
    DecisionRead,
    DecisionReject,
)
from evidence import decisions
from evidence.models import Access, Decision, DecisionState

router = APIRouter(prefix="/api", tags=["decisions"], responses=ERROR_RESPONSES)
PROPOSE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorRead, "description": "Needs write access."},
    409: {"model": ErrorRead, "description": "The case is closed."}}
DECIDE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorRead, "description": "Needs the supervisor or admin role."},
    409: {"model": ErrorRead, "description": "FourEyesViolation, DecisionNotPending, "
          "CaptureMissing, DeconflictionHold, PreservationMissing or CaseClosed."}}


def _read(decision: Decision) -> DecisionRead:
    return DecisionRead.model_validate(decision).model_copy(
        update={"stage": decisions.stage(decision)})


@router.post("/targets/{target_id}/decisions", response_model=DecisionRead,
             status_code=status.HTTP_201_CREATED, responses=PROPOSE)
def propose_decision(target_id: uuid.UUID, body: DecisionCreate, session: DbSession,
                     actor: CurrentUser) -> DecisionRead:
    """Propose what to do with the target; supersedes its current decision, which is kept."""
    case, target = decisions.target_for(session, actor, target_id, need=Access.WRITE)
    decision = decisions.propose(session, actor, case, target, kind=body.kind,
                                 rationale=body.rationale,
                                 preservation_waiver=body.preservation_waiver)
    return _read(decision)


@router.get("/targets/{target_id}/decisions", response_model=DecisionList)
def list_decisions(target_id: uuid.UUID, session: DbSession, actor: CurrentUser) -> (
    DecisionList
):
    """Every decision on the target, oldest first, and the current one."""
    _case, target = decisions.target_for(session, actor, target_id)
    items = [_read(d) for d in decisions.history(session, target)]
    current = [d for d in items if d.state in (DecisionState.PROPOSED, DecisionState.APPROVED)]
    return DecisionList(items=items, current=current[-1] if current else None)


@router.get("/decisions/{decision_id}", response_model=DecisionRead)
def show_decision(decision_id: uuid.UUID, session: DbSession, actor: CurrentUser) -> (
    DecisionRead
):
    """One decision."""
    _case, _target, decision = decisions.decision_for(session, actor, decision_id)
    return _read(decision)


@router.post("/decisions/{decision_id}/approve", response_model=DecisionRead, responses=DECIDE)
def approve_decision(decision_id: uuid.UUID, body: DecisionApprove, session: DbSession,
                     actor: CurrentUser) -> DecisionRead:
    """Approve (a supervisor who did not propose it); a preserve-then-takedown is approved
    twice, its second approval being the takedown step. A takedown needs a complete capture,
    no unresolved deconfliction hit and a preservation request or waiver."""
    case, target, decision = decisions.decision_for(session, actor, decision_id)
    return _read(decisions.approve(session, actor, case, target, decision, note=body.note))


@router.post("/decisions/{decision_id}/reject", response_model=DecisionRead, responses=DECIDE)
def reject_decision(decision_id: uuid.UUID, body: DecisionReject, session: DbSession,
                    actor: CurrentUser) -> DecisionRead:
    """Reject a proposed decision, saying why (a supervisor who did not propose it)."""
    case, target, decision = decisions.decision_for(session, actor, decision_id)
    return _read(decisions.reject(session, actor, case, target, decision, reason=body.reason))
