"""Cases and their members: creation, access checks, closing, and the case's custody history.

Access is deny by default: only members see a case. A case someone may not see is reported as
not found, so that its existence does not leak.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import custody
from evidence.errors import AccessDenied, CaseClosed, Conflict, DuplicateReference, InvalidInput
from evidence.models import Access, Case, CaseMember, CaseStatus, CustodyEntry, User, utcnow

REFERENCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
JURISDICTION_PATTERN = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
ACCESS_ORDER = {Access.READ: 1, Access.WRITE: 2, Access.MANAGE: 3}


def _access_of(session: Session, actor: User, case: Case) -> Access | None:
    value = session.scalars(
        select(CaseMember.access).where(
            CaseMember.case_id == case.id, CaseMember.user_id == actor.id
        )
    ).first()
    return None if value is None else Access(value)


def require_access(session: Session, actor: User, case: Case, need: Access) -> None:
    have = _access_of(session, actor, case)
    if have is None or ACCESS_ORDER[have] < ACCESS_ORDER[need]:
        if have is None:
            raise AccessDenied(f"no case {case.reference!r}")
        raise AccessDenied(
            f"case {case.reference!r} needs {need.value} access; you have {have.value}",
            status_code=403,
        )


def get_case(
    session: Session, actor: User, reference: str, *, need: Access = Access.READ
) -> Case:
    case = session.scalars(select(Case).where(Case.reference == reference)).first()
    if case is None:
        raise AccessDenied(f"no case {reference!r}")
    require_access(session, actor, case, need)
    return case


def require_open(case: Case) -> None:
    if case.status != CaseStatus.OPEN:
        raise CaseClosed(f"case {case.reference!r} is closed")


def create_case(
    session: Session,
    actor: User,
    *,
    reference: str,
    title: str,
    offence: str | None = None,
    jurisdiction: str | None = None,
    handling_code: str | None = None,
) -> Case:
    reference = reference.strip()
    if not REFERENCE_PATTERN.match(reference):
        raise InvalidInput(
            f"case reference {reference!r} must be 1-100 letters, digits or . _ / - and start "
            "with a letter or digit"
        )
    title = title.strip()
    if not title:
        raise InvalidInput("a case needs a title")
    if jurisdiction is not None:
        jurisdiction = jurisdiction.strip().upper()
        if not JURISDICTION_PATTERN.match(jurisdiction):
            raise InvalidInput(
                f"jurisdiction {jurisdiction!r} must be an ISO 3166 country code such as DE or GR"
            )
    if session.scalars(select(Case.id).where(Case.reference == reference)).first() is not None:
        raise DuplicateReference(f"case {reference!r} already exists")
    case = Case(
        reference=reference,
        title=title,
        offence=offence,
        jurisdiction=jurisdiction,
        handling_code=handling_code,
        owning_unit=actor.unit,
        created_by_id=actor.id,
        status=CaseStatus.OPEN,
    )
    session.add(case)
    session.flush()
    custody.append(
        session,
        actor,
        action="case.created",
        case=case,
        object_type="case",
        object_id=case.id,
        details={
            "reference": reference,
            "title": title,
            "offence": offence,
            "jurisdiction": jurisdiction,
            "handling_code": handling_code,
            "owning_unit": actor.unit,
        },
    )
    _add_member(session, actor, case, actor, Access.MANAGE)
    return case


def _add_member(
    session: Session, actor: User, case: Case, user: User, access: Access
) -> CaseMember:
    member = CaseMember(case_id=case.id, user_id=user.id, access=access, added_by_id=actor.id)
    session.add(member)
    session.flush()
    custody.append(
        session,
        actor,
        action="case.member_added",
        case=case,
        object_type="user",
        object_id=user.id,
        details={"user": user.name, "access": access.value},
    )
    return member


def add_member(
    session: Session, actor: User, case: Case, user: User, access: Access | str
) -> CaseMember:
    require_access(session, actor, case, Access.MANAGE)
    try:
        access = Access(access)
    except ValueError as exc:
        raise InvalidInput(f"access must be read, write or manage, not {access!r}") from exc
    existing = session.scalars(
        select(CaseMember).where(CaseMember.case_id == case.id, CaseMember.user_id == user.id)
    ).first()
    if existing is not None:
        if existing.access == access:
            return existing
        before = existing.access
        existing.access = access
        custody.append(
            session,
            actor,
            action="case.member_changed",
            case=case,
            object_type="user",
            object_id=user.id,
            details={"user": user.name, "access": access.value, "was": before},
        )
        return existing
    return _add_member(session, actor, case, user, access)


def remove_member(session: Session, actor: User, case: Case, user: User) -> None:
    require_access(session, actor, case, Access.MANAGE)
    member = session.scalars(
        select(CaseMember).where(CaseMember.case_id == case.id, CaseMember.user_id == user.id)
    ).first()
    if member is None:
        raise InvalidInput(f"{user.name!r} is not a member of case {case.reference!r}")
    if member.access == Access.MANAGE:
        managers = session.scalars(
            select(CaseMember.id).where(
                CaseMember.case_id == case.id, CaseMember.access == Access.MANAGE
            )
        ).all()
        if len(managers) == 1:
            raise Conflict(f"{user.name!r} is the last manager of case {case.reference!r}")
    session.delete(member)
    custody.append(
        session,
        actor,
        action="case.member_removed",
        case=case,
        object_type="user",
        object_id=user.id,
        details={"user": user.name},
    )


def list_cases(session: Session, actor: User, *, record: bool = True) -> list[Case]:
    """The cases the actor is a member of; the listing itself is recorded as an access."""
    cases = list(
        session.scalars(
            select(Case)
            .join(CaseMember, CaseMember.case_id == Case.id)
            .where(CaseMember.user_id == actor.id)
            .order_by(Case.created_at, Case.reference)
        )
    )
    if record:
        custody.append(
            session,
            actor,
            action="cases.listed",
            details={"references": [c.reference for c in cases]},
        )
    return cases


def view_case(session: Session, actor: User, reference: str) -> tuple[Case, list[CustodyEntry]]:
    """The case and its custody history; the viewing is itself recorded in that history."""
    case = get_case(session, actor, reference)
    custody.append(
        session, actor, action="case.viewed", case=case, object_type="case", object_id=case.id
    )
    return case, custody.entries_for_case(session, case)


def _set_status(
    session: Session, actor: User, case: Case, status: CaseStatus, reason: str | None
) -> Case:
    require_access(session, actor, case, Access.MANAGE)
    if case.status == status:
        raise Conflict(f"case {case.reference!r} is already {status.value}")
    case.status = status
    case.closed_at = utcnow() if status == CaseStatus.CLOSED else None
    custody.append(
        session,
        actor,
        action="case.closed" if status == CaseStatus.CLOSED else "case.reopened",
        case=case,
        object_type="case",
        object_id=case.id,
        details={"reason": reason},
    )
    return case


def close_case(session: Session, actor: User, case: Case, *, reason: str | None = None) -> Case:
    return _set_status(session, actor, case, CaseStatus.CLOSED, reason)


def reopen_case(session: Session, actor: User, case: Case, *, reason: str | None = None) -> Case:
    return _set_status(session, actor, case, CaseStatus.OPEN, reason)
