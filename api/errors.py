"""One JSON shape for every error the API answers: `{"error", "message"}` (+ `details`).

The project's own errors carry their status; framework errors (unknown route, wrong method,
request validation) and database refusals that slipped past validation are translated here, so
a client never sees an HTML page or a bare 500 for input it sent.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from evidence.errors import EvidenceError

log = logging.getLogger("evidence.api")

BODY_PARSE_ERROR = "There was an error parsing the body"
_STATUS_NAMES = {
    400: "BadRequest", 401: "NotAuthenticated", 403: "PermissionDenied", 404: "NotFound",
    405: "MethodNotAllowed", 409: "Conflict", 413: "TooLarge", 415: "UnsupportedMediaType",
    422: "InvalidInput", 429: "TooManyRequests",
}


def error_body(error: str, message: str, details: list[dict[str, Any]] | None = None) -> (
    dict[str, Any]
):
    body: dict[str, Any] = {"error": error, "message": message}
    if details is not None:
        body["details"] = details
    return body


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> (
    JSONResponse
):
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="evidence-locker"'}
    return JSONResponse(status_code=status, content=body, headers=headers)


def _where(loc: Any) -> str:
    return ".".join(str(part) for part in loc)


def validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: the input itself may be large or hold evidence. A rule
    # of the service a schema applies says its own words, without pydantic's "Value error, ".
    return [
        {"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
         "msg": str(e.get("msg", "")).removeprefix("Value error, "),
         "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route answers at this request's path, for a 405's `Allow` header.

    The framework names only the methods of the first route that matches the path (`POST` for
    `/api/cases`, which answers `GET` as well); RFC 9110 (15.5.6) asks for all of them.
    """
    methods = set()
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    @app.exception_handler(EvidenceError)
    async def _evidence_error(_request: Request, exc: EvidenceError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return _json(exc.status_code, error_body(type(exc).__name__, exc.message, exc.details),
                     headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(exc)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        message = f"{_where(first['loc'])}: {first['msg']}{more}"
        return _json(422, error_body("InvalidInput", message, details))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # Only the framework raises a bare 400, when it cannot parse a body at all: bytes
            # that are not UTF-8 JSON, multipart data that is not multipart. Malformed like
            # any other invalid body, so answered like one.
            what = "not valid UTF-8 JSON" if exc.detail == BODY_PARSE_ERROR else exc.detail
            return _json(422, error_body("InvalidInput", f"body: {what}"))
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        name = _STATUS_NAMES.get(exc.status_code, "HTTPError")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return _json(exc.status_code, error_body(name, message), headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        # A concurrent request got there first (a unique key, a note revision number).
        log.info("integrity error answered as 409: %s", exc.orig)
        return _json(409, error_body("Conflict", "the change clashes with one made at the same "
                                     "time; read the current state and try again"))

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> JSONResponse:
        log.info("data error answered as 422: %s", exc.orig)
        return _json(422, error_body("InvalidInput", "a value is out of range or not valid "
                                     "for the database"))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return _json(500, error_body("InternalError", "an unexpected error; it has been logged"))
