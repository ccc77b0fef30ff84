"""Received material on the pages: kept through the request page's form (a multipart form with
the session's token), listed there and on the case's page, downloaded with a custody entry;
refusals, access and hostile names as on the other forms; one walk in Chromium."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import func, select

from capture.browser import BrowserSession
from evidence import cases
from evidence.models import Access, CustodyEntry, ReceivedFile, Role, utcnow
from tests.api.conftest import Api, served_app, sign_in_on_page, walled_page
from tests.api.test_ui import PASSWORD, _browser_client, _sign_in
from tests.factories import make_sent_request

REFERENCE = "OP/2026/9"
CASE_PAGE = f"/cases/{quote(REFERENCE, safe='')}"
SHOTS = Path("/tmp/ui-received2")
CSV = b"account_id,ip,timestamp\n1234567890,203.0.113.7,2026-02-28T22:14:09Z\n"


@pytest.fixture
def world(api: Api) -> Iterator[Any]:
    """Liaison officer lina (signs in with PASSWORD) and her request to X, sent a day ago."""
    lina = api.user("lina", Role.LIAISON, password=PASSWORD)
    with api.runtime.session() as session:
        made = make_sent_request(session, api.runtime.store, api.runtime.settings,
                                 actor=lina.user, reference=REFERENCE,
                                 generated_at=utcnow() - timedelta(days=2),
                                 sent_at=utcnow() - timedelta(days=1))
    made.lina = lina
    made.page = f"{CASE_PAGE}/requests/{made.request.id}"
    yield made


def _form(token: str, **overrides: str) -> dict[str, str]:
    received_at = (utcnow() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    return {"csrf_token": token, "received_at": received_at, "via": "portal",
            "platform_reference": "LE-77123", **overrides}


def _keep(client: Any, world: Any, token: str, name: str = "subscriber.csv",
          data: bytes = CSV, **overrides: str) -> Any:
    return client.post(f"{world.page}/received", data=_form(token, **overrides),
                       files={"file": (name, data, "text/csv")}, follow_redirects=False)


def _kept(api: Api) -> int:
    with api.runtime.session() as session:
        return session.scalar(select(func.count()).select_from(ReceivedFile)) or 0


def _alert(page: str) -> str:
    found = re.search(r'<p class="alert" role="alert"[^>]*>(.*?)</p>', page, re.S)
    assert found, page[:3000]
    return html.unescape(found.group(1))


def test_a_file_kept_through_the_form_is_listed_and_downloads(api: Api, world: Any) -> None:
    token = _sign_in(api.client, "lina")
    page = api.client.get(world.page)
    assert 'enctype="multipart/form-data"' in page.text and "Keep the file" in page.text
    kept = _keep(api.client, world, token)
    assert kept.status_code == 303, kept.text[:2000]
    assert kept.headers["location"] == f"{world.page}#received"
    shown = api.client.get(world.page).text
    sha = hashlib.sha256(CSV).hexdigest()
    assert "subscriber.csv" in shown and sha in shown and f"{len(CSV)} bytes" in shown
    link = re.search(r'<a href="([^"]+/content)" download>Download</a>', shown)
    assert link, shown
    got = api.client.get(html.unescape(link.group(1)))
    assert got.content == CSV and got.headers["content-disposition"].startswith("attachment")
    with api.runtime.session() as session:
        actions = list(session.scalars(select(CustodyEntry.action)
                                       .where(CustodyEntry.sha256 == sha)))
    assert actions == ["material.received", "material.downloaded"]
    # The case's page lists it too, with the request it answers.
    case_page = api.client.get(CASE_PAGE).text
    assert "Received material" in case_page and "subscriber.csv" in case_page
    assert world.request.reference_number in case_page


def test_the_same_file_again_comes_back_with_why(api: Api, world: Any) -> None:
    token = _sign_in(api.client, "lina")
    assert _keep(api.client, world, token).status_code == 303
    again = _keep(api.client, world, token, name="copy.csv", via="other",
                  via_detail="courier from Dublin")
    assert again.status_code == 409
    message = _alert(again.text)
    assert "Nothing was kept" in message and "already registered" in message
    assert "subscriber.csv" in message
    # What was typed is kept; the file, which no browser keeps, is to be chosen again.
    assert 'value="courier from Dublin"' in again.text
    assert re.search(r'<p class="field-problem" id="problem-file">Choose the file again: a '
                     r'browser cannot keep a chosen file when a form comes back.</p>\s*<input '
                     r'id="file" name="file" type="file" required '
                     r'aria-describedby="problem-file">', again.text), again.text
    # Said first on the page too, above the received files: the form is far down.
    top = again.text.split("</h1>", 1)[1].split("<section", 1)[0]
    assert re.search(r'<p class="refused" role="alert">Nothing was kept: .*already registered.*'
                     r'<a href="#receive-refused">Go to the form</a></p>', top, re.S), top
    assert _kept(api) == 1


def test_fulfil_records_the_request_as_fulfilled(api: Api, world: Any) -> None:
    token = _sign_in(api.client, "lina")
    assert _keep(api.client, world, token, fulfil="1").status_code == 303
    shown = api.client.get(world.page).text
    assert re.search(r'<span class="badge fulfilled[^"]*">fulfilled</span>', shown), shown[:3000]


def test_a_form_without_the_sessions_token_keeps_nothing(api: Api, world: Any) -> None:
    _sign_in(api.client, "lina")
    other = _browser_client(api)
    other_token = _sign_in(other, "lina")
    for token in ("", "forged", other_token):
        refused = _keep(api.client, world, token)
        assert refused.status_code == 403
        assert "attach the file" in refused.text
    assert _kept(api) == 0


def _reader(api: Api, world: Any) -> tuple[Any, str]:
    """rita, who may read the case, signed in (with her form token); stan, who may not, made."""
    reader = api.user("rita", Role.INVESTIGATOR, password=PASSWORD)
    api.user("stan", Role.INVESTIGATOR, password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.get_case(session, world.lina.user, REFERENCE)
        cases.add_member(session, world.lina.user, case, reader.user, Access.READ)
    as_reader = _browser_client(api)
    return as_reader, _sign_in(as_reader, "rita")


def test_readers_see_the_list_but_no_form_and_strangers_nothing(api: Api, world: Any) -> None:
    token = _sign_in(api.client, "lina")
    assert _keep(api.client, world, token).status_code == 303
    as_reader, reader_token = _reader(api, world)
    page = as_reader.get(world.page).text
    assert "subscriber.csv" in page and "Keep the file" not in page
    assert _keep(as_reader, world, reader_token, name="x.csv", data=b"x").status_code == 403
    as_stranger = _browser_client(api)
    stranger_token = _sign_in(as_stranger, "stan")
    assert _keep(as_stranger, world, stranger_token, data=b"y").status_code == 404
    assert _kept(api) == 1


def test_a_hostile_name_is_shown_as_text_and_clipped(api: Api, world: Any) -> None:
    token = _sign_in(api.client, "lina")
    name = "<script>alert(1)</script>\u202efdp.exe" + "a" * 4000
    assert _keep(api.client, world, token, name=name).status_code == 303
    for url in (world.page, CASE_PAGE):
        shown = api.client.get(url).text
        assert "<script>alert(1)" not in shown
        assert "&lt;script&gt;alert(1)&lt;/script&gt;\u202efdp.exe" in shown
        table = re.search(r'<table class="grid received[^"]*">.*?</table>', shown, re.S)
        assert table, shown[:3000]
        assert "a" * 200 not in table.group(0) and "(255 characters)" in table.group(0)


@pytest.mark.browser
def test_a_liaison_officer_keeps_what_the_platform_sent_in_chromium(
        api: Api, world: Any, tmp_path: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    download = tmp_path / "subscriber_1234567890.csv"
    download.write_bytes(CSV)
    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served, accept_downloads=True) as page:
        page.goto(f"{served}{world.page}")
        assert urlsplit(page.url).path == "/login"
        sign_in_on_page(page, "lina", PASSWORD)
        page.get_by_role("heading", name="Received material").wait_for()
        page.set_input_files("#file", str(download))
        page.fill("#received_at", (utcnow() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S"))
        page.select_option("#via", "portal")
        page.click("button:has-text('Keep the file')")
        page.locator("table.received").wait_for()
        table = page.locator("table.received").inner_text()
        assert "subscriber_1234567890.csv" in table and hashlib.sha256(CSV).hexdigest() in table
        with page.expect_download() as got:
            page.locator("table.received").get_by_role("link", name="Download").click()
        saved = got.value.path()
        assert saved is not None and Path(saved).read_bytes() == CSV
        page.locator("#received").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "request-received-1280.png", full_page=True)
        page.set_viewport_size({"width": 420, "height": 900})
        page.screenshot(path=SHOTS / "request-received-420.png", full_page=True)
        page.goto(f"{served}{CASE_PAGE}")
        page.get_by_role("heading", name="Received material").wait_for()
        page.screenshot(path=SHOTS / "case-received-420.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=SHOTS / "case-received-1280.png", full_page=True)



RECEIVED_PAGE = f"{CASE_PAGE}/received"


def _keep_from_source(client: Any, token: str, name: str = "statement.pdf",
                      data: bytes = b"%PDF-1.4 witness", **overrides: str) -> Any:
    fields = {"csrf_token": token, "via": "medium", "source": "handed over by witness W-3",
              "received_at": (utcnow() - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S"),
              **overrides}
    return client.post(RECEIVED_PAGE, data=fields, files={"file": (name, data, "text/csv")},
                       follow_redirects=False)


def test_material_from_another_source_is_kept_and_listed_page_by_page(
        api: Api, world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _sign_in(api.client, "lina")
    assert _keep(api.client, world, token).status_code == 303
    kept = _keep_from_source(api.client, token)
    assert kept.status_code == 303 and kept.headers["location"] == RECEIVED_PAGE
    assert _keep_from_source(api.client, token, name="second.csv", data=b"2",
                             source="seized phone").status_code == 303
    assert "All received material" in api.client.get(CASE_PAGE).text
    shown = api.client.get(RECEIVED_PAGE).text
    assert "handed over by witness W-3" in shown and "seized phone" in shown
    assert f'href="{CASE_PAGE}/requests/{world.request.id}#received"' in shown
    assert "Keep material from another source" in shown
    monkeypatch.setattr("api.ui.material.RECEIVED_PER_PAGE", 2)
    first = api.client.get(RECEIVED_PAGE).text
    more = re.search(r'href="([^"]*cursor=[^"]*)">Older material', first)
    assert more, first[:3000]
    rest = api.client.get(html.unescape(more.group(1))).text
    names = [n for page in (first, rest) for n in re.findall(
        r"<bdi>(second\.csv|statement\.pdf|subscriber\.csv)</bdi>", page)]
    # Newest received first, each once: the request's file came 2 h ago, the others 5 h ago.
    assert names[0] == "subscriber.csv" and sorted(names) == [
        "second.csv", "statement.pdf", "subscriber.csv"]
    assert "Older material" not in rest


def test_material_without_its_source_comes_back_with_why(api: Api, world: Any) -> None:
    token = _sign_in(api.client, "lina")
    refused = _keep_from_source(api.client, token, source="  ", via_detail="by courier")
    assert refused.status_code == 422
    assert "Nothing was kept" in _alert(refused.text) and "source" in _alert(refused.text)
    assert 'value="by courier"' in refused.text
    assert 'id="problem-file">Choose the file again' in refused.text
    assert '<a href="#receive-refused">Go to the form</a>' in refused.text.split("<section", 1)[0]
    assert _kept(api) == 0
    stale = _keep_from_source(api.client, "forged")
    assert stale.status_code == 403 and "attach the file" in stale.text


def test_readers_see_all_received_material_but_no_form(api: Api, world: Any) -> None:
    token = _sign_in(api.client, "lina")
    assert _keep_from_source(api.client, token).status_code == 303
    as_reader, reader_token = _reader(api, world)
    page = as_reader.get(RECEIVED_PAGE).text
    assert "statement.pdf" in page and "Keep the file" not in page
    assert _keep_from_source(as_reader, reader_token, data=b"r").status_code == 403
    as_stranger = _browser_client(api)
    _sign_in(as_stranger, "stan")
    assert as_stranger.get(RECEIVED_PAGE).status_code == 404
    assert _kept(api) == 1


@pytest.mark.browser
def test_material_from_a_witness_is_kept_from_the_case_in_chromium(
        api: Api, world: Any, tmp_path: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    statement = tmp_path / "witness_statement_W-3.pdf"
    statement.write_bytes(b"%PDF-1.4 witness statement")
    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served) as page:
        page.goto(f"{served}{CASE_PAGE}")
        sign_in_on_page(page, "lina", PASSWORD)
        page.get_by_role("link", name="from the case's received material").click()
        page.get_by_role("heading", name="Keep material from another source").wait_for()
        page.set_input_files("#file", str(statement))
        page.fill("#source", "handed over by witness W-3 at the front desk")
        page.fill("#received_at", (utcnow() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S"))
        page.select_option("#via", "medium")
        page.click("button:has-text('Keep the file')")
        page.locator("table.received").wait_for()
        table = page.locator("table.received").inner_text()
        assert "witness_statement_W-3.pdf" in table and "front desk" in table
        page.screenshot(path=SHOTS / "case-all-received-1280.png", full_page=True)
        page.set_viewport_size({"width": 420, "height": 900})
        page.screenshot(path=SHOTS / "case-all-received-420.png", full_page=True)
