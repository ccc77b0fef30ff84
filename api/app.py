"""FastAPI application factory: builds the app over a Runtime made at start-up."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors, ui
from api.limits import BodyLimit
from api.routes import (
    accounts,
    auth,
    captures,
    cases,
    decisions,
    deconfliction,
    docs,
    exports,
    notes,
    received,
    requests,
    search,
    targets,
    users,
)
from api.uploads import UPLOAD_OVERHEAD_BYTES
from evidence import __version__, custody, export_leases, manifests, migrate
from evidence.errors import LogBroken
from evidence.home import Runtime

log = logging.getLogger("evidence.api")
# The routes that take received material (api/routes/received.py, its forms on a request's page
# and on the case's received-material page): their bodies may reach
# EVIDENCE_RECEIVED_MAX_BYTES, every other route's stays small.
UPLOAD_PATHS = (re.compile(r"/api/cases/.+/received"),
                re.compile(r"/cases/.+/requests/[0-9a-fA-F-]{36}/received"),
                re.compile(r"/cases/[^/]+/received"))


def seal_log(runtime: Runtime) -> int:
    """Sign a checkpoint if entries were added since the last one; returns the size signed."""
    with runtime.session() as session:
        cp = custody.cut_checkpoint(session, runtime.signer, origin=runtime.settings.origin,
                                    timestamp=manifests.timestamper(runtime.settings))
        return cp.tree_size


def end_interrupted_exports(runtime: Runtime) -> list[uuid.UUID]:
    """Record the exports whose process died as interrupted, and remove the temporary folders
    such exports left in the home."""
    with runtime.session() as session:
        ended = export_leases.end_interrupted_exports(session)
    for export_id in ended:
        log.warning("export %s was interrupted: its process stopped; recorded as failed",
                    export_id)
    export_leases.clean_leftovers(runtime.settings.home_path)
    return ended


class Sealing:
    """`seal_log` for `serve`, its failure logged, not raised: the server keeps serving, and the
    next tick tries again.

    A refusal over a broken log is said once, when it first happens, and again only when the
    first entry that breaks changes or the log seals again (said too): it would otherwise be
    the same line every tick until someone examines the log.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.refused: str | None = None  # the first break the last refusal named

    async def seal(self) -> None:
        try:
            size = await asyncio.to_thread(seal_log, self.runtime)
        except LogBroken as exc:  # expected: the message names the entry, a traceback adds nothing
            first = exc.first or exc.message
            if first != self.refused:
                log.error("%s", exc)
            self.refused = first
            return
        except Exception:
            log.exception("could not cut a custody checkpoint")
            return
        if self.refused is not None:
            log.warning("custody checkpoint signed again (log size %d): the log checks out, the "
                        "refusal over %s has cleared", size, self.refused)
            self.refused = None


async def _checkpoint_loop(runtime: Runtime, sealing: Sealing, *,
                           ticks: int | None = None) -> None:
    """From the start and then at every tick: record interrupted exports, sleep, seal; for
    ever, or `ticks` times."""
    interval = runtime.settings.checkpoint_interval_seconds
    while ticks is None or ticks > 0:
        ticks = None if ticks is None else ticks - 1
        try:
            await asyncio.to_thread(end_interrupted_exports, runtime)
        except Exception:  # looked for again at the next tick
            log.exception("could not look for interrupted exports")
        await asyncio.sleep(interval)
        await sealing.seal()


class EncodedSlashes:
    """Keep `%2F` encoded while routing, so a case reference holding '/' fits in one segment.

    Servers decode the path before routing, which would turn `/api/cases/OP%2F7/targets` into
    four segments; the `CaseRef` dependency turns the kept `%2F` back into '/'.
    """

    _SLASH = re.compile(r"%2[fF]")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and isinstance(raw, bytes) and b"%2" in raw:
            path = raw.decode("latin-1")
            if self._SLASH.search(path):
                scope = dict(scope)
                scope["path"] = "%2F".join(unquote(p) for p in self._SLASH.split(path))
        await self.app(scope, receive, send)


def create_app(runtime: Runtime, *, secure_cookies: bool | None = None) -> FastAPI:
    """The app over `runtime`; session cookies are `Secure` in production unless told."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sealing = Sealing(runtime)
        task = asyncio.create_task(_checkpoint_loop(runtime, sealing))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            # Seal what this process recorded before it stops.
            await sealing.seal()

    app = FastAPI(
        title="evidence-locker",
        version=__version__,
        summary="Preserve online evidence and run the cases built on it.",
        # Served by api/routes/docs.py, behind authentication: nothing but health and login
        # is public.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.secure_cookies = (
        runtime.settings.environment == "production" if secure_cookies is None
        else secure_cookies
    )
    errors.install(app)
    app.add_middleware(EncodedSlashes)
    upload_bound = runtime.settings.received_max_bytes + UPLOAD_OVERHEAD_BYTES
    app.add_middleware(BodyLimit, per_path={
        "/api/images/similar": search.MAX_UPLOAD_BYTES + search.UPLOAD_OVERHEAD_BYTES},
        per_post=[(pattern, upload_bound) for pattern in UPLOAD_PATHS],
        refusal=ui.too_large_page)
    for area in (auth, users, cases, accounts, targets, captures, notes, exports, decisions,
                 deconfliction, search, requests, received, docs):
        app.include_router(area.router)
    ui.install(app)  # the web pages under `/`, after the API's error handlers it wraps

    @app.get("/api/health", tags=["system"])
    def health() -> dict[str, Any]:
        """Whether the service, its database and its blob store answer; public, no evidence
        in it."""
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            revision = migrate.current_revision(runtime.engine)
            database = "ok"
        except Exception as exc:  # report, don't raise: this is the thing that says what broke
            revision = None
            database = f"unavailable: {type(exc).__name__}"
        try:
            runtime.store.probe()
            store = "ok"
        except Exception as exc:
            store = f"unavailable: {type(exc).__name__}"
        return {
            "status": "ok" if database == store == "ok" else "degraded",
            "version": __version__,
            "database": database,
            "database_backend": runtime.engine.dialect.name,
            "blob_store": store,
            "blob_store_backend": runtime.store.backend,
            "schema_revision": revision,
            "signing_key_id": runtime.signer.key_id,
        }

    return app
