"""A form posted after its sign-in ended (`api/ui/kept.py`): the sign-in page keeps what was
typed, a page after signing in shows it and sends it only on a click, as the user signed in then;
a wrong password keeps it too, discarding drops it, a post from another site or too large for
the pages is refused as before, and one walk in Chromium."""

from __future__ import annotations

import html
import http.server
import re
import threading
import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.limits import MAX_KEPT_FORM_BYTES
from capture.browser import BrowserSession
from evidence import cases, custody, sessions, targets
from evidence.models import Access, CustodyEntry, Decision, LegalRequest, Role, Target
from tests.api.conftest import (
    Api,
    Caller,
    close_tab,
    served_app,
    sign_in_on_page,
    use_clock,
    walk_context,
    walled_page,
)
from tests.api.test_ui import PASSWORD, _assert_page_headers, _browser_client, _sign_in, _token
from tests.factories import AUTHORITY_FIELDS, make_request_world
from tests.support.net import free_port

REFERENCE = "OP/2026/31"
QUOTED = quote(REFERENCE, safe="")
FLAG = f"/cases/{QUOTED}/flag"
URL = "https://www.facebook.com/fast.trips.eu/posts/987"
# A long note as people write them: lines, quotes, markup-like text, another script.
NOTE = ("Seen in the channel on 3 March; the seller says \"crossings every night\" & "
        "<b>prices</b> in the comments.\r\n" + "رحلات عبور سريعة إلى إيطاليا. " * 120
        + "(end of note)")
# What Chromium sends with a form of the page it shows (seen in the walk below).
OURS = {"Sec-Fetch-Site": "same-origin"}
SHOTS = Path("/tmp/ui-ui-session")


