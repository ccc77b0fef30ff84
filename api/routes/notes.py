"""Notes on a case and on its targets: append-only; an edit is a new revision."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from api.deps import CaseRef, CurrentUser, DbSession, PageParams
from api.schemas import (
    ERROR_RESPONSES,
    ErrorRead,
    NoteCreate,
    NoteDetail,
    NoteRead,
    NoteRevisionRead,
    PageRead,
)
from evidence import cases, notes, targets
from evidence.models import Access

router = APIRouter(prefix="/api/cases/{ref}", tags=["notes"], responses=ERROR_RESPONSES)
WRITE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorRead, "description": "Needs write access."}}


def _read(view: notes.NoteView) -> NoteRead:
    return NoteRead(id=view.note.id, target_id=view.note.target_id,
                    created_by_id=view.note.created_by_id, created_at=view.note.created_at,
                    revision=view.current.revision, body=view.current.body,
                    revised_at=view.current.created_at)


def _detail(view: notes.NoteView) -> NoteDetail:
    return NoteDetail(**_read(view).model_dump(),
                      revisions=[NoteRevisionRead.model_validate(r) for r in view.revisions])


def _page(session: DbSession, ref: str, actor: CurrentUser, paging: PageParams,
          target_id: uuid.UUID | None) -> PageRead[NoteRead]:
    case = cases.case_for(session, actor, ref)
    if target_id is not None:
        targets.get_target(session, case, target_id)
    page = notes.page_notes(session, case, target_id=target_id, on_case_only=target_id is None,
                            limit=paging.limit, cursor=paging.cursor)
    return PageRead[NoteRead](items=[_read(v) for v in page.items],
                              next=paging.next_link(page.next_cursor))


@router.post("/notes", response_model=NoteDetail, status_code=status.HTTP_201_CREATED,
             responses=WRITE)
def add_case_note(ref: CaseRef, body: NoteCreate, session: DbSession, actor: CurrentUser) -> (
    NoteDetail
):
    """Add a note to the case."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    return _detail(notes.add_note(session, actor, case, body=body.body))


@router.get("/notes", response_model=PageRead[NoteRead])
def list_case_notes(ref: CaseRef, session: DbSession, actor: CurrentUser,
                    paging: PageParams) -> PageRead[NoteRead]:
    """The case's own notes (not those on its targets), each at its current revision."""
    return _page(session, ref, actor, paging, None)


@router.get("/notes/{note_id}", response_model=NoteDetail)
def show_case_note(ref: CaseRef, note_id: uuid.UUID, session: DbSession,
                   actor: CurrentUser) -> NoteDetail:
    """A note with every revision."""
    case = cases.case_for(session, actor, ref)
    return _detail(notes.get_note(session, case, note_id))


@router.post("/notes/{note_id}/revisions", response_model=NoteDetail,
             status_code=status.HTTP_201_CREATED, responses=WRITE)
def revise_case_note(ref: CaseRef, note_id: uuid.UUID, body: NoteCreate, session: DbSession,
                     actor: CurrentUser) -> NoteDetail:
    """Edit a note: its new text becomes the next revision; earlier ones are kept."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    return _detail(notes.revise_note(session, actor, case, note_id, body=body.body))


@router.post("/targets/{target_id}/notes", response_model=NoteDetail,
             status_code=status.HTTP_201_CREATED, responses=WRITE)
def add_target_note(ref: CaseRef, target_id: uuid.UUID, body: NoteCreate, session: DbSession,
                    actor: CurrentUser) -> NoteDetail:
    """Add a note to a target."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    return _detail(notes.add_note(session, actor, case, body=body.body, target_id=target_id))


@router.get("/targets/{target_id}/notes", response_model=PageRead[NoteRead])
def list_target_notes(ref: CaseRef, target_id: uuid.UUID, session: DbSession,
                      actor: CurrentUser, paging: PageParams) -> PageRead[NoteRead]:
    """A target's notes, each at its current revision."""
    return _page(session, ref, actor, paging, target_id)


@router.get("/targets/{target_id}/notes/{note_id}", response_model=NoteDetail)
def show_target_note(ref: CaseRef, target_id: uuid.UUID, note_id: uuid.UUID,
                     session: DbSession, actor: CurrentUser) -> NoteDetail:
    """A target's note with every revision."""
    case = cases.case_for(session, actor, ref)
    return _detail(notes.get_note(session, case, note_id, target_id=target_id))


@router.post("/targets/{target_id}/notes/{note_id}/revisions", response_model=NoteDetail,
             status_code=status.HTTP_201_CREATED, responses=WRITE)
def revise_target_note(ref: CaseRef, target_id: uuid.UUID, note_id: uuid.UUID, body: NoteCreate,
                       session: DbSession, actor: CurrentUser) -> NoteDetail:
    """Edit a target's note by adding its next revision."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    return _detail(notes.revise_note(session, actor, case, note_id, body=body.body,
                                     target_id=target_id))
