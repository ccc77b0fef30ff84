"""Jinja templates for the web pages, and the pages shown when a request to one fails.

The API's error handlers answer JSON; for paths outside `/api` they are wrapped so a browser
gets a page instead: sign-in for a missing or ended session, a plain "not found" that names
nothing (a case or capture of someone else's case must not leak even its reference), and the
service's message for the rest. The handlers run after the request's session rolled back.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import SESSION_COOKIE
from api.errors import allowed_methods
from api.limits import BodyTooLarge
from api.ui.security import (
    LOGIN_CSRF_COOKIE,
    FormRefused,
    is_ui_path,
    new_login_token,
    page_headers,
    session_csrf_token,
)
from evidence import users
from evidence.captures import outcome_of
from evidence.errors import EvidenceError
from evidence.models import User
from evidence.sessions import LoginFailed, NotAuthenticated
from evidence.times import to_the_second

log = logging.getLogger("evidence.ui")

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"
WRONG_LOGIN = "Wrong user name or password."


def viewer_of(user: User | None) -> dict[str, str | None] | None:
    """What the page header shows of the signed-in user, as plain values."""
    if user is None:
        return None
    return {"name": user.name, "display_name": user.display_name, "role": user.role,
            "unit": user.unit}


# The header's links, each shown to the roles that may open its page, by the rule its service
# checks (None: every role).
NAV: tuple[tuple[str, str, Callable[[str], bool] | None], ...] = (
    ("/", "Cases", None),
    ("/search", "Search", users.reads_evidence),
    ("/requests/due", "Requests due", users.reads_evidence),
    ("/audit", "Audit", users.audits),
    ("/admin/users", "Users", users.manages_users),
)


def nav_links(role: str) -> list[tuple[str, str]]:
    """The header's links a user of `role` may open: (address, label)."""
    return [(href, label) for href, label, opens in NAV if opens is None or opens(role)]


def sentence(message: str) -> str:
    """A service's message ("four eyes: you proposed ...") as a sentence for a page."""
    text = message.strip()
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


class PageError(EvidenceError):
    """A form the service refused: shown again, with what was typed and why, at the status.

    Raised (not returned) so the request's transaction rolls back; the context therefore holds
    plain values, not rows of the closed session.
    """

    def __init__(self, message: str, status_code: int, *, template: str,
                 context: Mapping[str, Any], viewer: User | None) -> None:
        super().__init__(message, status_code)
        self.template = template
        self.context = dict(context)
        self.viewer = viewer_of(viewer)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else to_the_second(moment)


def _entry_time(at: str) -> str:
    """A custody entry's `at` (RFC 3339, UTC, microseconds) to the second, for a table."""
    return f"{at[:10]} {at[11:19]}" if len(at) >= 19 else at


def _size(count: int | None) -> str:
    if count is None:
        return ""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count:,} bytes"


def _compact(value: Any) -> str:
    """A value of a custody entry's details, as short text (JSON for lists and objects)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


CLIP_CHARS = 300


def _clip(value: Any, limit: int = CLIP_CHARS) -> str:
    """Text from a page or a person, shortened for a table cell: a browser lays out a cell of
    tens of thousands of unbroken letters for seconds or for ever (seen: a 40,000-letter page
    title); the whole text stays on the item's own page."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def _ref(reference: str) -> str:
    """A case reference as one path segment ('/' kept as %2F; the app routes it back)."""
    return quote(reference, safe="")


def _capture_badge(capture: Any) -> Markup:
    """A capture's status badge: "complete" in green, but "complete · HTTP 404" not, its
    title saying what the error answer means (a capture row, or a page's dict of one)."""
    def get(name: str) -> Any:
        return capture.get(name) if isinstance(capture, Mapping) else getattr(capture, name)

    outcome = outcome_of(get("status"), get("http_status"))
    title = Markup(' title="{}"').format(outcome.said) if outcome.said else ""
    return Markup('<span class="badge {}"{}>{}</span>').format(outcome.tone, title,
                                                               outcome.label)


def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, size=_size, ref=_ref, compact=_compact,
                       entry_time=_entry_time, clip=_clip,
                       capture_badge=_capture_badge)
    return env


_ENV = make_environment()


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *,
           viewer: User | dict[str, str | None] | None,
           status_code: int = 200) -> HTMLResponse:
    cookie = request.cookies.get(SESSION_COOKIE)
    shown = viewer_of(viewer) if isinstance(viewer, User) else viewer
    values = {
        "viewer": shown,
        "nav": nav_links(str(shown["role"])) if shown else [],
        "csrf_token": session_csrf_token(cookie) if viewer is not None and cookie else "",
        **(context or {}),
    }
    html = _ENV.get_template(template).render(values)
    # Set here as well as by `SecurityHeaders`: a 500 page is sent from outside that middleware.
    return HTMLResponse(html, status_code=status_code, headers=page_headers())


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of these pages, never another site."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or not is_ui_path(target) or target.startswith("/login")):
        return "/"
    return target


