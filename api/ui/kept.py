"""Forms kept across a sign-in: what a user typed is not lost when their session ended first.

A page's form posted without a session (it expired, or was signed out in another tab) is answered
with the sign-in page, which carries the posted fields as hidden inputs (the form's token left
out); one posted with the token of an earlier session (signed in again elsewhere since) is
answered as if just signed in. After the sign-in a page lists the fields, says as whom they would
be sent, and sends them to the form's address only when its button is clicked, with a token of
the new session, as any form of these pages. Nothing is kept on the server and nothing is sent on
its own, so CSRF protection is what it was: a post is kept only when the browser says it came
from a page of this site (`posted_from`); from another site, or with no word on where from, it
is refused or sent to sign-in as before, and nothing of it is shown again.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from api.deps import SESSION_COOKIE
from api.limits import MAX_KEPT_FIELDS, MAX_KEPT_FORM_BYTES
from api.ui.rendering import Handler, login_page, render, request_path, safe_next
from api.ui.security import FormRefused, is_ui_path, posted_from, session_csrf_token
from evidence.errors import EvidenceError
from evidence.models import User
from evidence.sessions import NotAuthenticated

KEPT_PREFIX = "kept:"
KEPT_ACTION = "kept_action"
KEPT_NOTICE = ("Your session ended before your form was sent. What you typed is kept on this "
               "page: sign in, and it is shown to you before anything is sent.")
_LEFT_OUT = frozenset({"csrf_token"})  # of the session that ended; a new one comes with the page
_NOT_KEPT_AT = ("/login", "/logout")


@dataclass(frozen=True)
class KeptForm:
    """A posted form not sent yet: the address it was posted to and its fields, in order."""

    action: str
    fields: tuple[tuple[str, str], ...]

    def hidden(self) -> list[tuple[str, str]]:
        """The inputs the sign-in page carries it in, beside the sign-in's own."""
        return [(KEPT_ACTION, self.action),
                *((KEPT_PREFIX + name, value) for name, value in self.fields)]


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
        return KeptForm(action, _bounded([(name[len(KEPT_PREFIX):], value)
                                          for name, value in form.multi_items()
                                          if name.startswith(KEPT_PREFIX)]))
    except NotKept:
        return None  # made by hand: no page of this site sends one


def sign_in_inputs(kept: KeptForm | None) -> tuple[str | None, list[tuple[str, str]]]:
    """The notice and the hidden inputs the sign-in page shows of a kept form."""
    return (None, []) if kept is None else (KEPT_NOTICE, kept.hidden())


def confirmation_page(request: Request, kept: KeptForm, *,
                      viewer: User | dict[str, str | None], csrf_token: str) -> HTMLResponse:
    """The kept form shown to the user now signed in, with a button to send it as them."""
    return render(request, "kept.html",
                  {"kept": kept, "csrf_token": csrf_token}, viewer=viewer)


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
        fields = _bounded(list((await request.form()).multi_items()))
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
    kept = KeptForm(action, fields)
    if viewer is None:
        notice, hidden = sign_in_inputs(kept)
        return login_page(request, status_code=401, notice=notice, hidden=hidden)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return confirmation_page(request, kept, viewer=viewer,
                             csrf_token=session_csrf_token(cookie))


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
