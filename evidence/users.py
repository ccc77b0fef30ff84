"""Users, API tokens and passwords, and who is acting."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import custody
from evidence.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from evidence.models import ApiToken, LoginSession, Role, User, utcnow

TOKEN_PREFIX = "evl_"  # noqa: S105 - a label, not a secret
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()


class LastActiveAdmin(Conflict):
    """Disabling this admin would leave no active admin to manage users."""


class DisablingOneself(Conflict):
    """An admin may not disable themselves; another admin may."""


# What a role may open beyond the cases it is a member of: the rules the services check, and
# the links the pages' header shows (api/ui/rendering.py).
def reads_evidence(role: str) -> bool:
    """Every role but the auditor's, who reads custody logs and never evidence: no search, no
    legal requests."""
    return role != Role.AUDITOR


def audits(role: str) -> bool:
    """The auditor's: the list of every case, to read its custody log."""
    return role == Role.AUDITOR


def manages_users(role: str) -> bool:
    return role == Role.ADMIN


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def get_user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def first_admin(session: Session) -> User | None:
    return session.scalars(
        select(User)
        .where(User.role == Role.ADMIN, User.is_active.is_(True))
        .order_by(User.created_at, User.name)
        .limit(1)
    ).first()


def resolve_actor(session: Session, name: str | None) -> User:
    """The user a command acts as: the one named, or else the first admin made by `init`."""
    if name:
        user = get_user(session, name)
    else:
        admin = first_admin(session)
        if admin is None:
            raise NotFound("no admin user; run `evidence init` first")
        user = admin
    if not user.is_active:
        raise InvalidInput(f"user {user.name!r} is disabled")
    return user


def create_user(
    session: Session,
    actor: User | None,
    *,
    name: str,
    role: Role | str,
    unit: str | None = None,
    display_name: str | None = None,
    password: str | None = None,
) -> User:
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"user name {name!r} must be 1-64 letters, digits or . _ @ - and start with a letter "
            "or digit"
        )
    try:
        role = Role(role)
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {role!r}; one of {roles}") from exc
    if session.scalars(select(User.id).where(User.name == name)).first() is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(
        name=name,
        role=role.value,
        unit=unit,
        display_name=display_name,
        password_hash=None if password is None else hash_password(password),
    )
    session.add(user)
    session.flush()
    custody.append(
        session,
        actor or user,
        action="user.created",
        object_type="user",
        object_id=user.id,
        details={"name": name, "role": role.value, "unit": unit},
    )
    return user