def _world(api: Api) -> tuple[Caller, Caller]:
    """A case owned by nadia, with omar a writing member; both sign in with PASSWORD."""
    nadia = api.user("nadia", password=PASSWORD)
    omar = api.user("omar", password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.create_case(session, nadia.user, reference=REFERENCE, title="Night boats")
        cases.add_member(session, nadia.user, case, omar.user, Access.WRITE)
    return nadia, omar


def _post(client: TestClient, path: str, pairs: list[tuple[str, str]],
          headers: dict[str, str] | None = None) -> Any:
    """A form post as a browser sends it: the fields urlencoded in their order."""
    return client.post(path, content=urlencode(pairs),
                       headers={"Content-Type": "application/x-www-form-urlencoded",
                                **OURS, **(headers or {})},
                       follow_redirects=False)


def _hidden(page: str, action: str) -> list[tuple[str, str]]:
    """The hidden inputs, in order, of the page's form posting to `action`."""
    found = re.search(rf'<form method="post" action="{re.escape(html.escape(action))}"'
                      rf'[^>]*>(.*?)</form>', page, re.S)
    assert found, page[:3000]
    return [(html.unescape(n), html.unescape(v)) for n, v in re.findall(
        r'<input type="hidden" name="([^"]*)" value="([^"]*)">', found.group(1))]


def _kept(page: str) -> list[tuple[str, str]]:
    """The kept fields the sign-in page carries (its own inputs left out)."""
    return [(n[len("kept:"):], v) for n, v in _hidden(page, "/login") if n.startswith("kept:")]


def _sign_in_keeping(client: TestClient, page: str, name: str,
                     password: str = PASSWORD) -> Any:
    """Fill in the sign-in form the page shows and send it with all its hidden inputs."""
    return _post(client, "/login", [*_hidden(page, "/login"), ("name", name),
                                    ("password", password)])


def _shown(client: TestClient, answer: Any) -> Any:
    """The kept form's page the browser is sent on to (after the sign-in, a post and a
    redirect: a reload of that page is a GET and sends nothing again)."""
    assert answer.status_code == 303, answer.text[:2000]
    assert answer.headers["location"].startswith("/kept/"), answer.headers["location"]
    page = client.get(answer.headers["location"])
    assert page.status_code == 200, page.text[:2000]
    return page


def _kept_id(page: str, action: str) -> str:
    [kept_id] = [v for n, v in _hidden(page, action) if n == "kept_form"]
    return kept_id


def _send(client: TestClient, page: str, action: str) -> Any:
    """Click the confirmation page's button: its form posted as it stands."""
    return _post(client, action, _hidden(page, action))


def _targets_at(api: Api, url: str) -> list[Target]:
    with api.runtime.session() as session:
        return list(session.scalars(select(Target).where(Target.url == url)))


def _entries(api: Api, action: str) -> list[dict[str, Any]]:
    with api.runtime.session() as session:
        return [custody.describe(e) for e in session.scalars(
            select(CustodyEntry).where(CustodyEntry.action == action)
            .order_by(CustodyEntry.seq))]


# --- a session that ended --------------------------------------------------------------------

def test_a_flag_posted_after_the_session_expired_is_kept_and_sent_as_who_signs_in(
    api: Api,
) -> None:
    _nadia, omar = _world(api)
    clock = use_clock(api)
    _sign_in(api.client, "nadia")
    token = _token(api.client.get(FLAG).text)
    clock.advance(hours=12, seconds=1)  # past sessions.SESSION_LIFETIME while she typed
    posted = [("csrf_token", token), ("url", URL), ("reason", NOTE)]

    kept_page = _post(api.client, FLAG, posted)
    assert kept_page.status_code == 401, kept_page.text[:2000]
    _assert_page_headers(kept_page)
    assert "Your session ended before your form was sent." in kept_page.text
    assert _kept(kept_page.text) == [("url", URL), ("reason", NOTE)]  # not the old token
    assert ("kept_action", FLAG) in _hidden(kept_page.text, "/login")
    assert token not in kept_page.text
    assert _targets_at(api, URL) == []

    # Someone else at the same desk signs in: shown what would be sent, and as whom.
    confirm = _shown(api.client, _sign_in_keeping(api.client, kept_page.text, "omar"))
    _assert_page_headers(confirm)
    assert "Your form was not sent yet" in confirm.text
    assert "Send it as omar" in confirm.text
    assert "&lt;b&gt;prices&lt;/b&gt;" in confirm.text and "<b>prices" not in confirm.text
    assert f"… ({len(NOTE):,} characters)" in confirm.text  # clipped for reading
    fresh = _token(api.client.get("/").text)
    kept_id = _kept_id(confirm.text, FLAG)
    assert _hidden(confirm.text, FLAG) == [("csrf_token", fresh), ("kept_form", kept_id),
                                           ("url", URL), ("reason", NOTE)]  # kept whole
    # Labelled as the flag form labels its fields, not by their names.
    assert "<dt>URL</dt>" in confirm.text and "<dt>Reason</dt>" in confirm.text
    # Reloaded: the same page, by a GET; nothing sent.
    assert api.client.get(f"/kept/{kept_id}").text == confirm.text
    assert fresh != token
    assert _targets_at(api, URL) == [] and _entries(api, "target.flagged") == []

    sent = _send(api.client, confirm.text, FLAG)
    assert sent.status_code == 303, sent.text[:2000]
    flagged = _targets_at(api, URL)
    assert len(flagged) == 1 and flagged[0].reason == NOTE
    [entry] = _entries(api, "target.flagged")
    assert entry["actor"]["name"] == "omar" and entry["object"]["id"] == str(flagged[0].id)
    assert flagged[0].flagged_by_id == omar.user.id
    # Sent again (a second click, the back button): said to be sent already, not sent again.
    again = _send(api.client, confirm.text, FLAG)
    assert again.status_code == 409 and "this form was sent already" in again.text
    assert len(_targets_at(api, URL)) == 1 and len(_entries(api, "target.flagged")) == 1
    # Its page, opened again, says it was sent and offers no button.
    after = api.client.get(f"/kept/{kept_id}")
    assert after.status_code == 200 and "Your form was sent" in after.text
    assert "Send it as" not in after.text and NOTE[:40] not in after.text


def test_a_decision_posted_after_signing_out_in_another_tab_is_kept(api: Api) -> None:
    nadia, _omar = _world(api)
    with api.runtime.session() as session:
        case = cases.case_for(session, nadia.user, REFERENCE)
        target, _job = targets.flag_target(session, nadia.user, case, reason="advert", url=URL)
        target_id = str(target.id)
    page = f"/targets/{target_id}"
    action = f"{page}/decisions"
    _sign_in(api.client, "nadia")
    token = _token(api.client.get(page).text)
    # The other tab: the same browser's cookie, signed out there.
    other_tab = _browser_client(api)
    other_tab.cookies.set("evidence_session", api.client.cookies["evidence_session"])
    assert other_tab.post("/logout", data={"csrf_token": token},
                          follow_redirects=False).status_code == 303
    rationale = "Preserve first: the post names the boat's departure point.\r\nThen report it."
    posted = [("csrf_token", token), ("kind", "preserve"), ("rationale", rationale),
              ("preservation_waiver", "")]

    kept_page = _post(api.client, action, posted)
    assert kept_page.status_code == 401
    assert _kept(kept_page.text) == posted[1:]  # the empty field too, in its place
    confirm = _shown(api.client, _sign_in_keeping(api.client, kept_page.text, "nadia"))
    assert "Your form was not sent yet" in confirm.text and "(empty)" in confirm.text
    assert "<dt>Preservation waiver</dt>" in confirm.text
    with api.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(Decision)) == 0

    assert _send(api.client, confirm.text, action).status_code == 303
    with api.runtime.session() as session:
        [decision] = session.scalars(select(Decision)).all()
        assert (decision.kind, decision.rationale) == ("preserve", rationale)
    [entry] = _entries(api, "decision.proposed")
    assert entry["actor"]["name"] == "nadia"


