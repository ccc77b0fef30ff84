"""Ending things through the API and the pages: a target's watch changed and stopped (PATCH and
the target page's form), users disabled and enabled on the admin's page, a disabled user's
open page going to sign-in, and both walked in Chromium at 1280 and 420 px."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from capture.browser import BrowserSession
from evidence import cases, targets
from evidence.models import Access, CaptureJob, JobState, Role, Target, utcnow
from tests.api.conftest import Api, Caller, served_app, sign_in_on_page, walled_page
from tests.api.test_ui import PASSWORD, _browser_client, _count, _sign_in
from tests.api.test_ui_decisions import _alert

REFERENCE = "OP/2026/31"
URL = "https://www.facebook.com/fast.trips.eu/posts/77"
SHOTS = Path("/tmp/ui-lifecycle")


def _watched(api: Api) -> tuple[Caller, Caller, str]:
    """A case with a watched URL; nadia owns it, rita reads it."""
    nadia = api.user("nadia", password=PASSWORD, unit="Border Unit North")
    rita = api.user("rita", password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.create_case(session, nadia.user, reference=REFERENCE, title="Crossings")
        cases.add_member(session, nadia.user, case, rita.user, Access.READ)
        target, _job = targets.flag(session, nadia.user, case, reason="advert", url=URL,
                                    watch_interval_seconds=3600)
        return nadia, rita, str(target.id)


def _interval(api: Api, target_id: str) -> int | None:
    with api.runtime.session() as session:
        target = session.get(Target, uuid.UUID(target_id))
        assert target is not None
        return target.watch_interval_seconds


def test_the_api_changes_and_stops_a_watch(api: Api) -> None:
    nadia, rita, target_id = _watched(api)
    path = f"/api/cases/{REFERENCE.replace('/', '%2F')}/targets/{target_id}/watch"
    changed = api.patch(nadia, path, json={"watch_interval_seconds": 43200,
                                           "reason": "twice a day is enough"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["target"]["watch_interval_seconds"] == 43200
    for body, status in (({"watch_interval_seconds": 30, "reason": "r"}, 422),
                         ({"watch_interval_seconds": 3600}, 422),
                         ({"watch_interval_seconds": 3600, "reason": "r", "x": 1}, 422),
                         ({"reason": "r"}, 422),
                         ({"watch_interval_seconds": 43200, "reason": "same"}, 409)):
        refused = api.patch(nadia, path, json=body)
        assert refused.status_code == status, (body, refused.text)
    refused = api.patch(rita, path, json={"watch_interval_seconds": None, "reason": "r"})
    assert refused.status_code == 403, refused.text
    stranger = api.user("stranger")
    assert api.patch(stranger, path, json={"watch_interval_seconds": None,
                                           "reason": "r"}).status_code == 404
    stopped = api.patch(nadia, path, json={"watch_interval_seconds": None,
                                           "reason": "taken down for good"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["target"]["watch_interval_seconds"] is None
    assert stopped.json()["jobs_cancelled"] == []  # the first capture, asked for, stays
    again = api.patch(nadia, path, json={"watch_interval_seconds": None, "reason": "again"})
    assert again.status_code == 409 and "not watched" in again.text
    assert _count(api, "target.watch_changed") == 1 and _count(api, "target.watch_stopped") == 1


def test_the_target_page_changes_and_stops_a_watch_for_writers_only(api: Api) -> None:
    _nadia, _rita, target_id = _watched(api)
    with api.runtime.session() as session:  # the first capture done, a re-capture queued
        job = session.scalars(select(CaptureJob)).one()
        job.state = JobState.DONE
    with api.runtime.session() as session:
        [scheduled] = targets.schedule_due_watches(session, now=utcnow() + timedelta(hours=2))
        scheduled_id = scheduled.id
    reader = _browser_client(api)
    _sign_in(reader, "rita")
    shown = reader.get(f"/targets/{target_id}")
    assert "every 1h" in shown.text and f'action="/targets/{target_id}/watch"' not in shown.text

    client = _browser_client(api)
    token = _sign_in(client, "nadia")
    page = client.get(f"/targets/{target_id}")
    assert f'action="/targets/{target_id}/watch"' in page.text
    refused = client.post(f"/targets/{target_id}/watch", data={
        "csrf_token": token, "action": "change", "every": "10s", "reason": "faster"})
    assert refused.status_code == 422
    assert "at least 60 seconds" in _alert(refused.text)
    assert 'value="10s"' in refused.text and "faster" in refused.text  # what was typed
    # The accepted forms are said beside the box, and in a refusal; a bare number is not
    # guessed at.
    forms = "90s, 15m, 6h, 1d, or 90 seconds, 15 minutes, 6 hours, 1 day"
    assert f"a number and a unit: {forms}" in page.text
    bare = client.post(f"/targets/{target_id}/watch", data={
        "csrf_token": token, "action": "change", "every": "١٢", "reason": "faster"})
    assert bare.status_code == 422 and 'value="١٢"' in bare.text
    assert html.unescape(_alert(bare.text)) == (
        f"Duration '١٢' needs a unit: 12m for minutes or 12h for hours; accepted: {forms}.")
    assert _interval(api, target_id) == 3600
    changed = client.post(f"/targets/{target_id}/watch", data={
        "csrf_token": token, "action": "change", "every": "١٢ hours",
        "reason": "twice a day is enough"}, follow_redirects=False)
    assert changed.status_code == 303, changed.text
    assert _interval(api, target_id) == 43200
    assert "every 12h" in client.get(f"/targets/{target_id}").text
    stopped = client.post(f"/targets/{target_id}/watch", data={
        "csrf_token": token, "action": "stop", "every": "", "reason": "taken down for good"})
    assert stopped.status_code == 200 and "no longer watched" in stopped.text
    for said in ("twice a day is enough", "taken down for good", "was every 12h",
                 "every 1h", "not watched"):
        assert said in stopped.text, said
    assert _interval(api, target_id) is None
    with api.runtime.session() as session:
        cancelled = session.get(CaptureJob, scheduled_id)
        assert cancelled is not None and cancelled.state == JobState.CANCELLED
    forged = client.post(f"/targets/{target_id}/watch", data={
        "csrf_token": "forged", "action": "change", "every": "1h", "reason": "r"})
    assert forged.status_code == 403 and _interval(api, target_id) is None


def test_the_admin_page_adds_disables_and_enables_users(api: Api) -> None:
    api.user("root", Role.ADMIN, password=PASSWORD)
    nadia = api.user("nadia", password=PASSWORD)
    officer = _browser_client(api)
    _sign_in(officer, "nadia")
    assert 'href="/admin/users"' not in officer.get("/").text
    assert officer.get("/admin/users").status_code == 403

    admin = _browser_client(api)
    token = _sign_in(admin, "root")
    assert 'href="/admin/users"' in admin.get("/").text
    page = admin.get("/admin/users")
    assert page.status_code == 200 and "nadia" in page.text and "never" not in page.text.split(
        'id="user-nadia"')[1].split("</tr>")[0]
    made = admin.post("/admin/users", data={
        "csrf_token": token, "name": "omar", "display_name": "Omar K.", "role": "liaison",
        "unit": "Liaison Desk", "password": PASSWORD, "password_again": PASSWORD})
    assert made.status_code == 201, made.text
    shown = re.search(r"<output>(evl_[^<]+)</output>", made.text)
    assert shown, made.text
    assert api.get(Caller(nadia.user, shown.group(1)), "/api/cases").status_code == 200
    assert "evl_" not in admin.get("/admin/users").text  # shown once
    differ = admin.post("/admin/users", data={
        "csrf_token": token, "name": "zed", "role": "liaison", "password": "a",
        "password_again": "b"})
    assert differ.status_code == 422 and "differ" in _alert(differ.text)
    taken = admin.post("/admin/users", data={"csrf_token": token, "name": "omar",
                                              "role": "liaison"})
    assert taken.status_code == 409 and "already exists" in _alert(taken.text)

    # nadia has a page open; disabling her sends her next page to sign-in.
    no_reason = admin.post("/admin/users/nadia/disable", data={"csrf_token": token,
                                                               "reason": " "})
    assert no_reason.status_code == 422 and "Say why" in _alert(no_reason.text)
    done = admin.post("/admin/users/nadia/disable",
                      data={"csrf_token": token, "reason": "left the unit"},
                      follow_redirects=False)
    assert done.status_code == 303, done.text
    after = officer.get("/", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login")
    assert api.get(nadia, "/api/cases").status_code == 401
    listed = admin.get("/admin/users").text
    row = listed.split('id="user-nadia"')[1].split("</tr>")[0]
    assert "disabled" in row and "Enable" in row
    self_refused = admin.post("/admin/users/root/disable",
                              data={"csrf_token": token, "reason": "bye"})
    # root is the only admin: told that none would be left, which another admin would change.
    assert self_refused.status_code == 409 and (
        "is the last active admin; make another admin first, who can then disable you"
        in _alert(self_refused.text))
    enabled = admin.post("/admin/users/nadia/enable",
                         data={"csrf_token": token, "reason": "back"}, follow_redirects=False)
    assert enabled.status_code == 303
    _sign_in(officer, "nadia")  # her password works again
    assert _count(api, "user.disabled") == 1 and _count(api, "user.enabled") == 1


@pytest.mark.browser
def test_in_chromium(api: Api) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    _nadia, _rita, target_id = _watched(api)
    api.user("root", Role.ADMIN, password=PASSWORD, unit="IT")
    with BrowserSession(api.runtime.settings) as browser, served_app(api.runtime) as served:
        for width in (1280, 420):
            with walled_page(browser, served) as page:
                page.set_viewport_size({"width": width, "height": 900})
                page.goto(f"{served}/login?next=/targets/{target_id}")
                sign_in_on_page(page, "nadia", PASSWORD)
                page.fill("#every", "12h" if width == 1280 else "6h")
                page.fill("#watch_reason", "The advert changes twice a day at most")
                page.click("button[value=change]")
                assert page.locator("[role=status]").inner_text().startswith(
                    "The watch interval is changed")
                page.locator("#watch").scroll_into_view_if_needed()
                page.screenshot(path=SHOTS / f"target-watch-{width}.png", full_page=True)
            with walled_page(browser, served) as page:
                page.set_viewport_size({"width": width, "height": 900})
                page.goto(f"{served}/login?next=/admin/users")
                sign_in_on_page(page, "root", PASSWORD)
                page.locator("#user-rita summary").click()
                page.locator("#user-rita textarea").fill("Left the unit")
                page.screenshot(path=SHOTS / f"admin-users-open-{width}.png", full_page=True)
                page.locator("#user-rita button").click()
                assert "disabled" in page.locator("#user-rita").inner_text()
                page.screenshot(path=SHOTS / f"admin-users-{width}.png", full_page=True)
                page.locator("#user-rita summary").click()
                page.locator("#user-rita textarea").fill("Back")
                page.locator("#user-rita button").click()


@pytest.mark.browser
def test_a_new_users_token_fits_a_phone_in_chromium(api: Api) -> None:
    """The token is shown once to be copied; whether it holds a '-' (where a line may break)
    is chance, so the one shown is made into one without and must still fit 420 px."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    api.user("root", Role.ADMIN, password=PASSWORD, unit="IT")
    with BrowserSession(api.runtime.settings) as browser, served_app(api.runtime) as served, \
            walled_page(browser, served) as page:
        page.set_viewport_size({"width": 420, "height": 900})
        page.goto(f"{served}/login?next=/admin/users")
        sign_in_on_page(page, "root", PASSWORD)
        page.fill("#name", "lina")
        page.select_option("#role", "liaison")
        page.click("text=Add the user")
        token = page.locator(".token output")
        assert token.inner_text().startswith("evl_")
        token.evaluate("o => { o.textContent = 'evl_' + 'A'.repeat(o.textContent.length - 4); }")
        page.screenshot(path=SHOTS / "admin-users-token-420.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
