"""Pages for a case's own record: opening a case, editing, closing and reopening it, its members,
its custody history, and for auditors every case whose history they may read.

Thin like `api/routes/cases.py`: each page calls the service function the API calls for the same
thing, so access rules, refusals and custody entries are the same. A refused form is raised as a
`PageError`, so the request's transaction rolls back; the page shown with it is built from plain
values, with what was typed. An auditor reads custody logs and changes nothing: the forms are
not shown to one, and a post from one is refused (403) before anything is looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from api.deps import DbSession, case_reference, quote_ref
from api.schemas import CaseStatusChange, CaseUpdate, MemberCreate
from api.ui.labels import CASE_FIELDS
from api.ui.rendering import PageError, render, sentence
from api.ui.routes import CsrfField, Cursor, Viewer, check_session_form, see_other
from evidence import cases, custody
from evidence.errors import DuplicateReference, EvidenceError, InvalidInput, PermissionDenied
from evidence.models import Access, Case, CaseStatus, Role, User

router = APIRouter(include_in_schema=False)

HISTORY_PER_PAGE = 50
AUDIT_PER_PAGE = 50

LABELS = dict(CASE_FIELDS)
ACCESS_LEVELS = (
    (Access.READ, "read: sees the case and its evidence"),
    (Access.WRITE, "write: also flags, captures, notes and proposes"),
    (Access.MANAGE, "manage: also edits, closes and reopens the case and sets members"),
)
# The one-line notice after a form succeeded; only these values are ever shown.
DONE = {
    "edited": "Saved; the changes are recorded in the case's custody log.",
    "unchanged": "Nothing was changed.",
    "closed": "Case closed; it refuses new targets and captures until it is reopened.",
    "reopened": "Case reopened.",
    "granted": "Access given; recorded in the case's custody log.",
    "removed": "Member removed; recorded in the case's custody log.",
}
# Words by which the service's messages (and `invalid_message`'s) name the field they refuse,
# so the page shows the refusal next to that field.
FIELD_WORDS = (("reference", "reference"), ("jurisdiction", "jurisdiction"),
               ("max_penalty_years", "penalty"), ("title", "title"), ("contact", "contact"),
               ("offence_provision", "provision"), ("offence", "offence"), ("facts", "facts"),
               ("handling_code", "handling code"))
Done = Annotated[str | None, Query(max_length=20)]
Line = Annotated[str, Form(max_length=2000)]
LongText = Annotated[str, Form(max_length=200_000)]


def case_to_change(session: Session, viewer: User, ref: str, *, need: Access) -> Case:
    """The case for a form that changes it: `need` access, and never for an auditor."""
    if viewer.role == Role.AUDITOR:
        raise PermissionDenied("an auditor reads custody logs and changes nothing in a case")
    return cases.case_for(session, viewer, case_reference(ref, viewer), need=need)


def _said(error: Any, label: str, *, beside: bool = False) -> str:
    """One of the schema's errors in plain words; `beside` its input, without its label where
    the words name the value themselves."""
    limit = (error.get("ctx") or {}).get("max_length")
    if error["type"] == "string_too_long" and limit is not None:
        return f"{label} holds at most {limit:,} characters"
    if error["type"] == "string_too_short":
        return f"{label} must not be empty"
    said = str(error["msg"]).removeprefix("Value error, ")
    return said if beside and error["type"] == "value_error" else f"{label}: {said}"


def invalid_message(exc: ValidationError, labels: dict[str, str]) -> str:
    """What the schema found wrong with a form, field by field, in plain words."""
    said = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error.get("loc") else ""
        said.append(_said(error, labels.get(field, field or "A value")))
    return sentence("; ".join(dict.fromkeys(said)))


def field_problems(exc: ValidationError, labels: dict[str, str]) -> dict[str, str]:
    """What the schema found wrong with a form, by field (the first problem of each), each in
    words to show beside its input."""
    found: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error.get("loc") else ""
        found.setdefault(field, sentence(_said(error, labels.get(field, field or "A value"),
                                               beside=True)))
    return found


def check_form(model: type[BaseModel], values: dict[str, Any], labels: dict[str, str]) -> None:
    """Check the form's values against the API's schema for the same input (lengths, NUL)."""
    try:
        model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(invalid_message(exc, labels)) from exc


def _field_of(exc: EvidenceError) -> str:
    """The form field a refusal names first ("case" when it names none)."""
    if isinstance(exc, DuplicateReference):
        return "reference"
    text = exc.message.lower()
    found = [(text.find(word), name) for name, word in FIELD_WORDS if word in text]
    return min(found)[1] if found else "case"


def _refused(typed: dict[str, str], write: Callable[[dict[str, str | None]], object],
             check: Callable[[dict[str, str | None]], object]) -> tuple[dict[str, str], int]:
    """Every problem of a case form at once, by field ("case" for one no field holds), and the
    status to answer with; nothing when `write` took the values.

    Blank values go to the service as none. Their lengths are the API's (the schema's, which
    also applies the service's rule of each field), so a value too long for its column is
    refused here, not by the database. With values the schema refuses, the service's `check`
    (the one `write` makes) still says what it finds wrong with the others; otherwise `write`
    opens or changes the case, and says every problem the service finds at once."""
    values = {name: value if value.strip() else None for name, value in typed.items()}
    problems: dict[str, str] = {}
    try:
        CaseUpdate.model_validate({name: value for name, value in values.items()
                                   if value is not None and name in LABELS
                                   and name != "max_penalty_years"})
    except ValidationError as exc:
        problems = field_problems(exc, LABELS)
    status = 422
    try:
        if problems:
            check({name: value for name, value in values.items() if name not in problems})
        else:
            write(values)
    except EvidenceError as exc:
        found = exc.fields if isinstance(exc, InvalidInput) and exc.fields else {
            _field_of(exc): exc.message}
        status = status if problems else exc.status_code
        problems.update({name: sentence(message) for name, message in found.items()})
    order = ["reference", *LABELS]
    return {name: problems[name] for name in sorted(problems, key=lambda n: (
        order.index(n) if n in order else -1))}, status


def _typed(title: str, offence: str, offence_provision: str, max_penalty_years: str, facts: str,
           jurisdiction: str, handling_code: str, contact: str) -> dict[str, str]:
    return {"title": title, "offence": offence, "offence_provision": offence_provision,
            "max_penalty_years": max_penalty_years, "facts": facts,
            "jurisdiction": jurisdiction, "handling_code": handling_code, "contact": contact}


def _case_values(case: Case) -> dict[str, str]:
    """The case's fields as the form shows them."""
    form = {name: "" if getattr(case, name) is None else str(getattr(case, name))
            for name, _label in CASE_FIELDS}
    if case.max_penalty_years is not None:
        form["max_penalty_years"] = f"{case.max_penalty_years:g}"
    return form


