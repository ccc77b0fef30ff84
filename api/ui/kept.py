"""Forms kept across a sign-in: what a user typed is not lost when their session ended first.

A page's form posted without a session (it expired, or was signed out in another tab) is answered
with the sign-in page, which carries the posted fields as hidden inputs (the form's token left
out); one posted with the token of an earlier session (signed in again elsewhere since) is kept
at once. After the sign-in the form is kept for the new session (evidence/kept_forms.py) and the
browser is sent on to its page (`/kept/{id}`, a GET, so reloading it asks nothing): the fields by
their forms' labels, as whom they would be sent, and a button that sends them to the form's
address with a token of the new session, as any form of these pages. Nothing is sent on its own,
and a kept form is sent once: the send marks it sent in the transaction of what it does
(`sent_once`), and a second send is refused. CSRF protection is what it was: a post is kept only
when the browser says it came from a page of this site (`posted_from`); from another site, or
with no word on where from, it is refused or sent to sign-in as before, and nothing of it is
shown again.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.deps import SESSION_COOKIE, DbSession, get_runtime, session_limits
from api.limits import MAX_KEPT_FIELDS, MAX_KEPT_FORM_BYTES
from api.ui.labels import PLACE_FIELDS, field_label
from api.ui.rendering import Handler, login_page, render, request_path, safe_next
from api.ui.security import FormRefused, is_ui_path, posted_from
from evidence import kept_forms, sessions
from evidence.errors import EvidenceError
from evidence.models import KeptForm as KeptRow
from evidence.models import LoginSession, User
from evidence.sessions import NotAuthenticated

KEPT_PREFIX = "kept:"
KEPT_ACTION = "kept_action"
KEPT_ID = "kept_form"  # the kept form a post sends, on the page that shows it
KEPT_NOTICE = ("Your session ended before your form was sent. What you typed is kept on this "
               "page: sign in, and it is shown to you before anything is sent.")
# The token of the session that ended (a new one comes with the page), and which kept form the
# post was, if one (`KeptForm.earlier`).
_LEFT_OUT = frozenset({"csrf_token", KEPT_ID})
_NOT_KEPT_AT = ("/login", "/logout")


@dataclass(frozen=True)
class KeptForm:
    """A posted form not sent yet: the address it was posted to and its fields, in order."""

    action: str
    fields: tuple[tuple[str, str], ...]
    earlier: str | None = None  # the kept form this post sent, its session ended again

    def hidden(self) -> list[tuple[str, str]]:
        """The inputs the sign-in page carries it in, beside the sign-in's own."""
        again = [] if self.earlier is None else [(KEPT_PREFIX + KEPT_ID, self.earlier)]
        return [(KEPT_ACTION, self.action),
                *((KEPT_PREFIX + name, value) for name, value in self.fields), *again]

    @classmethod
    def of(cls, action: str, pairs: list[tuple[str, str | object]]) -> KeptForm:
        earlier = next((v for n, v in pairs if n == KEPT_ID and isinstance(v, str)), None)
        return cls(action, _bounded(pairs), earlier)


