"""The web pages: sign-in, access as in the API, CSRF, escaping of hostile captured text, the
custody entries a page's reads write, and one walk through them in Chromium."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.ui.security import LOGIN_CSRF_COOKIE
from capture.browser import BrowserSession
from evidence import cases, custody, sessions, targets, users
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import (
    Access,
    Capture,
    CaptureJob,
    Case,
    CustodyEntry,
    JobState,
    Role,
    Target,
)
from evidence.settings import Settings
from tests.api.conftest import (
    Api,
    api_over,
    close_tab,
    served_app,
    sign_in_on_page,
    use_clock,
    walled_page,
)
from tests.api.world import REFERENCE, build_world
from tests.factories import make_capture, make_sealed_capture
from tests.support.pages_server import PagesServer, make_png

PASSWORD = "correct horse battery staple"
HOSTILE = "<script>alert(1)</script>"
ARABIC = "رحلات عبور سريعة إلى إيطاليا"
QUOTED = "OP%2F2026%2F7"  # REFERENCE as one path segment
SHOTS = Path("/tmp/ui")


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found, page[:2000]
    return found.group(1)


def _sign_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign `client` in through the login form; returns the session's form token."""
    form = client.get("/login")
    assert form.status_code == 200
    answer = client.post("/login", data={"csrf_token": _token(form.text), "name": name,
                                         "password": password}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    cases_page = client.get("/")
    assert cases_page.status_code == 200
    return _token(cases_page.text)


def _browser_client(api: Api) -> TestClient:
    """Another browser over the same app, with cookies of its own."""
    return TestClient(api.client.app)


def _give_password(api: Api, name: str) -> None:
    with api.runtime.session() as session:
        users.get_user(session, name).password_hash = users.hash_password(PASSWORD)


def _count(api: Api, action: str) -> int:
    with api.runtime.session() as session:
        entries = session.scalars(select(CustodyEntry)).all()
        return sum(1 for e in entries if custody.describe(e)["action"] == action)


def _assert_page_headers(answer: Any) -> None:
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'none'" in policy and "unsafe-inline" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"


@pytest.fixture
def sealed(tmp_path: Path, database_url: str) -> Iterator[Api]:
    """An app over a home made by `init`, so captures can be sealed as the worker seals them."""
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    init_home(settings)
    with api_over(open_runtime(settings)) as made:
        yield made


# --- signing in ------------------------------------------------------------------------------

def test_signed_out_pages_send_to_sign_in(api: Api) -> None:
    capture = uuid.uuid4()
    for path, back in (("/", None), (f"/cases/{QUOTED}", f"/cases/{QUOTED}"),
                       (f"/cases/{QUOTED}/flag", f"/cases/{QUOTED}/flag"),
                       (f"/captures/{capture}", f"/captures/{capture}")):
        answer = api.client.get(path, follow_redirects=False)
        assert answer.status_code == 303, (path, answer.text)
        location = answer.headers["location"]
        assert location.startswith("/login"), location
        if back:
            assert parse_qs(urlsplit(location).query)["next"] == [back], location
        _assert_page_headers(answer)
    # An ended or made-up session is no better than none.
    api.client.cookies.set("evidence_session", "evs_made-up")
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/login"
    # Posts without a session go to sign-in too, and change nothing.
    assert api.client.post(f"/cases/{QUOTED}/flag", data={"url": "https://example.org/"},
                           follow_redirects=False).headers["location"] == "/login"


def test_login_says_only_that_the_name_or_password_is_wrong(api: Api) -> None:
    api.user("nadia", password=PASSWORD)
    form = api.client.get("/login")
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    _assert_page_headers(form)
    token = _token(form.text)
    answers = [api.client.post("/login", data={"csrf_token": token, "name": name,
                                               "password": password})
               for name, password in (("nadia", "wrong"), ("nobody", PASSWORD))]
    for answer in answers:
        assert answer.status_code == 401
        assert "Wrong user name or password." in answer.text
        assert "unknown" not in answer.text.lower() and "not exist" not in answer.text
    # The two refusals differ only in the name typed back into the form.
    assert answers[0].text.replace('value="nadia"', 'value="nobody"') == answers[1].text
    assert "evidence_session" not in api.client.cookies

    signed = api.client.post("/login", data={"csrf_token": token, "name": "nadia",
                                             "password": PASSWORD,
                                             "next": f"/cases/{QUOTED}"},
                             follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == f"/cases/{QUOTED}"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert _count(api, "user.logged_in") == 1
    # Signed in, the login page sends on; `next` never leads to another site.
    assert api.client.get("/login?next=//elsewhere.example/x",
                          follow_redirects=False).headers["location"] == "/"


def test_too_many_failed_sign_ins_close_the_name_on_the_form_too(api: Api) -> None:
    api.user("nadia", password=PASSWORD)
    use_clock(api)
    token = _token(api.client.get("/login").text)

    def post(name: str, password: str) -> Any:
        return api.client.post("/login", data={"csrf_token": token, "name": name,
                                               "password": password}, follow_redirects=False)

    for name in ("nadia", "nobody"):
        assert [post(name, "wrong").status_code for _ in range(5)] == [401] * 5
    closed = [post("nadia", PASSWORD), post("nobody", PASSWORD)]
    for answer in closed:
        assert answer.status_code == 429
        assert ("Too many failed sign-ins for this name from your address; try again in "
                "1 minute." in answer.text)
        assert answer.headers["retry-after"] == "60"
        _assert_page_headers(answer)
    # Known or not, the same page but for the name typed back.
    assert closed[0].text.replace('value="nadia"', 'value="nobody"') == closed[1].text
    assert "evidence_session" not in api.client.cookies
    assert _count(api, "user.login_throttled") == 1 and _count(api, "user.logged_in") == 0


@pytest.mark.browser
def test_a_name_guessed_at_waits_on_the_sign_in_page_in_chromium(api: Api) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    api.user("nadia", password=PASSWORD)
    clock = use_clock(api)
    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served, refused_status=(401, 429)) as page:
        page.goto(f"{served}/login")
        for _ in range(sessions.ADDRESS_FREE_FAILURES):
            sign_in_on_page(page, "nadia", "a guess")
            page.locator(".alert", has_text="Wrong user name or password.").wait_for()
        sign_in_on_page(page, "nadia", PASSWORD)
        alert = page.locator(".alert", has_text="Too many failed sign-ins")
        alert.wait_for()
        assert alert.inner_text() == ("Too many failed sign-ins for this name from your "
                                      "address; try again in 1 minute.")
        assert page.input_value("#name") == "nadia" and page.input_value("#password") == ""
        page.screenshot(path=SHOTS / "login-throttled.png", full_page=True)
        clock.advance(minutes=1)
        sign_in_on_page(page, "nadia", PASSWORD)
        page.get_by_role("heading", name="Your cases").wait_for()
    assert _count(api, "user.login_throttled") == 1 and _count(api, "user.logged_in") == 1


def test_a_login_form_without_its_token_is_refused(api: Api) -> None:
    api.user("nadia", password=PASSWORD)
    api.client.get("/login")
    for data in ({"name": "nadia", "password": PASSWORD},
                 {"name": "nadia", "password": PASSWORD, "csrf_token": "forged"}):
        refused = api.client.post("/login", data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "Form refused" in refused.text and "reload the page" in refused.text
        _assert_page_headers(refused)
    # A form posted from a browser that never opened the login page has no cookie to match.
    fresh = _browser_client(api)
    assert fresh.post("/login", data={"name": "nadia", "password": PASSWORD,
                                      "csrf_token": "x"}).status_code == 403
    assert _count(api, "user.logged_in") == 0
    assert LOGIN_CSRF_COOKIE in api.client.cookies


# --- access ----------------------------------------------------------------------------------

def test_a_stranger_gets_the_same_not_found_page_for_every_page_of_a_case(api: Api) -> None:
    ids, _owner = build_world(api)
    api.user("stranger", password=PASSWORD)
    token = _sign_in(api.client, "stranger")
    not_found = [
        api.client.get(f"/cases/{QUOTED}"),
        api.client.get(f"/cases/{QUOTED}/flag"),
        api.client.get(f"/captures/{ids['capture_id']}"),
        api.client.post(f"/cases/{QUOTED}/flag", data={"csrf_token": token, "reason": "x",
                                                       "url": "https://example.org/b"}),
        # ... the same as what does not exist at all.
        api.client.get("/cases/NO-SUCH-CASE"),
        api.client.get(f"/captures/{uuid.uuid4()}"),
        api.client.get("/captures/not-a-capture"),
        api.client.get("/no/such/page"),
    ]
    for answer in not_found:
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        _assert_page_headers(answer)
        assert "Hidden case" not in answer.text and REFERENCE not in answer.text
        assert "example.org" not in answer.text
    assert len({a.text for a in not_found}) == 1
    with api.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(Target)
                              .where(Target.url == "https://example.org/b")) == 0
    # Nor is the case in the stranger's list.
    assert "Hidden case" not in api.client.get("/").text


def test_an_auditor_reads_no_case_page(api: Api) -> None:
    ids, _owner = build_world(api)
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    _sign_in(api.client, "aud")
    assert api.client.get(f"/cases/{QUOTED}").status_code == 404
    assert api.client.get(f"/captures/{ids['capture_id']}").status_code == 404


def _header_links(page: str) -> list[str]:
    nav = re.search(r'<header class="bar">.*?<nav>(.*?)</nav>', page, re.S)
    assert nav, page[:2000]
    return re.findall(r'<a href="([^"]*)">', nav.group(1))


@pytest.mark.parametrize(("role", "links"), [
    (Role.INVESTIGATOR, ["/", "/search", "/requests/due"]),
    (Role.LIAISON, ["/", "/search", "/requests/due"]),
    (Role.AUDITOR, ["/", "/audit"]),  # reads custody logs: no search, no requests
    (Role.ADMIN, ["/", "/search", "/requests/due", "/admin/users"]),
])
def test_the_header_links_only_the_pages_the_role_may_use(api: Api, role: Role,
                                                          links: list[str]) -> None:
    api.user("someone", role, password=PASSWORD)
    _sign_in(api.client, "someone")
    for path in links:
        page = api.client.get(path)
        assert page.status_code == 200, path
        assert _header_links(page.text) == links


def test_an_auditor_who_types_the_search_or_due_address_is_refused_not_shown_nothing(
        api: Api) -> None:
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    _sign_in(api.client, "aud")
    for path in ("/search", "/search?q=crossing", "/requests/due"):
        page = api.client.get(path)
        assert page.status_code == 403, path
        assert "an auditor reads the custody logs of cases, not their evidence" in page.text
        _assert_page_headers(page)
    assert api.client.get("/audit").status_code == 200


def test_a_reader_sees_the_case_but_may_not_flag(api: Api) -> None:
    _ids, owner = build_world(api)
    api.user("rita", password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.case_for(session, owner.user, REFERENCE)
        cases.add_member(session, owner.user, case, users.get_user(session, "rita"),
                         Access.READ)
    token = _sign_in(api.client, "rita")
    page = api.client.get(f"/cases/{QUOTED}")
    assert page.status_code == 200 and "Hidden case" in page.text
    assert "Flag a URL" not in page.text
    refused = api.client.post(f"/cases/{QUOTED}/flag", data={
        "csrf_token": token, "url": "https://example.org/c", "reason": "r"})
    assert refused.status_code == 403 and "write" in refused.text


# --- forms -----------------------------------------------------------------------------------

def test_a_form_past_the_body_bound_gets_a_page_saying_nothing_was_saved(api: Api) -> None:
    build_world(api)
    _give_password(api, "owner")
    token = _sign_in(api.client, "owner")
    flag = f"/cases/{QUOTED}/flag"
    reason = "x" * (2 * 1024 * 1024)
    body = f"csrf_token={token}&url=https%3A%2F%2Fexample.org%2Fbig&reason={reason}".encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: stopped as it streams
        for at in range(0, len(body), 65536):
            yield body[at:at + 65536]

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for sent in (body, chunks()):  # declared, then counted
        answer = api.client.post(flag, content=sent, headers=form)
        assert answer.status_code == 413, answer.text[:500]
        assert answer.headers["content-type"].startswith("text/html")
        _assert_page_headers(answer)
        assert "<h1>Form too large</h1>" in answer.text
        assert "(2.0 MiB)" in answer.text and "nothing of it was saved" in answer.text
    with api.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(Target)
                              .where(Target.url == "https://example.org/big")) == 0
    # The API's callers still get JSON.
    refused = api.client.post("/api/cases", content=body, headers=form)
    assert refused.status_code == 413 and refused.json()["error"] == "TooLarge"


def test_form_posts_need_the_sessions_token(api: Api) -> None:
    _ids, owner = build_world(api)
    _give_password(api, "owner")
    token = _sign_in(api.client, "owner")
    other = _browser_client(api)
    other_token = _sign_in(other, "owner")
    assert other_token != token
    form = {"url": "https://example.org/forged", "reason": "forged"}
    for sent in ({}, {"csrf_token": ""}, {"csrf_token": "forged"},
                 {"csrf_token": other_token}):
        refused = api.client.post(f"/cases/{QUOTED}/flag", data={**form, **sent},
                                  follow_redirects=False)
        assert refused.status_code == 403, sent
        assert "Form refused" in refused.text
        _assert_page_headers(refused)
        out = api.client.post("/logout", data=sent, follow_redirects=False)
        assert out.status_code == 403
    with api.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(Target)
                              .where(Target.url == form["url"])) == 0
    assert api.client.get("/").status_code == 200  # still signed in
    out = api.client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert api.client.get("/", follow_redirects=False).status_code == 303
    assert _count(api, "user.logged_out") == 1
    assert owner.user.name == "owner"


