"""Who is calling: login sessions for the web UI and the API tokens of `users`.

A login makes a random session token that the browser keeps in an HTTP-only cookie; the
database keeps only its SHA-256, as for API tokens, so a copy of the database logs nobody in.
Sessions end at a fixed time after login, or when the user logs out.

Password guessing is throttled twice over, from rows in the database (every refused login is a
`LoginFailure` with the name as typed and the client's address), so all API hosts count together:

- per name and address: after `ADDRESS_FREE_FAILURES` failures of a name from one address, each
  further failure closes the name to that address for a wait that doubles with every failure
  (`ADDRESS_FIRST_WAIT`, 2x, 4x ... up to `ADDRESS_MAX_WAIT`). Whoever guesses from one place
  is slowed down hard; the name's owner elsewhere is not.
- per name, across addresses: after `NAME_FREE_FAILURES` failures from anywhere, a gentler wait
  (`NAME_FIRST_WAIT` doubling up to `NAME_MAX_WAIT`) closes the name to every address, so
  guessing spread over many addresses is slowed down too, without locking its owner out for long.

A wait runs from the failure that started it; logins refused while it runs are not counted and
their password is not checked, so it ends on time. Failures count for `FAILURE_MEMORY`, and only
those since the name's last login (from that address, for the first rule): a login forgives
them. A failure that starts a wait is recorded once in the custody log (`user.login_throttled`)
for the user the name belongs to; a name nobody has gets no entry, and the answer never tells
which names exist. Failures are kept for `LOGIN_FAILURE_RETENTION`, then pruned.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from evidence import custody, users
from evidence.errors import EvidenceError, InvalidInput
from evidence.models import LoginFailure, LoginSession, User, utcnow
from evidence.words import counted

SESSION_PREFIX = "evs_"
SESSION_LIFETIME = timedelta(hours=12)
# A session not used for this long has ended too (EVIDENCE_SESSION_IDLE_MINUTES sets it for a
# service): a browser left signed in on an unattended desk does not stay open for 12 hours.
SESSION_IDLE = timedelta(minutes=60)
ADDRESS_FREE_FAILURES = 5
ADDRESS_FIRST_WAIT = timedelta(minutes=1)
ADDRESS_MAX_WAIT = timedelta(hours=1)
NAME_FREE_FAILURES = 15
NAME_FIRST_WAIT = timedelta(seconds=10)
NAME_MAX_WAIT = timedelta(minutes=5)
# Failures older than this are forgotten by the throttle (a wait never outlasts it).
FAILURE_MEMORY = timedelta(hours=24)
# Failures outlive the memory as a record of who guessed at which names from where; past this
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

    def __init__(self, retry_after: int, *, scope: str = "name") -> None:
        self.retry_after = retry_after  # whole seconds, for a Retry-After header
        self.scope = scope
        where = " from your address" if scope == "address" else " lately"
        super().__init__(f"too many failed sign-ins for this name{where}; try again in "
                         f"{_duration(retry_after)}")


def _duration(seconds: int) -> str:
    if seconds < 60:
        return counted(seconds, "second")
    return counted(math.ceil(seconds / 60), "minute")


@dataclass(frozen=True)
class Throttle:
    """A wait a name is in for logins from one address, and the failures that started it."""

    until: datetime
    scope: str  # "address": the name from this address; "name": the name from anywhere
    address_failures: int  # counted for the name from this address
    name_failures: int  # counted for the name from anywhere

    def seconds(self, now: datetime) -> int:
        return max(1, math.ceil((self.until - now).total_seconds()))


def normalise_login_name(name: str) -> str:
    """The name a failure is counted under: `Nadia`, ` nadia` and `NADIA` guess at one user."""
    return unicodedata.normalize("NFKC", name).strip().casefold()[:_NAME_LENGTH]


def _address(remote_address: str | None) -> str | None:
    return None if remote_address is None else remote_address[:_ADDRESS_LENGTH]


def _wait(failures: int, free: int, first: timedelta, most: timedelta) -> timedelta | None:
    """The wait the `failures`-th counted failure starts: none while they are few, then
    `first`, doubling with every further one up to `most`."""
    if failures < free:
        return None
    return min(first * 2 ** min(failures - free, 32), most)


def _counted(session: Session, key: str, since: datetime, now: datetime,
             *where: ColumnElement[bool]) -> tuple[int, datetime | None]:
    """How many failures of the name count (those `where` holds), and the newest of them."""
    count, newest = session.execute(
        select(func.count(), func.max(LoginFailure.attempted_at)).where(
            LoginFailure.name == key, LoginFailure.attempted_at > since,
            LoginFailure.attempted_at <= now, *where)).one()
    return int(count or 0), newest


def _is(column: InstrumentedAttribute[str | None], address: str | None) -> ColumnElement[bool]:
    return column.is_(None) if address is None else column == address


def throttle(session: Session, name: str, remote_address: str | None, *,
             now: datetime | None = None) -> Throttle | None:
    """The wait the name (as typed) is in for a login from `remote_address`, or None when it
    may try now. The longer wait wins where both rules close it."""
    now = now or utcnow()
    key, address = normalise_login_name(name), _address(remote_address)
    floor = now - FAILURE_MEMORY
    # A login forgives the failures before it: any login those of the name, a login from this
    # address those from here. (User names are ASCII, so lower() is their normalisation.)
    logins = select(func.max(LoginSession.created_at)).where(LoginSession.user_id.in_(
        select(User.id).where(func.lower(User.name) == key)))
    last_login = session.scalar(logins)
    last_here = session.scalar(logins.where(_is(LoginSession.remote_address, address)))
    name_count, name_newest = _counted(session, key, max(floor, last_login or floor), now)
    here_count, here_newest = _counted(session, key, max(floor, last_here or floor), now,
                                       _is(LoginFailure.remote_address, address))
    waits = []
    for scope, count, newest, rule in (
            ("address", here_count, here_newest,
             (ADDRESS_FREE_FAILURES, ADDRESS_FIRST_WAIT, ADDRESS_MAX_WAIT)),
            ("name", name_count, name_newest,
             (NAME_FREE_FAILURES, NAME_FIRST_WAIT, NAME_MAX_WAIT))):
        wait = _wait(count, *rule)
        if wait is not None and newest is not None and newest + wait > now:
            waits.append(Throttle(newest + wait, scope, here_count, name_count))
    return max(waits, key=lambda t: t.until) if waits else None


def _record_failure(session: Session, name: str, *, remote_address: str | None,
                    now: datetime) -> None:
    """Keep the failure, and commit it: the caller's transaction is rolled back by the
    LoginFailed about to be raised (api/deps.py), and the row must outlive it.

    A second session cannot do it instead: on SQLite the caller's transaction already holds the
    write lock (BEGIN IMMEDIATE, evidence/db.py), which a second one would wait on. A login is
    the whole of its transaction, reads only before this point, so committing it commits the
    failure and nothing else.
    """
    key, address = normalise_login_name(name), _address(remote_address)
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(key.encode()).digest()
        session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"),
                        {"space": _FAILURE_LOCK_SPACE,
                         "key": int.from_bytes(digest[:4], "big", signed=True)})
    session.execute(delete(LoginFailure)
                    .where(LoginFailure.attempted_at < now - LOGIN_FAILURE_RETENTION))
    session.add(LoginFailure(name=key, attempted_at=now, remote_address=address))
    session.flush()
    started = throttle(session, name, remote_address, now=now)
    if started is not None:
        # This failure starts a wait: logged once, for the users the name belongs to; the
        # logins refused while it runs add nothing. A name no user has gets no entry.
        for user in session.scalars(select(User).where(func.lower(User.name) == key)):
            custody.append(session, user, action="user.login_throttled", object_type="user",
                           object_id=user.id,
                           details={"scope": started.scope, "remote_address": address,
                                    "failures_from_address": started.address_failures,
                                    "failures_for_name": started.name_failures,
                                    "wait_seconds": started.seconds(now),
                                    "until": custody.format_time(started.until)})
    session.commit()


def login(session: Session, *, name: str, password: str, remote_address: str | None = None,
          now: datetime | None = None) -> tuple[User, str, LoginSession]:
    """Check the password and open a session; returns the token, to be shown to nobody but the
    browser that logged in.

    A refusal for a wrong name or password is committed before LoginFailed is raised (see
    `_record_failure`); a name in a wait (`throttle`) gets LoginThrottled instead, whatever the
    password.
    """
    now = now or utcnow()
    waiting = throttle(session, name, remote_address, now=now)
    if waiting is not None:
        raise LoginThrottled(waiting.seconds(now), scope=waiting.scope)
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
                       expires_at=now + SESSION_LIFETIME, remote_address=_address(remote_address))
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
    ended = users.end_login_sessions(session, user)
    custody.append(session, actor, action="user.password_set", object_type="user",
                   object_id=user.id, details={"user": user.name, "sessions_ended": ended})
    return ended


def open_session(session: Session, token: str, *, now: datetime | None = None,
                 idle: timedelta = SESSION_IDLE) -> LoginSession | None:
    """The login session the cookie's token names, if it is open at `now`: not ended, not past
    its end, and last used (`last_seen_at`) less than `idle` ago."""
    if not token.startswith(SESSION_PREFIX):
        return None
    row = session.scalars(
        select(LoginSession).where(
            LoginSession.token_hash == users.hash_token(token), LoginSession.revoked_at.is_(None)
        )
    ).first()
    now = now or utcnow()
    if row is None or row.expires_at <= now or (row.last_seen_at or row.created_at) + idle <= now:
        return None
    return row


def user_for_session(session: Session, token: str, *, now: datetime | None = None,
                     idle: timedelta = SESSION_IDLE) -> User | None:
    """The user of an open login session (`open_session`), whose use is marked now."""
    now = now or utcnow()
    row = open_session(session, token, now=now, idle=idle)
    if row is None:
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


def authenticate(session: Session, *, bearer: str | None, cookie: str | None,
                 now: datetime | None = None, idle: timedelta = SESSION_IDLE) -> User:
    """The user a request acts as: a Bearer API token, else the login session cookie (open
    at `now`, the app's clock, as the login that set its end, and used within `idle`)."""
    if bearer is not None:
        user = users.user_for_token(session, bearer)
        if user is None:
            raise NotAuthenticated("the API token is unknown, revoked or its user disabled")
        return user
    if cookie:
        user = user_for_session(session, cookie, now=now, idle=idle)
        if user is None:
            raise NotAuthenticated("the session has ended; log in again")
        return user
    raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer TOKEN'")
