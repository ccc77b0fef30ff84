"""The evidence bundles page: exporting through the form as through the API, downloading and
verifying what it made, who may export, refusals shown on the page, and a prosecutor's walk
through it in Chromium."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from api.app import end_interrupted_exports
from api.deps import quote_ref
from capture.browser import BrowserSession
from evidence import bundles, cases, custody, export_leases, targets, users
from evidence.models import Access, Artifact, Capture, CustodyEntry, Export, Role
from tests.api.conftest import Api, Caller, served_app, sign_in_on_page, walled_page
from tests.api.test_ui import (
    PASSWORD,
    _assert_page_headers,
    _browser_client,
    _sign_in,
    sealed,  # noqa: F401  (a fixture)
)
from tests.factories import (
    age_lease,
    drop_append_only,
    make_capture,
    make_sealed_capture,
    started_export,
    two_answered_targets,
)

REFERENCE = "OP/2026/21"
PAGE = f"/cases/{quote_ref(REFERENCE)}/exports"
SHOTS = Path("/tmp/ui/exports")


@dataclass
class World:
    petra: Caller  # prosecutor, reads the case
    ivan: Caller  # investigator who works on it (write), may not export
    owner: Caller  # investigator who made it, manages it: may export
    targets: dict[str, uuid.UUID]  # url -> target id
    case_id: uuid.UUID


def _world(api: Api) -> World:
    owner = api.user("owner", password=PASSWORD)
    petra = api.user("petra", Role.PROSECUTOR, password=PASSWORD, unit="Prosecution")
    ivan = api.user("ivan", password=PASSWORD)
    api.user("sam", Role.PROSECUTOR, password=PASSWORD, unit="Elsewhere")  # no member
    made: dict[str, uuid.UUID] = {}
    with api.runtime.session() as session:
        case = cases.create_case(session, owner.user, reference=REFERENCE,
                                 title="Crossing adverts", offence="smuggling of migrants")
        cases.add_member(session, owner.user, case, users.get_user(session, "petra"),
                         Access.READ)
        cases.add_member(session, owner.user, case, users.get_user(session, "ivan"),
                         Access.WRITE)
        for url in ("https://t.me/crossings/1", "https://t.me/crossings/2"):
            target, _job = targets.flag_target(session, owner.user, case, reason="advert",
                                               url=url)
            make_sealed_capture(session, api.runtime, case, target, actor=owner.user)
            made[url] = target.id
        # Flagged, never captured: nothing of it to export.
        bare, _job = targets.flag_target(session, owner.user, case, reason="not yet captured",
                                         url="https://t.me/crossings/3")
        made[bare.url or ""] = bare.id
        case_id = case.id
    return World(petra, ivan, owner, made, case_id)


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found, page[:2000]
    return found.group(1)


def _actions(api: Api, case_id: uuid.UUID) -> list[str]:
    with api.runtime.session() as session:
        return [e.action for e in session.scalars(
            select(CustodyEntry).where(CustodyEntry.case_id == case_id)
            .order_by(CustodyEntry.seq))]


def _exports(api: Api) -> list[Export]:
    with api.runtime.session() as session:
        return list(session.scalars(select(Export).order_by(Export.created_at)))


def _card(page: str, export_id: uuid.UUID | str) -> str:
    """The part of the page about one export."""
    found = re.search(rf'<section class="card[^"]*" id="export-{export_id}".*?</section>',
                      page, re.S)
    assert found, page[-3000:]
    return found.group(0)


def _shown_hash(card: str) -> str:
    found = re.search(r'<dd class="mono sha256">([0-9a-f]{64})</dd>', card)
    assert found, card
    return found.group(1)


def _members(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        return {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist()}


def _run_shipped_verifier(bundle: bytes, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The bundle's own data/verify.py on the downloaded file, as the defence would run it."""
    path = tmp_path / "bundle.zip"
    path.write_bytes(bundle)
    script = tmp_path / "verify.py"
    script.write_bytes(_members(bundle)["data/verify.py"])
    return subprocess.run([sys.executable, "-I", str(script), str(path)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)


def _post(client: TestClient, token: str | None, **form: str | list[str]) -> httpx.Response:
    data: dict[str, str | list[str]] = dict(form)
    if token is not None:
        data["csrf_token"] = token
    return client.post(PAGE, data=data, follow_redirects=False)


# --- exporting -------------------------------------------------------------------------------

def test_the_form_makes_the_export_the_api_makes_and_its_bundle_verifies(
    sealed: Api, tmp_path: Path,  # noqa: F811
) -> None:
    api = sealed
    world = _world(api)
    token = _sign_in(api.client, "petra")
    empty = api.client.get(PAGE)
    assert empty.status_code == 200
    _assert_page_headers(empty)
    assert "No bundle has been made of this case yet." in empty.text
    assert "Export all targets" in empty.text and "Export the ticked targets" in empty.text
    assert "python3 verify.py BUNDLE.zip" in empty.text
    assert api.runtime.signer.key_id in empty.text

    before = _actions(api, world.case_id)
    made = _post(api.client, token, scope="all")
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    assert urlsplit(location).path == PAGE
    export_id = parse_qs(urlsplit(location).query)["made"][0]
    by_form = _actions(api, world.case_id)[len(before):]
    assert by_form == ["export.started", "export.completed"]

    # The same through the API: the same entries, the same kind of row.
    with_api = api.post(world.petra, f"/api{PAGE}", json={})
    assert with_api.status_code == 201, with_api.text
    assert _actions(api, world.case_id)[len(before) + 2:] == by_form
    rows = {str(e.id): e for e in _exports(api)}
    assert set(rows) == {export_id, with_api.json()["id"]}
    for row in rows.values():
        assert row.requested_by_id == world.petra.user.id and row.target_ids is None
        assert row.bundle_sha256 is not None

    page = api.client.get(location)
    assert page.status_code == 200
    card = _card(page.text, export_id)
    assert 'class="card ok"' in card and "<h2>Bundle made</h2>" in card
    assert "All targets of the case" in card and "petra" in card and ">complete<" in card
    assert "<dt>Exhibits</dt><dd>2</dd>" in card
    shown = _shown_hash(card)
    assert shown == rows[export_id].bundle_sha256
    # Newest first: the API's export above the form's, and not marked as just made.
    assert page.text.index(f'id="export-{with_api.json()["id"]}"') < page.text.index(
        f'id="export-{export_id}"')
    assert 'class="card ok"' not in _card(page.text, with_api.json()["id"])

    link = re.search(r'<a class="button" href="([^"]+)" download>', card)
    assert link and link.group(1) == f"/api{PAGE}/{export_id}/bundle"
    downloaded = api.client.get(html.unescape(link.group(1)))  # with the login cookie only
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.headers["content-type"] == "application/zip"
    assert hashlib.sha256(downloaded.content).hexdigest() == shown
    assert len(downloaded.content) == rows[export_id].size
    assert api.get(world.petra, link.group(1)).content == downloaded.content
    assert _actions(api, world.case_id)[-2:] == ["export.downloaded"] * 2

    result = _run_shipped_verifier(downloaded.content, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED" in result.stdout and api.runtime.signer.key_id in result.stdout
    index = json.loads(_members(downloaded.content)["data/bundle.json"])
    assert index["export_id"] == export_id and len(index["exhibits"]) == 2


def test_exporting_ticked_targets_bundles_only_theirs(sealed: Api,  # noqa: F811
                                                      tmp_path: Path) -> None:
    api = sealed
    world = _world(api)
    token = _sign_in(api.client, "petra")
    form = api.client.get(PAGE).text
    for url, target_id in world.targets.items():
        assert f'name="target" value="{target_id}"' in form, url
    second = world.targets["https://t.me/crossings/2"]
    made = _post(api.client, token, scope="chosen", target=[str(second)])
    assert made.status_code == 303, made.text
    export_id = parse_qs(urlsplit(made.headers["location"]).query)["made"][0]
    (row,) = _exports(api)
    assert str(row.id) == export_id and row.target_ids == [str(second)]

    card = _card(api.client.get(PAGE).text, export_id)
    assert "https://t.me/crossings/2" in card and "https://t.me/crossings/1" not in card
    assert "All targets" not in card and "<dt>Exhibits</dt><dd>1</dd>" in card
    bundle = api.client.get(f"/api{PAGE}/{export_id}/bundle")
    assert hashlib.sha256(bundle.content).hexdigest() == _shown_hash(card)
    exhibits = json.loads(_members(bundle.content)["data/bundle.json"])["exhibits"]
    assert [(e["target_id"], e["url"]) for e in exhibits] == [
        (str(second), "https://t.me/crossings/2")]
    result = _run_shipped_verifier(bundle.content, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_target_whose_page_answered_an_error_shows_it_at_its_tick(
        sealed: Api) -> None:  # noqa: F811
    """The latest capture of each target has the badge the capture page gives it: a page that
    answered 410 reads 'partial · HTTP 410' with its sentence, not a plain status."""
    api = sealed
    world = _world(api)
    with api.runtime.session() as session:
        owner = users.get_user(session, "owner")
        case = cases.get_case(session, owner, REFERENCE)
        target, _job = targets.flag_target(session, owner, case, reason="taken down",
                                           url="https://t.me/crossings/4")
        make_capture(session, case, target, api.runtime.store, http_status=410)
    _sign_in(api.client, "petra")
    form = api.client.get(PAGE).text
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r'name="target" value="([0-9a-f-]{36})".*?<td data-label="latest capture">(.*?)</td>',
        form, re.S)}
    assert ('<span class="badge partial" title="Partial, but the page answered HTTP 410 Gone '
            '(the server says the page is gone for good): what was captured is that '
            'answer, not the page as it once stood">partial · HTTP 410</span>') in rows[
        str(target.id)]
    for url in ("https://t.me/crossings/1", "https://t.me/crossings/2"):
        assert '<span class="badge complete">complete</span>' in rows[str(world.targets[url])]
    assert "none" in rows[str(world.targets["https://t.me/crossings/3"])]


def test_a_refused_export_comes_back_on_the_page(sealed: Api) -> None:  # noqa: F811
    api = sealed
    world = _world(api)
    with api.runtime.session() as session:
        other = cases.create_case(session, world.owner.user, reference="OP-OTHER", title="x")
        elsewhere, _job = targets.flag_target(session, world.owner.user, other, reason="r",
                                              url="https://example.org/elsewhere")
        elsewhere_id = elsewhere.id
    token = _sign_in(api.client, "petra")
    bare = str(world.targets["https://t.me/crossings/3"])
    before = _actions(api, world.case_id)
    for form, status, message in (
        ({"scope": "chosen", "target": [bare]}, 422,
         f"No bundle was made: case {REFERENCE!r} has no capture to export for those targets."),
        ({"scope": "chosen"}, 422,
         "No bundle was made: tick at least one target, or export all targets."),
        ({"scope": "chosen", "target": ["not-a-target"]}, 422,
         "No bundle was made: a ticked target is not one of this case's; reload the page."),
        ({"scope": "chosen", "target": [str(elsewhere_id)]}, 404,
         f"has no target {elsewhere_id}."),
        ({}, 422, "choose whether to export all targets or the ticked ones"),
    ):
        refused = _post(api.client, token, **form)
        assert refused.status_code == status, (form, refused.text)
        text = refused.text
        _assert_page_headers(refused)
        alert = re.search(r'<p class="alert" role="alert">(.*?)</p>', text, re.S)
        assert alert, (form, text[:3000])
        assert message in html.unescape(alert.group(1)), (form, alert.group(1))
        # The page itself, with the form and what was ticked, not an error page.
        assert "Make a bundle" in text and "Export all targets" in text
        for ticked in form.get("target", []):
            if ticked == bare:
                assert f'value="{bare}" id="target-{bare}" checked' in text
    assert _exports(api) == [] and _actions(api, world.case_id) == before

    # A case with nothing captured at all says so.
    with api.runtime.session() as session:
        empty = cases.create_case(session, world.owner.user, reference="EMPTY-1", title="e")
        cases.add_member(session, world.owner.user, empty, users.get_user(session, "petra"),
                         Access.READ)
    refused = api.client.post("/cases/EMPTY-1/exports",
                              data={"csrf_token": token, "scope": "all"})
    assert refused.status_code == 422
    assert "No bundle was made: case &#39;EMPTY-1&#39; has no capture to export." in refused.text
    assert "The case has no targets yet." in refused.text
    assert _exports(api) == []


def test_an_export_from_a_log_that_does_not_verify_is_refused_on_the_page(
    sealed: Api,  # noqa: F811
) -> None:
    api = sealed
    world = _world(api)
    with api.runtime.engine.begin() as conn:
        drop_append_only(conn, "custody_entries")
        seq = conn.execute(text("SELECT max(seq) FROM custody_entries")).scalar_one()
        conn.execute(text("UPDATE custody_entries SET object_id = 'elsewhere' WHERE seq = :s"),
                     {"s": seq})
    before = _actions(api, world.case_id)
    token = _sign_in(api.client, "petra")
    refused = _post(api.client, token, scope="all")
    assert refused.status_code == 409
    alert = re.search(r'<p class="alert" role="alert">(.*?)</p>', refused.text, re.S)
    assert alert, refused.text[:3000]
    said = html.unescape(alert.group(1))
    assert said.startswith(f"No bundle was made: custody log BROKEN: case {REFERENCE}: "
                           f"entry seq {seq}: column object_id disagrees with the entry "
                           "(altered). Run `evidence custody verify` and have the log examined "
                           "before exporting.")
    assert said.endswith("exporting.")
    assert "Make a bundle" in refused.text  # the page, not an error page
    assert _exports(api) == [] and _actions(api, world.case_id) == before


def test_an_export_that_breaks_off_is_listed_as_failed_with_why(sealed: Api) -> None:  # noqa: F811
    api = sealed
    world = _world(api)
    # A stored file of the first target's capture no longer holds what was sealed.
    with api.runtime.session() as session:
        dom = session.scalars(select(Artifact).join(Capture).where(
            Capture.target_id == world.targets["https://t.me/crossings/1"],
            Artifact.kind == "dom")).one()
        blob = Path(api.runtime.store.locate(dom.sha256))
    blob.chmod(0o640)
    blob.write_bytes(blob.read_bytes() + b"<!-- edited -->")
    token = _sign_in(api.client, "petra")
    refused = _post(api.client, token, scope="all")
    assert refused.status_code == 500
    alert = re.search(r'<p class="alert" role="alert">(.*?)</p>', refused.text, re.S)
    assert alert and f"blob {dom.sha256} in the store no longer hashes" in alert.group(1)
    assert "Make a bundle" in refused.text  # the page, not an error page
    (row,) = _exports(api)
    assert row.bundle_sha256 is None
    assert _actions(api, world.case_id)[-2:] == ["export.started", "export.failed"]
    card = _card(api.client.get(PAGE).text, row.id)
    assert ">failed<" in card and f"blob {dom.sha256} in the store no longer hashes" in card
    assert "SHA-256" not in card and "Download" not in card


def test_an_export_whose_process_died_is_listed_as_interrupted(
    sealed: Api, served: str,  # noqa: F811
) -> None:
    """Not "running" forever: once its lease has run out the card says the process making it
    stopped, and once the server has recorded that, it is failed with the same reason."""
    api = sealed
    world = _world(api)
    export_id = started_export(api.runtime, "petra", REFERENCE, "court-pc:4242:1a2b3c4d")
    _sign_in(api.client, "petra")
    card = _card(api.client.get(PAGE).text, export_id)
    assert ">running<" in card and "being written now" in card
    lapsed = age_lease(api.runtime, export_id, export_leases.LEASE_SECONDS + 1)  # 2 min pass
    card = _card(api.client.get(PAGE).text, export_id)
    assert ">interrupted<" in card and "being written" not in card
    assert ("the process making it (court-pc:4242:1a2b3c4d) stopped renewing its lease, which "
            f"ran out at {lapsed:%Y-%m-%d %H:%M:%S} UTC; no bundle was kept. Export again."
            ) in card
    SHOTS.mkdir(parents=True, exist_ok=True)
    with BrowserSession(api.runtime.settings) as browser, walled_page(browser, served) as page:
        page.goto(f"{served}{PAGE}")
        sign_in_on_page(page, "petra", PASSWORD)
        shown = page.locator(f"#export-{export_id}")
        assert shown.locator(".badge").inner_text() == "interrupted"
        assert "Export again." in shown.locator(".alert-text").inner_text()
        shown.scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "interrupted.png", full_page=True)

    assert end_interrupted_exports(api.runtime) == [export_id]
    card = _card(api.client.get(PAGE).text, export_id)
    assert ">failed<" in card and "interrupted: the process writing the bundle (court-pc" in card
    assert _actions(api, world.case_id)[-2:] == ["export.started", "export.failed"]