def test_a_legal_request_keeps_its_repeated_fields_in_order(api: Api) -> None:
    lina = api.user("lina", Role.LIAISON, password=PASSWORD)
    with api.runtime.session() as session:
        world = make_request_world(session, api.runtime.store, actor=lina.user,
                                   reference=REFERENCE)
    base = f"/cases/{QUOTED}/requests"
    token = _sign_in(api.client, "lina")
    api.client.cookies.delete("evidence_session")  # the session is gone (another browser)
    posted = [("csrf_token", token), ("kind", "provider-preservation"), ("platform", "x"),
              ("category", "traffic"), ("date_from", "2025-09-01"),
              ("target", str(world.x_post.id)), ("category", "subscriber"),
              ("date_to", "2026-03-01"),
              *((f"field.{k}", v) for k, v in AUTHORITY_FIELDS.items())]

    kept_page = _post(api.client, base, posted)
    assert _kept(kept_page.text) == posted[1:]
    confirm = _shown(api.client, _sign_in_keeping(api.client, kept_page.text, "lina"))
    assert _hidden(confirm.text, base)[2:] == posted[1:]
    # The labels the generate form gives: the kind's own fields by legal_forms, the
    # authority's under its heading, the rest by the form's words.
    labels = re.findall(r"<dt>(.*?)</dt>", confirm.text)
    assert labels[:4] == ["Kind", "Platform", "Data category", "From (date, UTC)"]
    assert "Issuing authority: Name" in labels
    assert not [label for label in labels if label.startswith("field.")], labels
    sent = _send(api.client, confirm.text, base)
    assert sent.status_code == 303, sent.text[:2000]
    with api.runtime.session() as session:
        [made] = session.scalars(select(LegalRequest)).all()
        # Only the ticked target, both categories (the service lists them sorted).
        assert [i["value"] for i in made.identifiers or []] == ["smuggler_ar"]
        assert made.data_categories == ["subscriber", "traffic"]
    [entry] = _entries(api, "request.generated")
    assert entry["actor"]["name"] == "lina"


