"""The capture page shows what changed since the previous capture of the page: a listing
re-captured by the real worker after its price changed, looked at in Chromium."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from capture.browser import BrowserSession
from capture.service import CaptureWorker
from evidence import cases, targets, users
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import CaptureStatus, CustodyEntry, Role
from evidence.settings import Settings
from tests.api.conftest import Api, Caller, api_over, served_app, sign_in_on_page, walled_page
from tests.api.test_ui import _browser_client, _sign_in
from tests.factories import make_sealed_capture
from tests.support import pages_server as pages

PASSWORD = "correct horse battery staple"
SHOTS = Path("/tmp/ui")
# How many lines each element the selector finds takes on the screen.
LINES = """(selector) => [...document.querySelectorAll(selector)].map(e => {
  const range = document.createRange();
  range.selectNodeContents(e);
  return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
})"""


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
    [first, second], _target = _captured(runtime, browser, server, versions=(1, 2))
    return first, second


def _captured(runtime: Runtime, browser: BrowserSession, server: pages.PagesServer, *,
              versions: tuple[int, ...]) -> tuple[list[uuid.UUID], uuid.UUID]:
    """The listing captured by the worker once at each version, in turn: the captures' ids
    and the target's."""
    with runtime.session() as session:
        nadia = users.create_user(session, None, name="nadia", role=Role.INVESTIGATOR,
                                  password=PASSWORD)
        case = cases.create_case(session, nadia, reference="OP-31", title="Truck listings")
        target, first_job = targets.flag_target(session, nadia, case, reason="listing",
                                                url=server.url(pages.CHANGING_PATH))
        target_id, first = target.id, first_job.id
    worker = CaptureWorker(runtime, browser)
    server.set_version(pages.CHANGING_PATH, versions[0])
    done = worker.run_once(job_id=first)
    assert done is not None and done.capture_id is not None and done.status == "complete"
    made = [done.capture_id]
    for version in versions[1:]:
        server.set_version(pages.CHANGING_PATH, version)
        with runtime.session() as session:
            nadia = users.get_user(session, "nadia")
            case = cases.case_for(session, nadia, "OP-31")
            target = targets.get_target(session, case, target_id)
            job = targets.request_capture(session, nadia, case, target, reason="again").id
        again = worker.run_once(job_id=job)
        assert again is not None and again.capture_id is not None, again
        assert again.status == "complete"
        made.append(again.capture_id)
    return made, target_id


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
            # main.png changed in place (same address, other picture), old.png went, new.png
            # came; kept.png stayed.
            assert "1 changed, 1 new, 1 gone, 0 re-encoded, 1 unchanged" in text
            rows = section.locator(".media-changes tbody tr").all_inner_texts()
            assert sorted(row.split("\t")[0] + " " + row.split("/")[-1].split()[0]
                          for row in rows) == ["changed main.png", "gone old.png",
                                               "new new.png"]
            assert "1 media changed" in section.locator("p strong").inner_text()
            # The page is no wider than the window: nothing hostile or long pushes it out.
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=SHOTS / "capture-changes.png", full_page=True)

            page.click(f'#changes a[href="/captures/{first}"]')
            page.get_by_role("heading", name="Steps").wait_for()
            # The first capture had nothing to be compared with.
            assert page.locator("#changes").count() == 0


def _downloads(runtime: Runtime) -> int:
    with runtime.session() as session:
        return session.scalar(select(func.count()).where(
            CustodyEntry.action == "artifact.downloaded")) or 0


