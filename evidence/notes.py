"""Notes on cases and targets: append-only, an edit is a new revision of the note.

The database refuses UPDATE and DELETE on notes and their revisions (migration 0002). Each
revision's custody entry carries the SHA-256 of its text, so the log proves what was written
without repeating it.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import cases, custody, targets
from evidence.errors import AccessDenied, InvalidInput
from evidence.models import Access, Case, Note, NoteRevision, User, utcnow
from evidence.pagination import Page, paginate

MAX_BODY_CHARS = 100_000


@dataclass(frozen=True)
class NoteView:
    note: Note
    current: NoteRevision
    revisions: list[NoteRevision]


def _check_body(body: str) -> str:
    if not body.strip():
        raise InvalidInput("a note needs some text")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidInput(f"a note holds at most {MAX_BODY_CHARS} characters")
    return body


def _revise(
    session: Session, actor: User, case: Case, note: Note, body: str, revision: int
) -> NoteRevision:
    digest = hashlib.sha256(body.encode()).hexdigest()
    row = NoteRevision(note_id=note.id, revision=revision, body=body, body_sha256=digest,
                       author_id=actor.id, created_at=utcnow())
    session.add(row)
    session.flush()
    custody.append(
        session, actor, action="note.added" if revision == 1 else "note.revised", case=case,
        object_type="note", object_id=note.id, sha256=digest,
        details={"revision": revision,
                 "target": None if note.target_id is None else str(note.target_id)},
    )
    return row


def add_note(
    session: Session, actor: User, case: Case, *, body: str, target_id: uuid.UUID | None = None
) -> NoteView:
    cases.require_access(session, actor, case, Access.WRITE)
    body = _check_body(body)
    if target_id is not None:
        targets.get_target(session, case, target_id)
    note = Note(case_id=case.id, target_id=target_id, created_by_id=actor.id,
                created_at=utcnow())
    session.add(note)
    session.flush()
    revision = _revise(session, actor, case, note, body, 1)
    return NoteView(note, revision, [revision])


def get_note(
    session: Session, case: Case, note_id: uuid.UUID, *, target_id: uuid.UUID | None = None
) -> NoteView:
    """The note with every revision, oldest first; a note of another case is not found."""
    query = select(Note).where(Note.id == note_id, Note.case_id == case.id)
    if target_id is not None:
        query = query.where(Note.target_id == target_id)
    note = session.scalars(query).first()
    if note is None:
        raise AccessDenied(f"no note {note_id} in case {case.reference!r}")
    revisions = list(session.scalars(
        select(NoteRevision).where(NoteRevision.note_id == note.id)
        .order_by(NoteRevision.revision)
    ))
    return NoteView(note, revisions[-1], revisions)


def revise_note(
    session: Session, actor: User, case: Case, note_id: uuid.UUID, *, body: str,
    target_id: uuid.UUID | None = None,
) -> NoteView:
    """Edit a note by adding its next revision; earlier ones stay as they were."""
    cases.require_access(session, actor, case, Access.WRITE)
    body = _check_body(body)
    view = get_note(session, case, note_id, target_id=target_id)
    # A browser sends a textarea's lines ended CRLF, whatever ended them when they were kept.
    if body.replace("\r\n", "\n") == view.current.body.replace("\r\n", "\n"):
        raise InvalidInput(f"the text is the same as revision {view.current.revision}: "
                           "nothing was saved")
    revision = _revise(session, actor, case, view.note, body, view.current.revision + 1)
    return NoteView(view.note, revision, [*view.revisions, revision])


def page_notes(
    session: Session, case: Case, *, target_id: uuid.UUID | None = None, on_case_only: bool,
    limit: int, cursor: str | None,
) -> Page[NoteView]:
    """Notes of the case (`on_case_only`: not those on its targets), or of one target."""
    query = select(Note).where(Note.case_id == case.id)
    if target_id is not None:
        query = query.where(Note.target_id == target_id)
    elif on_case_only:
        query = query.where(Note.target_id.is_(None))
    page = paginate(session, query, key=(Note.created_at, Note.id), limit=limit, cursor=cursor)
    if not page.items:
        return Page([], page.next_cursor)
    latest = (
        select(NoteRevision.note_id, func.max(NoteRevision.revision).label("top"))
        .where(NoteRevision.note_id.in_([n.id for n in page.items]))
        .group_by(NoteRevision.note_id)
        .subquery()
    )
    current = {
        r.note_id: r for r in session.scalars(
            select(NoteRevision).join(
                latest, (latest.c.note_id == NoteRevision.note_id)
                & (latest.c.top == NoteRevision.revision)
            )
        )
    }
    return Page([NoteView(n, current[n.id], []) for n in page.items], page.next_cursor)
