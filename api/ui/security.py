"""What keeps the web pages safe to open: response headers, and CSRF tokens for their forms.

Captured pages' titles and text are hostile input shown in these pages, so every page forbids
scripts altogether (the UI has none), frames, plugins and foreign form targets; Jinja escapes
everything it prints. Form posts carry a token derived from the login session's cookie: a
page of another site can neither read the cookie (HTTP-only) nor compute the token, and the
token needs no state on the server, so any host behind a proxy checks it alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Literal
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evidence.errors import EvidenceError

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
LOGIN_CSRF_COOKIE = "evidence_login_csrf"
_CSRF_CONTEXT = b"evidence-locker web form v1"


def page_headers(*, cache: bool = False) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        # same-origin, not no-referrer: the pages' own form posts then carry their true Origin
        # (no-referrer makes it `null`), which tells a kept form ours where the browser sends
        # no Sec-Fetch-Site (plain HTTP on an intranet address); a request to any other site,
        # a link out to a captured page included, still carries no Referer, so no URL of ours
        # (they hold case references) reaches it.
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if not cache:
        # Pages show evidence: nothing of them stays in a shared machine's cache.
        headers["Cache-Control"] = "no-store"
    return headers


# The API's answers: JSON about evidence (and the Swagger page), read by scripts and browsers
# alike. Nothing of them is cached, sniffed into another type, framed, or named to another site
# in a Referer; a route's own values (a download's sandbox policy) stand.
API_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class FormRefused(EvidenceError):
    """A form was posted without the token of the page that showed it (or from another site)."""

    status_code = 403


def is_ui_path(path: str) -> bool:
    return not (path == "/api" or path.startswith("/api/"))


def session_csrf_token(session_cookie: str) -> str:
    """The form token of one login session: a one-way function of its secret cookie."""
    digest = hmac.new(session_cookie.encode(), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_login_token() -> str:
    """A random token for the login form, kept in a cookie until the user signs in."""
    return secrets.token_urlsafe(32)


def check_token(expected: str | None, sent: str | None) -> None:
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise FormRefused("the form was not sent from a page of this site, or it has expired; "
                          "go back, reload the page and send it again")


Sender = Literal["this site", "another site", "unknown"]


def posted_from(request: Request) -> Sender:
    """Which site a form posted to this one was sent from, as the browser tells.

    Browsers say it in Sec-Fetch-Site (sent to HTTPS and loopback origins); otherwise in Origin
    (these pages' same-origin referrer policy leaves it true for their own forms; a form of
    another site may send `null`) or Referer. Where none of them says, it is "unknown": a post
    kept across a sign-in must be known to be ours.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return "this site" if fetch_site == "same-origin" else "another site"
    here = f"{request.url.scheme}://{request.url.netloc}".lower()
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        return "this site" if origin.lower() == here else "another site"
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return "this site" if f"{parts.scheme}://{parts.netloc}".lower() == here else (
            "another site")
    return "unknown"


class SecurityHeaders:
    """Add the page headers to every response outside `/api`, and `API_HEADERS` to the API's
    where the route set none of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = is_ui_path(scope["path"])
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if page:
                    for name, value in page_headers(cache=static).items():
                        headers[name] = value
                else:
                    for name, value in API_HEADERS.items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