@pytest.mark.browser
def test_a_picture_changed_in_place_is_one_item_and_the_captures_table_says_what_changed(
    home: Api,
) -> None:
    """main.png is swapped at the same address: the API, the capture page and the summary give
    one changed picture, both versions a click away; the target's captures table marks the
    first capture, the one that changed (linking its changes) and the one that did not."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with pages.PagesServer() as server, BrowserSession(home.runtime.settings) as browser:
        [first, second, third], target_id = _captured(home.runtime, browser, server,
                                                      versions=(1, 2, 2))
        main = server.url("/changing/img/main.png")
        with home.runtime.session() as session:
            nadia = users.get_user(session, "nadia")
            token = users.issue_token(session, nadia, nadia, name="test")
        shown = home.client.get(f"/api/cases/OP-31/captures/{second}",
                                headers={"Authorization": f"Bearer {token}"})
        assert shown.status_code == 200, shown.text
        media = shown.json()["comparison"]["media"]
        assert [(m["before"]["name"], m["after"]["name"]) for m in media["changed"]] == [
            (main, main)]
        assert [m["name"] for m in media["added"]] == [server.url("/changing/img/new.png")]
        assert [m["name"] for m in media["removed"]] == [server.url("/changing/img/old.png")]
        assert "1 media changed" in shown.json()["comparison"]["summary"]

        with served_app(home.runtime) as url, walled_page(browser, url) as page:
            page.goto(f"{url}/")
            sign_in_on_page(page, "nadia", PASSWORD)
            for width in (1280, 420):
                page.set_viewport_size({"width": width, "height": 900})
                page.goto(f"{url}/captures/{second}")
                row = page.locator("#changes tr.replaced")
                row.wait_for()
                assert "same address, other content" in row.inner_text()
                hrefs = [row.get_by_role("link", name=name, exact=True).get_attribute("href")
                         for name in ("before", "now")]
                assert [h is not None and f"/captures/{c}/artifacts/" in h
                        for h, c in zip(hrefs, (first, second), strict=True)] == [True, True]
                assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
                # Read, not squeezed into columns a word wide: on a phone each file's row is a
                # block of labelled lines, a SHA-256 in two lines (it was in five).
                hashes = page.evaluate(LINES, "#changes .media-changes td.hash > div, "
                                       "#changes .media-changes td.hash:not(:has(div))")
                names = page.evaluate(LINES, "#changes .media-changes td bdi")
                assert len(hashes) == 4 and len(names) == 3, (hashes, names)
                assert max(hashes) == (1 if width == 1280 else 2), hashes
                assert max(names) == 1 if width == 1280 else max(names) <= 2, names
                page.screenshot(path=SHOTS / f"changed-picture-{width}.png", full_page=True)

                page.goto(f"{url}/targets/{target_id}")
                table = page.locator("#captures table")
                table.wait_for()
                cells = table.locator("td.since").all_inner_texts()
                assert [c.split("\n")[0].strip() for c in cells] == [
                    "unchanged", "changed", "first capture"]  # newest first
                assert "1 media changed" in cells[1]
                badge = table.locator("a.badge.changed")
                assert badge.get_attribute("href") == f"/captures/{second}#changes"
                assert table.locator(f'a[href^="/captures/{third}#"]').count() == 0
                assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
                page.locator("#captures").screenshot(path=SHOTS / f"captures-table-{width}.png")

            # Both pictures are shown only when asked: each is then a recorded download.
            badge.click()
            page.locator("#changes").wait_for()
            assert page.url.endswith(f"/captures/{second}#changes")
            page.wait_for_load_state("load")
            pictures = page.locator("#changes .pair img")
            assert pictures.count() == 2
            assert [p.evaluate("i => i.naturalWidth") for p in pictures.all()] == [0, 0]
            before = _downloads(home.runtime)
            page.get_by_text("Show both pictures").click()
            for picture in pictures.all():
                expect(picture).to_have_js_property("complete", True)
                assert picture.evaluate("i => i.naturalWidth") > 0  # loaded, not broken
            assert _downloads(home.runtime) == before + 2
            page.set_viewport_size({"width": 1280, "height": 900})
            page.locator("#changes").screenshot(path=SHOTS / "changed-picture-both.png")


def _captures_told_apart(home: Api) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A target's five captures an hour apart, oldest first: one that did not load the page,
    the first that did, one recorded without a comparison (made before comparisons were kept),
    one that changed and one that did not. The target's id and the captures'."""
    with home.runtime.session() as session:
        nadia = users.create_user(session, None, name="nadia", role=Role.INVESTIGATOR,
                                  password=PASSWORD)
        case = cases.create_case(session, nadia, reference="OP-33", title="Adverts")
        target, _job = targets.flag_target(session, nadia, case, reason="advert",
                                           url="https://example.org/ad")
        made = [make_sealed_capture(session, home.runtime, case, target, actor=nadia)
                for _ in range(5)]
        start = made[0].started_at
        for hours, capture in enumerate(made):
            capture.started_at = start + timedelta(hours=hours)
        made[0].status = CaptureStatus.FAILED  # the earliest did not load: not the first
        made[3].comparison = {"changed": True, "summary": "price changed"}
        made[4].comparison = {"changed": False, "summary": "no change (1 media re-encoded)"}
        return target.id, [c.id for c in made]


def test_the_captures_table_marks_a_first_capture_one_never_compared_and_a_failed_one(
    home: Api,
) -> None:
    """Captures recorded without a comparison (made before comparisons were kept) are not
    called unchanged: the earliest that loaded is the first, a later one 'not compared'; a
    capture that did not load the page has nothing to say there."""
    target_id, _made = _captures_told_apart(home)
    client = _browser_client(home)
    _sign_in(client, "nadia", PASSWORD)
    page = client.get(f"/targets/{target_id}")
    assert page.status_code == 200
    cells = [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(
        r'<td data-label="since the capture before" class="since">(.*?)</td>', page.text,
        re.S)]
    assert cells == ["unchanged no change (1 media re-encoded)", "changed price changed",
                     "not compared", "first capture", "—"]


def test_the_api_lists_captures_with_what_changed_since_the_capture_before(home: Api) -> None:
    """The API says of each capture what the web UI's captures table says, wherever it lists
    captures: the case's captures (of every target or of one), the target and the capture."""
    target_id, made = _captures_told_apart(home)
    with home.runtime.session() as session:
        nadia = users.get_user(session, "nadia")
        caller = Caller(nadia, users.issue_token(session, nadia, nadia, name="test"))
    expected = [
        {"state": None, "summary": None},
        {"state": "first", "summary": None},
        {"state": "not compared", "summary": None},
        {"state": "changed", "summary": "price changed"},
        {"state": "unchanged", "summary": "no change (1 media re-encoded)"},
    ]

    def said(captures: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        return [(c["id"], c["since_previous"]) for c in captures]

    ids = [str(i) for i in made]
    for url in ("/api/cases/OP-33/captures", f"/api/cases/OP-33/captures?target={target_id}"):
        listed = home.get(caller, url)
        assert listed.status_code == 200, listed.text
        assert said(listed.json()["items"]) == list(zip(ids, expected, strict=True))
    # A page at a time: the first of the target's is known as the first on any page.
    older = home.get(caller, "/api/cases/OP-33/captures?newest_first=true&limit=3").json()
    assert said(older["items"]) == list(zip(ids[:1:-1], expected[:1:-1], strict=True))
    last = home.get(caller, older["next"]).json()
    assert said(last["items"]) == list(zip(ids[1::-1], expected[1::-1], strict=True))
    shown = home.get(caller, f"/api/cases/OP-33/targets/{target_id}").json()
    assert said(shown["captures"]) == list(zip(ids[::-1], expected[::-1], strict=True))
    for capture_id, since in zip(ids, expected, strict=True):
        one = home.get(caller, f"/api/cases/OP-33/captures/{capture_id}").json()
        assert one["since_previous"] == since


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
