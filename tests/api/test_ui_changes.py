"""The capture page shows what changed since the previous capture of the page: a listing
re-captured by the real worker after its price changed, looked at in Chromium."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from capture.browser import BrowserSession
from capture.service import CaptureWorker
from evidence import cases, targets, users
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import Role
from evidence.settings import Settings
from tests.api.conftest import Api, api_over, served_app, sign_in_on_page, walled_page
from tests.factories import make_sealed_capture
from tests.support import pages_server as pages

PASSWORD = "correct horse battery staple"
SHOTS = Path("/tmp/ui")


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home", database_url=database_url,
                        capture_allow="127.0.0.1")
    init_home(settings)
    with api_over(open_runtime(settings)) as made:
        yield made


def _capture_twice(runtime: Runtime, browser: BrowserSession,
                   server: pages.PagesServer) -> tuple[uuid.UUID, uuid.UUID]:
    """The listing captured at version 1, then again at version 2, by the worker."""
    with runtime.session() as session:
        nadia = users.create_user(session, None, name="nadia", role=Role.INVESTIGATOR,
                                  password=PASSWORD)
        case = cases.create_case(session, nadia, reference="OP-31", title="Truck listings")
        target, first_job = targets.flag_target(session, nadia, case, reason="listing",
                                                url=server.url(pages.CHANGING_PATH))
        target_id, first = target.id, first_job.id
    worker = CaptureWorker(runtime, browser)
    server.set_version(pages.CHANGING_PATH, 1)
    done = worker.run_once(job_id=first)
    assert done is not None and done.capture_id is not None and done.status == "complete"
    server.set_version(pages.CHANGING_PATH, 2)
    with runtime.session() as session:
        nadia = users.get_user(session, "nadia")
        case = cases.case_for(session, nadia, "OP-31")
        target = targets.get_target(session, case, target_id)
        second = targets.request_capture(session, nadia, case, target, reason="again").id
    again = worker.run_once(job_id=second)
    assert again is not None and again.capture_id is not None and again.status == "complete"
    return done.capture_id, again.capture_id


@pytest.mark.browser
def test_a_recapture_shows_what_changed_and_links_the_capture_before(home: Api) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with pages.PagesServer() as server, BrowserSession(home.runtime.settings) as browser:
        first, second = _capture_twice(home.runtime, browser, server)
        with served_app(home.runtime) as url, walled_page(browser, url) as page:
            page.goto(f"{url}/")
            sign_in_on_page(page, "nadia", PASSWORD)
            page.goto(f"{url}/captures/{second}")
            section = page.locator("#changes")
            section.wait_for()
            text = section.inner_text()
            assert "Compared with the previous capture" in text
            assert "(listing v1)" in text and "(listing v2)" in text  # the title, from → to
            assert "2 lines added, 2 removed" in text  # the text starts with the title
            removed = section.locator(".diff .removed").all_inner_texts()
            added = section.locator(".diff .added").all_inner_texts()
            assert [line.split(":")[0] for line in removed] == ["-For sale", "-Price"]
            assert "£4,500" in removed[1] and "£3,950" in added[1]
            assert "(listing v2)" in added[0]
            # The main picture was replaced by another, old.png by new.png; kept.png stayed.
            assert "2 new, 2 gone, 0 re-encoded, 1 unchanged" in text
            rows = section.locator(".media-changes tbody tr").all_inner_texts()
            assert sorted(row.split("\t")[0] + " " + row.split("/")[-1].split()[0]
                          for row in rows) == ["gone main.png", "gone old.png",
                                               "new main.png", "new new.png"]
            # The page is no wider than the window: nothing hostile or long pushes it out.
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=SHOTS / "capture-changes.png", full_page=True)

            page.click(f'#changes a[href="/captures/{first}"]')
            page.get_by_role("heading", name="Steps").wait_for()
            # The first capture had nothing to be compared with.
            assert page.locator("#changes").count() == 0


@pytest.mark.browser
@pytest.mark.parametrize("width", [420, 1280])
def test_long_unbroken_words_never_widen_a_page(home: Api, width: int) -> None:
    """A page title of one 40,000-letter word (seen: a target page 42,217 px wide) and a
    500-letter case title wrap; on a phone-sized window the header wraps too."""
    with home.runtime.session() as session:
        nadia = users.create_user(session, None, name="nadia", role=Role.INVESTIGATOR,
                                  password=PASSWORD, unit="Border Unit " + "X" * 60)
        case = cases.create_case(session, nadia, reference="OP-32", title="T" * 500,
                                 offence="O" * 300)
        target, _job = targets.flag_target(session, nadia, case, reason="R" * 2000,
                                           url="https://example.org/" + "p" * 3000)
        capture = make_sealed_capture(session, home.runtime, case, target, actor=nadia)
        capture.title = "A" * 40_000
        capture_id, target_id = capture.id, target.id
    with BrowserSession(home.runtime.settings) as browser, served_app(home.runtime) as url, \
            walled_page(browser, url) as page:
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(f"{url}/")
        sign_in_on_page(page, "nadia", PASSWORD)
        for path in ("/", "/cases/OP-32", f"/targets/{target_id}", f"/captures/{capture_id}"):
            page.goto(f"{url}{path}")
            page.locator("main h1").wait_for()
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= width, (path, wide)
            header = page.locator("header.bar").bounding_box()
            assert header is not None and header["width"] <= width, path
        page.screenshot(path=SHOTS / f"long-words-{width}.png", full_page=False)