def test_flagging_through_the_form_queues_a_capture(api: Api) -> None:
    build_world(api)
    _give_password(api, "owner")
    token = _sign_in(api.client, "owner")
    assert "Flag and capture" in api.client.get(f"/cases/{QUOTED}/flag").text

    bad = api.client.post(f"/cases/{QUOTED}/flag", data={
        "csrf_token": token, "url": "ftp://example.org/file", "reason": "a reason"})
    assert bad.status_code == 422 and "not an http or https URL" in bad.text
    assert 'value="ftp://example.org/file"' in bad.text and ">a reason</textarea>" in bad.text
    empty = api.client.post(f"/cases/{QUOTED}/flag", data={"csrf_token": token, "url": "",
                                                           "reason": ""})
    assert empty.status_code == 422 and "Give a URL and a reason" in empty.text

    flagged = api.client.post(f"/cases/{QUOTED}/flag", data={
        "csrf_token": token, "url": " https://example.org/new ", "reason": "second advert"},
        follow_redirects=False)
    assert flagged.status_code == 303, flagged.text
    shown = api.client.get(flagged.headers["location"])
    assert shown.status_code == 200 and "Flagged" in shown.text and "queued" in shown.text
    assert "https://example.org/new" in shown.text
    case_page = api.client.get(f"/cases/{QUOTED}")
    assert "https://example.org/new" in case_page.text and "capture queued" in case_page.text
    assert "target.flagged" in case_page.text  # in the custody timeline, newest first
    timeline = case_page.text.split("Custody timeline", 1)[1]
    assert timeline.index("case.viewed") < timeline.index("target.flagged")