def test_a_wrong_password_or_a_closed_name_keeps_the_form(api: Api) -> None:
    _world(api)
    clock = use_clock(api)
    token = _sign_in(api.client, "nadia")
    clock.advance(seconds=1)  # the failures below come after that sign-in, which forgave none
    api.client.cookies.delete("evidence_session")
    page = _post(api.client, FLAG, [("csrf_token", token), ("url", URL), ("reason", NOTE)])
    for _ in range(sessions.ADDRESS_FREE_FAILURES):
        page = _sign_in_keeping(api.client, page.text, "nadia", "a wrong guess")
        assert page.status_code == 401 and "Wrong user name or password." in page.text
        assert "Your session ended before your form was sent." in page.text
        assert _kept(page.text) == [("url", URL), ("reason", NOTE)]
    page = _sign_in_keeping(api.client, page.text, "nadia")  # right, but the name is closed
    assert page.status_code == 429 and "Too many failed sign-ins" in page.text
    assert _kept(page.text) == [("url", URL), ("reason", NOTE)]
    page = _sign_in_keeping(api.client, page.text, "", "")
    assert page.status_code == 422 and _kept(page.text) == [("url", URL), ("reason", NOTE)]
    clock.advance(minutes=1)
    confirm = _shown(api.client, _sign_in_keeping(api.client, page.text, "nadia"))
    assert "Your form was not sent yet" in confirm.text
    assert _targets_at(api, URL) == []
    assert _send(api.client, confirm.text, FLAG).status_code == 303
    assert len(_targets_at(api, URL)) == 1


def test_discarding_sends_nothing_and_keeps_nothing(api: Api) -> None:
    _world(api)
    token = _sign_in(api.client, "nadia")
    api.client.cookies.delete("evidence_session")
    kept_page = _post(api.client, FLAG, [("csrf_token", token), ("url", URL),
                                         ("reason", "to be dropped")])
    confirm = _shown(api.client, _sign_in_keeping(api.client, kept_page.text, "nadia"))
    kept_id = _kept_id(confirm.text, FLAG)
    discarded = _send(api.client, confirm.text, f"/kept/{kept_id}/discard")
    assert discarded.status_code == 303
    after = api.client.get(discarded.headers["location"])
    assert after.status_code == 200 and "Your cases" in after.text
    assert api.client.get(f"/kept/{kept_id}").status_code == 404  # nothing of it kept
    late = _send(api.client, confirm.text, FLAG)  # from the browser's history
    assert late.status_code == 409 and "no longer kept" in late.text
    assert "to be dropped" not in after.text and URL not in after.text
    assert _targets_at(api, URL) == [] and _entries(api, "target.flagged") == []
    # Signing in afresh is a plain sign-in: nothing comes back.
    api.client.cookies.delete("evidence_session")
    assert _sign_in(api.client, "nadia")
    assert "to be dropped" not in api.client.get("/").text


def test_a_kept_form_is_shown_to_its_session_alone_and_sent_once_across_sign_ins(
    api: Api,
) -> None:
    _world(api)
    token = _sign_in(api.client, "nadia")
    api.client.cookies.delete("evidence_session")
    kept_page = _post(api.client, FLAG, [("csrf_token", token), ("url", URL), ("reason", "r")])
    confirm = _shown(api.client, _sign_in_keeping(api.client, kept_page.text, "nadia"))
    kept_id = _kept_id(confirm.text, FLAG)
    # Another browser, even of the same user, is not shown it.
    for name in ("omar", "nadia"):
        other = _browser_client(api)
        _sign_in(other, name)
        assert other.get(f"/kept/{kept_id}").status_code == 404
    # Her session ends again before she clicks: kept again, as the same kept form.
    api.client.cookies.delete("evidence_session")
    again = _send(api.client, confirm.text, FLAG)
    assert again.status_code == 401 and ("kept_form", kept_id) in _kept(again.text)
    confirm = _shown(api.client, _sign_in_keeping(api.client, again.text, "nadia"))
    assert _kept_id(confirm.text, FLAG) == kept_id
    assert _send(api.client, confirm.text, FLAG).status_code == 303
    assert _send(api.client, confirm.text, FLAG).status_code == 409
    assert len(_targets_at(api, URL)) == 1


def test_a_kept_form_named_in_someone_elses_post_stays_its_owners(api: Api) -> None:
    """A kept form's id is in its owner's address bar; another user who names it in a form of
    their own, posted signed out, gets their own form kept, never the owner's fields."""
    _world(api)
    token = _sign_in(api.client, "nadia")
    api.client.cookies.delete("evidence_session")
    secret = "source: informant K-7, do not disclose"
    kept_page = _post(api.client, FLAG, [("csrf_token", token), ("url", URL),
                                         ("reason", secret)])
    confirm = _shown(api.client, _sign_in_keeping(api.client, kept_page.text, "nadia"))
    kept_id = _kept_id(confirm.text, FLAG)
    other = _browser_client(api)
    omar_token = _sign_in(other, "omar")
    other.cookies.delete("evidence_session")
    forged = _post(other, FLAG, [("csrf_token", omar_token), ("kept_form", kept_id),
                                 ("url", URL), ("reason", "omar's own")])
    assert forged.status_code == 401
    shown = _shown(other, _sign_in_keeping(other, forged.text, "omar"))
    assert secret not in shown.text and "omar&#39;s own" in shown.text
    assert _kept_id(shown.text, FLAG) != kept_id
    assert other.get(f"/kept/{kept_id}").status_code == 404
    assert secret in api.client.get(f"/kept/{kept_id}").text


