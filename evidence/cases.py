"""Cases and their members: creation, access checks, closing, and the case's custody history.

Access is deny by default: only members see a case. A case someone may not see is reported as
not found, so that its existence does not leak.

A case also holds what legal requests say of its offence: the statutory provision, the maximum
custodial penalty in years and a summary of the facts. The maximum is a number of years above 0
and at most 100; a life sentence is not a number of years, so it is refused as one: name it in
the provision (e.g. "§ 211 StGB, life imprisonment") and leave the maximum empty. The facts may
name people, so the custody log keeps their SHA-256, never the text (as for notes).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import custody, users
from evidence.canonical import JsonValue
from evidence.countries import country_code
from evidence.errors import (
    AccessDenied,
    CaseClosed,
    Conflict,
    DuplicateReference,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from evidence.models import Access, Case, CaseMember, CaseStatus, CustodyEntry, Role, User, utcnow
from evidence.pagination import Page, paginate
from evidence.users import NAME_PATTERN

REFERENCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
JURISDICTION_PATTERN = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
ACCESS_ORDER = {Access.READ: 1, Access.WRITE: 2, Access.MANAGE: 3}
MAX_PENALTY_YEARS = 100


def _optional_text(value: str | None) -> str | None:
    """Stripped text, or None for nothing or only white space (the case then holds none)."""
    if value is None:
        return None
    return value.strip() or None


CONTACT_MAX = 500


def _contact(value: str | None) -> str | None:
    """Whom another unit should call when deconfliction finds this case holds what it holds
    (a name, desk, phone); none means whoever opened the case."""
    contact = _optional_text(value)
    if contact is not None and len(contact) > CONTACT_MAX:
        raise InvalidInput(f"contact must be at most {CONTACT_MAX} characters")
    return contact


def _penalty_years(value: float | int | str | None) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"maximum penalty {value!r} is not a number of years")
    try:
        years = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"maximum penalty {value!r} is not a number of years") from exc
    if not math.isfinite(years) or not 0 < years <= MAX_PENALTY_YEARS:
        raise InvalidInput(
            f"maximum penalty must be more than 0 and at most {MAX_PENALTY_YEARS} years, not "
            f"{value!r}; for a life sentence name it in the provision and give no maximum"
        )
    return years


MAX_TITLE = 500  # the column's length


def _reference(value: str | None) -> str:
    reference = (value or "").strip()
    if not REFERENCE_PATTERN.match(reference):
        raise InvalidInput(
            f"case reference {reference!r} must be 1-100 letters, digits or . _ / - and start "
            "with a letter or digit"
        )
    return reference


def _title(value: str | None) -> str:
    title = (value or "").strip()
    if not title:
        raise InvalidInput("a case needs a title")
    if len(title) > MAX_TITLE:
        raise InvalidInput(f"a case title holds at most {MAX_TITLE} characters, not {len(title)}")
    if any(unicodedata.category(c) == "Cc" for c in title):
        raise InvalidInput("a case title is one line: no line breaks, tabs or control characters")
    return title


def _jurisdiction(value: str | None) -> str | None:
    """An ISO 3166-1 country code, or one of its subdivisions in ISO 3166-2 form (US-CA);
    nothing (None or blank) for a case filed under no state."""
    jurisdiction = _optional_text(value)
    if jurisdiction is None:
        return None
    jurisdiction = jurisdiction.upper()
    if not JURISDICTION_PATTERN.match(jurisdiction):
        raise InvalidInput(
            f"jurisdiction {jurisdiction!r} must be an ISO 3166 country code such as DE or GR, "
            "or a subdivision such as US-CA"
        )
    country, _, subdivision = jurisdiction.partition("-")
    return country_code(country, "jurisdiction") + (f"-{subdivision}" if subdivision else "")


def _json_value(value: str | float | None) -> JsonValue:
    # Custody entries refuse floats (evidence/canonical.py): years are recorded as text.
    return f"{value:g}" if isinstance(value, float) else value


def _text_sha256(text: str | float | None) -> str | None:
    return None if text is None else hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def _access_of(session: Session, actor: User, case: Case) -> Access | None:
    value = session.scalars(
        select(CaseMember.access).where(
            CaseMember.case_id == case.id, CaseMember.user_id == actor.id
        )
    ).first()
    return None if value is None else Access(value)


def require_access(session: Session, actor: User, case: Case, need: Access) -> None:
    if not actor.is_active:
        # Membership outlives disabling, so enabling the user again restores it.
        raise PermissionDenied(f"user {actor.name!r} is disabled")
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
    facts: str | None = None,
    offence_provision: str | None = None,
    max_penalty_years: float | str | None = None,
    contact: str | None = None,
) -> Case:
    """Open a case; the actor becomes its manager. The maximum penalty may come as text (the
    CLI's), so that it is checked, and its errors worded, in one place; every value refused is
    said at once (`checked_new_case`)."""
    values = checked_new_case(session, {
        "reference": reference, "title": title, "offence": offence,
        "offence_provision": offence_provision, "max_penalty_years": max_penalty_years,
        "facts": facts, "jurisdiction": jurisdiction, "handling_code": handling_code,
        "contact": contact})
    case = Case(
        **values,
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
            **{name: _json_value(value) for name, value in values.items() if name != "facts"},
            "facts_sha256": _text_sha256(values["facts"]),
            "owning_unit": actor.unit,
        },
    )
    _add_member(session, actor, case, actor, Access.MANAGE)
    return case


def checked_new_case(session: Session, given: Mapping[str, str | float | None]
                     ) -> dict[str, str | float | None]:
    """The values of a case to open (`checked_values`) and its reference free, whatever the
    capital letters. Every value refused, a reference taken among them, is said at once
    (`InvalidInput.of_fields`); a reference taken and nothing else is a `DuplicateReference`."""
    refused: dict[str, str] = {}
    values: dict[str, str | float | None] = {}
    try:
        values = checked_values(given)
    except InvalidInput as exc:
        refused = dict(exc.fields)
    reference = str(given.get("reference") or "").strip()
    taken = None if "reference" in refused or "reference" not in given else session.scalars(
        select(Case.reference).where(func.lower(Case.reference) == reference.lower())).first()
    if taken is not None:
        # References that differ only in case name the same bundle file on most disks, and the
        # same case to a person reading them out.
        said = (f"case {taken!r} already exists" if taken == reference else
                f"case {taken!r} already exists ({reference!r} differs only in capital letters)")
        if not refused:
            raise DuplicateReference(said)
        refused["reference"] = said
    if refused:
        raise InvalidInput.of_fields({name: refused[name] for name in given if name in refused})
    return values


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
        if existing.access == Access.MANAGE:
            # Else a manager could leave the case with nobody to add or remove members.
            _refuse_last_manager(session, case, user)
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


def _refuse_last_manager(session: Session, case: Case, user: User) -> None:
    """Refuse to take manage access from `user` (a manager) when nobody else has it."""
    managers = session.scalars(
        select(CaseMember.id).where(
            CaseMember.case_id == case.id, CaseMember.access == Access.MANAGE
        )
    ).all()
    if len(managers) == 1:
        raise Conflict(f"{user.name!r} is the last manager of case {case.reference!r}; "
                       "make someone else a manager first")


def remove_member(session: Session, actor: User, case: Case, user: User) -> None:
    require_access(session, actor, case, Access.MANAGE)
    member = session.scalars(
        select(CaseMember).where(CaseMember.case_id == case.id, CaseMember.user_id == user.id)
    ).first()
    if member is None:
        raise InvalidInput(f"{user.name!r} is not a member of case {case.reference!r}")
    if member.access == Access.MANAGE:
        _refuse_last_manager(session, case, user)
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
    from evidence import targets  # it imports this module

    details: dict[str, JsonValue] = {"reason": reason}
    if status == CaseStatus.CLOSED:
        stopped, cancelled = targets.stop_watches_of_closing_case(session, actor, case,
                                                                  reason=reason)
        details["watches_stopped"] = [str(t.id) for t in stopped]
        details["jobs_cancelled"] = [str(i) for i in cancelled]
    else:
        # Said in the log, and by the CLI: reopening restarts no watch.
        details["watches_left_stopped"] = [
            str(t.id) for t in targets.watches_stopped_by_close(session, case)]
    custody.append(
        session,
        actor,
        action="case.closed" if status == CaseStatus.CLOSED else "case.reopened",
        case=case,
        object_type="case",
        object_id=case.id,
        details=details,
    )
    return case


def close_case(session: Session, actor: User, case: Case, *, reason: str | None = None) -> Case:
    return _set_status(session, actor, case, CaseStatus.CLOSED, reason)


def reopen_case(session: Session, actor: User, case: Case, *, reason: str | None = None) -> Case:
    return _set_status(session, actor, case, CaseStatus.OPEN, reason)


# --- used by the HTTP API (and open to the CLI) ----------------------------------------------

# An auditor reads every case's custody log but no evidence, so is never a member of a case and
# never opens one; every other role may open cases and be given access to them.
EDITABLE_FIELDS = ("title", "offence", "offence_provision", "max_penalty_years", "facts",
                   "jurisdiction", "handling_code", "contact")


def check_may_create(actor: User) -> None:
    if actor.role == Role.AUDITOR:
        raise PermissionDenied("an auditor reads custody logs and does not open cases")


def case_for(
    session: Session, actor: User, reference: str, *, need: Access = Access.READ
) -> Case:
    """The case, for someone who may see its evidence; anyone else is told it does not exist."""
    if actor.role == Role.AUDITOR:
        raise AccessDenied(f"no case {reference!r}")
    return get_case(session, actor, reference, need=need)


def show_case(session: Session, actor: User, reference: str) -> Case:
    """The case, its viewing recorded in its custody history."""
    case = case_for(session, actor, reference)
    custody.append(
        session, actor, action="case.viewed", case=case, object_type="case", object_id=case.id
    )
    return case


def page_cases(
    session: Session, actor: User, *, limit: int, cursor: str | None
) -> Page[Case]:
    """One page of the cases the actor is a member of; the listing is recorded as an access."""
    page = paginate(
        session,
        select(Case)
        .join(CaseMember, CaseMember.case_id == Case.id)
        .where(CaseMember.user_id == actor.id),
        key=(Case.created_at, Case.id), limit=limit, cursor=cursor,
    )
    custody.append(session, actor, action="cases.listed",
                   details={"references": [c.reference for c in page.items]})
    return page


def audit_cases(
    session: Session, actor: User, *, limit: int, cursor: str | None
) -> Page[Case]:
    """Every case, for an auditor choosing whose custody log to read; others see no such list."""
    if not users.audits(actor.role):
        raise NotFound("no such list")
    return paginate(session, select(Case), key=(Case.created_at, Case.id), limit=limit,
                    cursor=cursor)


def access_of(session: Session, actor: User, case: Case) -> Access | None:
    return _access_of(session, actor, case)


def update_case(
    session: Session, actor: User, case: Case, changes: Mapping[str, str | float | None]
) -> Case:
    """Change the case's description; a manager's work, recorded field by field.

    Only the fields named in `changes` are touched (None clears one); the changed ones, with
    their old and new values (the facts as SHA-256), go into one `case.updated` custody entry.
    """
    require_access(session, actor, case, Access.MANAGE)
    # A closed case stands as it was closed: reopening it (recorded, with a reason) comes first.
    require_open(case)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a case")
    cleaned = checked_values(changes)
    changed: dict[str, JsonValue] = {}
    for name, value in cleaned.items():
        before = getattr(case, name)
        if before != value:
            setattr(case, name, value)
            changed[name] = _change_record(name, before, value)
    if changed:
        session.flush()
        custody.append(session, actor, action="case.updated", case=case, object_type="case",
                       object_id=case.id, details={"changes": changed})
    return case


def checked_values(values: Mapping[str, str | float | None]) -> dict[str, str | float | None]:
    """A case's values by field name (its reference too), each cleaned by its own rule as
    opening and editing a case clean them; every one refused is said at once, each by its
    field (`InvalidInput.of_fields`)."""
    cleaned: dict[str, str | float | None] = {}
    refused: dict[str, str] = {}
    for name, value in values.items():
        try:
            cleaned[name] = _cleaned(name, value)
        except InvalidInput as exc:
            refused[name] = exc.message
    if refused:
        raise InvalidInput.of_fields(refused)
    return cleaned


def _cleaned(name: str, value: str | float | None) -> str | float | None:
    if name == "max_penalty_years":
        return _penalty_years(value)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not {value!r}")
    if name == "reference":
        return _reference(value)
    if name == "title":
        return _title(value)
    if name == "jurisdiction":
        return _jurisdiction(value)
    if name in ("offence", "offence_provision", "facts", "handling_code"):
        return _optional_text(value)
    if name == "contact":
        return _contact(value)
    return value


def _change_record(name: str, before: str | float | None, after: str | float | None) -> JsonValue:
    if name == "facts":
        return {"from_sha256": _text_sha256(before), "to_sha256": _text_sha256(after)}
    return {"from": _json_value(before), "to": _json_value(after)}


def members_of(session: Session, actor: User, case: Case) -> list[tuple[CaseMember, User]]:
    require_access(session, actor, case, Access.READ)
    rows = session.execute(
        select(CaseMember, User)
        .join(User, User.id == CaseMember.user_id)
        .where(CaseMember.case_id == case.id)
        .order_by(CaseMember.added_at, CaseMember.id)
    ).all()
    return [(member, user) for member, user in rows]


def grant(
    session: Session, actor: User, case: Case, user_name: str, access: Access | str
) -> tuple[CaseMember, User]:
    """Give the named user access to the case, or change the access they have."""
    require_access(session, actor, case, Access.MANAGE)
    user = _user_named(session, user_name)
    if user.role == Role.AUDITOR:
        raise InvalidInput(f"{user_name!r} is an auditor: auditors read the custody log of every "
                           "case and are never members")
    if not user.is_active:
        raise InvalidInput(f"user {user_name!r} is disabled")
    return add_member(session, actor, case, user, access), user


def _user_named(session: Session, name: str) -> User:
    user = None
    if NAME_PATTERN.match(name):
        user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def revoke(session: Session, actor: User, case: Case, user_name: str) -> None:
    require_access(session, actor, case, Access.MANAGE)
    user = _user_named(session, user_name)
    remove_member(session, actor, case, user)


def case_named(session: Session, reference: str) -> Case:
    """The case by its reference, with no access check: for those who see custody records
    and hashes but no evidence (auditors; admins checking the store)."""
    case = session.scalars(select(Case).where(Case.reference == reference)).first()
    if case is None:
        raise AccessDenied(f"no case {reference!r}")
    return case


def timeline(
    session: Session, actor: User, reference: str, *, limit: int, cursor: str | None
) -> tuple[Case, Page[CustodyEntry]]:
    """A page of the case's custody entries in order: for its members, and for any auditor."""
    if actor.role == Role.AUDITOR:
        case = case_named(session, reference)
    else:
        case = get_case(session, actor, reference)
    page = paginate(session, select(CustodyEntry).where(CustodyEntry.case_id == case.id),
                    key=(CustodyEntry.seq,), limit=limit, cursor=cursor)
    return case, page