def test_a_bundle_written_to_a_file_is_listed_without_a_download(
    sealed: Api, tmp_path: Path,  # noqa: F811
) -> None:
    api = sealed
    _world(api)
    written = bundles.export_case(api.runtime, "petra", reference=REFERENCE,
                                  out=tmp_path / "to-court.zip")
    _sign_in(api.client, "petra")
    card = _card(api.client.get(PAGE).text, written.export_id)
    assert _shown_hash(card) == hashlib.sha256(written.path.read_bytes()).hexdigest()
    assert "this system does not keep it for download" in card and "Download" not in card


def test_only_those_the_service_lets_export_see_the_form(sealed: Api) -> None:  # noqa: F811
    api = sealed
    world = _world(api)
    made = api.post(world.petra, f"/api{PAGE}", json={})
    assert made.status_code == 201, made.text
    export_id = made.json()["id"]

    token = _sign_in(api.client, "ivan")
    page = api.client.get(PAGE)
    assert page.status_code == 200
    card = _card(page.text, export_id)
    assert _shown_hash(card) == made.json()["bundle_sha256"]  # readers see what was made ...
    assert "Download" not in card  # ... but get no bundle
    assert "Make a bundle" not in page.text and "Export all targets" not in page.text
    assert 'name="target"' not in page.text
    assert "may make and download its bundles" in page.text
    refused = _post(api.client, token, scope="all")
    assert refused.status_code == 403
    assert (f"No bundle was made: exporting case {REFERENCE!r} needs the prosecutor role or "
            "manage access.").replace("'", "&#39;") in refused.text
    assert len(_exports(api)) == 1
    assert api.client.get(made.json()["download"]).status_code == 403

    # The investigator who manages the case may.
    owner = _browser_client(api)
    owner_token = _sign_in(owner, "owner")
    assert "Export all targets" in owner.get(PAGE).text
    assert _post(owner, owner_token, scope="all").status_code == 303
    assert len(_exports(api)) == 2