def test_the_flagged_page_leads_to_the_target_and_to_the_capture_once_made(api: Api) -> None:
    """After flagging, the confirmation said "done" and linked nowhere, and a capture's page led
    only to the case: the capture and the target's page (capture again, watch, notes) were
    found by going back to the case."""
    build_world(api)
    _give_password(api, "owner")
    token = _sign_in(api.client, "owner")
    flagged = api.client.post(f"/cases/{QUOTED}/flag", data={
        "csrf_token": token, "url": "https://example.org/second", "reason": "second advert"},
        follow_redirects=False)
    assert flagged.status_code == 303, flagged.text
    target_id = parse_qs(urlsplit(flagged.headers["location"]).query)["target"][0]
    waiting = api.client.get(flagged.headers["location"])
    assert f'href="/targets/{target_id}"' in waiting.text
    assert "reload this page to see it finish" in waiting.text
    assert 'href="/captures/' not in waiting.text

    with api.runtime.session() as session:  # the worker takes the job and records a capture
        target = session.get(Target, uuid.UUID(target_id))
        assert target is not None
        job = session.scalars(select(CaptureJob).where(CaptureJob.target_id == target.id)).one()
        job.state = JobState.DONE
        case = session.get(Case, target.case_id)
        assert case is not None
        capture_id = make_capture(session, case, target, api.runtime.store).id
    done = api.client.get(flagged.headers["location"])
    assert f'href="/captures/{capture_id}"' in done.text
    assert f'href="/targets/{target_id}"' in done.text
    assert "reload this page" not in done.text
    # The case's row of it says what its page holds, not only its decisions.
    case_page = api.client.get(f"/cases/{QUOTED}").text
    assert f'<a href="/targets/{target_id}">Captures, watch, decisions ›</a>' in case_page
    # The capture's page leads back up to its target (to capture again, see earlier ones).
    crumbs = api.client.get(f"/captures/{capture_id}").text.split('class="crumbs"', 1)[1]
    assert f'href="/targets/{target_id}"' in crumbs.split("</p>", 1)[0]



