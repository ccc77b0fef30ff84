"""Logging in and out of the web UI, and who the caller is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Request, Response, status

from api.deps import SESSION_COOKIE, AppRuntime, CurrentUser, DbSession
from api.schemas import ERROR_RESPONSES, ErrorRead, LoginCreate, LoginRead, UserRead
from evidence import sessions

router = APIRouter(prefix="/api/auth", tags=["auth"])


_THROTTLED = {
    "model": ErrorRead,
    "description": (
        f"Too many failed logins for this name: from this address (after "
        f"{sessions.ADDRESS_FREE_FAILURES}, a wait from "
        f"{int(sessions.ADDRESS_FIRST_WAIT.total_seconds())} s doubling with every further "
        f"failure, up to {int(sessions.ADDRESS_MAX_WAIT.total_seconds())} s), or from anywhere "
        f"(after {sessions.NAME_FREE_FAILURES}, a gentler wait from "
        f"{int(sessions.NAME_FIRST_WAIT.total_seconds())} s up to "
        f"{int(sessions.NAME_MAX_WAIT.total_seconds())} s). The password is not checked "
        "until the wait is over."),
    "headers": {"Retry-After": {"description": "Seconds until the name may try again.",
                                "schema": {"type": "integer", "minimum": 1}}},
}


@router.post("/login", response_model=LoginRead,
             responses={401: {"model": ErrorRead, "description": "Wrong name or password."},
                        422: ERROR_RESPONSES[422], 429: _THROTTLED})
def login(body: LoginCreate, request: Request, response: Response, session: DbSession,
          runtime: AppRuntime) -> LoginRead:
    """Check a user's password and set the session cookie (HTTP-only, SameSite=Strict).

    Failed logins are counted per name and client address, and per name, whether or not a user
    has it; too many lately and the name is refused with 429 and `Retry-After`, right password
    or not."""
    user, token, row = sessions.login(
        session, name=body.name, password=body.password,
        remote_address=request.client.host if request.client else None, now=runtime.clock())
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(sessions.SESSION_LIFETIME.total_seconds()),
        httponly=True, samesite="strict", secure=request.app.state.secure_cookies, path="/",
    )
    return LoginRead(user=UserRead.model_validate(user), expires_at=row.expires_at)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT,
             responses={401: ERROR_RESPONSES[401]})
def logout(
    request: Request,
    session: DbSession,
    actor: CurrentUser,
    token: Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)] = None,
) -> Response:
    """End the login session of this browser (API tokens are revoked with `evidence user`)."""
    sessions.logout(session, actor, token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.app.state.secure_cookies)
    return response


@router.get("/me", response_model=UserRead, responses={401: ERROR_RESPONSES[401]})
def me(actor: CurrentUser) -> UserRead:
    """The user the request is made as."""
    return UserRead.model_validate(actor)