def request_path(request: Request) -> str:
    """The path and query the request was sent to, as sent ('%2F' in a reference kept)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


def login_page(request: Request, *, error: str | None = None, status_code: int = 200,
               name: str = "", next_path: str | None = None, notice: str | None = None,
               hidden: Sequence[tuple[str, str]] = ()) -> HTMLResponse:
    """The sign-in form, with the token its post must return (kept in a cookie till then),
    and a notice and `hidden` inputs of a form kept across the sign-in (api/ui/kept.py)."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_token()
    response = render(request, "login.html",
                      {"error": error, "name": name, "next": safe_next(next_path),
                       "login_token": token, "notice": notice, "hidden": hidden},
                      viewer=None, status_code=status_code)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.app.state.secure_cookies, path="/login")
    return response


def _error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", {"status": status_code, "title": title,
                                          "message": message},
                  viewer=None, status_code=status_code)


def not_found(request: Request) -> HTMLResponse:
    return _error_page(request, 404, "Not found",
                       "There is nothing at this address, or it belongs to a case you are not "
                       "a member of.")


def too_large_page(request: Request, limit: int) -> HTMLResponse | None:
    """The page a page's post past its bound (api/limits.py) gets; None for the API's."""
    if not is_ui_path(request.url.path):
        return None
    return _error_page(request, 413, "Form too large",
                       f"The form was larger than this page takes ({_size(limit)}), so it was "
                       f"not read and nothing of it was saved. Go back, shorten what you typed "
                       f"or attach a smaller file, and send it again.")


def page_for_error(request: Request, exc: Exception) -> Response:
    """The page a browser gets for `exc`, raised while answering a page's request."""
    if isinstance(exc, PageError):
        return render(request, exc.template, {**exc.context, "error": exc.message},
                      viewer=exc.viewer, status_code=exc.status_code)
    if isinstance(exc, LoginFailed):
        return login_page(request, error=WRONG_LOGIN, status_code=401,
                          name=str(getattr(request.state, "login_name", "")),
                          next_path=getattr(request.state, "login_next", None),
                          notice=getattr(request.state, "login_notice", None),
                          hidden=getattr(request.state, "login_hidden", ()))
    if isinstance(exc, NotAuthenticated):
        target = "/login"
        if request.method == "GET" and request.url.path != "/":
            target += "?" + urlencode({"next": request_path(request)})
        return RedirectResponse(target, status_code=303)
    if isinstance(exc, FormRefused):
        return _error_page(request, 403, "Form refused", exc.message)
    # By status, not class: an `AccessDenied` of a member lacking write access is a 403.
    if isinstance(exc, EvidenceError) and exc.status_code == 404:
        return not_found(request)
    if isinstance(exc, EvidenceError):
        if exc.status_code >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        titles = {403: "Not allowed", 409: "Not possible now", 422: "Not valid"}
        return _error_page(request, exc.status_code, titles.get(exc.status_code, "Refused"),
                           exc.message)
    if isinstance(exc, RequestValidationError):
        if any(str(e.get("loc", ("",))[0]) == "path" for e in exc.errors()):
            return not_found(request)
        return _error_page(request, 422, "Not valid",
                           "A value in the address or the form is missing or not valid.")
    if isinstance(exc, BodyTooLarge):
        return too_large_page(request, exc.limit) or _error_page(request, 413, "Refused",
                                                                 str(exc.detail))
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return not_found(request)
        if exc.status_code == 405:
            page = _error_page(request, 405, "Not allowed",
                               f"{request.method} is not allowed at this address.")
            page.headers["Allow"] = allowed_methods(request)
            return page
        return _error_page(request, exc.status_code, "Refused", str(exc.detail))
    if isinstance(exc, IntegrityError):
        return _error_page(request, 409, "Not possible now",
                           "The change clashes with one made at the same time; reload the "
                           "page and try again.")
    if isinstance(exc, DataError):
        return _error_page(request, 422, "Not valid", "A value is out of range or not valid.")
    log.exception("unexpected error on a page", exc_info=exc)
    return _error_page(request, 500, "Something went wrong",
                       "An unexpected error; it has been logged.")


Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def _for_pages(handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if is_ui_path(request.url.path):
            return page_for_error(request, exc)
        answer = handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    return handle


def install_error_pages(app: FastAPI) -> None:
    """Wrap the app's (JSON) error handlers so requests for pages get pages."""
    for kind in (EvidenceError, RequestValidationError, StarletteHTTPException, IntegrityError,
                 DataError, Exception):
        handler = app.exception_handlers.get(kind)
        if handler is not None:
            app.exception_handlers[kind] = _for_pages(handler)
