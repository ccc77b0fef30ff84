"""Deconfliction hits of a case: whom to call in the other unit, and recording agreement."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import CaseRef, CurrentUser, DbSession, PageParams
from api.schemas import ERROR_RESPONSES, ErrorRead, PageRead
from api.schemas_decisions import AgreementRead, HitRead, HitResolve
from evidence import cases, deconfliction
from evidence.models import Access

router = APIRouter(prefix="/api/cases/{ref}/deconfliction", tags=["deconfliction"],
                   responses=ERROR_RESPONSES)
RESOLVE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorRead, "description": "Needs write access."},
    409: {"model": ErrorRead, "description": "This case has already agreed."}}


def _read(view: deconfliction.HitView) -> HitRead:
    return HitRead(
        id=view.hit.id, kind=view.hit.kind, target_id=view.target_id,
        created_at=view.hit.created_at, resolved=view.resolved, resolved_at=view.hit.resolved_at,
        other_unit=view.other_unit, other_contact=view.other_contact,
        agreements=[AgreementRead(this_case=a.this_case, user=a.user, unit=a.unit,
                                  agreed_at=a.agreed_at, note=a.note) for a in view.agreements],
    )


@router.get("/hits", response_model=PageRead[HitRead])
def list_hits(
    ref: CaseRef, session: DbSession, actor: CurrentUser, paging: PageParams,
    unresolved: Annotated[bool, Query(description="Only the hits not resolved yet.")] = False,
) -> PageRead[HitRead]:
    """Other cases holding one of this case's selectors, oldest first: their unit and contact,
    nothing else."""
    case = cases.case_for(session, actor, ref)
    page = deconfliction.page_hits(session, case, limit=paging.limit, cursor=paging.cursor,
                                   unresolved_only=unresolved)
    return PageRead[HitRead](items=[_read(v) for v in page.items],
                             next=paging.next_link(page.next_cursor))


@router.get("/hits/{hit_id}", response_model=HitRead)
def show_hit(ref: CaseRef, hit_id: uuid.UUID, session: DbSession, actor: CurrentUser) -> HitRead:
    """One hit, with who has agreed so far."""
    case = cases.case_for(session, actor, ref)
    return _read(deconfliction.hit_of_case(session, case, hit_id))


@router.post("/hits/{hit_id}/resolve", response_model=HitRead, responses=RESOLVE)
def resolve_hit(ref: CaseRef, hit_id: uuid.UUID, body: HitResolve, session: DbSession,
                actor: CurrentUser) -> HitRead:
    """Record that this case agrees, after talking to the other unit; the hit is resolved (and
    stops holding takedowns) once the other case has recorded its agreement too."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    return _read(deconfliction.agree(session, actor, case, hit_id, note=body.note))
