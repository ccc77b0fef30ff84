"""Cases, their members and their custody timeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from api.deps import CaseRef, CurrentUser, DbSession, PageParams
from api.schemas import (
    ERROR_RESPONSES,
    ActorRead,
    AuditCaseRead,
    CaseCreate,
    CaseRead,
    CaseStatusChange,
    CaseUpdate,
    ErrorRead,
    MemberCreate,
    MemberRead,
    ObjectRef,
    PageRead,
    TimelineEntryRead,
)
from evidence import cases, custody
from evidence.models import Access, Case, CaseMember, CustodyEntry, User

router = APIRouter(prefix="/api", tags=["cases"], responses=ERROR_RESPONSES)
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorRead, "description": "Clashes with the case's state."}}


def _member(member: CaseMember, user: User) -> MemberRead:
    return MemberRead(user=user.name, display_name=user.display_name, role=user.role,
                      unit=user.unit, access=Access(member.access), added_at=member.added_at)


def _with_access(session: DbSession, actor: User, case: Case) -> CaseRead:
    read = CaseRead.model_validate(case)
    read.access = cases.access_of(session, actor, case)
    return read


@router.post("/cases", status_code=status.HTTP_201_CREATED, response_model=CaseRead,
             responses={403: {"model": ErrorRead}, **CONFLICT})
def create_case(body: CaseCreate, session: DbSession, actor: CurrentUser) -> CaseRead:
    """Open a case; the caller becomes its manager."""
    cases.check_may_create(actor)
    case = cases.create_case(session, actor, reference=body.reference, title=body.title,
                             offence=body.offence, jurisdiction=body.jurisdiction,
                             handling_code=body.handling_code, facts=body.facts,
                             offence_provision=body.offence_provision,
                             max_penalty_years=body.max_penalty_years,
                             contact=body.contact)
    return _with_access(session, actor, case)


@router.get("/cases", response_model=PageRead[CaseRead])
def list_cases(session: DbSession, actor: CurrentUser, paging: PageParams) -> PageRead[CaseRead]:
    """The cases the caller is a member of, oldest first."""
    page = cases.page_cases(session, actor, limit=paging.limit, cursor=paging.cursor)
    return PageRead[CaseRead](items=[CaseRead.model_validate(c) for c in page.items],
                              next=paging.next_link(page.next_cursor))


@router.get("/audit/cases", response_model=PageRead[AuditCaseRead], tags=["audit"])
def audit_cases(session: DbSession, actor: CurrentUser, paging: PageParams) -> (
    PageRead[AuditCaseRead]
):
    """For auditors: every case's reference, to read its custody timeline. Not found for others."""
    page = cases.audit_cases(session, actor, limit=paging.limit, cursor=paging.cursor)
    return PageRead[AuditCaseRead](items=[AuditCaseRead.model_validate(c) for c in page.items],
                                   next=paging.next_link(page.next_cursor))


@router.get("/cases/{ref}", response_model=CaseRead)
def show_case(ref: CaseRef, session: DbSession, actor: CurrentUser) -> CaseRead:
    """One case; the viewing is recorded in its custody log."""
    return _with_access(session, actor, cases.show_case(session, actor, ref))


@router.patch("/cases/{ref}", response_model=CaseRead, responses={403: {"model": ErrorRead}})
def update_case(ref: CaseRef, body: CaseUpdate, session: DbSession, actor: CurrentUser) -> (
    CaseRead
):
    """Change what the case says (managers): title, offence, its provision, maximum penalty and
    facts, jurisdiction, handling code, deconfliction contact. Only the fields sent change; one
    custody entry records them."""
    case = cases.case_for(session, actor, ref)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return _with_access(session, actor, cases.update_case(session, actor, case, changes))


@router.post("/cases/{ref}/close", response_model=CaseRead,
             responses={403: {"model": ErrorRead}, **CONFLICT})
def close_case(ref: CaseRef, body: CaseStatusChange, session: DbSession, actor: CurrentUser) -> (
    CaseRead
):
    """Close the case: it then refuses new targets and captures (409)."""
    case = cases.case_for(session, actor, ref)
    return _with_access(session, actor, cases.close_case(session, actor, case, reason=body.reason))


@router.post("/cases/{ref}/reopen", response_model=CaseRead,
             responses={403: {"model": ErrorRead}, **CONFLICT})
def reopen_case(ref: CaseRef, body: CaseStatusChange, session: DbSession, actor: CurrentUser) -> (
    CaseRead
):
    """Reopen a closed case."""
    case = cases.case_for(session, actor, ref)
    return _with_access(session, actor,
                        cases.reopen_case(session, actor, case, reason=body.reason))


@router.get("/cases/{ref}/members", response_model=list[MemberRead])
def list_members(ref: CaseRef, session: DbSession, actor: CurrentUser) -> list[MemberRead]:
    """Who has access to the case, and what access."""
    case = cases.case_for(session, actor, ref)
    return [_member(m, u) for m, u in cases.members_of(session, actor, case)]


@router.post("/cases/{ref}/members", response_model=MemberRead,
             responses={403: {"model": ErrorRead}})
def add_member(ref: CaseRef, body: MemberCreate, session: DbSession, actor: CurrentUser) -> (
    MemberRead
):
    """Give a user access to the case, or change the access they have (managers)."""
    case = cases.case_for(session, actor, ref)
    member, user = cases.grant(session, actor, case, body.user, body.access)
    return _member(member, user)


@router.delete("/cases/{ref}/members/{user}", status_code=status.HTTP_204_NO_CONTENT,
               responses={403: {"model": ErrorRead}, **CONFLICT})
def remove_member(ref: CaseRef, user: str, session: DbSession, actor: CurrentUser) -> None:
    """Take a user's access away (managers); the last manager stays."""
    case = cases.case_for(session, actor, ref)
    cases.revoke(session, actor, case, user)


def _entry(entry: CustodyEntry) -> TimelineEntryRead:
    doc = custody.describe(entry)
    return TimelineEntryRead(
        seq=doc["seq"], case_seq=doc.get("case_seq"), at=doc["at"],
        actor=None if doc.get("actor") is None else ActorRead(**doc["actor"]),
        action=doc["action"],
        object=None if doc.get("object") is None else ObjectRef(**doc["object"]),
        sha256=doc.get("sha256"), details=doc.get("details") or {},
        leaf_hash=bytes(entry.leaf_hash).hex(),
    )


@router.get("/cases/{ref}/timeline", response_model=PageRead[TimelineEntryRead],
            tags=["audit"])
def timeline(ref: CaseRef, session: DbSession, actor: CurrentUser, paging: PageParams) -> (
    PageRead[TimelineEntryRead]
):
    """The case's custody entries in order: read-only, for members and for auditors."""
    _case, page = cases.timeline(session, actor, ref, limit=paging.limit, cursor=paging.cursor)
    return PageRead[TimelineEntryRead](items=[_entry(e) for e in page.items],
                                       next=paging.next_link(page.next_cursor))
