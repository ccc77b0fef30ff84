"""FastAPI application factory: builds the app over a Runtime made at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from evidence import __version__, custody, migrate
from evidence.errors import EvidenceError
from evidence.home import Runtime

log = logging.getLogger("evidence.api")


def seal_log(runtime: Runtime) -> int:
    """Sign a checkpoint if entries were added since the last one; returns the size signed."""
    with runtime.session() as session:
        cp = custody.cut_checkpoint(session, runtime.signer, origin=runtime.settings.origin)
        return cp.tree_size


async def _checkpoint_loop(runtime: Runtime) -> None:
    interval = runtime.settings.checkpoint_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(seal_log, runtime)
        except Exception:  # keep sealing on the next tick; the failure is logged, not lost
            log.exception("could not cut a custody checkpoint")


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_checkpoint_loop(runtime))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            # Seal what this process recorded before it stops.
            await asyncio.to_thread(seal_log, runtime)

    app = FastAPI(
        title="evidence-locker",
        version=__version__,
        summary="Preserve online evidence and run the cases built on it.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime

    @app.exception_handler(EvidenceError)
    async def _evidence_error(_request: Request, exc: EvidenceError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content={"error": type(exc).__name__, "message": exc.message},
        )

    @app.get("/api/health", tags=["system"])
    def health() -> dict[str, Any]:
        """Whether the service and its database answer; public, no evidence in it."""
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            revision = migrate.current_revision(runtime.engine)
            database = "ok"
        except Exception as exc:  # report, don't raise: this is the thing that says what broke
            revision = None
            database = f"unavailable: {type(exc).__name__}"
        return {
            "status": "ok" if database == "ok" else "degraded",
            "version": __version__,
            "database": database,
            "database_backend": runtime.engine.dialect.name,
            "schema_revision": revision,
            "signing_key_id": runtime.signer.key_id,
        }

    return app
