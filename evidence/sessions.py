"""Who is calling: login sessions for the web UI and the API tokens of `users`.

A login makes a random session token that the browser keeps in an HTTP-only cookie; the
database keeps only its SHA-256, as for API tokens, so a copy of the database logs nobody in.
Sessions end at a fixed time after login, or when the user logs out.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import custody, users
from evidence.errors import EvidenceError, InvalidInput
from evidence.models import LoginSession, User, utcnow

SESSION_PREFIX = "evs_"
SESSION_LIFETIME = timedelta(hours=12)
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password
# and the timing of a failed login does not tell which names exist.
_DUMMY_HASH = users.hash_password(secrets.token_urlsafe(16))


class NotAuthenticated(EvidenceError):
    """No valid credentials came with the request."""

    status_code = 401


class LoginFailed(NotAuthenticated):
    """The name or the password is wrong, or the user may not log in."""


def login(session: Session, *, name: str, password: str) -> tuple[User, str, LoginSession]:
    """Check the password and open a session; returns the token, to be shown to nobody but the
    browser that logged in."""
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None or user.password_hash is None:
        users.password_matches(_DUMMY_HASH, password)
        raise LoginFailed("wrong user name or password")
    if not users.password_matches(user.password_hash, password) or not user.is_active:
        raise LoginFailed("wrong user name or password")
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = LoginSession(user_id=user.id, token_hash=users.hash_token(token), created_at=now,
                       expires_at=now + SESSION_LIFETIME)
    session.add(row)
    session.flush()
    custody.append(session, user, action="user.logged_in", object_type="login_session",
                   object_id=row.id, details={"expires_at": custody.format_time(row.expires_at)})
    return user, token, row


def set_password(session: Session, actor: User, user: User, password: str) -> int:
    """Set or replace the password the user signs in to the web UI with: an admin for anyone,
    a user for themselves. The user's open login sessions end, so a password taken back shuts
    out whoever held it; returns how many ended."""
    if actor.id != user.id:
        users.require_admin(actor)
    if not password.strip():
        raise InvalidInput("the password is empty")
    user.password_hash = users.hash_password(password)
    now = utcnow()
    open_rows = list(session.scalars(select(LoginSession).where(
        LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > now)))
    for row in open_rows:
        row.revoked_at = now
    session.flush()
    custody.append(session, actor, action="user.password_set", object_type="user",
                   object_id=user.id, details={"user": user.name, "sessions_ended": len(open_rows)})
    return len(open_rows)


def user_for_session(session: Session, token: str) -> User | None:
    if not token.startswith(SESSION_PREFIX):
        return None
    row = session.scalars(
        select(LoginSession).where(
            LoginSession.token_hash == users.hash_token(token), LoginSession.revoked_at.is_(None)
        )
    ).first()
    now = utcnow()
    if row is None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    row.last_seen_at = now
    return user


def logout(session: Session, actor: User, token: str | None) -> bool:
    """End the session the token names, if it is the actor's and still open."""
    if not token:
        return False
    row = session.scalars(
        select(LoginSession).where(
            LoginSession.token_hash == users.hash_token(token),
            LoginSession.user_id == actor.id,
            LoginSession.revoked_at.is_(None),
        )
    ).first()
    if row is None:
        return False
    row.revoked_at = utcnow()
    session.flush()
    custody.append(session, actor, action="user.logged_out", object_type="login_session",
                   object_id=row.id)
    return True


def authenticate(session: Session, *, bearer: str | None, cookie: str | None) -> User:
    """The user a request acts as: a Bearer API token, else the login session cookie."""
    if bearer is not None:
        user = users.user_for_token(session, bearer)
        if user is None:
            raise NotAuthenticated("the API token is unknown, revoked or its user disabled")
        return user
    if cookie:
        user = user_for_session(session, cookie)
        if user is None:
            raise NotAuthenticated("the session has ended; log in again")
        return user
    raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer TOKEN'")
