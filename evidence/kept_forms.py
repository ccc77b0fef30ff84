"""Forms kept across a sign-in: a page's form posted after its sign-in ended, held for the login
session signed in since, which is shown it, may send it once, or discards it.

Kept in the database, not in a process, so every API host shows and sends the same ones. Each
login session holds at most `MAX_PER_SESSION` unsent (the oldest make room), each goes with its
session, and one that is sent keeps only that it was sent: what was typed is then in what the
form did, recorded as any form's change is.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from evidence.errors import Conflict, NotFound
from evidence.models import KeptForm, LoginSession, utcnow

MAX_PER_SESSION = 10


class AlreadySent(Conflict):
    """The kept form was sent already; a second send does nothing."""


class NoLongerKept(Conflict):
    """A kept form sent after it was discarded (or went with its session): nothing is sent."""


def _parse(kept_id: str | uuid.UUID | None) -> uuid.UUID | None:
    try:
        return kept_id if isinstance(kept_id, uuid.UUID) else uuid.UUID(str(kept_id))
    except ValueError:
        return None


def keep(session: Session, login_session: LoginSession, *, action: str,
         fields: Sequence[tuple[str, str]], kept_id: str | None = None,
         now: datetime | None = None) -> KeptForm:
    """Keep the form for `login_session`. A form that is itself a kept one's (`kept_id`, sent
    after its session ended too) stays that one, now the new session's: it is still sent once.
    Only for the user it was kept for: a kept form's id is in its page's address, and a post
    of someone else's naming it keeps their own fields, never moves the owner's to them."""
    now = now or utcnow()
    earlier = _parse(kept_id)
    row = None if earlier is None else session.get(KeptForm, earlier)
    owner = None if row is None else session.get(LoginSession, row.login_session_id)
    if (row is not None and row.action == action and owner is not None
            and owner.user_id == login_session.user_id):
        row.login_session_id = login_session.id
        session.flush()
        return row
    ended = select(LoginSession.id).where(
        (LoginSession.expires_at <= now) | LoginSession.revoked_at.is_not(None))
    session.execute(delete(KeptForm).where(KeptForm.login_session_id.in_(ended)))
    unsent = list(session.scalars(
        select(KeptForm.id).where(KeptForm.login_session_id == login_session.id,
                                  KeptForm.sent_at.is_(None))
        .order_by(KeptForm.created_at.desc(), KeptForm.id)))
    if len(unsent) >= MAX_PER_SESSION:
        session.execute(delete(KeptForm).where(KeptForm.id.in_(unsent[MAX_PER_SESSION - 1:])))
    row = KeptForm(login_session_id=login_session.id, action=action,
                   fields=[[name, value] for name, value in fields], created_at=now)
    session.add(row)
    session.flush()
    return row


def kept_for(session: Session, login_session: LoginSession, kept_id: str | uuid.UUID) -> KeptForm:
    """The kept form, for the session it is kept for; to any other it does not exist."""
    found = _parse(kept_id)
    row = None if found is None else session.get(KeptForm, found)
    if row is None or row.login_session_id != login_session.id:
        raise NotFound("this form is no longer kept: it was discarded, or its sign-in ended")
    return row


def mark_sent(session: Session, kept_id: str, *, now: datetime | None = None) -> None:
    """Record the kept form as sent, in the transaction of what sending it does; refused if it
    was sent already (a second click, or the page sent again from the browser's history)."""
    found = _parse(kept_id)
    row = None if found is None else session.get(KeptForm, found)
    if row is None:
        raise NoLongerKept("this form is no longer kept: it was discarded, or its sign-in "
                           "ended; nothing was sent")
    # One statement, so of two sends at once only one finds it unsent.
    done = session.execute(update(KeptForm).where(KeptForm.id == row.id,
                                                  KeptForm.sent_at.is_(None))
                           .values(sent_at=now or utcnow(), fields=None)
                           .execution_options(synchronize_session=False))
    if getattr(done, "rowcount", 0) != 1:
        raise AlreadySent("this form was sent already; it was not sent again")
    session.expire(row)


def discard(session: Session, login_session: LoginSession, kept_id: str | uuid.UUID) -> None:
    session.delete(kept_for(session, login_session, kept_id))
    session.flush()