class NotKept(Exception):
    """A posted form that cannot be kept across a sign-in: why, and what to do instead."""

    def __init__(self, reason: str, remedy: str, status_code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.remedy = remedy
        self.status_code = status_code


def _file_not_kept() -> NotKept:
    return NotKept("a form with a file attached cannot be kept across a sign-in",
                   "open the form again and attach the file", 422)


def _action(path: str | None) -> str | None:
    """The address a kept form may go back to: a page of this site that is not the sign-in's."""
    if not path or safe_next(path) != path or path.startswith(_NOT_KEPT_AT):
        return None
    return path


def _bounded(pairs: list[tuple[str, str | object]]) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    size = 0
    for name, value in pairs:
        if not isinstance(value, str):
            raise _file_not_kept()
        if name in _LEFT_OUT:
            continue
        size += len(name.encode()) + len(value.encode())
        fields.append((name, value))
    if size > MAX_KEPT_FORM_BYTES or len(fields) > MAX_KEPT_FIELDS:
        raise NotKept(f"the form is too large to keep across a sign-in ({size:,} bytes in "
                      f"{len(fields):,} fields; at most {MAX_KEPT_FORM_BYTES:,} bytes in "
                      f"{MAX_KEPT_FIELDS} fields)",
                      "copy what you typed from the form (your browser's Back button may "
                      "still show it) and send it again", 413)
    return tuple(fields)


def carried_by_sign_in(form: FormData) -> KeptForm | None:
    """The kept form a sign-in's post carries, if it carries a whole one."""
    posted = form.get(KEPT_ACTION)
    action = _action(posted if isinstance(posted, str) else None)
    if action is None:
        return None
    try:
        return KeptForm.of(action, [(name[len(KEPT_PREFIX):], value)
                                    for name, value in form.multi_items()
                                    if name.startswith(KEPT_PREFIX)])
    except NotKept:
        return None  # made by hand: no page of this site sends one


def sign_in_inputs(kept: KeptForm | None) -> tuple[str | None, list[tuple[str, str]]]:
    """The notice and the hidden inputs the sign-in page shows of a kept form."""
    return (None, []) if kept is None else (KEPT_NOTICE, kept.hidden())


def keep(session: Session, login_session: LoginSession, kept: KeptForm) -> RedirectResponse:
    """Keep the form for the session signed in now, and send the browser on to its page."""
    row = kept_forms.keep(session, login_session, action=kept.action, fields=kept.fields,
                          kept_id=kept.earlier)
    return RedirectResponse(f"/kept/{row.id}", status_code=303)


def labelled(row: KeptRow) -> list[tuple[str, str]]:
    """The kept fields a user reads, by the labels their form gave them: (label, value)."""
    fields = [(name, value) for name, value in row.fields or []]
    kind = next((value for name, value in fields if name == "kind"), None)
    return [(field_label(name, kind=kind), value) for name, value in fields
            if name not in PLACE_FIELDS]


def confirmation_page(request: Request, row: KeptRow, *, viewer: User) -> HTMLResponse:
    """The kept form shown to the user now signed in, with a button to send it as them."""
    return render(request, "kept.html", {
        "kept": {"id": str(row.id), "action": row.action, "sent_at": row.sent_at,
                 "fields": [(name, value) for name, value in row.fields or []],
                 "shown": labelled(row)},
        "kept_id_field": KEPT_ID}, viewer=viewer)


async def sent_once(request: Request, session: DbSession) -> None:
    """A post of a page that sends a kept form records it sent in its own transaction: it then
    acts once, and a second send is refused (before the page's own handler runs)."""
    if request.method != "POST" or not request.headers.get("content-type", "").lower().startswith(
            "application/x-www-form-urlencoded"):
        return  # a kept form is sent urlencoded: it has no file
    kept_id = (await request.form()).get(KEPT_ID)
    if isinstance(kept_id, str) and kept_id:
        await run_in_threadpool(kept_forms.mark_sent, session, kept_id,
                                now=get_runtime(request).clock())


async def _kept_answer(request: Request, exc: Exception) -> Response | None:
    """The page a page's form post refused for its session gets instead, or None for the
    refusal as it was."""
    if request.method != "POST" or not is_ui_path(request.url.path):
        return None
    viewer = getattr(request.state, "page_viewer", None)
    if isinstance(exc, NotAuthenticated):
        viewer = None
    elif not (isinstance(exc, FormRefused) and viewer is not None):
        return None
    action = _action(request_path(request))
    if action is None or posted_from(request) != "this site":
        return None
    try:
        if request.headers.get("content-type", "").lower().startswith("multipart/"):
            # Only a form with a file is sent so (a platform's answer, up to gigabytes): it is
            # refused unread rather than spooled whole to learn that it holds a file.
            raise _file_not_kept()
        kept = KeptForm.of(action, list((await request.form()).multi_items()))
    except NotKept as refused:
        if viewer is None:
            return login_page(request, status_code=refused.status_code, notice=(
                f"Your session ended before your form was sent, and {refused.reason}. Nothing "
                f"was sent: sign in, then {refused.remedy}."))
        return render(request, "error.html", {
            "status": refused.status_code, "title": "Form not sent",
            "message": f"Your form came from a page of an earlier sign-in, and "
                       f"{refused.reason}. Nothing was sent: {refused.remedy}."},
                      viewer=viewer, status_code=refused.status_code)
    if viewer is None:
        notice, hidden = sign_in_inputs(kept)
        return login_page(request, status_code=401, notice=notice, hidden=hidden)
    runtime = get_runtime(request)
    with runtime.session() as session:  # the request's own rolled back with the refusal
        signed_in = sessions.open_session(session, request.cookies.get(SESSION_COOKIE, ""),
                                          **session_limits(request))
        return None if signed_in is None else keep(session, signed_in, kept)


def install(app: FastAPI) -> None:
    """Keep the forms refused for their session; call after `install_error_pages`."""
    handler: Handler = app.exception_handlers[EvidenceError]

    async def keep_or_refuse(request: Request, exc: Exception) -> Response:
        kept = await _kept_answer(request, exc)
        if kept is not None:
            return kept
        answer = handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.exception_handlers[EvidenceError] = keep_or_refuse
