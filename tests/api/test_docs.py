"""The docs page works on a network without internet: every file it loads comes from this host."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import Route

from api.routes.docs import ASSETS, ASSETS_URL
from capture.browser import BrowserSession
from tests.api.conftest import Api, served_app, walk_context

PASSWORD = "correct horse battery staple"


class _Links(HTMLParser):
    """Every `src` and `href` in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _links(page: str) -> list[str]:
    parser = _Links()
    parser.feed(page)
    return parser.urls


def test_the_docs_page_loads_nothing_from_another_host(api: Api) -> None:
    caller = api.user("nadia")
    page = api.get(caller, "/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = _links(page.text)
    assert len(urls) == 3, urls  # style sheet, icon, script
    base = "http://testserver/api/docs"
    for url in urls:
        assert urlsplit(urljoin(base, url)).netloc == "testserver", url
    # Nor any absolute URL in the inline script (the spec's URL, a validator badge ...).
    assert "://" not in page.text and "validatorUrl\": null" in page.text
    assert "url: '/api/openapi.json'" in page.text
    for name, media_type in ASSETS.items():
        assert f'"{ASSETS_URL}/{name}"' in page.text
        asset = api.get(caller, f"{ASSETS_URL}/{name}")
        assert asset.status_code == 200, (name, asset.text[:200])
        assert asset.headers["content-type"].split(";")[0] == media_type
        assert int(asset.headers["content-length"]) > 1000
    script = api.get(caller, f"{ASSETS_URL}/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in script and 'PACKAGE_VERSION:"5.' in script


def test_the_docs_and_their_assets_need_a_sign_in(api: Api) -> None:
    assert api.get(None, "/api/docs").status_code == 401
    for name in ASSETS:
        anonymous = api.get(None, f"{ASSETS_URL}/{name}")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "NotAuthenticated"
    # A browser signs in with the session cookie, which it then sends for the assets too.
    api.user("nadia", password=PASSWORD)
    login = api.client.post("/api/auth/login", json={"name": "nadia", "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert api.client.get("/api/docs").status_code == 200
    assert api.client.get(f"{ASSETS_URL}/swagger-ui.css").status_code == 200


def test_only_the_named_assets_are_served(api: Api) -> None:
    caller = api.user("nadia")
    for name in ("redoc.standalone.js", "core.py", "..%2Fcore.py", "swagger-ui.css.map"):
        missing = api.get(caller, f"{ASSETS_URL}/{name}")
        assert missing.status_code == 404, name
        assert missing.json()["error"] == "NotFound"


@pytest.fixture
def served(api: Api) -> Iterator[str]:
    with served_app(api.runtime) as url:
        yield url


@pytest.mark.browser
def test_swagger_ui_renders_in_chromium_with_no_other_host_reachable(
    api: Api, served: str, tmp_path: Path,
) -> None:
    api.user("nadia", password=PASSWORD)
    elsewhere: list[str] = []
    with BrowserSession(api.runtime.settings) as browser, \
            walk_context(browser, viewport={"width": 1280, "height": 1000}) as context:
        page = context.new_page()

        def block(route: Route) -> None:
            elsewhere.append(route.request.url)
            route.abort()

        # Everything but this server is cut off, as on a unit's network.
        page.route(lambda url: urlsplit(url).hostname != "127.0.0.1", block)
        login = page.request.post(f"{served}/api/auth/login",
                                  data={"name": "nadia", "password": PASSWORD})
        assert login.status == 200, login.text()
        loaded: list[str] = []
        page.on("response", lambda r: loaded.append(f"{r.status} {r.url}"))
        page.goto(f"{served}/api/docs", wait_until="networkidle")
        # Swagger UI writes a zero-width space before each '/', so match the attribute.
        page.locator('.opblock-summary-path[data-path="/api/cases"]').first.wait_for(
            timeout=15_000)
        assert page.locator(".opblock").count() >= 30
        assert page.locator(".info .title").inner_text().startswith("evidence-locker")
        page.screenshot(path="/tmp/docs.png")
    assert elsewhere == [], elsewhere
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"200 {served}{ASSETS_URL}/{name}" in loaded, loaded
    assert f"200 {served}/api/openapi.json" in loaded, loaded