def test_a_stranger_gets_the_not_found_page(sealed: Api) -> None:  # noqa: F811
    api = sealed
    world = _world(api)
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    missing: list[str] = []
    for name in ("sam", "aud"):
        client = _browser_client(api)
        token = _sign_in(client, name)
        answers = [client.get(PAGE), _post(client, token, scope="all"),
                   _post(client, token, scope="chosen",
                         target=[str(world.targets["https://t.me/crossings/1"])]),
                   client.get("/cases/NO-SUCH-CASE/exports"),
                   client.post("/cases/NO-SUCH-CASE/exports",
                               data={"csrf_token": token, "scope": "all"})]
        for answer in answers:
            assert answer.status_code == 404, answer.text
            text = answer.text
            assert "Not found" in text and "Crossing adverts" not in text
            assert REFERENCE not in text and "t.me" not in text
            missing.append(text)
    assert len(set(missing)) == 1
    assert _exports(api) == []
    with api.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(CustodyEntry).where(
            CustodyEntry.action == "export.started")) == 0
    # Signed out, the page sends to sign-in and back.
    answer = TestClient(api.client.app).get(PAGE, follow_redirects=False)
    assert answer.status_code == 303
    assert parse_qs(urlsplit(answer.headers["location"]).query)["next"] == [PAGE]


