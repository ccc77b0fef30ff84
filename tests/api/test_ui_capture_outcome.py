"""What a capture says about the page's HTTP outcome: a page that answered with an error status
is a complete capture of that answer, marked so (not green) wherever the capture is listed, on
its page and in the API; a page that never answered says so in words, not Playwright's. Pages
served on 127.0.0.1, captured by the real worker, looked at in Chromium."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page

from capture.browser import BrowserSession
from capture.service import CaptureWorker
from evidence import cases, targets, users
from evidence.home import init_home, open_runtime
from evidence.settings import Settings
from tests.api.conftest import Api, api_over, served_app, sign_in_on_page, walled_page
from tests.support import pages_server as pages

PASSWORD = "correct horse battery staple"
SHOTS = Path("/tmp/ui")
CASE = "OP-41"
ANSWERED_400 = ("Complete, but the page answered HTTP 400 Bad Request (the server refused the "
                "request): what was captured is that answer, not the page as it once stood")


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home", database_url=database_url,
                        capture_allow="127.0.0.1", max_scroll_steps=2,
                        navigation_timeout_seconds=2)
    init_home(settings)
    with api_over(open_runtime(settings)) as made:
        yield made


def _capture(home: Api, browser: BrowserSession, urls: dict[str, str]) -> dict[str, uuid.UUID]:
    """Each URL flagged in the case and captured once by the worker; the captures by name."""
    made: dict[str, uuid.UUID] = {}
    worker = CaptureWorker(home.runtime, browser)
    for name, url in urls.items():
        with home.runtime.session() as session:
            nadia = users.get_user(session, "nadia")
            case = cases.case_for(session, nadia, CASE)
            _target, job = targets.flag_target(session, nadia, case, reason=name, url=url)
            job_id = job.id
        done = worker.run_once(job_id=job_id)
        assert done is not None and done.capture_id is not None, done
        made[name] = done.capture_id
    return made


def _badge(page: Page, selector: str) -> tuple[str, str]:
    badge = page.locator(selector).first
    return badge.inner_text(), badge.get_attribute("class") or ""


@pytest.mark.browser
def test_an_error_answer_is_marked_and_a_page_that_never_answered_says_so_in_words(
    home: Api,
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    nadia = home.user("nadia", password=PASSWORD)
    with home.runtime.session() as session:
        cases.create_case(session, users.get_user(session, "nadia"), reference=CASE,
                          title="Adverts")
    with pages.PagesServer() as server, BrowserSession(home.runtime.settings) as browser:
        server.remove("/refused", status=400)
        made = _capture(home, browser, {
            "fine": server.url(pages.SIMPLE_PATH),
            "refused": server.url("/refused"),
            "silent": server.url("/slow?delay=6"),
        })

        api = home.get(nadia, f"/api/cases/{CASE}/captures/{made['refused']}").json()
        assert api["status"] == "complete" and api["http_status"] == 400
        assert api["http_answer"] == "HTTP 400 Bad Request"
        assert api["error_answer"] == ANSWERED_400
        fine = home.get(nadia, f"/api/cases/{CASE}/captures/{made['fine']}").json()
        assert fine["http_answer"] == "HTTP 200 OK" and fine["error_answer"] is None
        listed = home.get(nadia, f"/api/cases/{CASE}/captures").json()["items"]
        assert {c["id"]: c["error_answer"] for c in listed} == {
            str(made["fine"]): None, str(made["refused"]): ANSWERED_400,
            str(made["silent"]): None}
        silent = home.get(nadia, f"/api/cases/{CASE}/captures/{made['silent']}").json()
        assert silent["status"] == "failed"
        assert silent["error"] == (
            f"loading {server.url('/slow?delay=6')}: timed out after 2 seconds: the server had "
            "not answered, so nothing of the page came to be kept")

        with served_app(home.runtime) as url, walled_page(browser, url) as page:
            page.goto(f"{url}/")
            sign_in_on_page(page, "nadia", PASSWORD)
            for width in (1280, 420):
                page.set_viewport_size({"width": width, "height": 900})
                page.goto(f"{url}/captures/{made['refused']}")
                assert _badge(page, ".head .badge") == ("complete · HTTP 400",
                                                        "badge error-answer")
                said = page.locator(".card.answered")
                assert said.inner_text() == ANSWERED_400 + "."
                facts = page.locator("dl.facts").first.inner_text()
                assert "HTTP 400 Bad Request" in facts
                # The breadcrumb leads up to the target by its name, not "Target 1a2b3c4d".
                crumbs = page.locator("p.crumbs")
                target = crumbs.locator("a[href^='/targets/']")
                assert target.inner_text() == server.url("/refused")
                assert "Target" not in crumbs.inner_text()
                assert crumbs.evaluate("e => e.scrollWidth <= e.clientWidth")
                crumbs.screenshot(path=SHOTS / f"capture-crumbs-{width}.png")
                assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
                page.screenshot(path=SHOTS / f"capture-400-{width}.png", full_page=True)

                page.goto(f"{url}/cases/{CASE}")
                rows = {row.locator("td").nth(1).inner_text(): row
                        for row in page.locator("table.targets tbody tr").all()}
                assert {name: _badge_of(row) for name, row in rows.items()} == {
                    "fine": ("complete", "badge complete"),
                    "refused": ("complete · HTTP 400", "badge error-answer"),
                    "silent": ("failed", "badge failed")}
                # Green is for a capture of the page; the error answer is not shown green.
                green = _colour(rows["fine"])
                assert _colour(rows["refused"]) != green
                assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
                page.screenshot(path=SHOTS / f"case-outcomes-{width}.png", full_page=True)

                page.click(f'a[href="/captures/{made["refused"]}"]')
                page.click("a[href^='/targets/']")
                page.locator("#captures").wait_for()
                assert _badge(page, "#captures .badge") == ("complete · HTTP 400",
                                                            "badge error-answer")

                page.goto(f"{url}/captures/{made['fine']}")
                assert _badge(page, ".head .badge") == ("complete", "badge complete")
                assert page.locator(".card.answered").count() == 0

                page.goto(f"{url}/captures/{made['silent']}")
                text = page.locator("main").inner_text()
                assert "timed out after 2 seconds: the server had not answered" in text
                for playwrights in ("Timeout", "ms exceeded", "=====", "Page.goto"):
                    assert playwrights not in text
                page.screenshot(path=SHOTS / f"capture-timeout-{width}.png", full_page=True)


def _badge_of(row: Locator) -> tuple[str, str]:
    badge = row.locator("td[data-label='Latest capture'] .badge")
    return badge.inner_text(), badge.get_attribute("class") or ""


def _colour(row: Locator) -> str:
    badge = row.locator("td[data-label='Latest capture'] .badge")
    return str(badge.evaluate("b => getComputedStyle(b).backgroundColor"))
