"""Request dependencies: one database session per request, the caller, the case in the path.

The session commits when the route returns and rolls back when it raises, before the response
is sent (`scope="function"`), so a client is never told "done" about a change that did not
commit, and a download's custody entry is committed before its bytes go out. Everything in a
request uses this one session: on SQLite each transaction holds the write lock (BEGIN
IMMEDIATE), so a second session in the same request would wait on the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Path, Query, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from evidence import cases, sessions
from evidence.db import session_scope
from evidence.errors import AccessDenied
from evidence.home import Runtime
from evidence.models import User
from evidence.pagination import DEFAULT_LIMIT, MAX_LIMIT

SESSION_COOKIE = "evidence_session"


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def session_limits(request: Request) -> dict[str, Any]:
    """What a login session is checked against: the app's clock (which set its end at login)
    and the service's idle bound."""
    runtime = get_runtime(request)
    return {"now": runtime.clock(),
            "idle": timedelta(minutes=runtime.settings.session_idle_minutes)}


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(get_runtime(request).sessions) as session:
        yield session


DbSession = Annotated[Session, Depends(get_session, scope="function")]
AppRuntime = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="An API token from `evidence user add`.")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                       description="The session cookie set by `POST /api/auth/login`.")


def current_user(
    request: Request,
    session: DbSession,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> User:
    header = request.headers.get("authorization")
    if header is not None and bearer is None:
        raise sessions.NotAuthenticated("the Authorization header must be 'Bearer TOKEN'")
    return sessions.authenticate(
        session, bearer=None if bearer is None else bearer.credentials, cookie=cookie,
        **session_limits(request),
    )


CurrentUser = Annotated[User, Depends(current_user)]


def case_reference(
    ref: Annotated[str, Path(description="The case reference; write '/' in it as %2F.",
                             max_length=300, examples=["OP-2026-014"])],
    _caller: CurrentUser,  # who asks is settled first: no credentials, no answer but 401
) -> str:
    # EncodedSlashes keeps %2F encoded through routing so a reference may hold '/'.
    reference = ref.replace("%2F", "/").replace("%2f", "/")
    if not cases.REFERENCE_PATTERN.match(reference):
        # No case can have it; said before any query, so odd bytes never reach the database.
        raise AccessDenied(f"no case {reference!r}")
    return reference


CaseRef = Annotated[str, Depends(case_reference)]


def quote_ref(reference: str) -> str:
    return quote(reference, safe="")


class Paging:
    def __init__(
        self,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = (
            DEFAULT_LIMIT
        ),
        cursor: Annotated[str | None, Query(max_length=512,
                                            description="From the previous page's `next`.")] = None,
    ) -> None:
        self.request = request
        self.limit = limit
        self.cursor = cursor

    def next_link(self, next_cursor: str | None) -> str | None:
        """The relative URL of the next page: this one's, with the new cursor."""
        if next_cursor is None:
            return None
        raw = self.request.scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else self.request.url.path
        params = [(k, v) for k, v in self.request.query_params.multi_items() if k != "cursor"]
        params.append(("cursor", next_cursor))
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
        return f"{path}?{query}"


PageParams = Annotated[Paging, Depends()]