def test_export_posts_need_the_sessions_token(sealed: Api) -> None:  # noqa: F811
    api = sealed
    _world(api)
    _sign_in(api.client, "petra")
    other = _browser_client(api)
    other_token = _sign_in(other, "petra")
    for sent in (None, "", "forged", other_token):
        refused = _post(api.client, sent, scope="all")
        assert refused.status_code == 403, sent
        assert "Form refused" in refused.text
    assert _exports(api) == []
    # The other browser's own token works there.
    assert _post(other, other_token, scope="all").status_code == 303
    assert len(_exports(api)) == 1


# --- in Chromium -----------------------------------------------------------------------------

@pytest.fixture
def served(sealed: Api) -> Iterator[str]:  # noqa: F811
    with served_app(sealed.runtime) as url:
        yield url


@pytest.mark.browser
def test_a_prosecutor_makes_a_bundle_and_downloads_it_in_chromium(
    sealed: Api, served: str, tmp_path: Path,  # noqa: F811
) -> None:
    api = sealed
    SHOTS.mkdir(parents=True, exist_ok=True)
    world = _world(api)
    with api.runtime.session() as session:
        petra = users.get_user(session, "petra")
        petra.display_name = "Petra Lindqvist"
    with BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served, refused_status=422,  # a refused export
                        accept_downloads=True) as page:

        page.goto(f"{served}/")
        assert urlsplit(page.url).path == "/login"
        sign_in_on_page(page, "petra", PASSWORD)
        page.click(f"text={REFERENCE}")
        page.click("text=Evidence bundles")  # the case page's link
        page.get_by_role("heading", name="Make a bundle").wait_for()
        assert urlsplit(page.url).path == PAGE
        page.screenshot(path=SHOTS / "empty.png", full_page=True)

        page.click("text=Export the ticked targets")
        alert = page.locator(".alert")
        alert.wait_for()
        assert "tick at least one target" in alert.inner_text()
        page.screenshot(path=SHOTS / "refused.png", full_page=True)

        page.check(f'#target-{world.targets["https://t.me/crossings/1"]}')
        page.click("text=Export the ticked targets")
        page.get_by_role("heading", name="Bundle made").wait_for()
        (row,) = _exports(api)
        card = page.locator(f"#export-{row.id}")
        assert row.bundle_sha256 is not None
        assert card.locator(".sha256").inner_text() == row.bundle_sha256
        assert "https://t.me/crossings/1" in card.inner_text()
        page.screenshot(path=SHOTS / "made.png", full_page=True)

        with page.expect_navigation():  # the page before shows "Bundle made" too
            page.click("text=Export all targets")
        page.get_by_role("heading", name="Bundle made").wait_for()
        assert page.locator(".card[id^=export-]").count() == 2
        newest = _exports(api)[-1]
        card = page.locator(f"#export-{newest.id}")
        assert card.locator(".sha256").inner_text() == newest.bundle_sha256
        assert "All targets of the case" in card.inner_text()
        card.scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "made-all.png", full_page=True)
        page.screenshot(path=SHOTS / "made-all-viewport.png")

        with page.expect_download() as info:
            card.get_by_text("Download the bundle").click()
        download = info.value
        assert download.suggested_filename.endswith(".zip")
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == newest.bundle_sha256
    with api.runtime.session() as session:
        entries = session.scalars(select(CustodyEntry).where(
            CustodyEntry.action == "export.downloaded")).all()
        assert [custody.describe(e)["actor"]["name"] for e in entries] == ["petra"]


