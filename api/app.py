"""FastAPI application factory: builds the app over a Runtime made at start-up."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from evidence import __version__, migrate
from evidence.errors import EvidenceError
from evidence.home import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="evidence-locker",
        version=__version__,
        summary="Preserve online evidence and run the cases built on it.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
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