def test_a_kept_form_goes_back_only_to_a_page_of_this_site(api: Api) -> None:
    _world(api)
    for action in ("https://elsewhere.example/steal", "//elsewhere.example/x", "/api/cases",
                   "/logout", "/login?next=/"):
        login = api.client.get("/login")
        answer = _post(api.client, "/login", [
            ("csrf_token", _token(login.text)), ("kept_action", action),
            ("kept:url", URL), ("name", "nadia"), ("password", PASSWORD)])
        assert answer.status_code == 303 and answer.headers["location"] == "/", action
        api.client.cookies.delete("evidence_session")


# --- a page of an earlier session ------------------------------------------------------------

def test_a_form_of_an_earlier_sign_in_is_shown_again_with_the_new_token(api: Api) -> None:
    _world(api)
    old = _sign_in(api.client, "nadia")
    form_token = _token(api.client.get(FLAG).text)
    assert form_token == old
    # Signed out in another tab of this browser, and in again.
    api.client.cookies.delete("evidence_session")
    new = _sign_in(api.client, "nadia")
    assert new != old
    posted = [("csrf_token", old), ("url", URL), ("reason", NOTE)]

    confirm = _shown(api.client, _post(api.client, FLAG, posted))
    assert "Your form was not sent yet" in confirm.text and "Send it as nadia" in confirm.text
    assert _hidden(confirm.text, FLAG) == [("csrf_token", new),
                                           ("kept_form", _kept_id(confirm.text, FLAG)),
                                           ("url", URL), ("reason", NOTE)]
    assert _targets_at(api, URL) == []
    assert _send(api.client, confirm.text, FLAG).status_code == 303
    assert len(_targets_at(api, URL)) == 1