# --- opening a case ----------------------------------------------------------------------------

def _new_case_context(form: dict[str, str]) -> dict[str, Any]:
    return {"new": True, "case": None, "form": form, "fields": CASE_FIELDS, "problems": {},
            "error": None, "error_at": None, "done": None, "reason": ""}


def _refusal(problems: dict[str, str], new: bool) -> str:
    """The refused form's one line at its top; each problem is said beside its input."""
    done = "The case was not opened" if new else "Nothing was saved"
    if len(problems) == 1:
        return f"{done}: {next(iter(problems.values()))}"
    return f"{done}: {len(problems)} problems, each said at its field."


@router.get("/new-case", response_class=HTMLResponse)
def new_case_form(request: Request, viewer: Viewer) -> Response:
    cases.check_may_create(viewer)
    form = {"reference": "", **{name: "" for name, _label in CASE_FIELDS}}
    return render(request, "case_form.html", _new_case_context(form), viewer=viewer)


@router.post("/new-case", response_class=HTMLResponse)
def new_case(
    request: Request, session: DbSession, viewer: Viewer,
    csrf_token: CsrfField = None,
    reference: Annotated[str, Form(max_length=300)] = "",
    title: Line = "", offence: LongText = "", offence_provision: LongText = "",
    max_penalty_years: Annotated[str, Form(max_length=100)] = "", facts: LongText = "",
    jurisdiction: Annotated[str, Form(max_length=100)] = "",
    handling_code: Line = "", contact: Line = "",
) -> Response:
    check_session_form(request, csrf_token)
    cases.check_may_create(viewer)
    typed = _typed(title, offence, offence_provision, max_penalty_years, facts, jurisdiction,
                   handling_code, contact)
    made: list[Case] = []

    def open_case(values: dict[str, str | None]) -> None:
        # The reference and title as typed, blank or not: the service's to judge.
        rest = {name: value for name, value in values.items()
                if name not in ("reference", "title")}
        made.append(cases.create_case(session, viewer, reference=reference, title=title,
                                      **rest))

    problems, status = _refused({"reference": reference, **typed}, open_case,
                                lambda values: cases.checked_new_case(session, values))
    if problems:
        # A reference taken, a jurisdiction that is no country, a blank title ...
        context = _new_case_context({"reference": reference, **typed})
        message = _refusal(problems, new=True)
        raise PageError(message, status, template="case_form.html",
                        context={**context, "problems": problems, "error": message},
                        viewer=viewer)
    return see_other(f"/cases/{quote_ref(made[0].reference)}")


