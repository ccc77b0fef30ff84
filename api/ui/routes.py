"""The web pages: sign-in, the caller's cases, a case, flagging a URL or an account, a capture.

Thin like the API routes: each parses the request, calls the service function the API calls
for the same thing (which checks access and writes the custody entry for a read of evidence),
and renders a template. A page of a case the caller may not see answers the same "not found"
as one that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api.deps import (
    SESSION_COOKIE,
    DbSession,
    case_reference,
    get_runtime,
    quote_ref,
    session_limits,
)
from api.schemas import LoginCreate, TargetCreate
from api.ui.kept import carried_by_sign_in, confirmation_page, keep, sign_in_inputs
from api.ui.received import views_of
from api.ui.rendering import PageError, login_page, render, safe_next, sentence, viewer_of
from api.ui.security import LOGIN_CSRF_COOKIE, check_token, session_csrf_token
from evidence import (
    accounts,
    capture_reads,
    captures,
    case_reads,
    cases,
    custody,
    deconfliction,
    kept_forms,
    notes,
    received,
    sessions,
    targets,
    users,
)
from evidence.errors import AccessDenied, EvidenceError, PermissionDenied
from evidence.models import Access, Case, CaseStatus, LoginSession, Role, User
from evidence.pagination import MAX_CURSOR_LENGTH, Page
from evidence.platforms import platform_registry

router = APIRouter(include_in_schema=False)

CASES_PER_PAGE = 50
TARGETS_PER_PAGE = 50
TIMELINE_PER_PAGE = 25
NOTES_PER_PAGE = 25
CASE_PAGE_RECEIVED = 20  # the newest received files the case's page lists

CsrfField = Annotated[str | None, Form(max_length=200)]
Cursor = Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)]


def page_viewer(request: Request, session: DbSession) -> User:
    """The signed-in user, from the login cookie only; without one the page sends to sign-in."""
    user = sessions.authenticate(session, bearer=None, cookie=request.cookies.get(SESSION_COOKIE),
                                 **session_limits(request))
    # For a page shown after the request's transaction rolled back (api/ui/kept.py).
    request.state.page_viewer = viewer_of(user)
    return user


Viewer = Annotated[User, Depends(page_viewer)]


def evidence_viewer(viewer: Viewer) -> User:
    """A signed-in user whose role reads evidence: the search and the requests-due pages, which
    an auditor's header does not offer either (`rendering.NAV`), refuse an auditor who types
    their address rather than show an empty page."""
    if not users.reads_evidence(viewer.role):
        raise PermissionDenied("an auditor reads the custody logs of cases, not their evidence: "
                               "this page is not open to that role")
    return viewer


EvidenceViewer = Annotated[User, Depends(evidence_viewer)]


async def _posted(request: Request) -> FormData:
    """The whole posted form, for inputs whose names are not known beforehand."""
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


def check_session_form(request: Request, sent: str | None) -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    check_token(session_csrf_token(cookie) if cookie else None, sent)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- signing in and out ----------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, session: DbSession,
               next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and sessions.user_for_session(session, cookie, **session_limits(request)) is not None:
        return see_other(safe_next(next))
    return login_page(request, next_path=next)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: DbSession,
    posted: Posted,
    csrf_token: CsrfField = None,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    check_token(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token)
    # A form kept across the sign-in goes on in every page shown again, till it is signed in.
    kept = carried_by_sign_in(posted)
    notice, hidden = sign_in_inputs(kept)
    # For the page shown again if the service refuses the password.
    request.state.login_name, request.state.login_next = name, next
    request.state.login_notice, request.state.login_hidden = notice, hidden
    try:
        body = LoginCreate(name=name, password=password)
    except ValidationError:
        return login_page(request, error="Enter your user name and your password.",
                          status_code=422, name=name, next_path=next, notice=notice,
                          hidden=hidden)
    try:
        _user, token, login_session = sessions.login(
            session, name=body.name, password=body.password,
            remote_address=request.client.host if request.client else None,
            now=get_runtime(request).clock())
    except sessions.LoginThrottled as exc:
        # Answered here, not by the error pages: the form comes back, with when to try again.
        page = login_page(request, error=sentence(exc.message),
                          status_code=429, name=name, next_path=next, notice=notice,
                          hidden=hidden)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    # A kept form is shown, not sent: the one signing in now may not be who filled it in.
    response: Response = (see_other(safe_next(next)) if kept is None
                          else keep(session, login_session, kept))
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(sessions.SESSION_LIFETIME.total_seconds()),
        httponly=True, samesite="strict", secure=request.app.state.secure_cookies, path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", httponly=True, samesite="strict",
                           secure=request.app.state.secure_cookies)
    return response


@router.post("/logout")
def logout(request: Request, session: DbSession, viewer: Viewer,
           csrf_token: CsrfField = None) -> Response:
    check_session_form(request, csrf_token)
    sessions.logout(session, viewer, request.cookies.get(SESSION_COOKIE))
    response = see_other("/login")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.app.state.secure_cookies)
    return response


def _signed_in_session(request: Request, session: Session) -> LoginSession:
    found = sessions.open_session(session, request.cookies.get(SESSION_COOKIE, ""),
                                  **session_limits(request))
    if found is None:
        raise sessions.NotAuthenticated("the session has ended; log in again")
    return found


@router.get("/kept/{kept_id}", response_class=HTMLResponse)
def kept_page(request: Request, kept_id: uuid.UUID, session: DbSession,
              viewer: Viewer) -> Response:
    """A form kept across the sign-in (api/ui/kept.py): what it holds, and a button to send it."""
    row = kept_forms.kept_for(session, _signed_in_session(request, session), kept_id)
    return confirmation_page(request, row, viewer=viewer)


@router.post("/kept/{kept_id}/discard")
def discard_kept(request: Request, kept_id: uuid.UUID, session: DbSession, viewer: Viewer,
                 csrf_token: CsrfField = None) -> Response:
    check_session_form(request, csrf_token)
    kept_forms.discard(session, _signed_in_session(request, session), kept_id)
    return see_other("/")


def note_list(session: Session, page: Page[notes.NoteView]) -> list[dict[str, Any]]:
    """A page of notes as the case and target pages list them, at their current revision."""
    names = case_reads.user_names(session, [i for v in page.items
                                            for i in (v.note.created_by_id, v.current.author_id)])
    return [{"id": str(v.note.id), "created_at": v.note.created_at,
             "by": names[v.note.created_by_id], "revision": v.current.revision,
             "revised_at": v.current.created_at, "revised_by": names[v.current.author_id],
             "body": v.current.body}
            for v in page.items]


# --- cases -----------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def case_list(request: Request, session: DbSession, viewer: Viewer,
              cursor: Cursor = None) -> Response:
    page = cases.page_cases(session, viewer, limit=CASES_PER_PAGE, cursor=cursor)
    counts = case_reads.counts_of(session, [c.id for c in page.items])
    return render(request, "cases.html",
                  {"cases": page.items, "counts": counts, "next_cursor": page.next_cursor,
                   "may_create": viewer.role != Role.AUDITOR},
                  viewer=viewer)


@router.get("/cases/{ref}", response_class=HTMLResponse)
def case_page(
    request: Request, ref: str, session: DbSession, viewer: Viewer,
    targets_cursor: Cursor = None,
    notes_cursor: Cursor = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:

    case = cases.show_case(session, viewer, case_reference(ref, viewer))
    target_page = targets.page_targets(session, case, limit=TARGETS_PER_PAGE,
                                       cursor=targets_cursor)
    latest = case_reads.latest_of(session, case, [t.id for t in target_page.items])
    timeline = case_reads.timeline_newest_first(session, case, before=before,
                                           limit=TIMELINE_PER_PAGE)
    access = cases.access_of(session, viewer, case)
    case_notes = notes.page_notes(session, case, on_case_only=True, limit=NOTES_PER_PAGE,
                                  cursor=notes_cursor)
    return render(request, "case.html", {
        "case": case,
        "may_flag": access in (Access.WRITE, Access.MANAGE) and case.status == CaseStatus.OPEN,
        "may_note": access in (Access.WRITE, Access.MANAGE),
        "may_manage": access == Access.MANAGE,
        "notes": note_list(session, case_notes), "notes_next": case_notes.next_cursor,
        "targets": target_page.items, "targets_next": target_page.next_cursor,
        "names": accounts.target_names(session, target_page.items),
        "latest": latest,
        "entries": [custody.describe(e) for e in timeline.entries],
        "older_than": timeline.older_than, "newest_page": before is None,
        "received": views_of(session, case, received.page_received(
            session, case, limit=CASE_PAGE_RECEIVED).items),
        "received_total": received.count_received(session, case),
    }, viewer=viewer)


def _flagged(session: Session, case: Case, target_id: uuid.UUID | None) -> dict[str, Any]:
    """What the flag pages say of the target just flagged: its name, its capture, and whether
    another investigation holds it too (a deconfliction hit)."""
    if target_id is None:
        return {"flagged": None, "jobs": [], "latest": None}
    target = targets.get_target(session, case, target_id)
    account = (None if target.account_id is None
               else accounts.get_case_account(session, case, target.account_id))
    return {"flagged": target, "flagged_name": targets.target_name(target, account),
            "jobs": targets.jobs_of(session, target),
            "latest": case_reads.latest_of(session, case, [target.id])[target.id],
            "hits": len(deconfliction.unresolved_hits(session, target))}


@contextmanager
def _flag_refused(template: str, again: dict[str, Any], viewer: User,
                  fields: tuple[tuple[str, str, str], ...]) -> Iterator[None]:
    """A flag form's refusals as the form again, with what was typed: by the schema, what to
    give with its bound (`fields`: name, words, bound); by the service, its message."""
    try:
        yield
    except ValidationError as exc:
        named = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
        wanted = [(label, bound) for field, label, bound in fields if field in named] or [
            (label, bound) for _field, label, bound in fields]
        raise PageError(f"Give {' and '.join(label for label, _ in wanted)} (at most "
                        f"{' and '.join(bound for _, bound in wanted)} characters).",
                        422, template=template, context=again, viewer=viewer) from exc
    except AccessDenied:
        raise
    except EvidenceError as exc:
        # Raised on, so the request's transaction rolls back before the form is shown again.
        raise PageError(sentence(exc.message), exc.status_code, template=template,
                        context=again, viewer=viewer) from exc


@router.get("/cases/{ref}/flag", response_class=HTMLResponse)
def flag_form(request: Request, ref: str, session: DbSession, viewer: Viewer,
              target: Annotated[uuid.UUID | None, Query()] = None) -> Response:
    case = cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)
    context: dict[str, Any] = {"case": case, "url": "", "reason": "", "error": None,
                               **_flagged(session, case, target)}
    return render(request, "flag.html", context, viewer=viewer)


@router.post("/cases/{ref}/flag", response_class=HTMLResponse)
def flag(
    request: Request, ref: str, session: DbSession, viewer: Viewer,
    csrf_token: CsrfField = None,
    url: Annotated[str, Form(max_length=5000)] = "",
    reason: Annotated[str, Form(max_length=6000)] = "",
) -> Response:
    check_session_form(request, csrf_token)
    case = cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)
    again: dict[str, Any] = {"case": {"reference": case.reference}, "url": url,
                             "reason": reason, **_flagged(session, case, None)}
    with _flag_refused("flag.html", again, viewer,
                       (("url", "a URL", "4,096"), ("reason", "a reason", "5,000"))):
        body = TargetCreate(url=url.strip(), reason=reason)
        target, _job = targets.flag(session, viewer, case, reason=body.reason, url=body.url)
    return see_other(f"/cases/{quote_ref(case.reference)}/flag?target={target.id}")


def _account_form(case: Case | dict[str, str], form: dict[str, str],
                  flagged: dict[str, Any]) -> dict[str, Any]:
    registry = platform_registry()
    return {"case": case, "form": form, "error": None, **flagged,
            "platforms": [(name, registry.get(name).display_name) for name in registry.names]}


ACCOUNT_FIELDS = ("platform", "profile_url", "handle", "platform_account_id", "reason")


@router.get("/cases/{ref}/flag-account", response_class=HTMLResponse)
def flag_account_form(request: Request, ref: str, session: DbSession, viewer: Viewer,
                      target: Annotated[uuid.UUID | None, Query()] = None) -> Response:
    case = cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)
    form = dict.fromkeys(ACCOUNT_FIELDS, "")
    return render(request, "flag_account.html",
                  _account_form(case, form, _flagged(session, case, target)), viewer=viewer)


@router.post("/cases/{ref}/flag-account", response_class=HTMLResponse)
def flag_account(
    request: Request, ref: str, session: DbSession, viewer: Viewer,
    csrf_token: CsrfField = None,
    platform: Annotated[str, Form(max_length=200)] = "",
    profile_url: Annotated[str, Form(max_length=5000)] = "",
    handle: Annotated[str, Form(max_length=1000)] = "",
    platform_account_id: Annotated[str, Form(max_length=1000)] = "",
    reason: Annotated[str, Form(max_length=6000)] = "",
) -> Response:
    """The API's link-then-flag of an account, as one form (`accounts.flag_account`)."""
    check_session_form(request, csrf_token)
    case = cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)
    form = {"platform": platform, "profile_url": profile_url, "handle": handle,
            "platform_account_id": platform_account_id, "reason": reason}
    again = _account_form({"reference": case.reference}, form, _flagged(session, case, None))
    with _flag_refused("flag_account.html", again, viewer,
                       (("url", "the profile URL", "4,096"), ("reason", "a reason", "5,000"))):
        body = TargetCreate(url=profile_url.strip(), reason=reason)
        target, _job = accounts.flag_account(
            session, viewer, case, platform=platform, profile_url=body.url or "",
            handle=handle, platform_account_id=platform_account_id, reason=body.reason)
    return see_other(f"/cases/{quote_ref(case.reference)}/flag-account?target={target.id}")