def test_a_refused_flag_names_the_bound_of_what_it_asks_for(api: Api) -> None:
    """A flag without a reason was told "Give a reason (at most 4,096 and 5,000 characters)",
    and the service's refusals came as they are written for a log ("say why the target is
    flagged"), not as sentences like every other page's."""
    build_world(api)
    _give_password(api, "owner")
    token = _sign_in(api.client, "owner")
    said = {}
    for name, data in [("reason", {"url": "https://example.org/x", "reason": ""}),
                       ("blank", {"url": "https://example.org/x", "reason": " "}),
                       ("scheme", {"url": "ftp://example.org/x", "reason": "an advert"}),
                       ("url", {"url": "", "reason": "an advert"}),
                       ("both", {"url": "", "reason": ""})]:
        answer = api.client.post(f"/cases/{QUOTED}/flag", data={"csrf_token": token, **data})
        assert answer.status_code == 422, answer.text
        said[name] = [html.unescape(m) for m in re.findall(
            r'<p class="alert" role="alert">([^<]*)</p>', answer.text)]
    assert said == {"reason": ["Give a reason (at most 5,000 characters)."],
                    "blank": ["Say why the target is flagged."],
                    "scheme": ["'ftp://example.org/x' is not an http or https URL."],
                    "url": ["Give a URL (at most 4,096 characters)."],
                    "both": ["Give a URL and a reason (at most 4,096 and 5,000 characters)."]}