# --- editing, closing and reopening ------------------------------------------------------------

def _edit_context(case: Case, form: dict[str, str] | None = None) -> dict[str, Any]:
    """The edit page as plain values (kept valid after a rollback)."""
    return {"new": False,
            "case": {"reference": case.reference, "title": case.title, "status": case.status},
            "form": form or _case_values(case), "fields": CASE_FIELDS, "reason": "",
            "problems": {}, "error": None, "error_at": None, "done": None}


@router.get("/cases/{ref}/edit", response_class=HTMLResponse)
def edit_form(request: Request, ref: str, session: DbSession, viewer: Viewer,
              done: Done = None) -> Response:
    case = case_to_change(session, viewer, ref, need=Access.MANAGE)
    context = _edit_context(case)
    context["done"] = DONE.get(done or "")
    return render(request, "case_form.html", context, viewer=viewer)


@router.post("/cases/{ref}/edit", response_class=HTMLResponse)
def edit(
    request: Request, ref: str, session: DbSession, viewer: Viewer,
    csrf_token: CsrfField = None,
    title: Line = "", offence: LongText = "", offence_provision: LongText = "",
    max_penalty_years: Annotated[str, Form(max_length=100)] = "", facts: LongText = "",
    jurisdiction: Annotated[str, Form(max_length=100)] = "",
    handling_code: Line = "", contact: Line = "",
) -> Response:
    check_session_form(request, csrf_token)
    case = case_to_change(session, viewer, ref, need=Access.MANAGE)
    typed = _typed(title, offence, offence_provision, max_penalty_years, facts, jurisdiction,
                   handling_code, contact)
    context = _edit_context(case, typed)
    before = _case_values(case)
    problems, status = _refused(typed, lambda values: cases.update_case(
        session, viewer, case, values), cases.checked_values)
    if problems:
        message = _refusal(problems, new=False)
        raise PageError(message, status, template="case_form.html",
                        context={**context, "problems": problems, "error": message},
                        viewer=viewer)
    done = "unchanged" if _case_values(case) == before else "edited"
    return see_other(f"/cases/{quote_ref(case.reference)}/edit?done={done}")


def _set_status(request: Request, ref: str, session: Session, viewer: User,
                csrf_token: str | None, reason: str, status: CaseStatus) -> Response:
    check_session_form(request, csrf_token)
    case = case_to_change(session, viewer, ref, need=Access.MANAGE)
    context = {**_edit_context(case), "reason": reason}
    change = cases.close_case if status == CaseStatus.CLOSED else cases.reopen_case
    try:
        check_form(CaseStatusChange, {"reason": reason}, {"reason": "The reason"})
        change(session, viewer, case, reason=reason.strip() or None)
    except EvidenceError as exc:
        raise PageError(sentence(exc.message), exc.status_code, template="case_form.html",
                        context={**context, "error_at": "status"}, viewer=viewer) from exc
    done = "closed" if status == CaseStatus.CLOSED else "reopened"
    return see_other(f"/cases/{quote_ref(case.reference)}/edit?done={done}")


@router.post("/cases/{ref}/close", response_class=HTMLResponse)
def close(request: Request, ref: str, session: DbSession, viewer: Viewer,
          csrf_token: CsrfField = None, reason: Line = "") -> Response:
    return _set_status(request, ref, session, viewer, csrf_token, reason, CaseStatus.CLOSED)


@router.post("/cases/{ref}/reopen", response_class=HTMLResponse)
def reopen(request: Request, ref: str, session: DbSession, viewer: Viewer,
           csrf_token: CsrfField = None, reason: Line = "") -> Response:
    return _set_status(request, ref, session, viewer, csrf_token, reason, CaseStatus.OPEN)


# --- members -----------------------------------------------------------------------------------

