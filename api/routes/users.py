"""Users, for admins: disabling and enabling one, over the services `evidence user disable|
enable` and the page /admin/users call, so the same refusals hold and the same custody
entries are written."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CurrentUser, DbSession
from api.schemas import (
    ERROR_RESPONSES,
    ErrorRead,
    UserDisabledRead,
    UserStateRead,
    UserStatusChange,
)
from evidence import users

router = APIRouter(prefix="/api/users", tags=["users"], responses=ERROR_RESPONSES)
ADMINS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorRead, "description": "Only an admin manages users (whoever is named)."},
    404: {"model": ErrorRead, "description": "No user of that name."},
}


@router.post("/{user}/disable", response_model=UserDisabledRead, responses={
    **ADMINS, 409: {"model": ErrorRead, "description": (
        "Already disabled (Conflict); the caller themselves (DisablingOneself); the last "
        "active admin (LastActiveAdmin).")}})
def disable_user(user: str, body: UserStatusChange, session: DbSession,
                 actor: CurrentUser) -> UserDisabledRead:
    """Disable a user (an officer leaving the unit): their API tokens are revoked and their web
    sessions end at once. What they did stays under their name; their case memberships wait
    until they are enabled again. Recorded as `user.disabled` with the reason."""
    target = users.managed_user(session, actor, user)
    revoked, ended = users.disable_user(session, actor, target, reason=body.reason)
    return UserDisabledRead(**UserStateRead.model_validate(target).model_dump(),
                            tokens_revoked=revoked, sessions_ended=ended)


@router.post("/{user}/enable", response_model=UserStateRead, responses={
    **ADMINS, 409: {"model": ErrorRead, "description": "The user is not disabled."}})
def enable_user(user: str, body: UserStatusChange, session: DbSession,
                actor: CurrentUser) -> UserStateRead:
    """Enable a disabled user again: their password and case memberships work again; their
    revoked API tokens stay revoked (`evidence user token NAME` gives a new one). Recorded as
    `user.enabled` with the reason."""
    target = users.managed_user(session, actor, user)
    users.enable_user(session, actor, target, reason=body.reason)
    return UserStateRead.model_validate(target)
