"""Flagging a platform account from the web UI (the API's link-then-flag as one form), and an
account target named "@handle on Platform" with its profile URL beside it wherever targets are
listed: the case page, the target page, the request and export forms, the hits."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from sqlalchemy import func, select

from capture.browser import BrowserSession
from evidence import accounts, cases, custody, targets, users
from evidence.models import Access, Account, Case, CustodyEntry, Role, Target
from tests.api.conftest import Api, served_app, sign_in_on_page, walled_page
from tests.api.test_ui_cases import SHOTS, _shots
from tests.api.world import REFERENCE, build_world
from tests.factories import ARABIC_HANDLE, make_capture, make_request_world

PASSWORD = "correct horse battery staple"
QUOTED = "OP%2F2026%2F7"  # REFERENCE as one path segment
FORM = f"/cases/{QUOTED}/flag-account"


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found, page[:2000]
    return found.group(1)


def _sign_in(api: Api, name: str = "owner") -> str:
    with api.runtime.session() as session:
        users.get_user(session, name).password_hash = users.hash_password(PASSWORD)
    form = api.client.get("/login")
    answer = api.client.post("/login", data={"csrf_token": _token(form.text), "name": name,
                                             "password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return _token(api.client.get("/").text)


def _alerts(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="alert" role="alert">([^<]*)</p>',
                                                 page)]


def _entries(api: Api, action: str) -> list[dict[str, object]]:
    with api.runtime.session() as session:
        described = [custody.describe(e) for e in session.scalars(select(CustodyEntry))]
    return [e for e in described if e["action"] == action]


def _target_count(api: Api) -> int:
    with api.runtime.session() as session:
        return session.scalar(select(func.count()).select_from(Target)) or 0


def test_an_investigator_flags_an_account_from_the_case_page(api: Api) -> None:
    build_world(api)
    token = _sign_in(api)
    case_page = api.client.get(f"/cases/{QUOTED}").text
    assert f'href="{FORM}">Flag an account</a>' in case_page
    form = api.client.get(FORM).text
    # The platforms come from the registry, by the names people know them by.
    assert '<option value="x">X (formerly Twitter)</option>' in form
    assert '<option value="instagram">Instagram</option>' in form

    flagged = api.client.post(FORM, data={
        "csrf_token": token, "platform": "x", "profile_url": " https://x.com/fast_trips ",
        "handle": "", "platform_account_id": "4242", "reason": "Advertises crossings"},
        follow_redirects=False)
    assert flagged.status_code == 303, flagged.text
    assert flagged.headers["location"].startswith(f"{FORM}?target=")
    target_id = parse_qs(urlsplit(flagged.headers["location"]).query)["target"][0]
    shown = api.client.get(flagged.headers["location"]).text
    card = shown.split('<section class="card ok" role="status">', 1)[1].split("</section>", 1)[0]
    assert "<bdi>@fast_trips</bdi> on X (formerly Twitter)" in card
    assert '<bdi class="url profile small">https://x.com/fast_trips</bdi>' in card
    assert 'href="https://x.com' not in card  # never a live link to click
    assert f'href="/targets/{target_id}">Open the target</a>' in card
    assert "queued" in card and "reload this page to see it finish" in card
    assert "no other investigation holds it" in card
    assert 'href="/captures/' not in card  # none made yet
    assert "Flag another account" in shown

    # What the API's two calls would have written: the account linked, the target flagged on
    # it, its capture queued, each in the custody log.
    with api.runtime.session() as session:
        target = session.get(Target, uuid.UUID(target_id))
        assert target is not None and target.kind == "account"
        account = session.get(Account, target.account_id)
        assert account is not None
        assert (account.platform, account.platform_account_id, account.handle,
                account.profile_url) == ("x", "4242", "fast_trips", "https://x.com/fast_trips")
    [linked] = [e for e in _entries(api, "account.linked")
                if e["object"] == {"type": "account", "id": str(account.id)}]
    assert linked["details"]["handle"] == "fast_trips"  # type: ignore[index]
    [flag_entry] = [e for e in _entries(api, "target.flagged")
                    if e["object"] == {"type": "target", "id": target_id}]
    assert flag_entry["details"]["account"] == str(account.id)  # type: ignore[index]
    assert any(e["details"]["target"] == target_id  # type: ignore[index]
               for e in _entries(api, "capture.queued"))

    # Once the worker has captured it, the page leads to the capture as the URL flow's does.
    with api.runtime.session() as session:
        target = session.get(Target, uuid.UUID(target_id))
        case = session.get(Case, target.case_id) if target else None
        assert target is not None and case is not None
        capture_id = make_capture(session, case, target, api.runtime.store).id
    assert f'href="/captures/{capture_id}">Open the capture</a>' in api.client.get(
        flagged.headers["location"]).text

    # The case's list and the target's page name it as the investigator does.
    case_page = api.client.get(f"/cases/{QUOTED}").text
    row = case_page.split(f'<a href="/targets/{target_id}">', 1)[0].rsplit("<tr>", 1)[1]
    assert "<bdi>@fast_trips</bdi> on X (formerly Twitter)" in row
    assert "https://x.com/fast_trips</bdi>" in row and 'href="https://x.com' not in row
    target_page = api.client.get(f"/targets/{target_id}").text
    named = '<span class="account"><bdi>@fast_trips</bdi> on X (formerly Twitter)</span>'
    assert f"<h1>{named}</h1>" in target_page
    # Its breadcrumbs, on its page and on its capture's, name it too: not "Target 1a2b3c4d",
    # nor its profile URL, which the page shows below.
    crumbs = target_page.split('<p class="crumbs">', 1)[1].split("</p>", 1)[0]
    assert crumbs.endswith(f" › {named}") and "x.com" not in crumbs
    capture_page = api.client.get(f"/captures/{capture_id}").text
    crumbs = capture_page.split('<p class="crumbs">', 1)[1].split("</p>", 1)[0]
    assert f' › <a href="/targets/{target_id}">{named}</a> › Capture ' in crumbs
    assert "Target" not in crumbs and "x.com" not in crumbs
    assert "X (formerly Twitter) id <span class=\"mono\">4242</span>" in target_page


def test_the_profile_url_gives_what_it_shows_and_a_typed_value_must_agree(api: Api) -> None:
    build_world(api)
    token = _sign_in(api)
    # facebook.com/profile.php?id= carries the stable id: nothing else is needed.
    by_id = api.client.post(FORM, data={
        "csrf_token": token, "platform": "facebook",
        "profile_url": "https://www.facebook.com/profile.php?id=100089123456789",
        "handle": "@fast.trips.eu", "reason": "the seller"}, follow_redirects=False)
    assert by_id.status_code == 303, by_id.text
    with api.runtime.session() as session:
        account = session.scalars(select(Account).where(
            Account.platform_account_id == "100089123456789")).one()
        assert account.handle == "@fast.trips.eu"
    assert "<bdi>@fast.trips.eu</bdi> on Facebook" in api.client.get(
        by_id.headers["location"]).text

    before = _target_count(api)
    said = {}
    for name, data in [
        # A post's URL shows neither the handle nor the id: one is asked for, in words.
        ("no id", {"platform": "instagram", "profile_url": "https://www.instagram.com/p/C1x2/",
                   "reason": "r"}),
        ("other platform", {"platform": "instagram", "profile_url": "https://x.com/fast_trips",
                            "platform_account_id": "1", "reason": "r"}),
        ("unknown host", {"platform": "x", "profile_url": "https://example.org/fast",
                          "platform_account_id": "1", "reason": "r"}),
        ("handle differs", {"platform": "x", "profile_url": "https://x.com/fast_trips",
                            "handle": "@slow_trips", "platform_account_id": "1", "reason": "r"}),
        ("id differs", {"platform": "x", "profile_url": "https://x.com/i/user/77",
                        "platform_account_id": "78", "reason": "r"}),
        ("no platform", {"platform": "", "profile_url": "https://x.com/fast_trips",
                         "platform_account_id": "1", "reason": "r"}),
        ("no reason", {"platform": "x", "profile_url": "https://x.com/fast_trips",
                       "platform_account_id": "1", "reason": ""}),
        ("blank reason", {"platform": "x", "profile_url": "https://x.com/fast_trips",
                          "platform_account_id": "1", "reason": "  "}),
        ("long handle", {"platform": "x", "profile_url": "https://x.com/i/user/5",
                         "handle": "h" * 256, "reason": "r"}),
    ]:
        answer = api.client.post(FORM, data={"csrf_token": token, **data})
        assert answer.status_code == 422, (name, answer.text)
        said[name] = _alerts(answer.text)
        # What was typed comes back in the form.
        assert f'value="{html.escape(data["profile_url"])}"' in answer.text
    assert said == {
        "no id": ["Give the account's handle or Instagram's id of the account (the profile "
                  "URL shows neither)."],
        "other platform": ["The profile URL https://x.com/fast_trips is on X (formerly "
                           "Twitter), not Instagram: choose the platform the profile is on."],
        "unknown host": ["The profile URL https://example.org/fast is on a host the platform "
                         "registry does not know, not X (formerly Twitter): choose the platform "
                         "the profile is on, or Other provider (generic)."],
        "handle differs": ["The handle @slow_trips is not the one the profile URL shows "
                           "(@fast_trips): give the account's own URL."],
        "id differs": ["The account id 78 is not the one the profile URL shows (77)."],
        "no platform": [said["no platform"][0]],
        "no reason": ["Give a reason (at most 5,000 characters)."],
        "blank reason": ["Say why the target is flagged."],
        "long handle": ["The handle holds at most 255 characters."],
    }
    assert said["no platform"][0].startswith("Choose the platform from the list")
    # Refused, nothing was kept: no target, and no account linked on the way.
    assert _target_count(api) == before
    with api.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(Account)
                              .where(Account.platform == "instagram")) == 0
    assert "<bdi>@fast_trips</bdi>" not in api.client.get(f"/cases/{QUOTED}").text


def test_an_account_flagged_by_its_handle_gets_its_id_on_the_target_page(api: Api) -> None:
    build_world(api)
    token = _sign_in(api)
    flagged = api.client.post(FORM, data={
        "csrf_token": token, "platform": "instagram",
        "profile_url": "https://www.instagram.com/fast.trips", "reason": "Advertises crossings"},
        follow_redirects=False)
    assert flagged.status_code == 303, flagged.text
    target_id = parse_qs(urlsplit(flagged.headers["location"]).query)["target"][0]
    card = api.client.get(flagged.headers["location"]).text.split(
        '<section class="card ok" role="status">', 1)[1].split("</section>", 1)[0]
    assert "<bdi>@fast.trips</bdi> on Instagram" in card
    case_page = api.client.get(f"/cases/{QUOTED}").text
    row = case_page.split(f'<a href="/targets/{target_id}">', 1)[0].rsplit("<tr>", 1)[1]
    assert "<bdi>@fast.trips</bdi> on Instagram" in row

    page = f"/targets/{target_id}"
    shown = api.client.get(page).text
    assert "Instagram id not known yet: flagged by its handle" in shown
    assert f'action="/targets/{target_id}/account-id"' in shown
    # An id another account of the case holds: refused beside the form, what was typed kept.
    with api.runtime.session() as session:
        owner = users.get_user(session, "owner")
        case = cases.case_for(session, owner, REFERENCE)
        other, _ = accounts.link_account(session, owner, case, platform="instagram",
                                         platform_account_id="17841400", handle="sea.taxi")
        other_id = other.id
    refused = api.client.post(f"{page}/account-id", data={
        "csrf_token": token, "platform_account_id": "17841400"})
    assert refused.status_code == 409
    form = refused.text.split('id="account-id"', 1)[1].split("</form>", 1)[0]
    assert 'value="17841400"' in form
    assert _alerts(refused.text) == [
        f"Instagram's id 17841400 is already held by @sea.taxi on Instagram in this case "
        f"(account {other_id}): the two are not merged; if they are one account, go on with "
        "that one and resolve this one's target."]
    blank = api.client.post(f"{page}/account-id", data={"csrf_token": token,
                                                        "platform_account_id": " "})
    assert blank.status_code == 422 and _alerts(blank.text) == [
        "Give Instagram's id of the account, the one that stays when the handle changes."]

    recorded = api.client.post(f"{page}/account-id", data={
        "csrf_token": token, "platform_account_id": "17841499"}, follow_redirects=False)
    assert recorded.status_code == 303, recorded.text
    shown = api.client.get(recorded.headers["location"]).text
    assert "The account's id is recorded" in html.unescape(shown)
    assert 'Instagram id <span class="mono">17841499</span>' in shown
    assert 'id="account-id"' not in shown  # recorded: nothing left to record
    [entry] = _entries(api, "account.id_recorded")
    assert entry["details"]["platform_account_id"] == "17841499"  # type: ignore[index]


def test_an_account_is_flagged_once_per_case_through_the_form_and_the_api(api: Api) -> None:
    build_world(api)
    token = _sign_in(api)
    data = {"csrf_token": token, "platform": "x", "profile_url": "https://x.com/i/user/31337",
            "reason": "the organiser"}
    first = api.client.post(FORM, data=data, follow_redirects=False)
    assert first.status_code == 303, first.text
    first_id = parse_qs(urlsplit(first.headers["location"]).query)["target"][0]
    again = api.client.post(FORM, data={**data, "handle": "@organiser"})
    assert again.status_code == 409
    [said] = _alerts(again.text)
    # Named by the handle just typed (the refusal rolls its update of the account back).
    assert said.startswith("@organiser on X (formerly Twitter) is already flagged in case "
                           f"{REFERENCE} (target {first_id}, flagged ")
    assert said.endswith("capture it again from that target.")
    with api.runtime.session() as session:  # the refused post changed nothing
        assert session.scalars(select(Account.handle).where(
            Account.platform_account_id == "31337")).one() is None
    # The API's flag of the same account is refused the same way.
    owner = api.user("apiuser")
    with api.runtime.session() as session:
        case = cases.case_for(session, users.get_user(session, "owner"), REFERENCE)
        cases.add_member(session, users.get_user(session, "owner"), case,
                         users.get_user(session, "apiuser"), Access.WRITE)
        account_id = session.scalars(select(Account.id).where(
            Account.platform_account_id == "31337")).one()
    by_api = api.post(owner, f"/api/cases/{QUOTED}/targets",
                      json={"account_id": str(account_id), "reason": "again"})
    assert by_api.status_code == 409 and "already flagged" in by_api.json()["message"]


def test_flagging_an_account_another_unit_holds_says_whom_to_call(api: Api) -> None:
    build_world(api)
    with api.runtime.session() as session:
        other_owner = users.get_user(session, "elsewhere")
        other = cases.case_for(session, other_owner, "ELSEWHERE-1")
        account, _ = accounts.link_account(session, other_owner, other, platform="x",
                                           platform_account_id="555",
                                           profile_url="https://x.com/i/user/555")
        targets.flag_target(session, other_owner, other, reason="theirs", account=account)
    token = _sign_in(api)
    flagged = api.client.post(FORM, data={
        "csrf_token": token, "platform": "x", "profile_url": "https://x.com/boatman",
        "platform_account_id": "555", "reason": "ours too"}, follow_redirects=False)
    assert flagged.status_code == 303, flagged.text
    card = api.client.get(flagged.headers["location"]).text
    assert ("1 unresolved hit: another investigation holds this account too. Call its unit "
            "before acting on it") in card
    assert f'<a href="/cases/{QUOTED}/hits">Whom to call: the case\'s hits</a>' in card
    hits = api.client.get(f"/cases/{QUOTED}/hits?show=all").text
    assert "<bdi>@boatman</bdi> on X (formerly Twitter)</span></a>" in hits


def test_a_reader_is_not_offered_the_account_form_and_may_not_post_it(api: Api) -> None:
    _ids, owner = build_world(api)
    api.user("rita")
    with api.runtime.session() as session:
        case = cases.case_for(session, owner.user, REFERENCE)
        cases.add_member(session, owner.user, case, users.get_user(session, "rita"),
                         Access.READ)
    token = _sign_in(api, "rita")
    linked = len(_entries(api, "account.linked"))
    assert "Flag an account" not in api.client.get(f"/cases/{QUOTED}").text
    assert api.client.get(FORM).status_code == 403
    refused = api.client.post(FORM, data={
        "csrf_token": token, "platform": "x", "profile_url": "https://x.com/i/user/9",
        "reason": "r"})
    assert refused.status_code == 403 and "write" in refused.text
    assert len(_entries(api, "account.linked")) == linked


def test_the_request_and_export_forms_name_an_account_target_by_its_handle(api: Api) -> None:
    liaison = api.user("lina", Role.LIAISON)
    with api.runtime.session() as session:
        world = make_request_world(session, api.runtime.store, session.merge(liaison.user))
        quoted, target = quote(world.case.reference, safe=""), world.x_account
    _sign_in(api, "lina")
    name = f"<bdi>@{ARABIC_HANDLE}</bdi> on X (formerly Twitter)"
    # The profile URL beside it as text: no live link to click from a police workstation.
    beside = '<bdi class="url profile small">https://x.com/i/user/1234567890</bdi>'
    form = api.client.get(f"/cases/{quoted}/requests?kind=provider-preservation&platform=x")
    assert form.status_code == 200, form.text
    row = form.text.split(f'id="target-{target.id}"', 1)[1].split("</tr>", 1)[0]
    # The name labels the tick box; the profile URL is beside it, not inside the label.
    assert f'<label for="target-{target.id}"><span class="account">{name}</span></label>' in row
    assert beside in row
    exports = api.client.get(f"/cases/{quoted}/exports").text
    row = exports.split(f'id="target-{target.id}"', 1)[1].split("</tr>", 1)[0]
    assert name in row and beside in row


@pytest.mark.browser
def test_the_account_form_and_an_account_in_the_case_list_in_chromium(api: Api) -> None:
    """The new form, a refusal on it, the flagged page and the case's list, at 1280 and
    420 px (`_shots`: no wider than the phone, nothing to click hiding another)."""
    build_world(api)
    with api.runtime.session() as session:
        users.get_user(session, "owner").password_hash = users.hash_password(PASSWORD)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with BrowserSession(api.runtime.settings) as browser, served_app(api.runtime) as url, \
            walled_page(browser, url, refused_status=422) as page:
        page.goto(f"{url}/")
        sign_in_on_page(page, "owner", PASSWORD)
        page.goto(f"{url}/cases/{QUOTED}")
        page.click("text=Flag an account")
        page.get_by_role("heading", name="Flag an account in").wait_for()
        page.select_option("#platform", "instagram")
        page.fill("#profile_url", "https://www.instagram.com/p/C1x2/")
        page.fill("#reason", "Advertises crossings to Italy")
        page.click("text=Flag and capture")
        assert "Give the account's handle or Instagram's id" in page.locator(
            ".alert").inner_text()
        assert page.input_value("#reason") == "Advertises crossings to Italy"  # kept
        assert page.input_value("#platform") == "instagram"
        _shots(page, "account-refused")
        # The profile shows the handle alone: flagged by it, the id to come later.
        page.fill("#profile_url", "https://www.instagram.com/fast.trips")
        page.click("text=Flag and capture")
        page.get_by_role("heading", name="Flagged").wait_for()
        assert "@fast.trips on Instagram" in page.locator(".card.ok").inner_text()
        _shots(page, "account-flagged")
        page.click("text=Open the target")
        assert "Instagram id not known yet" in page.locator("dl.facts").inner_text()
        _shots(page, "account-id-form")
        page.fill("#platform_account_id", "7313")
        page.click("text=Record the id")
        page.get_by_text("The account's id is recorded").wait_for()
        assert "Instagram id 7313" in page.locator("dl.facts").inner_text()
        _shots(page, "account-id-recorded")
        page.goto(f"{url}/cases/{QUOTED}")
        row = page.locator("table.targets tbody tr", has_text="@fast.trips")
        assert row.count() == 1 and "on Instagram" in row.inner_text()
        # Its profile URL beside it as text, never a link that would show Instagram our address.
        assert row.locator(".profile").inner_text() == "https://www.instagram.com/fast.trips"
        assert row.locator("a[href*='instagram.com']").count() == 0
        _shots(page, "account-case")
        # The liaison officer's list: the generate form's targets on the platform.
        page.goto(f"{url}/cases/{QUOTED}/requests?kind=provider-preservation&platform=instagram")
        row = page.locator("tr", has=page.locator("input[name=target]"))
        assert row.count() == 1 and "@fast.trips on Instagram" in row.inner_text()
        _shots(page, "account-request-form")
