"""Request bodies are refused past their bound as they arrive: before anything parses, buffers
or spools them to disk, so a huge upload can neither fill the disk nor the memory.

A body that declares its length (Content-Length) past the bound is answered 413 at once,
unread; one that does not is counted as it streams and stopped at the first byte over.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

# The largest JSON or form body a route takes (a case's facts are at most 100,000 characters,
# under 600 KB as escaped UTF-8), with room to spare.
MAX_BODY_BYTES = 2 * 1024 * 1024
# A page's form kept across a sign-in (api/ui/kept.py) is posted twice more as hidden inputs,
# URL-encoded (up to three bytes a byte) next to the sign-in's own fields: it must fit a body
# three times over, and in the form parser's 1,000 fields.
MAX_KEPT_FORM_BYTES = MAX_BODY_BYTES // 4
MAX_KEPT_FIELDS = 500


class BodyTooLarge(HTTPException):
    """The body went past its bound while it streamed (rendered by the API's error handler)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))
        self.limit = limit


# The answer a request refused unread gets instead of the API's JSON (a web page's post gets a
# page), or None for the JSON.
Refusal = Callable[[Request, int], Response | None]


def _message(limit: int) -> str:
    return f"the request body is larger than this route takes ({limit} bytes)"


class BodyLimit:
    """ASGI middleware: `default` bytes for every route, `per_path` for the few that take more,
    and `per_post` for POSTs to paths that hold a parameter (a case's uploads), each matched
    whole by its pattern."""

    def __init__(self, app: ASGIApp, *, default: int = MAX_BODY_BYTES,
                 per_path: Mapping[str, int] | None = None,
                 per_post: Sequence[tuple[re.Pattern[str], int]] = (),
                 refusal: Refusal | None = None) -> None:
        self.app = app
        self.refusal = refusal
        self.default = default
        self.per_path = dict(per_path or {})
        self.per_post = tuple(per_post)

    def limit_of(self, scope: Scope) -> int:
        path = scope["path"]
        if scope.get("method") == "POST":
            for pattern, limit in self.per_post:
                if pattern.fullmatch(path):
                    return limit
        return self.per_path.get(path, self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = self.refusal(Request(scope), limit) if self.refusal else None
            if response is None:
                response = JSONResponse(error_body("TooLarge", _message(limit)), status_code=413)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)