def _members_context(session: Session, viewer: User, case: Case) -> dict[str, Any]:
    members = [{"name": user.name, "display_name": user.display_name, "role": user.role,
                "unit": user.unit, "access": member.access, "added_at": member.added_at,
                "is_you": user.id == viewer.id}
               for member, user in cases.members_of(session, viewer, case)]
    return {"case": {"reference": case.reference, "title": case.title, "status": case.status},
            "members": members,
            "may_manage": cases.access_of(session, viewer, case) == Access.MANAGE,
            "levels": ACCESS_LEVELS, "form": {"user": "", "access": Access.READ.value},
            "error": None, "error_at": None, "done": None}


@router.get("/cases/{ref}/members", response_class=HTMLResponse)
def members_page(request: Request, ref: str, session: DbSession, viewer: Viewer,
                 done: Done = None) -> Response:
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    context = _members_context(session, viewer, case)
    context["done"] = DONE.get(done or "")
    return render(request, "members.html", context, viewer=viewer)


@router.post("/cases/{ref}/members", response_class=HTMLResponse)
def grant(
    request: Request, ref: str, session: DbSession, viewer: Viewer,
    csrf_token: CsrfField = None,
    user: Annotated[str, Form(max_length=200)] = "",
    access: Annotated[str, Form(max_length=20)] = "",
    at: Annotated[str, Form(max_length=100)] = "add",
) -> Response:
    """Give a user access, or change the access of a member (`at` names the member's row)."""
    check_session_form(request, csrf_token)
    case = case_to_change(session, viewer, ref, need=Access.MANAGE)
    context = _members_context(session, viewer, case)
    if at == "add":
        context["form"] = {"user": user, "access": access}
    try:
        check_form(MemberCreate, {"user": user.strip(), "access": access},
               {"user": "The user's name", "access": "The access"})
        cases.grant(session, viewer, case, user.strip(), access)
    except EvidenceError as exc:
        # No such user, an auditor, a disabled account, the last manager demoted ...
        raise PageError(sentence(exc.message), exc.status_code, template="members.html",
                        context={**context, "error_at": at}, viewer=viewer) from exc
    return see_other(f"/cases/{quote_ref(case.reference)}/members?done=granted")


@router.post("/cases/{ref}/members/{name}/remove", response_class=HTMLResponse)
def remove(request: Request, ref: str, name: str, session: DbSession, viewer: Viewer,
           csrf_token: CsrfField = None) -> Response:
    check_session_form(request, csrf_token)
    case = case_to_change(session, viewer, ref, need=Access.MANAGE)
    context = _members_context(session, viewer, case)
    try:
        cases.revoke(session, viewer, case, name)
    except EvidenceError as exc:
        raise PageError(sentence(exc.message), exc.status_code, template="members.html",
                        context={**context, "error_at": name}, viewer=viewer) from exc
    return see_other(f"/cases/{quote_ref(case.reference)}/members?done=removed")


# --- custody history ---------------------------------------------------------------------------

@router.get("/cases/{ref}/history", response_class=HTMLResponse)
def history_page(request: Request, ref: str, session: DbSession, viewer: Viewer,
                 cursor: Cursor = None) -> Response:
    """The case's custody entries in order, as `GET /api/cases/{ref}/timeline` gives them: for
    its members, and for any auditor."""
    case, page = cases.timeline(session, viewer, case_reference(ref, viewer),
                                limit=HISTORY_PER_PAGE, cursor=cursor)
    entries = [{**custody.describe(e), "leaf_hash": bytes(e.leaf_hash).hex()}
               for e in page.items]
    return render(request, "history.html", {
        # An auditor is shown no more of the case than the audit list gives.
        "case": {"reference": case.reference, "status": case.status},
        "is_member": viewer.role != Role.AUDITOR,
        "entries": entries, "next_cursor": page.next_cursor, "first_page": cursor is None,
    }, viewer=viewer)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: DbSession, viewer: Viewer,
               cursor: Cursor = None) -> Response:
    """For auditors, every case, to read its custody history; not found for anyone else."""
    page = cases.audit_cases(session, viewer, limit=AUDIT_PER_PAGE, cursor=cursor)
    return render(request, "audit.html", {
        "cases": [{"reference": c.reference, "status": c.status, "created_at": c.created_at}
                  for c in page.items],
        "next_cursor": page.next_cursor, "first_page": cursor is None,
    }, viewer=viewer)
