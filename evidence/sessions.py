"""Who is calling: login sessions for the web UI and the API tokens of `users`.

A login makes a random session token that the browser keeps in an HTTP-only cookie; the
database keeps only its SHA-256, as for API tokens, so a copy of the database logs nobody in.
Sessions end at a fixed time after login, or when the user logs out.

Password guessing is throttled per name: every refused login is a `LoginFailure` row, and a name
with `LOGIN_FAILURE_LIMIT` failures inside `LOGIN_FAILURE_WINDOW` is refused without a look at
the password until the oldest of them leaves the window. The rows live in the database, so all
API hosts count together; the name as typed is what counts, whether a user has it or not, so the
answer never tells which names exist. They are kept for `LOGIN_FAILURE_RETENTION`, then pruned.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from evidence import custody, users
from evidence.errors import EvidenceError, InvalidInput
from evidence.models import LoginFailure, LoginSession, User, utcnow

SESSION_PREFIX = "evs_"
SESSION_LIFETIME = timedelta(hours=12)
# This many refused logins for one name inside the window close the name until the oldest of
# them leaves it. Refusals while closed are not counted, so the name reopens on time.
LOGIN_FAILURE_LIMIT = 5
LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
# Failures outlive the window as a record of who guessed at which names from where; past this
# they are deleted, each time a failure is recorded, so the table stays bounded.
LOGIN_FAILURE_RETENTION = timedelta(days=90)
# pg_advisory_xact_lock(space, key): serialises the failures of one name across hosts, so the
# failure that closes a name is one, and so is its custody entry. A two-key lock never meets the
# one-key locks of the custody log and the image index.
_FAILURE_LOCK_SPACE = 0x45564C46  # "EVLF"
_NAME_LENGTH = 64  # users.NAME_PATTERN; longer typed names are cut, no user has one
_ADDRESS_LENGTH = 64  # the column; an IPv6 address with a zone fits
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password
# and the timing of a failed login does not tell which names exist.
_DUMMY_HASH = users.hash_password(secrets.token_urlsafe(16))


class NotAuthenticated(EvidenceError):
    """No valid credentials came with the request."""

    status_code = 401


class LoginFailed(NotAuthenticated):
    """The name or the password is wrong, or the user may not log in."""


class LoginThrottled(EvidenceError):
    """Too many failed logins for this name lately; refused without checking the password."""

    status_code = 429

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after  # whole seconds, for a Retry-After header
        self.minutes = max(1, math.ceil(retry_after / 60))
        unit = "minute" if self.minutes == 1 else "minutes"
        super().__init__(f"too many failed sign-ins for this name; try again in {self.minutes} "
                         f"{unit}")


def normalise_login_name(name: str) -> str:
    """The name a failure is counted under: `Nadia`, ` nadia` and `NADIA` guess at one user."""
    return unicodedata.normalize("NFKC", name).strip().casefold()[:_NAME_LENGTH]


def throttled_for(session: Session, name: str, *, now: datetime | None = None) -> int | None:
    """Seconds until the name (as typed) may try again, or None when it may now."""
    now = now or utcnow()
    recent = list(session.scalars(
        select(LoginFailure.attempted_at)
        .where(LoginFailure.name == normalise_login_name(name),
               LoginFailure.attempted_at > now - LOGIN_FAILURE_WINDOW)
        .order_by(LoginFailure.attempted_at.desc())
        .limit(LOGIN_FAILURE_LIMIT)
    ))
    if len(recent) < LOGIN_FAILURE_LIMIT:
        return None
    # Open again when the LIMIT-th newest failure leaves the window.
    reopens_at = recent[-1] + LOGIN_FAILURE_WINDOW
    return max(1, math.ceil((reopens_at - now).total_seconds()))


def _record_failure(session: Session, name: str, *, remote_address: str | None,
                    now: datetime) -> None:
    """Keep the failure, and commit it: the caller's transaction is rolled back by the
    LoginFailed about to be raised (api/deps.py), and the row must outlive it.

    A second session cannot do it instead: on SQLite the caller's transaction already holds the
    write lock (BEGIN IMMEDIATE, evidence/db.py), which a second one would wait on. A login is
    the whole of its transaction, reads only before this point, so committing it commits the
    failure and nothing else.
    """
    key = normalise_login_name(name)
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(key.encode()).digest()
        session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"),
                        {"space": _FAILURE_LOCK_SPACE,
                         "key": int.from_bytes(digest[:4], "big", signed=True)})
    session.execute(delete(LoginFailure)
                    .where(LoginFailure.attempted_at < now - LOGIN_FAILURE_RETENTION))
    session.add(LoginFailure(name=key, attempted_at=now,
                             remote_address=None if remote_address is None
                             else remote_address[:_ADDRESS_LENGTH]))
    failures = session.scalar(
        select(func.count()).select_from(LoginFailure).where(
            LoginFailure.name == key, LoginFailure.attempted_at > now - LOGIN_FAILURE_WINDOW))
    if failures == LOGIN_FAILURE_LIMIT:
        # This failure closes the name. Logged for the users it names (user names are ASCII, so
        # lower() is the normalisation); a name no user has gets no entry, as it is nobody.
        for user in session.scalars(select(User).where(func.lower(User.name) == key)):
            custody.append(session, user, action="user.login_throttled", object_type="user",
                           object_id=user.id,
                           details={"failures": failures,
                                    "window_seconds": int(LOGIN_FAILURE_WINDOW.total_seconds())})
    session.commit()


def login(session: Session, *, name: str, password: str, remote_address: str | None = None,
          now: datetime | None = None) -> tuple[User, str, LoginSession]:
    """Check the password and open a session; returns the token, to be shown to nobody but the
    browser that logged in.

    A refusal for a wrong name or password is committed before LoginFailed is raised (see
    `_record_failure`); a name with too many of them lately gets LoginThrottled instead.
    """
    now = now or utcnow()
    wait = throttled_for(session, name, now=now)
    if wait is not None:
        raise LoginThrottled(wait)
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None or user.password_hash is None:
        users.password_matches(_DUMMY_HASH, password)
        _record_failure(session, name, remote_address=remote_address, now=now)
        raise LoginFailed("wrong user name or password")
    if not users.password_matches(user.password_hash, password) or not user.is_active:
        _record_failure(session, name, remote_address=remote_address, now=now)
        raise LoginFailed("wrong user name or password")
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
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