def test_the_exports_page_pages_its_bundles_newest_first(
    sealed: Api, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    monkeypatch.setattr("api.ui.exports.EXPORTS_PER_PAGE", 2)
    api = sealed
    _world(api)
    made = [str(started_export(api.runtime, "petra", REFERENCE, f"gone-{n}"))
            for n in range(5)]
    _sign_in(api.client, "petra")
    newest = made[::-1]

    def shown(page: str) -> list[str]:
        return re.findall(r'<section class="card[^"]*" id="export-([0-9a-f-]+)"', page)

    page = api.client.get(f"/cases/{quote_ref(REFERENCE)}/exports").text
    pages = [shown(page)]
    while older := re.search(r'<a href="([^"]+)">Older bundles</a>', page):
        page = api.client.get(html.unescape(older.group(1))).text
        assert "Newest bundles" in page
        pages.append(shown(page))
    assert pages == [newest[:2], newest[2:4], newest[4:]]
    listed = api.client.get(f"/api/cases/{quote_ref(REFERENCE)}/exports",
                            params={"limit": 3}).json()
    assert [e["id"] for e in listed["items"]] == newest[:3] and listed["next"]


# --- received material: what a bundle of chosen targets carries and leaves out ----------------

ANSWERED = "OP-T"
ANSWERED_PAGE = f"/cases/{quote_ref(ANSWERED)}/exports"


def _answered_world(api: Api) -> Any:
    """`two_answered_targets` with petra (prosecutor, a reader of it) to export it."""
    petra = api.user("petra", Role.PROSECUTOR, password=PASSWORD, unit="Prosecution")
    api.user("ines", Role.LIAISON)
    api.user("sam", Role.SUPERVISOR)
    world = two_answered_targets(api.runtime, ANSWERED, liaison="ines", supervisor="sam")
    with api.runtime.session() as session:
        ines = users.get_user(session, "ines")
        cases.add_member(session, ines, cases.get_case(session, ines, ANSWERED),
                         users.get_user(session, "petra"), Access.READ)
    world.petra = petra
    return world


def _target_row(page: str, target_id: uuid.UUID) -> str:
    found = re.search(rf'<tr>\s*<td><input[^>]*id="target-{target_id}".*?</tr>', page, re.S)
    assert found, page[-3000:]
    return re.sub(r"\s+", " ", found.group(0))


def test_a_bundle_of_one_target_carries_the_answer_about_it_and_the_page_says_so(
        sealed: Api, tmp_path: Path) -> None:  # noqa: F811
    api = sealed
    world = _answered_world(api)
    token = _sign_in(api.client, "petra")
    form = api.client.get(ANSWERED_PAGE).text
    # Before exporting: what a bundle of each target would carry of the received material.
    for target in (world.first, world.second):
        assert "<td data-label=\"received\">1 file</td>" in _target_row(form, target.id)
    flat = re.sub(r"\s+", " ", form)
    assert "The case holds 3 received files, 1 from other sources (only in a bundle of all " \
           "targets)" in flat
    made = api.client.post(ANSWERED_PAGE, data={
        "csrf_token": token, "scope": "chosen", "target": [str(world.first.id)]},
        follow_redirects=False)
    assert made.status_code == 303, made.text
    export_id = parse_qs(urlsplit(made.headers["location"]).query)["made"][0]
    card = re.sub(r"\s+", " ", _card(api.client.get(ANSWERED_PAGE).text, export_id))
    assert "<dt>Received material</dt><dd>1 file; 2 of the case's left out (listed in the " \
           "bundle)</dd>" in card
    bundle = api.client.get(f"/api{ANSWERED_PAGE}/{export_id}/bundle").content
    index = json.loads(_members(bundle)["data/bundle.json"])
    assert [i["filename"] for i in index["received"]] == ["first-subscriber.csv"]
    assert [i["filename"] for i in index["received_left_out"]] == [
        "second-subscriber.csv", "statement.txt"]
    result = _run_shipped_verifier(bundle, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    # The API says the same of a bundle of the other target.
    answer = api.client.post(f"/api{ANSWERED_PAGE}", headers=world.petra.headers,
                             json={"targets": [str(world.second.id)]})
    assert answer.status_code == 201, answer.text
    assert (answer.json()["received"], answer.json()["received_left_out"]) == (1, 2)
    whole = api.client.post(f"/api{ANSWERED_PAGE}", headers=world.petra.headers, json={})
    assert (whole.json()["received"], whole.json()["received_left_out"]) == (3, 0)


@pytest.mark.browser
def test_the_received_column_and_counts_in_chromium(
    sealed: Api, served: str,  # noqa: F811
) -> None:
    api = sealed
    SHOTS.mkdir(parents=True, exist_ok=True)
    world = _answered_world(api)
    with BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served) as page:
        page.goto(f"{served}/login")
        sign_in_on_page(page, "petra", PASSWORD)
        page.goto(f"{served}{ANSWERED_PAGE}")
        page.check(f"#target-{world.first.id}")
        page.click("text=Export the ticked targets")
        page.get_by_role("heading", name="Bundle made").wait_for()
        card = page.locator(".card.ok")
        assert "1 file; 2 of the case's left out" in card.inner_text()
        row = page.locator("tr", has=page.locator(f"#target-{world.second.id}"))
        assert row.locator("td").last.inner_text() == "1 file"
        for width in (1280, 420):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=SHOTS / f"received-{width}.png", full_page=True)
