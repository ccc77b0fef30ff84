"""Notes on a case and on its targets, in the pages: listed on the case and target pages, added,
and revised on the note's own page, which shows every revision.

The same services as `api/routes/notes.py`: a note is never changed in place, an edit adds its
next revision (each with its own custody entry carrying the text's SHA-256), and the note's page
shows them all, oldest first.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from api.deps import DbSession, case_reference, quote_ref
from api.schemas import NoteCreate
from api.ui.cases import case_to_change, check_form
from api.ui.decisions import WRITE_ACCESS
from api.ui.rendering import PageError, render, sentence
from api.ui.routes import CsrfField, Viewer, check_session_form, see_other
from evidence import accounts, case_reads, cases, notes, targets
from evidence.errors import EvidenceError, InvalidInput
from evidence.models import Access, Case, User

router = APIRouter(include_in_schema=False)

DONE = {"added": "Note added; recorded in the case's custody log.",
        "revised": "Revision added; the earlier text stays below, as it was."}
Body = Annotated[str, Form(max_length=200_000)]


def may_note(session: Session, viewer: User, case: Case) -> bool:
    return cases.access_of(session, viewer, case) in WRITE_ACCESS


def _note_context(session: Session, viewer: User, case: Case,
                  view: notes.NoteView) -> dict[str, Any]:
    names = case_reads.user_names(session, [r.author_id for r in view.revisions])
    target = (None if view.note.target_id is None
              else targets.get_target(session, case, view.note.target_id))
    name = None if target is None else accounts.target_names(session, [target])[target.id]
    return {
        "case": {"reference": case.reference, "title": case.title, "status": case.status},
        "target": None if target is None else {"id": str(target.id),
                                               "name": name},
        "note": {"id": str(view.note.id), "created_at": view.note.created_at,
                 "revision": view.current.revision},
        "revisions": [{"revision": r.revision, "body": r.body, "sha256": r.body_sha256,
                       "by": names[r.author_id], "at": r.created_at}
                      for r in reversed(view.revisions)],
        "may_note": may_note(session, viewer, case),
        "body": view.current.body, "error": None, "done": None,
    }


def _new_note_context(session: Session, case: Case, target_id: str,
                      body: str) -> dict[str, Any]:
    """The form as typed; the target named when `target_id` is one of the case's (a refusal
    may come back with one that is not)."""
    try:
        target = targets.get_target(session, case, uuid.UUID(target_id)) if target_id else None
    except (ValueError, EvidenceError):
        target = None
    return {"case": {"reference": case.reference, "title": case.title, "status": case.status},
            "target_id": target_id, "body": body, "error": None,
            "target": None if target is None else {
                "id": str(target.id), "name": accounts.target_names(session, [target])[target.id]}}


def _body(body: str) -> str:
    """The note's text as the API takes it; blank text is the service's to refuse."""
    if body.strip():
        check_form(NoteCreate, {"body": body}, {"body": "A note"})
    return body


@router.get("/cases/{ref}/notes/new", response_class=HTMLResponse)
def new_note_form(request: Request, ref: str, session: DbSession, viewer: Viewer,
                  target: Annotated[uuid.UUID | None, Query()] = None) -> Response:
    case = case_to_change(session, viewer, ref, need=Access.WRITE)
    if target is not None:
        targets.get_target(session, case, target)
    return render(request, "note_form.html",
                  _new_note_context(session, case, "" if target is None else str(target), ""),
                  viewer=viewer)


@router.post("/cases/{ref}/notes", response_class=HTMLResponse)
def add_note(
    request: Request, ref: str, session: DbSession, viewer: Viewer,
    csrf_token: CsrfField = None, body: Body = "",
    target_id: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Add a note to the case, or to one of its targets (`target_id`)."""
    check_session_form(request, csrf_token)
    case = case_to_change(session, viewer, ref, need=Access.WRITE)
    context = _new_note_context(session, case, target_id, body)
    try:
        try:
            target = uuid.UUID(target_id) if target_id else None
        except ValueError:
            raise InvalidInput("the note's target is not one of this case's") from None
        view = notes.add_note(session, viewer, case, body=_body(body), target_id=target)
    except EvidenceError as exc:
        raise PageError(sentence(exc.message), exc.status_code, template="note_form.html",
                        context=context, viewer=viewer) from exc
    return see_other(f"/cases/{quote_ref(case.reference)}/notes/{view.note.id}?done=added")


@router.get("/cases/{ref}/notes/{note_id}", response_class=HTMLResponse)
def note_page(request: Request, ref: str, note_id: uuid.UUID, session: DbSession,
              viewer: Viewer, done: Annotated[str | None, Query(max_length=20)] = None) -> (
    Response
):
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    context = _note_context(session, viewer, case, notes.get_note(session, case, note_id))
    context["done"] = DONE.get(done or "")
    return render(request, "note.html", context, viewer=viewer)


@router.post("/cases/{ref}/notes/{note_id}/revisions", response_class=HTMLResponse)
def revise_note(request: Request, ref: str, note_id: uuid.UUID, session: DbSession,
                viewer: Viewer, csrf_token: CsrfField = None, body: Body = "") -> Response:
    check_session_form(request, csrf_token)
    case = case_to_change(session, viewer, ref, need=Access.WRITE)
    context = {**_note_context(session, viewer, case, notes.get_note(session, case, note_id)),
               "body": body}
    try:
        notes.revise_note(session, viewer, case, note_id, body=_body(body))
    except EvidenceError as exc:
        raise PageError(sentence(exc.message), exc.status_code, template="note.html",
                        context=context, viewer=viewer) from exc
    return see_other(f"/cases/{quote_ref(case.reference)}/notes/{note_id}?done=revised")
