"""The web UI: server-rendered pages under `/` over the same services as the API under `/api`."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from api.ui import admin, cases, decisions, exports, kept, material, notes, requests, search
from api.ui.rendering import STATIC, install_error_pages, too_large_page
from api.ui.routes import router
from api.ui.security import SecurityHeaders

__all__ = ["install", "too_large_page"]


def install(app: FastAPI) -> None:
    """Add the pages, their style sheet, their error pages and their response headers.

    Call after the API's error handlers are installed: the pages' handlers wrap them.
    """
    # Every page's post that sends a kept form records it sent, so it is sent once.
    once = [Depends(kept.sent_once)]
    for pages in (router, *(p.router for p in (cases, notes, decisions, requests, material,
                                               exports, search, admin))):
        app.include_router(pages, dependencies=once)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_error_pages(app)
    kept.install(app)
    app.add_middleware(SecurityHeaders)