def test_a_form_kept_on_its_origin_alone_as_over_plain_http_on_an_intranet_address(
    api: Api,
) -> None:
    # Over plain HTTP on an address that is not loopback, Chromium sends no Sec-Fetch-Site: the
    # Origin that the pages' same-origin referrer policy lets it send tells the form is ours.
    _world(api)
    clock = use_clock(api)
    _sign_in(api.client, "nadia")
    token = _token(api.client.get(FLAG).text)
    clock.advance(hours=12, seconds=1)
    kept_page = api.client.post(
        FLAG, content=urlencode([("csrf_token", token), ("url", URL), ("reason", NOTE)]),
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Origin": "http://testserver"}, follow_redirects=False)
    assert kept_page.status_code == 401, kept_page.text[:2000]
    assert _kept(kept_page.text) == [("url", URL), ("reason", NOTE)]


@pytest.mark.parametrize("sender", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # a neighbouring host under the same domain
    {"Origin": "https://elsewhere.example"},
    {"Referer": "https://elsewhere.example/form.html"},
    {},  # a browser that does not say where it came from
    {"Origin": "null"},
])
def test_a_post_from_another_site_is_refused_as_before(api: Api, sender: dict[str, str]) -> None:
    _world(api)
    _sign_in(api.client, "nadia")
    posted = {"csrf_token": "forged", "url": URL, "reason": "planted"}
    signed_in = api.client.post(FLAG, data=posted, headers=sender, follow_redirects=False)
    assert signed_in.status_code == 403 and "Form refused" in signed_in.text
    api.client.cookies.delete("evidence_session")
    signed_out = api.client.post(FLAG, data=posted, headers=sender, follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
    for answer in (signed_in, signed_out):
        assert "planted" not in answer.text and "kept_action" not in answer.text
    assert _targets_at(api, URL) == []


# --- what cannot be kept ---------------------------------------------------------------------

def test_a_form_too_large_to_keep_says_so(api: Api) -> None:
    _world(api)
    token = _sign_in(api.client, "nadia")
    api.client.cookies.delete("evidence_session")
    huge = "x" * (MAX_KEPT_FORM_BYTES + 1)
    answer = _post(api.client, FLAG, [("csrf_token", token), ("url", URL), ("reason", huge)])
    assert answer.status_code == 413
    _assert_page_headers(answer)
    assert "the form is too large to keep across a sign-in" in answer.text
    assert "Nothing was sent" in answer.text and "kept_action" not in answer.text
    assert huge not in answer.text
    # The sign-in still works, and leads to a plain page.
    signed = _post(api.client, "/login", [*_hidden(answer.text, "/login"), ("name", "nadia"),
                                          ("password", PASSWORD)])
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    assert _targets_at(api, URL) == []


def test_a_form_with_a_file_says_it_cannot_be_kept(api: Api) -> None:
    _world(api)
    token = _sign_in(api.client, "nadia")
    api.client.cookies.delete("evidence_session")
    answer = api.client.post(FLAG, data={"csrf_token": token, "url": URL, "reason": "r"},
                             files={"attachment": ("note.txt", b"typed", "text/plain")},
                             headers=OURS, follow_redirects=False)
    assert answer.status_code == 422
    assert "a form with a file attached cannot be kept across a sign-in" in answer.text
    assert "attach the file" in answer.text and "kept_action" not in answer.text
    # Sent from a page of an earlier sign-in, to the one signed in now: said alike.
    _sign_in(api.client, "nadia")
    stale = api.client.post(FLAG, data={"csrf_token": token, "url": URL, "reason": "r"},
                            files={"attachment": ("note.txt", b"typed", "text/plain")},
                            headers=OURS, follow_redirects=False)
    assert stale.status_code == 422 and "Form not sent" in stale.text
    assert ("Your form came from a page of an earlier sign-in, and a form with a file attached "
            "cannot be kept") in stale.text
    assert "kept_action" not in stale.text and _targets_at(api, URL) == []


def test_a_form_sent_with_a_file_is_refused_unread(api: Api) -> None:
    """A file form (a platform's answer: up to gigabytes) is not read whole to learn that it
    holds a file: a body cut off before its end gets the same answer, not a parse error."""
    _world(api)
    _sign_in(api.client, "nadia")
    api.client.cookies.delete("evidence_session")
    boundary = "kept-test-boundary"
    cut_off = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"answer.csv\"\r\nContent-Type: text/csv\r\n\r\nsubscriber,ip\r\n")
    answer = api.client.post(
        FLAG, content=cut_off.encode(), follow_redirects=False,
        headers={**OURS, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status_code == 422, answer.text
    assert "a form with a file attached cannot be kept across a sign-in" in answer.text
    assert "subscriber" not in answer.text and _targets_at(api, URL) == []


# --- in Chromium -----------------------------------------------------------------------------

@pytest.mark.browser
def test_a_note_typed_while_signed_out_elsewhere_is_sent_after_signing_in_in_chromium(
    api: Api,
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    _world(api)
    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served, refused_status=401) as page:
        sent_from: list[tuple[str | None, str | None]] = []
        page.on("request", lambda r: sent_from.append(
            (r.header_value("origin"), r.header_value("referer")))
            if r.method == "POST" and r.url.endswith(FLAG) else None)
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.goto(f"{served}{FLAG}")
        sign_in_on_page(page, "nadia", PASSWORD)
        page.locator("#reason").wait_for()
        page.fill("#url", URL)
        page.fill("#reason", NOTE)
        # Signed out in another tab of the same browser while the note was typed.
        other = page.context.new_page()
        other.goto(f"{served}/")
        other.click("text=Sign out")
        other.wait_for_url(f"{served}/login")  # its sign-out landed; only then closed
        close_tab(browser, other)
        page.click("text=Flag and capture")
        page.locator(".notice", has_text="Your session ended").wait_for()
        assert page.url == f"{served}{FLAG}"
        page.screenshot(path=SHOTS / "kept-sign-in.png", full_page=True)
        page.set_viewport_size({"width": 420, "height": 900})
        page.screenshot(path=SHOTS / "kept-sign-in-420.png", full_page=True)
        sign_in_on_page(page, "omar", "wrong")
        page.locator(".alert", has_text="Wrong user name or password.").wait_for()
        sign_in_on_page(page, "omar", PASSWORD)
        page.get_by_role("heading", name="Your form was not sent yet").wait_for()
        assert _targets_at(api, URL) == []
        # Reloaded: shown again, and nothing posted again (no sign-in sent twice).
        confirm_url, posted = page.url, len(posts)
        assert urlsplit(confirm_url).path.startswith("/kept/")
        page.reload()
        page.get_by_role("heading", name="Your form was not sent yet").wait_for()
        assert page.url == confirm_url and len(posts) == posted
        assert page.locator("dl.facts dt").all_inner_texts() == ["URL", "Reason"]
        page.screenshot(path=SHOTS / "kept-confirm-420.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=SHOTS / "kept-confirm.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        page.click("text=Send it as omar")
        page.get_by_role("heading", name="Flagged").wait_for()
        page.screenshot(path=SHOTS / "kept-sent.png", full_page=True)
        # Back to it: sent once, and said so, with no button to send it again.
        page.go_back()
        page.get_by_role("heading", name="Your form was sent").wait_for()
        assert page.url == confirm_url and page.locator("text=Send it as").count() == 0
        page.screenshot(path=SHOTS / "kept-was-sent.png", full_page=True)
    # The form's post and the kept one carry their true Origin and the page they were sent
    # from (the pages' same-origin referrer policy), as well as Sec-Fetch-Site.
    assert sent_from == [(served, f"{served}{FLAG}"), (served, confirm_url)]
    [flagged] = _targets_at(api, URL)
    assert flagged.reason == NOTE
    [entry] = _entries(api, "target.flagged")
    assert entry["actor"]["name"] == "omar" and uuid.UUID(entry["object"]["id"]) == flagged.id
    assert urlsplit(served).hostname == "127.0.0.1"


class _OtherSite(http.server.BaseHTTPRequestHandler):
    """A site of someone else's (a captured page's), noting the headers each visit brings."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.seen.append({"path": self.path, **headers})
        body = b"<!doctype html><title>elsewhere</title><p>elsewhere</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.browser
def test_our_forms_carry_our_origin_and_a_link_out_carries_no_url_of_ours_in_chromium(
    api: Api,
) -> None:
    _world(api)
    _OtherSite.seen = []
    other = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _OtherSite)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{other.server_address[1]}/captured/page"
    try:
        with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
                walk_context(browser) as context:
            page = context.new_page()
            posts: list[dict[str, str]] = []
            page.on("request", lambda r: posts.append(r.headers)
                    if r.method == "POST" and r.url.endswith(FLAG) else None)
            page.goto(f"{served}{FLAG}")
            sign_in_on_page(page, "nadia", PASSWORD)
            page.locator("#reason").wait_for()
            page.fill("#url", URL)
            page.fill("#reason", "seen in the channel")
            page.click("text=Flag and capture")
            page.get_by_role("heading", name="Flagged").wait_for()
            # A link out of one of our pages (the case page: its address names the case), as
            # to a captured page: the pages allow no script, so the test adds it as DevTools.
            page.goto(f"{served}/cases/{QUOTED}")
            page.evaluate("""href => { const a = document.createElement('a');
                a.href = href; a.id = 'out'; a.textContent = 'out';
                document.body.append(a); }""", elsewhere)
            page.click("#out")
            page.wait_for_url(elsewhere)
    finally:
        other.shutdown()
        other.server_close()
    # Our own form post says where it came from: its Origin and the page it was sent from.
    assert [(p.get("origin"), p.get("referer")) for p in posts] == [
        (served, f"{served}{FLAG}")]
    # The other site learns nothing of ours: no Referer, nor any other header naming us.
    # (Chromium then asks it for its favicon too, from its own page.)
    [visit] = [v for v in _OtherSite.seen if v["path"] == "/captured/page"]
    assert "referer" not in visit
    ours = str(urlsplit(served).port)
    assert not [v for v in visit.values() if ours in v or "cases" in v], visit
