"""The admin's page of users: who may use the system, and adding, disabling and enabling them.

Over the services `evidence user` calls, so the same rules hold: admins only (anyone else gets
403 and no link to the page), a user is never disabled by themselves nor is the last active
admin, and every change is in the custody log. A new user's API token is shown once, in the
answer to the form that made it (never in an address, never stored, the page not cached).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from api.deps import DbSession
from api.ui.rendering import PageError, render, sentence
from api.ui.routes import CsrfField, Viewer, check_session_form, see_other
from evidence import users
from evidence.errors import EvidenceError
from evidence.models import Role, User

router = APIRouter(include_in_schema=False)

DONE = {
    "disabled": "The user is disabled: their API tokens are revoked and their web sessions "
                "ended. What they did stays recorded under their name.",
    "enabled": "The user is enabled again: their password and case memberships work again; "
               "their old API tokens stay revoked.",
}
Name = Annotated[str, Form(max_length=200)]
Reason = Annotated[str, Form(max_length=2000)]


def _users_view(session: Session, viewer: User) -> dict[str, Any]:
    """The page as plain values (kept valid after a rollback); refuses a non-admin."""
    rows = users.list_users(session, viewer)
    signed_in = users.last_sign_ins(session, viewer)
    return {
        "users": [{"name": u.name, "display_name": u.display_name, "role": u.role,
                   "unit": u.unit, "active": u.is_active, "password": u.password_hash is not None,
                   "last_sign_in": signed_in.get(u.id), "tokens": tokens,
                   "is_viewer": u.id == viewer.id}
                  for u, tokens in rows],
        "roles": [r.value for r in Role],
        "form": {"name": "", "display_name": "", "role": "", "unit": "", "reason": "",
                 "user": ""},
        "error": None, "error_at": None, "done": None, "made": None,
    }


def _refused(exc: EvidenceError | str, status_code: int, view: dict[str, Any], *, at: str,
             form: dict[str, str], viewer: User) -> PageError:
    message = exc if isinstance(exc, str) else exc.message
    return PageError(sentence(message), status_code, template="admin_users.html",
                     context={**view, "error_at": at, "form": {**view["form"], **form}},
                     viewer=viewer)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, session: DbSession, viewer: Viewer,
               done: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    view = _users_view(session, viewer)
    view["done"] = DONE.get(done or "")
    return render(request, "admin_users.html", view, viewer=viewer)


@router.post("/admin/users", response_class=HTMLResponse)
def add_user(
    request: Request, session: DbSession, viewer: Viewer, csrf_token: CsrfField = None,
    name: Name = "", display_name: Name = "", role: Annotated[str, Form(max_length=50)] = "",
    unit: Name = "", password: Annotated[str, Form(max_length=2000)] = "",
    password_again: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    check_session_form(request, csrf_token)
    view = _users_view(session, viewer)
    typed = {"name": name, "display_name": display_name, "role": role, "unit": unit}
    if password != password_again:
        raise _refused("The two passwords differ; type the same one twice.", 422, view,
                       at="add", form=typed, viewer=viewer)
    try:
        made, token = users.add_user(
            session, viewer, name=name.strip(), role=role, unit=unit.strip() or None,
            display_name=display_name.strip() or None,
            password=password if password.strip() else None)
    except EvidenceError as exc:
        raise _refused(exc, exc.status_code, view, at="add", form=typed, viewer=viewer) from exc
    session.flush()
    # Shown in this answer only: a redirect would have to carry the token in an address.
    view = _users_view(session, viewer)
    view["made"] = {"name": made.name, "token": token, "password": password.strip() != ""}
    return render(request, "admin_users.html", view, viewer=viewer, status_code=201)


@router.post("/admin/users/{name}/{change}", response_class=HTMLResponse)
def disable_or_enable(
    request: Request, name: str, change: Literal["disable", "enable"], session: DbSession,
    viewer: Viewer, csrf_token: CsrfField = None, reason: Reason = "",
) -> Response:
    check_session_form(request, csrf_token)
    view = _users_view(session, viewer)
    typed = {"reason": reason, "user": name}
    try:
        user = users.get_user(session, name)
        if change == "disable":
            users.disable_user(session, viewer, user, reason=reason)
        else:
            users.enable_user(session, viewer, user, reason=reason)
    except EvidenceError as exc:
        raise _refused(exc, exc.status_code, view, at=name, form=typed, viewer=viewer) from exc
    done = "disabled" if change == "disable" else "enabled"
    return see_other(f"/admin/users?{urlencode({'done': done})}#user-{name}")
