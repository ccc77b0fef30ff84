"""The search page: an investigator finds adverts by their words across cases, spelled as the
smugglers spell them, and nothing of a case they are not a member of; in Chromium too."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from capture.browser import BrowserSession
from evidence import accounts, captures, cases, custody, targets
from evidence.models import CustodyEntry
from tests.api.conftest import Api, served_app, sign_in_on_page, walled_page
from tests.factories import make_text_capture

PASSWORD = "correct horse battery staple"
SHOTS = Path("/tmp/ui")


def _world(api: Api) -> dict[str, Any]:
    nadia = api.user("nadia", password=PASSWORD)
    other = api.user("other")
    with api.runtime.session() as session:
        boats = cases.create_case(session, nadia.user, reference="OP/1", title="Boats")
        papers = cases.create_case(session, nadia.user, reference="OP/2", title="Papers")
        hidden = cases.create_case(session, other.user, reference="OP/9", title="Not hers")
        found = {}
        for name, case, url, text, day in (
            ("voweled", boats, "https://www.facebook.com/groups/9/posts/1",
             "رِحْلَة إِلَى أُورُوبَا كل يوم", 1),
            ("plain", papers, "https://t.me/s/crossings/7", "رحلة الى اوروبا بالقارب", 5),
            ("hidden", hidden, "https://t.me/s/other/1", "رحلة الى اوروبا سرية", 6),
            ("latin", boats, "https://t.me/s/crossings/8", "Passports 800 EUR, call now", 7),
        ):
            actor = other.user if case is hidden else nadia.user
            target, _job = targets.flag_target(session, actor, case, reason="advert", url=url)
            found[name] = make_text_capture(session, case, target, api.runtime.store,
                                            text=text,
                                            started_at=datetime(2026, 3, day, tzinfo=UTC)).id
        # An account's page, captured for its target: found by its words like any page.
        account, _ = accounts.link_account(session, nadia.user, boats, platform="x",
                                           platform_account_id="555", handle="rahla_trips",
                                           profile_url="https://x.com/rahla_trips")
        target, _job = targets.flag_target(session, nadia.user, boats, reason="the seller",
                                           account=account)
        found["account"] = make_text_capture(session, boats, target, api.runtime.store,
                                             text="Rahla to Europa weekly",
                                             started_at=datetime(2026, 3, 8, tzinfo=UTC)).id
        return found


def _sign_in(client: TestClient) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]*)"', form.text)
    assert token
    answer = client.post("/login", data={"csrf_token": token.group(1), "name": "nadia",
                                         "password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def test_a_search_finds_every_spelling_in_her_cases_only_and_is_recorded(api: Api) -> None:
    ids = _world(api)
    _sign_in(api.client)
    page = api.client.get("/search", params={"q": "اوروبا"})
    assert page.status_code == 200, page.text
    links = re.findall(r'href="/captures/([0-9a-f-]{36})"', page.text)
    assert links == [str(ids["plain"]), str(ids["voweled"])]  # newest first; not OP/9's
    assert "<mark>" in page.text and "OP/9" not in page.text.split("<table", 1)[1]
    narrowed = api.client.get("/search", params={"q": "اوروبا", "case": "OP/1"})
    assert re.findall(r'href="/captures/([0-9a-f-]{36})"', narrowed.text) == [
        str(ids["voweled"])]
    with api.runtime.session() as session:
        entries = [custody.describe(e)["details"] for e in session.scalars(
            select(CustodyEntry).where(CustodyEntry.action == "search.text")
            .order_by(CustodyEntry.seq))]
        assert [(e["query"], e["case"]) for e in entries] == [("اوروبا", None),
                                                              ("اوروبا", "OP/1")]
        assert entries[0]["captures"] == [str(ids["plain"]), str(ids["voweled"])]


def test_a_result_names_the_target_its_page_was_captured_for(api: Api) -> None:
    """An account's capture is found by its handle on the platform, linking to its target, with
    the page's address beside it; a URL target is named by its URL, not shown twice."""
    ids = _world(api)
    _sign_in(api.client)
    with api.runtime.session() as session:
        captured = {name: captures.get_capture(session, ids[name]) for name in ids}
    page = api.client.get("/search", params={"q": "europa OR passports"})
    assert page.status_code == 200, page.text
    body = page.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = {re.findall(r'href="/captures/([0-9a-f-]{36})"', row)[0]: row
            for row in body.split("<tr>")[1:]}
    assert set(rows) == {str(ids["account"]), str(ids["latin"])}
    account_row = rows[str(ids["account"])]
    assert (f'<a href="/targets/{captured["account"].target_id}"><span class="account">'
            "<bdi>@rahla_trips</bdi> on X (formerly Twitter)</span></a>") in account_row
    assert '<bdi>https://x.com/rahla_trips</bdi>' in account_row  # the page captured
    latin_row = rows[str(ids["latin"])]
    assert (f'<a href="/targets/{captured["latin"].target_id}"><bdi class="url">'
            "https://t.me/s/crossings/8</bdi></a>") in latin_row
    assert latin_row.count("https://t.me/s/crossings/8") == 1


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"q": "!!! ???"}, 422, "The search has no words in it."),
    ({"q": "boat", "case": "OP/9"}, 404, "No case 'OP/9'."),
])
def test_a_search_that_cannot_run_says_why_and_keeps_what_was_typed(
        api: Api, params: dict[str, str], status: int, message: str) -> None:
    _world(api)
    _sign_in(api.client)
    page = api.client.get("/search", params=params)
    assert page.status_code == status
    assert message in html.unescape(page.text)
    assert f'value="{html.escape(params["q"])}"' in page.text


@pytest.mark.browser
def test_searching_in_chromium_marks_the_words_and_leads_to_the_capture(api: Api) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ids = _world(api)
    with BrowserSession(api.runtime.settings) as browser, served_app(api.runtime) as url, \
            walled_page(browser, url) as page:
        page.goto(f"{url}/")
        sign_in_on_page(page, "nadia", PASSWORD)
        page.click("header >> text=Search")
        page.fill("#q", "passport*")
        page.click("button:has-text('Search')")
        rows = page.locator("table.hits tbody tr")
        rows.first.wait_for()
        assert rows.count() == 1
        assert page.locator("table.hits mark").all_inner_texts() == ["Passports"]
        page.screenshot(path=SHOTS / "search.png", full_page=True)
        # An account's page is found under its handle, at a phone's width too.
        for width in (1280, 420):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{url}/search?q=europa")
            found = page.locator("table.hits tbody tr", has_text="@rahla_trips on X")
            assert found.count() == 1
            assert found.locator("a[href^='/targets/']").inner_text() == (
                "@rahla_trips on X (formerly Twitter)")
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
            page.screenshot(path=SHOTS / f"search-targets-{width}.png", full_page=True)
        page.goto(f"{url}/search?q=passport*")
        rows.first.locator("a").first.click()
        page.get_by_role("heading", name="Steps").wait_for()
        assert page.url.endswith(f"/captures/{ids['latin']}")