def issue_token(session: Session, actor: User, user: User, *, name: str = "cli") -> str:
    """Make an API token; only its hash is stored, so the returned text is the one copy."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), prefix=token[:8])
    session.add(row)
    session.flush()
    custody.append(
        session,
        actor,
        action="token.issued",
        object_type="api_token",
        object_id=row.id,
        details={"user": user.name, "name": name},
    )
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalars(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    row.last_used_at = utcnow()
    return user


def require_admin(actor: User) -> None:
    if not manages_users(actor.role):
        raise PermissionDenied(f"only an admin may manage users; {actor.name!r} is {actor.role}")


def managed_user(session: Session, actor: User, name: str) -> User:
    """The user an admin manages, by name: anyone else is refused before the name is looked
    up, so a refusal never says whether a user exists."""
    require_admin(actor)
    return get_user(session, name)


def new_token(session: Session, actor: User, user: User, *, name: str = "cli") -> str:
    """Another API token for `user` (admins, or a user for themselves): after a token was
    revoked, say, because it leaked. Returned once; only its hash is kept."""
    if actor.id != user.id:
        require_admin(actor)
    if not user.is_active:
        raise Conflict(f"{user.name!r} is disabled; enable the user first")
    return issue_token(session, actor, user, name=name)


def add_user(
    session: Session,
    actor: User,
    *,
    name: str,
    role: Role | str,
    unit: str | None = None,
    display_name: str | None = None,
    password: str | None = None,
) -> tuple[User, str]:
    """An admin makes a user and its first API token; the token is returned once, never kept."""
    require_admin(actor)
    user = create_user(session, actor, name=name, role=role, unit=unit,
                       display_name=display_name, password=password)
    return user, issue_token(session, actor, user, name="cli")


def list_users(session: Session, actor: User) -> list[tuple[User, int]]:
    """Every user with the number of API tokens still valid."""
    require_admin(actor)
    live = (
        select(ApiToken.user_id, func.count(ApiToken.id).label("n"))
        .where(ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.user_id)
        .subquery()
    )
    rows = session.execute(
        select(User, func.coalesce(live.c.n, 0))
        .outerjoin(live, live.c.user_id == User.id)
        .order_by(User.name)
    ).all()
    return [(user, int(count)) for user, count in rows]


def last_sign_ins(session: Session, actor: User) -> dict[uuid.UUID, datetime]:
    """When each user last signed in to the web UI, for those who ever did."""
    require_admin(actor)
    return {user_id: at for user_id, at in session.execute(
        select(LoginSession.user_id, func.max(LoginSession.created_at))
        .group_by(LoginSession.user_id))}


def revoke_tokens(
    session: Session, actor: User, user: User, *, prefix: str | None = None
) -> list[ApiToken]:
    """Revoke the user's live API tokens, or only the one whose shown prefix is given."""
    require_admin(actor)
    query = select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    if prefix is not None:
        query = query.where(ApiToken.prefix == prefix[:8])
    rows = list(session.scalars(query.order_by(ApiToken.created_at)))
    if prefix is not None and not rows:
        raise NotFound(f"{user.name!r} has no live token starting {prefix[:8]!r}")
    now = utcnow()
    for row in rows:
        row.revoked_at = now
        session.flush()
        custody.append(session, actor, action="token.revoked", object_type="api_token",
                       object_id=row.id, details={"user": user.name, "prefix": row.prefix})
    return rows


def end_login_sessions(session: Session, user: User) -> int:
    """End the user's open web sessions at once (a page they have open goes to sign-in);
    returns how many ended."""
    now = utcnow()
    open_rows = list(session.scalars(select(LoginSession).where(
        LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > now)))
    for row in open_rows:
        row.revoked_at = now
    session.flush()
    return len(open_rows)


def disable_user(session: Session, actor: User, user: User, *, reason: str) -> tuple[int, int]:
    """An admin disables a user (an officer leaving the unit): their API tokens are revoked and
    their web sessions end at once. What they did stays, under their name; captures they
    queued still run; their case memberships are kept, unusable until they are enabled again.
    Returns how many tokens were revoked and sessions ended."""
    require_admin(actor)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the user is disabled")
    if not user.is_active:
        raise Conflict(f"{user.name!r} is already disabled")
    # The last admin before the self check: an admin alone who tries to disable themselves
    # must hear that no admin would be left, not that "another admin can".
    if user.role == Role.ADMIN:
        # The rows stay locked till the transaction ends, so two admins disabling each other
        # at once cannot leave none.
        admins = session.scalars(select(User.id).where(
            User.role == Role.ADMIN, User.is_active.is_(True)).with_for_update()).all()
        if not set(admins) - {user.id}:
            raise LastActiveAdmin(f"{user.name!r} is the last active admin; make another admin "
                                  "first" + (", who can then disable you" if user.id == actor.id
                                             else ""))
    if user.id == actor.id:
        raise DisablingOneself("you cannot disable yourself; another admin can")
    user.is_active = False
    revoked = revoke_tokens(session, actor, user)
    ended = end_login_sessions(session, user)
    custody.append(session, actor, action="user.disabled", object_type="user",
                   object_id=user.id,
                   details={"user": user.name, "reason": reason, "tokens_revoked": len(revoked),
                            "sessions_ended": ended})
    return len(revoked), ended


def enable_user(session: Session, actor: User, user: User, *, reason: str) -> None:
    """An admin enables a disabled user again: their case memberships and password work again;
    their revoked API tokens stay revoked (`new_token` gives another)."""
    require_admin(actor)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why the user is enabled")
    if user.is_active:
        raise Conflict(f"{user.name!r} is not disabled")
    user.is_active = True
    session.flush()
    custody.append(session, actor, action="user.enabled", object_type="user",
                   object_id=user.id, details={"user": user.name, "reason": reason})