def test_the_case_timeline_clips_a_long_value_as_the_history_does(api: Api) -> None:
    """A URL of 4,096 characters filled the case page's timeline with a wall of text."""
    build_world(api)
    _give_password(api, "owner")
    token = _sign_in(api.client, "owner")
    long_url = "https://example.org/" + "a" * 4076
    flagged = api.client.post(f"/cases/{QUOTED}/flag", data={
        "csrf_token": token, "url": long_url, "reason": "long address"},
        follow_redirects=False)
    assert flagged.status_code == 303, flagged.text
    timeline = api.client.get(f"/cases/{QUOTED}").text.split("Custody timeline", 1)[1]
    assert long_url not in timeline
    assert "(4,096 characters)" in timeline


# --- what the pages show ---------------------------------------------------------------------

def test_hostile_and_right_to_left_text_is_shown_as_text(sealed: Api) -> None:
    api = sealed
    nadia = api.user("nadia", password=PASSWORD)
    with api.runtime.session() as session:
        hostile = cases.create_case(session, nadia.user, reference="OP-1", title=HOSTILE,
                                    offence=HOSTILE, facts=f"{HOSTILE}\n{ARABIC}")
        cases.create_case(session, nadia.user, reference="OP-2", title=ARABIC)
        target, _job = targets.flag_target(
            session, nadia.user, hostile, reason='"><img src=x onerror=alert(2)>',
            url="https://example.org/?q=<script>alert(3)</script>")
        capture = make_sealed_capture(session, api.runtime, hostile, target, actor=nadia.user)
        capture.title = f"{HOSTILE} {ARABIC}"
        capture_id = capture.id
    _sign_in(api.client, "nadia")
    pages = [api.client.get("/"), api.client.get("/cases/OP-1"),
             api.client.get(f"/captures/{capture_id}")]
    for page in pages:
        assert page.status_code == 200, page.text
        _assert_page_headers(page)
        assert "<script" not in page.text.lower()
        assert "<img src=x" not in page.text and "onerror=alert" not in page.text.replace(
            "onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text and ARABIC in pages[0].text
    assert '<td data-label="title" dir="auto">' + ARABIC + "</td>" in pages[0].text
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in pages[1].text
    assert f"<bdi>&lt;script&gt;alert(1)&lt;/script&gt; {ARABIC}</bdi>" in pages[2].text


def test_pages_write_the_custody_entries_the_api_writes(sealed: Api) -> None:
    api = sealed
    nadia = api.user("nadia", password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.create_case(session, nadia.user, reference="OP/2026/9", title="Adverts",
                                 offence="smuggling of migrants", jurisdiction="GR",
                                 offence_provision="Art. 30 Law 4251/2014",
                                 max_penalty_years=10, contact="duty desk",
                                 facts="Adverts offering crossings.")
        target, _job = targets.flag_target(session, nadia.user, case, reason="advert",
                                           url="https://t.me/crossings")
        capture = make_sealed_capture(session, api.runtime, case, target, actor=nadia.user,
                                      files=[("screenshot", "screenshot-full.png",
                                              "image/png", make_png(40, 30, (200, 30, 30)))])
        capture_id = capture.id
    _sign_in(api.client, "nadia")
    before = {a: _count(api, a) for a in ("cases.listed", "case.viewed", "capture.viewed",
                                          "artifact.downloaded")}
    listing = api.client.get("/")
    assert "OP/2026/9" in listing.text and 'href="/cases/OP%2F2026%2F9"' in listing.text
    row = listing.text.split("OP/2026/9", 1)[1]
    assert re.search(r'<td data-label="targets" class="num">1</td>\s*'
                     r'<td data-label="captures" class="num">1</td>', row), row[:600]
    case_page = api.client.get("/cases/OP%2F2026%2F9")
    for shown in ("smuggling of migrants", "Art. 30 Law 4251/2014", "10 years", "GR",
                  "duty desk", "Adverts offering crossings.", "https://t.me/crossings",
                  f'href="/captures/{capture_id}"', "complete"):
        assert shown in case_page.text, shown
    page = api.client.get(f"/captures/{capture_id}")
    assert page.status_code == 200
    with api.runtime.session() as session:
        row_capture = session.get(Capture, capture_id)
        assert row_capture is not None and row_capture.manifest_sha256 in page.text
    shot = re.search(r'<img src="([^"]+)"', page.text)
    assert shot and shot.group(1).startswith(f"/api/cases/OP%2F2026%2F9/captures/{capture_id}/")
    assert page.text.count("Download</a>") >= 4  # screenshot, manifest, signature, token
    image = api.client.get(shot.group(1))
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert image.headers["x-content-sha256"] in page.text
    after = {a: _count(api, a) for a in before}
    assert after == {"cases.listed": before["cases.listed"] + 1,
                     "case.viewed": before["case.viewed"] + 1,
                     "capture.viewed": before["capture.viewed"] + 1,
                     "artifact.downloaded": before["artifact.downloaded"] + 1}


def test_the_timeline_pages_from_the_newest_entry(api: Api) -> None:
    nadia = api.user("nadia", password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.create_case(session, nadia.user, reference="OP-3", title="Many")
        for n in range(30):
            targets.flag_target(session, nadia.user, case, reason=f"r{n}",
                                url=f"https://example.org/{n}")
    _sign_in(api.client, "nadia")
    shown: list[int] = []
    url: str | None = "/cases/OP-3"
    pages = 0
    while url is not None:
        page = api.client.get(url)
        assert page.status_code == 200
        assert ("Newest entries" in page.text) == (pages > 0)
        numbers = [int(n) for n in re.findall(
            r'<td class="num"[^>]* title="global seq \d+">(\d+)', page.text)]
        assert 0 < len(numbers) <= 25
        shown += numbers
        older = re.search(r'href="(/cases/OP-3\?before=\d+)">Older entries', page.text)
        url = older.group(1) if older else None
        pages += 1
    # Newest first, no entry twice, none left out, the first one last; each page's viewing
    # was recorded too, so the first page shows the most entries there were then.
    assert shown == sorted(shown, reverse=True) and len(set(shown)) == len(shown)
    assert shown[-1] == 1 and shown[0] == len(shown) and pages == 3
    assert "case.created" in page.text


def test_the_pages_stay_out_of_the_api_document(api: Api) -> None:
    caller = api.user("nadia")
    paths = api.get(caller, "/api/openapi.json").json()["paths"]
    assert all(p.startswith("/api/") for p in paths), [p for p in paths if "/api" not in p]
    css = api.client.get("/static/ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # The API keeps answering JSON, errors included.
    missing = api.client.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    assert api.client.get("/api/cases").json()["error"] == "NotAuthenticated"


# --- in Chromium -----------------------------------------------------------------------------

@pytest.fixture
def served(sealed: Api) -> Iterator[str]:
    with served_app(sealed.runtime) as url:
        yield url


def _world_for_the_browser(runtime: Runtime, screenshot: bytes) -> uuid.UUID:
    with runtime.session() as session:
        nadia = users.create_user(session, None, name="nadia", role=Role.INVESTIGATOR,
                                  unit="Border Unit", password=PASSWORD,
                                  display_name="Nadia Haddad")
        case = cases.create_case(
            session, nadia, reference="OP/2026/14", title="Crossing adverts on Telegram",
            offence="smuggling of migrants", jurisdiction="GR",
            offence_provision="Art. 30 Law 4251/2014", max_penalty_years=10,
            contact="duty desk +30 210 555 0100",
            facts="Channels advertise boat crossings to Italy with prices and a phone number.\n"
                  "Adverts are edited and removed within days.")
        cases.create_case(session, nadia, reference="OP/2026/15", title=ARABIC,
                          offence="forgery of documents", jurisdiction="GR")
        target, _job = targets.flag_target(session, nadia, case, reason="advert with prices",
                                           url="https://t.me/crossings/118")
        capture = make_sealed_capture(session, runtime, case, target, actor=nadia, files=[
            ("screenshot", "screenshot-full.png", "image/png", screenshot),
            ("dom", "dom.html", "text/html; charset=utf-8", b"<html><body>advert</body></html>"),
            ("text", "text.txt", "text/plain; charset=utf-8", ARABIC.encode()),
        ])
        capture.title = f"{HOSTILE} {ARABIC}"
        return capture.id


@pytest.mark.browser
def test_an_investigator_signs_in_opens_a_case_and_flags_a_url_in_chromium(
    sealed: Api, served: str,
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with PagesServer() as pages, BrowserSession(sealed.runtime.settings) as browser, \
            walled_page(browser, served, refused_status=401) as page:  # the wrong password
        # A real screenshot of the local test page, to stand in the capture.
        shooter = page.context.new_page()
        shooter.goto(pages.url("/simple.html"))
        capture_id = _world_for_the_browser(sealed.runtime,
                                            shooter.screenshot(full_page=True))
        close_tab(browser, shooter)

        page.goto(f"{served}/")
        assert urlsplit(page.url).path == "/login"
        page.screenshot(path=SHOTS / "login.png", full_page=True)
        sign_in_on_page(page, "nadia", "wrong")
        assert "Wrong user name or password." in page.locator(".alert").inner_text()
        sign_in_on_page(page, "nadia", PASSWORD)
        page.get_by_role("heading", name="Your cases").wait_for()
        assert page.locator("tbody tr").count() == 2
        page.screenshot(path=SHOTS / "cases.png", full_page=True)

        page.click("text=OP/2026/14")
        page.get_by_role("heading", name="Targets").wait_for()
        page.click("text=Flag a URL")
        flagged_url = pages.url("/simple.html")
        page.fill("#url", flagged_url)
        page.fill("#reason", "Advert for a crossing, linked from the channel")
        page.click("text=Flag and capture")
        page.get_by_role("heading", name="Flagged").wait_for()
        assert "queued" in page.locator(".card.ok").inner_text()
        page.screenshot(path=SHOTS / "flagged.png", full_page=True)
        page.click("text=Back to the case")
        row = page.locator("table.targets tbody tr", has_text=flagged_url)
        assert row.count() == 1 and "capture queued" in row.inner_text()
        page.screenshot(path=SHOTS / "case.png", full_page=True)

        page.click(f'a[href="/captures/{capture_id}"]')
        page.get_by_role("heading", name="Full-page screenshot").wait_for()
        shot = page.locator(".shot img")
        shot.wait_for()
        assert shot.evaluate("img => img.complete && img.naturalWidth") > 100
        page.screenshot(path=SHOTS / "capture.png", full_page=True)
        page.click("text=Sign out")
        assert urlsplit(page.url).path == "/login"
