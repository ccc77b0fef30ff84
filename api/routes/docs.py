"""The OpenAPI document and Swagger UI, served whole from this host, behind authentication.

Units run the API on networks without internet, so the Swagger UI script, style sheet and icon
come from the installed `fastapi-offline` package, never from a CDN. The assets hold no data, but
they sit behind the same sign-in as the page that loads them: nothing but health and login is
public, and a browser that may see the page sends its session cookie for them anyway.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from api.deps import CurrentUser
from evidence.errors import NotFound

router = APIRouter(prefix="/api", include_in_schema=False)

ASSETS_URL = "/api/docs/assets"
# fastapi-offline ships the Swagger UI 5 dist files FastAPI's page needs, and nothing else we use.
_ASSET_DIR = Path(str(resources.files("fastapi_offline"))) / "static"
# Only these files are served, by name: no directory listing, no path from the request.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


@router.get("/openapi.json")
def openapi_document(request: Request, _caller: CurrentUser) -> JSONResponse:
    """The OpenAPI document, for signed-in users and API tokens."""
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def api_docs(_caller: CurrentUser) -> HTMLResponse:
    """Swagger UI over the OpenAPI document (after `POST /api/auth/login` in the browser)."""
    return get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="evidence-locker API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        # Swagger UI would otherwise send the document's URL to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/docs/assets/{name}")
def docs_asset(name: str, _caller: CurrentUser) -> FileResponse:
    """One of the Swagger UI files the docs page loads."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no docs asset {name!r}")
    return FileResponse(_ASSET_DIR / name, media_type=media_type)