# --- captures --------------------------------------------------------------------------------

@router.get("/captures/{capture_id}", response_class=HTMLResponse)
def capture_page(request: Request, capture_id: uuid.UUID, session: DbSession,
                 viewer: Viewer) -> Response:
    found = captures.get_capture(session, capture_id)
    case = case_reads.case_by_id(session, found.case_id)
    try:
        if case is None:
            raise AccessDenied(f"no capture {capture_id}")
        case = cases.case_for(session, viewer, case.reference)
    except AccessDenied:
        # Not the case's reference: a stranger learns nothing of where the capture belongs.
        raise AccessDenied(f"no capture {capture_id}") from None
    capture, artifacts = capture_reads.view_capture(session, viewer, case, capture_id)
    base = f"/api/cases/{quote_ref(case.reference)}/captures/{capture.id}/artifacts"
    screenshot = next((a for a in artifacts
                       if a.kind == "screenshot" and a.media_type == "image/png"), None)
    # The capture it was compared with when it was made: the one before it that loaded.
    previous = (None if not capture.comparison else captures.previous_capture(
        session, capture.target_id, before=capture.started_at))
    target = targets.get_target(session, case, capture.target_id)
    return render(request, "capture.html", {
        "case": case, "capture": capture, "artifacts": artifacts, "download_base": base,
        "target_name": accounts.target_names(session, [target])[target.id],
        "screenshot": screenshot, "steps": capture.steps or [],
        "comparison": capture.comparison, "previous": previous,
        # A file changed in place is offered as it was and as it is, from either capture.
        "files_now": _files_by_hash(artifacts, base),
        "files_before": {} if previous is None else _files_by_hash(
            captures.artifacts_of(session, previous.id),
            f"/api/cases/{quote_ref(case.reference)}/captures/{previous.id}/artifacts"),
        "outcome": captures.outcome_of(capture.status, capture.http_status),
        "http_answer": captures.http_answer(capture.http_status),
    }, viewer=viewer)


def _files_by_hash(artifacts: list[Any], base: str) -> dict[str, dict[str, Any]]:
    """Each stored file of a capture by its SHA-256: its download link, and whether it is a
    picture to show."""
    found: dict[str, dict[str, Any]] = {}
    for a in artifacts:
        found.setdefault(a.sha256, {"href": f"{base}/{a.id}",
                                    "image": a.media_type.startswith("image/")})
    return found
