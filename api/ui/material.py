"""The case's received material as a page: all of it, newest first, a page at a time, and for
its writers the form that keeps material from another source. Also the one handler both forms
that keep a received file post to (this page's, and a request's page's for a platform's answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import AppRuntime, DbSession, case_reference, quote_ref
from api.routes.received import Posted as Upload
from api.routes.received import register_upload
from api.ui.received import views_of
from api.ui.rendering import PageError, render, sentence
from api.ui.routes import Cursor, Viewer, check_session_form, see_other
from api.ui.security import FormRefused
from evidence import cases, received
from evidence.errors import AccessDenied, EvidenceError
from evidence.models import Access, Case, CaseStatus, User

router = APIRouter(include_in_schema=False)

RECEIVED_PER_PAGE = 50
SOURCE_FIELDS = {"received_at": "", "via": "email", "via_detail": "", "source": ""}


def keep_posted(request: Request, session: Any, viewer: User, runtime: Any, case: Case,
                upload: Any, *, request_id: str | None, blank: dict[str, str], again: str,
                page: Callable[[], tuple[str, dict[str, Any]]], done: str) -> Response:
    """Keep the file a form posted, then go to `done`. A refusal shows the form's page (as
    `page` builds it) with why and what was typed; a form of an earlier sign-in keeps nothing
    and says to open `again` and attach the file once more."""
    try:
        check_session_form(request, upload.get("csrf_token"))
    except FormRefused:
        # Not kept across a sign-in like the other forms: it holds a file (api/ui/kept.py).
        return render(request, "error.html", {
            "status": 403, "title": "Form not sent",
            "message": "Your form came from a page of an earlier sign-in, and a form with a "
                       f"file attached cannot be kept. Nothing was kept: open {again} again "
                       "and attach the file."}, viewer=viewer, status_code=403)
    typed = {key: upload.get(key) for key in blank}
    try:
        register_upload(session, viewer, case, upload, store=runtime.store, request=request_id)
    except AccessDenied:
        raise
    except EvidenceError as exc:
        message = "Nothing was kept: " + sentence(exc.message)
        template, context = page()
        context.update(receive=typed, receive_error=message)
        raise PageError(message, exc.status_code, template=template, context=context,
                        viewer=viewer) from exc
    return see_other(done)


def _context(session: Any, viewer: User, case: Case, cursor: str | None) -> dict[str, Any]:
    page = received.page_received(session, case, limit=RECEIVED_PER_PAGE, cursor=cursor)
    access = cases.access_of(session, viewer, case)
    return {
        # Plain values: a refused form's page is shown after the transaction rolled back.
        "case": {"reference": case.reference, "title": case.title, "status": case.status},
        "received": views_of(session, case, page.items), "next_cursor": page.next_cursor,
        "received_total": received.count_received(session, case),
        "may_receive": access in (Access.WRITE, Access.MANAGE)
        and case.status == CaseStatus.OPEN,
        "receive": dict(SOURCE_FIELDS), "receive_error": None,
    }


@router.get("/cases/{ref}/received", response_class=HTMLResponse)
def received_page(request: Request, ref: str, session: DbSession, viewer: Viewer,
                  cursor: Cursor = None) -> Response:
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    return render(request, "received.html", _context(session, viewer, case, cursor),
                  viewer=viewer)


def _writable_case(ref: str, session: DbSession, viewer: Viewer) -> Case:
    return cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)


@router.post("/cases/{ref}/received", response_class=HTMLResponse)
def receive_from_source(
    request: Request, session: DbSession, viewer: Viewer, runtime: AppRuntime,
    case: Annotated[Case, Depends(_writable_case)],
    upload: Upload,  # after the viewer and the case: nothing is read for a stranger
) -> Response:
    return keep_posted(
        request, session, viewer, runtime, case, upload, request_id=None, blank=SOURCE_FIELDS,
        again="the case's received material",
        page=lambda: ("received.html", _context(session, viewer, case, None)),
        done=f"/cases/{quote_ref(case.reference)}/received")
