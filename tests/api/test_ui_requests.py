"""The legal-request pages (`api/ui/requests.py`): generating through the form as through the API,
the request's page with its documents, status and extension forms, the requests due; access,
CSRF, refused forms and hostile text as on the other pages; one walk in Chromium."""

from __future__ import annotations

import hashlib
import html
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from reportlab.platypus.doctemplate import LayoutError
from sqlalchemy import func, select

from api.ui import requests as ui_requests
from capture.browser import BrowserSession
from evidence import accounts, cases, custody, requests, targets, users
from evidence.errors import RequestIncomplete
from evidence.models import Access, CustodyEntry, LegalRequest, Role
from evidence.request_input import About, RequestProblem
from legal_forms import service_adapter
from legal_forms.instruments.base import add_days
from tests.api.conftest import (
    Api,
    Caller,
    api_over,
    build_runtime,
    served_app,
    sign_in_on_page,
    walled_page,
)
from tests.api.test_ui import (
    HOSTILE,
    PASSWORD,
    _assert_page_headers,
    _browser_client,
    _sign_in,
)
from tests.factories import (
    ARABIC_HANDLE,
    AUTHORITY_FIELDS,
    make_capture,
    make_request_world,
    make_sent_request,
)

REFERENCE = "OP/2026/9"
BASE = f"/cases/{quote(REFERENCE, safe='')}/requests"
API_BASE = f"/api{BASE}"
SHOTS = Path("/tmp/ui/requests")
# The form's inputs for what the API takes as `fields`.
AUTHORITY_FORM = {f"field.{name}": value for name, value in AUTHORITY_FIELDS.items()}
PRESERVATION_FORM = {"kind": "provider-preservation", "platform": "x",
                     "date_from": "2025-09-01", "date_to": "2026-03-01", **AUTHORITY_FORM}
PRESERVATION_BODY = {"kind": "provider-preservation", "platform": "x",
                     "fields": AUTHORITY_FIELDS, "date_from": "2025-09-01T00:00:00Z",
                     "date_to": "2026-03-01T23:59:59Z"}


def _liaison_world(api: Api, **case_overrides: Any) -> tuple[Caller, Any]:
    """A liaison officer (who signs in with PASSWORD) and a case ready for requests."""
    liaison = api.user("lina", Role.LIAISON, password=PASSWORD)
    with api.runtime.session() as session:
        world = make_request_world(session, api.runtime.store, actor=liaison.user,
                                   reference=REFERENCE, **case_overrides)
    return liaison, world


def _member(api: Api, owner: Caller, name: str, role: Role, access: Access) -> Caller:
    caller = api.user(name, role, password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.get_case(session, owner.user, REFERENCE)
        cases.add_member(session, owner.user, case, caller.user, access)
    return caller


def _actions(api: Api) -> list[str]:
    with api.runtime.session() as session:
        return list(session.scalars(select(CustodyEntry.action).order_by(CustodyEntry.seq)))


def _request_count(api: Api) -> int:
    with api.runtime.session() as session:
        return session.scalar(select(func.count()).select_from(LegalRequest)) or 0


def _generate(client: TestClient, token: str, **form: Any) -> Any:
    return client.post(BASE, data={"csrf_token": token, **PRESERVATION_FORM, **form},
                       follow_redirects=False)


def _request_id(answer: Any) -> str:
    assert answer.status_code == 303, answer.text[:3000]
    location = answer.headers["location"]
    assert location.startswith(f"{BASE}/"), location
    return location.rsplit("/", 1)[1]


def _approve(api: Api, approver: Caller, request_id: str) -> None:
    with api.runtime.session() as session:
        case = cases.get_case(session, approver.user, REFERENCE)
        requests.change_status(session, approver.user, case, uuid.UUID(request_id), "approved")


def _generated_ago(api: Api, liaison: Caller, ago: timedelta) -> str:
    """A preservation request generated (through the service) `ago` before now."""
    with api.runtime.session() as session:
        made = requests.generate(
            session, liaison.user, cases.get_case(session, liaison.user, REFERENCE),
            store=api.runtime.store, settings=api.runtime.settings,
            kind="provider-preservation", platform="x", fields=AUTHORITY_FIELDS,
            date_from=datetime(2025, 9, 1, tzinfo=UTC), date_to=datetime(2026, 3, 1, tzinfo=UTC),
            now=datetime.now(UTC) - ago)
        return str(made.request.id)


def _listed(page: str) -> str:
    """The text of a refused form's list of problems, its spaces made single."""
    found = re.search(r'<div class="alert" role="alert"[^>]*>(.*?)</div>', page, re.S)
    assert found, page[:3000]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def _alert(page: str) -> str:
    found = re.search(r'<(?:p|div) class="alert" role="alert"[^>]*>(.*?)</(?:p|div)>', page, re.S)
    assert found, page[:3000]
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


def _said_first(page: str, anchor: str) -> str:
    """The refusal the page says before anything else under its heading (it opens at its top,
    the form may be a screen or more further down), checked to link to the form's own alert."""
    main = page.split("</h1>", 1)[1]
    found = re.match(r'\s*<p class="refused" role="alert">(.*?)</p>',
                     main.split("</div>", 1)[1], re.S)
    assert found, main[:3000]
    assert f'<a href="#{anchor}">Go to the form</a>' in found.group(1)
    assert f'id="{anchor}"' in main
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


# --- generating ------------------------------------------------------------------------------

def test_generating_through_the_form_gives_what_the_api_gives(api: Api) -> None:
    liaison, world = _liaison_world(api)
    token = _sign_in(api.client, "lina")
    listing = api.client.get(BASE)
    assert listing.status_code == 200
    _assert_page_headers(listing)
    assert "No legal requests in this case yet." in listing.text
    # The registry's routing for the case's platforms, each a link to the second step.
    assert (f'href="{BASE}?kind=provider-preservation&amp;platform=x#generate"'
            in listing.text)
    step = api.client.get(BASE, params={"kind": "provider-preservation", "platform": "x"})
    assert step.status_code == 200 and "Targets on X (formerly Twitter)" in step.text
    for target in (world.x_post, world.x_account):
        assert f'name="target" value="{target.id}"' in step.text
    assert f'value="{world.fb_post.id}"' not in step.text  # on Facebook, not X
    assert "1 other target(s) of the case are on other platforms." in step.text

    before = _actions(api)
    request_id = _request_id(_generate(api.client, token))
    written = _actions(api)[len(before):]
    assert written == ["request.generated"]
    from_api = api.post(liaison, API_BASE, json=PRESERVATION_BODY)
    assert from_api.status_code == 201, from_api.text

    form_made = api.get(liaison, f"{API_BASE}/{request_id}").json()
    api_made = from_api.json()
    assert (form_made["reference"], api_made["reference"]) == ("OP/2026/9-PRES-1",
                                                               "OP/2026/9-PRES-2")
    differ = {"id", "reference", "pdf_sha256", "json_sha256", "created_at", "updated_at",
              "issued_at", "deadlines", "document", "due_at"}
    assert {k: v for k, v in form_made.items() if k not in differ} == {
        k: v for k, v in api_made.items() if k not in differ}
    assert form_made["status"] == "draft"
    assert {i["value"] for i in form_made["identifiers"]} == {"smuggler_ar", "1234567890",
                                                              ARABIC_HANDLE}
    assert [d["name"] for d in form_made["deadlines"]] == [
        d["name"] for d in api_made["deadlines"]]
    with api.runtime.session() as session:
        entries = {e.object_id: custody.describe(e) for e in session.scalars(
            select(CustodyEntry).where(CustodyEntry.action == "request.generated"))}
    by_form, by_api = entries[request_id], entries[api_made["id"]]
    assert by_form["actor"]["name"] == by_api["actor"]["name"] == "lina"
    assert by_form["sha256"] == form_made["pdf_sha256"]
    for key in ("kind", "platform", "identifiers", "captures", "warnings", "previous"):
        assert by_form["details"][key] == by_api["details"][key], key

    # Both are listed, with the reference linking to the request's page.
    listing = api.client.get(BASE)
    assert f'href="{BASE}/{request_id}">OP/2026/9-PRES-1</a>' in listing.text
    assert listing.text.count('<span class="badge draft ">draft</span>') == 2
    assert "not sent" in listing.text


def test_only_the_targets_ticked_are_asked_for(api: Api) -> None:
    liaison, world = _liaison_world(api)
    token = _sign_in(api.client, "lina")
    answer = _generate(api.client, token, target=[str(world.x_post.id)],
                       category=["subscriber", "traffic"], notify_user="yes")
    made = api.get(liaison, f"{API_BASE}/{_request_id(answer)}").json()
    assert [(i["kind"], i["value"]) for i in made["identifiers"]] == [("username",
                                                                      "smuggler_ar")]
    assert made["data_categories"] == ["subscriber", "traffic"]
    assert made["non_disclosure"] is False


def test_the_capture_a_request_would_cite_says_what_the_page_answered(api: Api) -> None:
    """A target whose newest capture is of a 404 answer is listed with that capture's badge as
    the capture page shows it, 'partial · HTTP 404' and its sentence, not a plain 'partial'."""
    _liaison_world(api)
    with api.runtime.session() as session:
        case = cases.get_case(session, users.get_user(session, "lina"), REFERENCE)
        post = targets.find_url_target(session, case, "https://x.com/smuggler_ar/status/1789")
        assert post is not None
        gone = make_capture(session, case, post, api.runtime.store, http_status=404)
    _sign_in(api.client, "lina")
    page = api.client.get(BASE, params={"kind": "provider-preservation", "platform": "x"}).text
    cited = dict(re.findall(r'<a href="/captures/([0-9a-f-]{36})">(<span class="badge[^>]*>'
                            r'[^<]*</span>)</a>', page))
    assert cited.pop(str(gone.id)) == (
        '<span class="badge partial" title="Partial, but the page answered HTTP 404 Not Found '
        '(the page may have been removed, or the URL may be wrong): what was captured is that '
        'answer, not the page as it once stood">partial · HTTP 404</span>')
    assert list(cited.values()) == ['<span class="badge partial">partial</span>']  # the account


def test_an_emergency_disclosure_form_starts_with_emergency_ticked(api: Api) -> None:
    _liaison_world(api)
    _sign_in(api.client, "lina")

    def emergency(kind: str) -> bool:
        page = api.client.get(BASE, params={"kind": kind, "platform": "x"}).text
        found = re.search(r'<input type="checkbox" name="emergency" value="yes"( checked)?>', page)
        assert found, page[:3000]
        return bool(found.group(1))

    # Its check refuses it without the flag; a preservation is not an emergency by default.
    assert emergency("emergency-disclosure") and not emergency("provider-preservation")


def test_an_authority_detail_the_kind_requires_is_not_called_optional(api: Api) -> None:
    _liaison_world(api)
    _sign_in(api.client, "lina")

    def label(kind: str, name: str) -> str:
        page = api.client.get(BASE, params={"kind": kind, "platform": "x"}).text
        found = re.search(rf'<label for="{name}">(.*?)</label>', page, re.S)
        assert found, page[:3000]
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())

    # An EPOC-PR prints the issuing authority's file number in a required field (Annex II).
    assert label("eu-epoc-pr", "f-issuing-file_number") == "File number (needed)"
    assert label("eu-epoc-pr", "f-validating-file_number") == "File number (optional)"
    assert label("provider-preservation", "f-issuing-file_number") == "File number (optional)"


def test_targets_on_hosts_the_registry_does_not_know_go_to_the_generic_provider(
        api: Api) -> None:
    # The registry's "Other provider (generic)" is for exactly these; its addressee, which the
    # registry cannot know, has an input of its own on the form.
    liaison, _world = _liaison_world(api)
    with api.runtime.session() as session:
        case = cases.get_case(session, liaison.user, REFERENCE)
        forum = {}
        for host in ("forum.example", "boats.example"):
            target, _ = targets.flag_target(session, liaison.user, case, reason="advert",
                                            url=f"https://www.{host}/t/1789")
            make_capture(session, case, target, api.runtime.store)
            forum[host] = str(target.id)
    token = _sign_in(api.client, "lina")
    listing = api.client.get(BASE)
    assert "platform=generic#generate" in listing.text  # routed like any platform
    step = api.client.get(BASE, params={"kind": "provider-preservation", "platform": "generic"})
    assert step.status_code == 200
    assert "The case has no target on" not in step.text
    for target_id in forum.values():
        assert f'name="target" value="{target_id}"' in step.text
    assert re.search(r'<label for="f-addressee">Addressee</label>\s*<span class="muted small">'
                     r'The platform registry has none for Other provider \(generic\)',
                     step.text), step.text
    assert '<textarea id="f-addressee" name="field.addressee"' in step.text
    assert "the platform registry does not know this platform's policy" in step.text
    assert ">unknown<" not in step.text

    form = {**PRESERVATION_FORM, "platform": "generic"}
    # One request has one addressee: targets of two unknown providers are not sent together.
    both = api.client.post(BASE, data={"csrf_token": token, **form})
    assert both.status_code == 422
    assert ("Targets : the targets are on 2 providers the platform registry does not know "
            "(forum.example, boats.example)") in _listed(both.text)
    # Without the addressee: said at its input, and nothing generated.
    one = {"csrf_token": token, **form, "target": forum["forum.example"]}
    unnamed = api.client.post(BASE, data=one)
    assert unnamed.status_code == 422
    assert '<a href="#f-addressee">Addressee</a>: <bdi>needed</bdi>' in unnamed.text
    assert re.search(r'id="f-addressee" name="field.addressee"[^>]*aria-invalid="true"',
                     unnamed.text)
    assert _request_count(api) == 0

    named = api.client.post(BASE, data={**one, "field.addressee": "Forum Hosting Ltd., Malta"},
                            follow_redirects=False)
    made = api.get(liaison, f"{API_BASE}/{_request_id(named)}").json()
    assert made["platform"] == "generic" and made["addressee"] == "Forum Hosting Ltd., Malta"
    assert [i["value"] for i in made["identifiers"]] == ["https://www.forum.example/t/1789"]


def test_the_generate_form_offers_the_targets_of_a_large_case(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More targets than a page of the API's lists holds (200), and more linked accounts: a
    post flagged late, and an account linked late, are still offered on their platform."""
    liaison, world = _liaison_world(api)
    with api.runtime.session() as s:
        case = s.merge(world.case)
        for n in range(205):
            targets.flag_target(s, liaison.user, case, reason="advert",
                                url=f"https://x.com/boats{n}/status/{n}")
        for n in range(201):
            accounts.link_account(s, liaison.user, case, platform="x",
                                  platform_account_id=f"9{n:05d}", handle=f"@boats{n}")
        late, _ = accounts.link_account(s, liaison.user, case, platform="x",
                                        platform_account_id="777", handle="@late_seller")
        late_target, _ = targets.flag_target(s, liaison.user, case, reason="late seller",
                                             account=late)
        last_post = targets.flag_target(s, liaison.user, case, reason="advert",
                                        url="https://x.com/boats/status/999")[0]
    _sign_in(api.client, "lina")
    page = api.client.get(f"{BASE}?kind=provider-preservation&platform=x")
    assert page.status_code == 200
    listed = re.findall(r'id="target-([0-9a-f-]{36})"', page.text)
    assert len(listed) == 2 + 205 + 2  # the world's two on X, then those flagged here
    assert {str(late_target.id), str(last_post.id)} <= set(listed)
    assert "<bdi>@late_seller</bdi> on X (formerly Twitter)" in page.text
    assert "1 other target(s) of the case are on other platforms" in page.text  # Facebook's
    assert "not listed" not in page.text

    monkeypatch.setattr(ui_requests, "MAX_LISTED", 100)  # a page lists so many, and says so
    capped = api.client.get(f"{BASE}?kind=provider-preservation&platform=x").text
    assert re.findall(r'id="target-([0-9a-f-]{36})"', capped) == listed[:100]
    assert re.search(r"109 more target\(s\) on [^,]+, flagged later, are not listed: ticking "
                     r"none includes them", capped)


def test_a_request_with_values_longer_than_a_page_is_generated(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _liaison, _world = _liaison_world(api)
    token = _sign_in(api.client, "lina")
    address = "\n".join(f"Building {i}, Rottwerndorfer Str. 22, 01796 Pirna" for i in range(140))
    made = _generate(api.client, token, **{"field.issuing.address": address})
    request_id = _request_id(made)
    pdf = api.client.get(f"{API_BASE}/{request_id}/document")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-raw", "-", "-"], input=pdf.content, check=True,
                          capture_output=True).stdout.decode()
    assert "Building 139," in text

    # Should a request still not fit the pages, the form comes back saying so, as typed.
    def too_large(*_args: Any) -> None:
        raise LayoutError("Flowable too large on page 2")

    monkeypatch.setattr(service_adapter, "render_pdf", too_large)
    refused = _generate(api.client, token, **{"field.issuing.address": address})
    assert refused.status_code == 422
    assert "too large for a page; shorten the longest values" in _alert(refused.text)
    assert "Building 139, Rottwerndorfer" in refused.text


def test_a_refused_generate_form_comes_back_with_why_and_what_was_typed(api: Api) -> None:
    _liaison, _world = _liaison_world(api)
    token = _sign_in(api.client, "lina")
    before = _actions(api)

    # Every missing value at once, the second step kept with what was typed.
    incomplete = api.client.post(BASE, data={
        "csrf_token": token, "kind": "eu-epoc-pr", "platform": "x",
        "field.addressee_type": "legal representative <b>", "extra": "issuing.person=K. Weber",
        "date_from": "2025-09-01", "date_to": ""})
    assert incomplete.status_code == 422
    _assert_page_headers(incomplete)
    listed = _listed(incomplete.text)
    assert "problems to fix" in listed
    # Said first, above the list of requests, and linking to the form's list of problems.
    assert _said_first(incomplete.text, "generate-refused") == (
        "The request cannot be generated: 12 problems to fix. Go to the form")
    # Each problem once, by the label the form gives its field, linking to it; no API names.
    for expected in ("Issuing authority: Name : needed: not in the settings",
                     "Issuing authority: Time zone : needed",
                     "Records: from and to : give both the start and the end of the period",
                     "Summary of the facts : needed"):
        assert expected in listed, (expected, listed)
    for internal in ("issuing.name", "time_zone", "date_range", "issuing_state", "(none)"):
        assert internal not in listed, internal
    assert listed.count("Records") == 1 and listed.count("Summary of the facts") == 1
    assert '<a href="#f-issuing-name">Issuing authority: Name</a>' in incomplete.text
    assert '<a href="#date_to">Records: from and to</a>' in incomplete.text
    # Each field in error is marked and says what is wrong with it, next to it.
    assert re.search(r'<p class="field-problem" id="problem-f-facts">needed</p>\s*<textarea '
                     r'id="f-facts" name="field.facts"[^>]* aria-invalid="true" '
                     r'aria-describedby="problem-f-facts"', incomplete.text), incomplete.text
    assert re.search(r'id="date_to" name="date_to" type="date" value="" aria-invalid="true"',
                     incomplete.text)
    assert not re.search(r'id="date_from"[^>]*aria-invalid', incomplete.text)
    assert re.search(r'id="f-issuing-name"[^>]*aria-invalid="true"', incomplete.text)
    assert not re.search(r'id="f-issuing-person"[^>]*aria-invalid', incomplete.text)
    assert ">legal representative &lt;b&gt;</textarea>" in incomplete.text
    assert ">issuing.person=K. Weber</textarea>" in incomplete.text
    assert 'name="date_from" type="date" value="2025-09-01"' in incomplete.text
    assert "European Preservation Order Certificate (EPOC-PR)" in incomplete.text

    bad_date = _generate(api.client, token, date_to="2026-02-31")
    assert bad_date.status_code == 422
    assert "To (date, UTC, the whole day) : '2026-02-31' is not a date (YYYY-MM-DD)" in _listed(
        bad_date.text)
    assert re.search(r'id="date_to"[^>]*aria-invalid="true"', bad_date.text)
    assert 'value="2026-02-31"' in bad_date.text
    assert 'value="Bundespolizeidirektion Pirna, Gemeinsames Zentrum"' in bad_date.text

    unknown = _generate(api.client, token, platform="myspace")
    assert unknown.status_code == 422
    assert "Unknown platform 'myspace'" in html.unescape(_alert(unknown.text))
    assert 'name="platform"' in unknown.text and "Continue" in unknown.text  # the first step

    bad_line = _generate(api.client, token, extra="no equals sign here")
    assert bad_line.status_code == 422
    assert "Other values : line 1: 'no equals sign here' is not NAME=VALUE" in _listed(
        bad_line.text)
    assert re.search(r'id="extra"[^>]*aria-invalid="true"', bad_line.text)

    bad_step = api.client.get(BASE, params={"kind": "parking-ticket", "platform": "x"})
    assert bad_step.status_code == 422
    assert "Unknown request kind 'parking-ticket'" in html.unescape(_alert(bad_step.text))
    assert "Unknown request kind" in _said_first(bad_step.text, "generate-refused")

    assert _actions(api) == before and _request_count(api) == 0


def test_a_refused_forms_problems_stay_at_their_inputs_whatever_their_words(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # The form places a problem by what it is about, never by reading its words: worded as no
    # check words it today, each still links to its input and is said beside it.
    _liaison_world(api)
    token = _sign_in(api.client, "lina")
    reworded = [
        RequestProblem("Ausstellende Behörde: Bezeichnung fehlt",
                       About("authority", "issuing.name"), "Bezeichnung fehlt"),
        # An instrument field computed from the settings: at the input that overrides it.
        RequestProblem("the state issuing the order is not one the regulation binds",
                       About("field", "issuing_state"), "not bound by the regulation"),
        RequestProblem("the records asked for run backwards", About("period"), "runs backwards"),
        RequestProblem("the platform's portal is closed for maintenance"),
    ]

    def refuse(*_args: Any, kind: str, **_kwargs: Any) -> Any:
        raise RequestIncomplete(kind, reworded)

    monkeypatch.setattr(requests, "generate", refuse)
    refused = _generate(api.client, token, kind="eu-epoc-pr")
    assert refused.status_code == 422
    for label, anchor, said in (("Issuing authority: Name", "f-issuing-name", "Bezeichnung fehlt"),
                                ("Issuing authority: Country", "f-issuing-country",
                                 "not bound by the regulation"),
                                ("Records: from and to", "date_from", "runs backwards")):
        assert f'<a href="#{anchor}">{label}</a>: <bdi>{said}</bdi>' in refused.text, label
        assert f'<p class="field-problem" id="problem-{anchor}">{said}</p>' in refused.text
        assert re.search(rf'id="{anchor}"[^>]*aria-invalid="true"', refused.text), anchor
    assert re.search(r'id="date_to"[^>]*aria-invalid="true"', refused.text)
    # About nothing the form holds: listed as said, linking nowhere.
    assert "<li><bdi>the platform&#39;s portal is closed for maintenance</bdi></li>" in (
        refused.text)
    assert "4 problems to fix" in _listed(refused.text)


# --- one request -----------------------------------------------------------------------------

def _pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "request.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdftotext", "-raw", str(path), "-"], check=True,
                         capture_output=True, text=True).stdout
    return re.sub(r"\s+", " ", out)


def test_the_generated_pdf_and_json_download_from_the_request_page(api: Api,
                                                                   tmp_path: Path) -> None:
    liaison, _world = _liaison_world(api)
    token = _sign_in(api.client, "lina")
    request_id = _request_id(_generate(api.client, token))
    page = api.client.get(f"{BASE}/{request_id}")
    assert page.status_code == 200
    made = api.get(liaison, f"{API_BASE}/{request_id}").json()
    for shown in ("OP/2026/9-PRES-1", "Preservation request", "X (formerly Twitter)",
                  made["pdf_sha256"], made["json_sha256"], "18 U.S.C. 2703(f)",
                  "preservation ends", "Provisional: not sent yet", "request.generated"):
        assert shown in page.text, shown
    links = re.findall(r'<a href="([^"]+)" download>Download (PDF|JSON)</a>', page.text)
    assert [kind for _href, kind in links] == ["PDF", "JSON"]
    before = _actions(api).count("request.document_downloaded")

    pdf = api.client.get(html.unescape(links[0][0]))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == made["pdf_sha256"]
    text = _pdf_text(pdf.content, tmp_path)
    assert "OP/2026/9-PRES-1" in text and "smuggler_ar" in text
    document = api.client.get(html.unescape(links[1][0]))
    assert hashlib.sha256(document.content).hexdigest() == made["json_sha256"]
    assert document.json()["reference"] == "OP/2026/9-PRES-1"
    assert _actions(api).count("request.document_downloaded") == before + 2


def _record(client: TestClient, token: str, request_id: str, **form: Any) -> Any:
    return client.post(f"{BASE}/{request_id}/status", data={"csrf_token": token, **form},
                       follow_redirects=False)


def test_status_changes_and_an_extension_recorded_through_the_forms(api: Api) -> None:
    liaison, _world = _liaison_world(api)
    _member(api, liaison, "boss", Role.SUPERVISOR, Access.WRITE)
    token = _sign_in(api.client, "lina")
    # Generated yesterday (the form's generating is tested above), to be sent hours ago.
    request_id = _generated_ago(api, liaison, timedelta(days=1))

    # A liaison officer may not approve: the page says who may, and a forged post is refused.
    draft = api.client.get(f"{BASE}/{request_id}")
    assert "Next: approval by a supervisor, prosecutor or admin" in draft.text
    assert 'name="status" value="approved"' not in draft.text
    refused = _record(api.client, token, request_id, status="approved")
    assert refused.status_code == 403
    assert "Approving a request needs the role" in refused.text
    assert "Next: approval by a supervisor" in refused.text

    boss_client = _browser_client(api)
    boss_token = _sign_in(boss_client, "boss")
    assert 'name="status" value="approved"' in boss_client.get(f"{BASE}/{request_id}").text
    assert _record(boss_client, boss_token, request_id, status="approved").status_code == 303

    # Sending out of order, a bad time and a time to come: each refused with why and the input.
    early = _record(api.client, token, request_id, status="fulfilled",
                    platform_reference="LE-77")
    assert early.status_code == 409
    assert "it cannot become fulfilled (next: sent, withdrawn)" in early.text
    assert 'value="LE-77"' in early.text
    bad_time = _record(api.client, token, request_id, status="sent", at="yesterday-ish")
    assert bad_time.status_code == 422
    assert "When: 'yesterday-ish' is not a date" in html.unescape(bad_time.text)
    assert 'value="yesterday-ish"' in bad_time.text
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    ahead = _record(api.client, token, request_id, status="sent", at=future)
    assert ahead.status_code == 422 and "in the future" in ahead.text
    # The form is far down the page, which opens at its top: the refusal is said there first.
    assert "The step was not recorded: The time of the change" in _said_first(
        ahead.text, "record-refused")

    sent_at = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    sent = _record(api.client, token, request_id, status="sent",
                   at=sent_at.strftime("%Y-%m-%dT%H:%M"), platform_reference="LE-2026-778",
                   answer="Submitted through the LE portal.")
    assert sent.status_code == 303
    page = api.client.get(f"{BASE}/{request_id}")
    assert '<span class="badge sent running">sent</span>' in page.text
    assert sent_at.strftime("%Y-%m-%d %H:%M UTC") in page.text
    assert "LE-2026-778" in page.text and "Submitted through the LE portal." in page.text
    assert "Provisional" not in page.text
    history = page.text.split("Status history", 1)[1].split("What it asks", 1)[0]
    assert history.index("request.generated") < history.index("request.approved") < (
        history.index("request.sent"))
    assert "boss" in history and "draft → approved" in history and "approved → sent" in history
    assert 'name="from_status" value="sent"' in page.text

    # The sending form again, from a page that still showed the request approved (Back, or a
    # second tab), with another step ticked: refused, nothing recorded, the page as it stands.
    entries = len(_actions(api))
    stale = _record(api.client, token, request_id, status="acknowledged",
                    from_status="approved", platform_reference="LE-2026-778")
    assert stale.status_code == 409
    assert ("The step was not recorded: The request is sent now, not approved as on the page "
            "the form was sent from; choose the step again") in _alert(stale.text)
    # What was typed comes back in each step's form that takes it, no step chosen.
    assert 'id="platform_reference-acknowledged" name="platform_reference" value="LE-2026-778"' \
        in stale.text
    assert re.findall(r'<details class="step"[^>]* open>', stale.text) == []
    assert len(_actions(api)) == entries
    with api.runtime.session() as session:
        row = session.get(LegalRequest, uuid.UUID(request_id))
        assert row is not None and row.sent_at == sent_at and row.status == "sent"
    case_page = api.client.get(f"/cases/{quote(REFERENCE, safe='')}")
    timeline = case_page.text.split("Custody timeline", 1)[1]
    assert "request.sent" in timeline and "LE-2026-778" in timeline

    # A refusal needs its reasons; the answer typed comes back.
    no_reason = _record(api.client, token, request_id, status="refused", answer="No data.")
    assert no_reason.status_code == 422 and "needs at least one reason code" in no_reason.text
    assert re.search(r'<details class="step" id="step-refused" open>.*>No data\.</textarea>',
                     no_reason.text, re.S)

    extension = api.client.post(f"{BASE}/{request_id}/extension",
                                data={"csrf_token": token}, follow_redirects=False)
    extension_id = _request_id(extension)
    shown = api.client.get(f"{BASE}/{extension_id}")
    assert "OP/2026/9-PRES-2" in shown.text and "Extends" in shown.text
    assert f'href="{BASE}/{request_id}">OP/2026/9-PRES-1</a>' in shown.text
    assert "Renewal: please extend the preservation" in shown.text
    original = api.client.get(f"{BASE}/{request_id}")
    assert "Extended by" in original.text and "Generate the extension" not in original.text
    again = api.client.post(f"{BASE}/{request_id}/extension", data={"csrf_token": token})
    assert again.status_code == 409 and "already extended by OP/2026/9-PRES-2" in again.text
    assert "No extension was generated" in _said_first(again.text, "extension-refused")
    assert _actions(api).count("request.generated") == 2

    # A drafted extension extends nothing yet: the page and the list say it is not sent, and
    # say the preservation is extended only once the extension is sent.
    def deadline_badges() -> list[str]:
        page = api.client.get(f"{BASE}/{request_id}").text.split("<h2>Deadlines</h2>", 1)[1]
        row = api.client.get(BASE).text.split(f'href="{BASE}/{request_id}"', 1)[1]
        cell = row.split("</tr>", 1)[0].rsplit('data-label="deadline"', 1)[1]
        return [re.findall(r'<span class="badge[^"]*">([^<]*)</span>', part)[0]
                for part in (page, cell)]

    unsent = "not extended yet: OP/2026/9-PRES-2 is draft, not sent"
    assert deadline_badges() == [unsent, unsent]
    assert _record(boss_client, boss_token, extension_id, status="approved").status_code == 303
    assert deadline_badges() == [unsent.replace("draft", "approved")] * 2
    assert _record(api.client, token, extension_id, status="sent").status_code == 303
    assert deadline_badges() == ["extended by OP/2026/9-PRES-2"] * 2


def test_a_wrong_draft_is_withdrawn_with_its_reason_and_shown_greyed(api: Api) -> None:
    liaison, _world = _liaison_world(api)
    boss = _member(api, liaison, "boss", Role.SUPERVISOR, Access.WRITE)
    token = _sign_in(api.client, "lina")
    wrong = _generated_ago(api, liaison, timedelta(hours=2))
    approved = _generated_ago(api, liaison, timedelta(hours=1))
    _approve(api, boss, approved)
    page = api.client.get(f"{BASE}/{wrong}").text
    # Offered beside the approval it waits for, never opened for the officer; with the reason
    # it needs, and nothing that only a request the platform has could say.
    assert ('<details class="step" id="step-withdrawn">\n      <summary>withdrawn: not to be '
            'sent (say why)</summary>') in page, page
    assert 'id="reason-withdrawn" name="reason"' in page
    assert 'name="platform_reference"' not in page and 'name="answer"' not in page
    approved_page = api.client.get(f"{BASE}/{approved}").text
    assert '<details class="step" id="step-sent" open>' in approved_page
    assert '<details class="step" id="step-withdrawn">' in approved_page
    # Sending takes the platform's reference and its receipt; withdrawing does not.
    sending = approved_page.split('id="step-sent"', 1)[1].split("</details>", 1)[0]
    assert 'name="platform_reference"' in sending and 'name="answer"' in sending
    assert 'name="reason"' not in sending

    bare = _record(api.client, token, wrong, status="withdrawn", reason="  ")
    assert bare.status_code == 422
    assert "needs the reason why it is not to be sent" in _said_first(bare.text,
                                                                      "record-refused")
    # A forged answer with it is refused, the reason typed kept in the form that was sent.
    answered = _record(api.client, token, wrong, status="withdrawn", reason="Wrong account.",
                       answer="kept")
    assert answered.status_code == 422
    assert ("What the platform answered is recorded only with the steps sent, acknowledged, "
            "fulfilled, refused.") in _alert(answered.text)
    assert re.search(r'id="step-withdrawn" open>.*>Wrong account\.</textarea>', answered.text,
                     re.S)
    for request_id, why in ((wrong, "Drafted for the wrong <b>account</b>."),
                            (approved, "Superseded by an emergency request.")):
        done = _record(api.client, token, request_id, status="withdrawn", reason=why)
        assert done.status_code == 303, done.text[:2000]
    shown = api.client.get(f"{BASE}/{wrong}").text
    assert '<span class="badge withdrawn ">withdrawn</span>' in shown
    assert "Drafted for the wrong &lt;b&gt;account&lt;/b&gt;." in shown
    assert "Withdrawn before it was sent: no deadline runs." in shown
    assert "A withdrawn request takes no further step." in shown
    history = shown.split("Status history", 1)[1].split("What it asks", 1)[0]
    assert "request.withdrawn" in history and "draft → withdrawn" in history
    assert "reason:" in history and "wrong &lt;b&gt;account" in history
    listed = api.client.get(BASE).text
    rows = re.findall(r'<tr class="withdrawn">(.*?)</tr>', listed, re.S)
    assert len(rows) == 2, listed
    assert all("withdrawn: no deadline" in r for r in rows)
    assert any("Superseded by an emergency request." in r for r in rows)
    assert _actions(api).count("request.withdrawn") == 2


def test_the_drafter_is_not_offered_the_approval_and_is_told_why(api: Api) -> None:
    liaison, _world = _liaison_world(api)
    sam = _member(api, liaison, "sam", Role.SUPERVISOR, Access.WRITE)
    _member(api, liaison, "pia", Role.PROSECUTOR, Access.WRITE)
    request_id = _generated_ago(api, sam, timedelta(hours=2))
    token = _sign_in(api.client, "sam")

    page = api.client.get(f"{BASE}/{request_id}")
    assert ("Next: approval by another supervisor, prosecutor or admin of the case. You drafted "
            "this request, and four eyes means its drafter does not approve it.") in page.text
    assert 'name="status" value="approved"' not in page.text
    # A post made all the same (an old page, a forged form) is refused with why.
    forged = _record(api.client, token, request_id, status="approved", from_status="draft")
    assert forged.status_code == 409
    assert _alert(forged.text) == (
        "The step was not recorded: Four eyes: you drafted request OP/2026/9-PRES-1, so you may "
        "not approve it; another supervisor, prosecutor or admin of the case must.")
    assert 'name="status" value="approved"' not in forged.text
    assert "request.approved" not in _actions(api)

    other = _browser_client(api)
    other_token = _sign_in(other, "pia")
    shown = other.get(f"{BASE}/{request_id}").text
    assert 'name="status" value="approved"' in shown and "You drafted" not in shown
    assert _record(other, other_token, request_id, status="approved",
                   from_status="draft").status_code == 303
    approved = api.client.get(f"{BASE}/{request_id}").text
    assert '<span class="badge approved queued">approved</span>' in approved
    assert 'name="status" value="sent"' in approved  # the drafter sends it
    assert _actions(api).count("request.approved") == 1


def _sent_99_days_ago(api: Api, liaison: Caller, boss: Caller) -> tuple[str, datetime]:
    """An X preservation generated 100 days ago, approved by `boss` and sent 99 days ago: its
    90 days ended over 8 days ago."""
    request_id = _generated_ago(api, liaison, timedelta(days=100))
    sent_at = (datetime.now(UTC) - timedelta(days=99)).replace(microsecond=0)
    with api.runtime.session() as session:
        case = cases.get_case(session, liaison.user, REFERENCE)
        requests.change_status(session, boss.user, case, uuid.UUID(request_id), "approved",
                               at=sent_at)
        requests.change_status(session, liaison.user, case, uuid.UUID(request_id), "sent",
                               at=sent_at)
    return request_id, sent_at


def test_an_ended_preservation_offers_no_extension_and_says_why(api: Api) -> None:
    liaison, _world = _liaison_world(api)
    boss = _member(api, liaison, "boss", Role.SUPERVISOR, Access.WRITE)
    token = _sign_in(api.client, "lina")
    request_id, sent_at = _sent_99_days_ago(api, liaison, boss)
    # X keeps 90 days, on the issuing authority's (Berlin) calendar: over 9 days ago.
    ended = add_days(sent_at, 90, ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M UTC")
    why = (f"the preservation under request OP/2026/9-PRES-1 ended {ended}: an ended "
           "preservation cannot be extended; make a new preservation request")

    page = api.client.get(f"{BASE}/{request_id}")
    assert "Generate the extension" not in page.text
    assert f'<p class="muted">{why[:1].upper()}{why[1:]}.</p>' in page.text
    forged = api.client.post(f"{BASE}/{request_id}/extension", data={"csrf_token": token})
    assert forged.status_code == 409
    assert _alert(forged.text) == f"No extension was generated: {why[:1].upper()}{why[1:]}."
    over_api = api.post(liaison, f"{API_BASE}/{request_id}/extension")
    assert over_api.status_code == 409
    assert over_api.json() == {"error": "PreservationEnded", "message": why}
    assert _request_count(api) == 1


def test_an_extension_sent_after_the_preservation_ended_says_so_everywhere(api: Api) -> None:
    liaison, _world = _liaison_world(api)
    boss = _member(api, liaison, "boss", Role.SUPERVISOR, Access.WRITE)
    token = _sign_in(api.client, "lina")
    request_id, sent_at = _sent_99_days_ago(api, liaison, boss)
    with api.runtime.session() as session:
        # The renewal was generated in time, 20 days ago ...
        renewal = requests.extend(session, liaison.user, request_id, store=api.runtime.store,
                                  now=datetime.now(UTC) - timedelta(days=20)).request
        renewal_id = str(renewal.id)
    _approve(api, boss, renewal_id)
    # ... and is recorded as sent only now, 9 days after the 90 days ended.
    assert _record(api.client, token, renewal_id, status="sent",
                   from_status="approved").status_code == 303
    ended = add_days(sent_at, 90, ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M UTC")

    page = api.client.get(f"{BASE}/{renewal_id}")
    assert '<span class="badge sent' in page.text
    text = html.unescape(page.text)
    assert "Sent late: sent " in text
    assert (f"after the preservation it extends ended on {ended}: the platform was not bound "
            f"to keep the data from {ended} until it was sent") in text
    history = text.split("<h2>Status history</h2>", 1)[1]
    assert f"after the preservation it extends ended on {ended}" in history
    shown = api.get(liaison, f"{API_BASE}/{renewal_id}").json()
    assert shown["status"] == "sent"
    assert shown["sent_late"]["preservation_ended_at"].startswith(
        ended.replace(" UTC", "").replace(" ", "T"))
    assert f"ended on {ended}" in shown["sent_late"]["note"]
    due = html.unescape(api.client.get("/requests/due", params={"within": "200d"}).text)
    assert due.count("Not a continuation: sent ") >= 1
    assert f"ended on {ended}" in due.split("<tbody>", 1)[1]


def test_the_requests_due_across_cases(api: Api) -> None:
    liaison, world = _liaison_world(api)
    boss = _member(api, liaison, "boss", Role.SUPERVISOR, Access.WRITE)
    token = _sign_in(api.client, "lina")
    # Generated three months ago, so that its deadlines fall due now.
    request_id = _generated_ago(api, liaison, timedelta(days=89))
    assert world.case.reference == REFERENCE
    _approve(api, boss, request_id)
    long_ago = (datetime.now(UTC) - timedelta(days=88)).strftime("%Y-%m-%dT%H:%M")
    assert _record(api.client, token, request_id, status="sent", at=long_ago,
                   ).status_code == 303

    due = api.client.get("/requests/due")
    assert due.status_code == 200
    _assert_page_headers(due)
    rows = due.text.split("<tbody>", 1)[1]
    # X: ask for an extension 7 days before the 90 days end (overdue now), then the end.
    assert rows.index("ask for an extension before") < rows.index("preservation ends")
    assert rows.count('<span class="badge failed">overdue</span>') == 1
    assert rows.count(f'href="{BASE}/{request_id}"') == 2
    assert "Generate the extension from the request&#39;s page." in rows
    assert 'value="14d"' in due.text
    listing = api.client.get(BASE)
    assert '<span class="badge failed">overdue</span>' in listing.text

    narrow = api.client.get("/requests/due", params={"within": "1h"})
    assert narrow.text.count('href="' + f"{BASE}/{request_id}" + '"') == 1  # the overdue one
    bad = api.client.get("/requests/due", params={"within": "soon"})
    assert bad.status_code == 422 and "'soon' is not a period such as 14d" in html.unescape(
        bad.text)
    assert 'value="soon"' in bad.text

    # Someone of another case sees none of it.
    api.user("stranger", password=PASSWORD)
    other = _browser_client(api)
    _sign_in(other, "stranger")
    theirs = other.get("/requests/due", params={"within": "100d"})
    assert theirs.status_code == 200 and "OP/2026/9" not in theirs.text
    assert "Nothing due within 100d" in theirs.text


def test_the_requests_list_pages_newest_first_and_says_which_are_extended(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_requests, "REQUESTS_PER_PAGE", 3)
    liaison, _world = _liaison_world(api)
    boss = _member(api, liaison, "boss", Role.SUPERVISOR, Access.WRITE)
    _sign_in(api.client, "lina")
    made = [_generated_ago(api, liaison, timedelta(days=days)) for days in (5, 4, 3, 2)]
    oldest = made[0]
    _approve(api, boss, oldest)
    with api.runtime.session() as session:
        case = cases.get_case(session, liaison.user, REFERENCE)
        requests.change_status(session, liaison.user, case, uuid.UUID(oldest), "sent",
                               at=datetime.now(UTC) - timedelta(days=4))
        extension = requests.extend(session, liaison.user, oldest, store=api.runtime.store)
        refs = {str(r.id): r.reference_number for r in requests.list_requests(
            session, liaison.user, case)}
    newest_first = [str(extension.request.id), *reversed(made)]

    def listed(page: Any) -> list[str]:
        return re.findall(rf'href="{re.escape(BASE)}/([0-9a-f-]{{36}})"', page.text)

    first = api.client.get(BASE)
    assert first.status_code == 200
    assert listed(first) == newest_first[:3]
    assert "5 requests, newest first, 3 on this page." in first.text
    assert "Newest requests" not in first.text
    older = re.search(r'href="([^"]+)">Older requests</a>', first.text)
    assert older, first.text[:3000]
    second = api.client.get(html.unescape(older.group(1)))
    assert listed(second) == newest_first[3:]
    assert "Older requests" not in second.text and "Newest requests" in second.text
    # The oldest request is on the second page; its extension (a draft) on the first tells its
    # state: not extended until that is sent.
    row = second.text.split(f'href="{BASE}/{oldest}"', 1)[1].split("</tr>", 1)[0]
    assert f"not extended yet: {refs[str(extension.request.id)]} is draft, not sent" in row
    assert api.client.get(BASE, params={"cursor": "not a cursor"}).status_code in (400, 422)


# --- access, CSRF, text ----------------------------------------------------------------------

def test_a_reader_sees_requests_but_may_not_create_or_change_them(api: Api) -> None:
    liaison, _world = _liaison_world(api)
    lina_token = _sign_in(api.client, "lina")
    request_id = _request_id(_generate(api.client, lina_token))
    _member(api, liaison, "rita", Role.SUPERVISOR, Access.READ)
    reader = _browser_client(api)
    token = _sign_in(reader, "rita")
    listing = reader.get(BASE)
    assert listing.status_code == 200 and "OP/2026/9-PRES-1" in listing.text
    assert "Generate a request" not in listing.text and 'method="post"' not in listing.text.split(
        "</header>", 1)[1]
    page = reader.get(f"{BASE}/{request_id}")
    assert page.status_code == 200 and "Download PDF" in page.text
    assert "Record the next step" not in page.text and 'method="post"' not in page.text.split(
        "</header>", 1)[1]
    assert f'{request_id}/status"' not in page.text and "/extension" not in page.text
    before = _actions(api)
    for url, data in ((BASE, PRESERVATION_FORM),
                      (f"{BASE}/{request_id}/status", {"status": "approved"}),
                      (f"{BASE}/{request_id}/extension", {})):
        refused = reader.post(url, data={"csrf_token": token, **data})
        assert refused.status_code == 403, url
        assert "Not allowed" in refused.text and "needs write access" in refused.text
    assert _actions(api) == before and _request_count(api) == 1


def test_a_stranger_gets_the_not_found_page(api: Api) -> None:
    _liaison, world = _liaison_world(api)
    request_id = _request_id(_generate(api.client, _sign_in(api.client, "lina")))
    api.user("stranger", Role.LIAISON, password=PASSWORD)
    stranger = _browser_client(api)
    token = _sign_in(stranger, "stranger")
    answers = [
        stranger.get(BASE),
        stranger.get(BASE, params={"kind": "provider-preservation", "platform": "x"}),
        stranger.get(f"{BASE}/{request_id}"),
        stranger.post(BASE, data={"csrf_token": token, **PRESERVATION_FORM}),
        stranger.post(f"{BASE}/{request_id}/status", data={"csrf_token": token,
                                                           "status": "sent"}),
        stranger.post(f"{BASE}/{request_id}/extension", data={"csrf_token": token}),
        # ... as for what does not exist at all.
        stranger.get("/cases/NO-SUCH/requests"),
        stranger.get(f"{BASE}/not-a-request"),
    ]
    # The owner too gets it for a request id of no request of the case.
    answers.append(api.client.get(f"{BASE}/{world.x_post.id}"))
    for answer in answers:
        assert answer.status_code == 404, answer.text[:500]
        _assert_page_headers(answer)
        assert REFERENCE not in answer.text and "PRES" not in answer.text
    assert len({a.text.split("</header>", 1)[1] for a in answers}) == 1
    assert _request_count(api) == 1


def test_posts_without_the_sessions_token_are_refused(api: Api) -> None:
    _liaison, _world = _liaison_world(api)
    token = _sign_in(api.client, "lina")
    request_id = _request_id(_generate(api.client, token))
    other = _browser_client(api)
    other_token = _sign_in(other, "lina")
    before = _actions(api)
    for sent in ({}, {"csrf_token": ""}, {"csrf_token": "forged"},
                 {"csrf_token": other_token}):
        for url, data in ((BASE, PRESERVATION_FORM),
                          (f"{BASE}/{request_id}/status", {"status": "sent"}),
                          (f"{BASE}/{request_id}/extension", {})):
            refused = api.client.post(url, data={**data, **sent}, follow_redirects=False)
            assert refused.status_code == 403, (url, sent)
            assert "Form refused" in refused.text
    assert _actions(api) == before and _request_count(api) == 1


def test_hostile_and_right_to_left_text_is_shown_as_text(api: Api) -> None:
    liaison, _world = _liaison_world(api, title=HOSTILE, offence="تهريب المهاجرين")
    boss = _member(api, liaison, "boss", Role.SUPERVISOR, Access.WRITE)
    token = _sign_in(api.client, "lina")
    request_id = _request_id(_generate(api.client, token,
                                       **{"field.offence_provision": "<img src=x onerror=1>"}))
    _approve(api, boss, request_id)
    assert _record(api.client, token, request_id, status="sent",
                   platform_reference='"><script>alert(4)</script>',
                   answer="تم الاستلام <b>ok</b>").status_code == 303
    pages = [api.client.get(BASE), api.client.get(f"{BASE}/{request_id}"),
             api.client.get(BASE, params={"kind": "provider-preservation", "platform": "x"})]
    for page in pages:
        assert page.status_code == 200
        assert "<script" not in page.text.lower() and "<img src=x" not in page.text
    for page in (pages[0], pages[2]):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # the case's title
    shown = pages[1].text
    assert "&lt;img src=x onerror=1&gt;" in shown
    assert "&#34;&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in shown
    # Right-to-left values keep their own direction.
    assert f'<td data-label="value" dir="auto">{ARABIC_HANDLE}</td>' in shown
    assert '<dd class="prose" dir="auto">تم الاستلام &lt;b&gt;ok&lt;/b&gt;</dd>' in shown
    assert ('<td class="prose" dir="auto">تهريب المهاجرين (&lt;img src=x onerror=1&gt;)</td>'
            in shown)
    assert '<td data-label="reason" dir="auto">the advertiser</td>' in pages[2].text


# --- in Chromium -----------------------------------------------------------------------------

@pytest.fixture
def standing(tmp_path: Path, database_url: str) -> Iterator[Api]:
    """An app whose settings hold the issuing authority's standing details, as a unit's do."""
    runtime = build_runtime(tmp_path / "home", database_url, **{
        f"authority_{name.split('.', 1)[1]}": value for name, value in AUTHORITY_FIELDS.items()})
    with api_over(runtime) as made:
        yield made


@pytest.mark.browser
def test_a_liaison_officer_generates_a_preservation_request_and_sends_it_in_chromium(
    standing: Api,
) -> None:
    api = standing
    SHOTS.mkdir(parents=True, exist_ok=True)
    liaison, _world = _liaison_world(
        api, title="Crossing adverts on X", offence_provision="§ 96 AufenthG",
        max_penalty_years=10, facts="Adverts offer boat crossings with prices and a phone "
        "number; they are edited and removed within days.")
    with api.runtime.session() as session:
        users.get_user(session, "lina").display_name = "Lina Haddad"
    boss = _member(api, liaison, "boss", Role.SUPERVISOR, Access.WRITE)
    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served, refused_status=422,  # the refused form
                        accept_downloads=True) as page:

        page.goto(f"{served}{BASE}")
        assert urlsplit(page.url).path == "/login"
        sign_in_on_page(page, "lina", PASSWORD)
        page.get_by_role("heading", name="Generate a request").wait_for()
        page.screenshot(path=SHOTS / "requests-empty.png", full_page=True)

        row = page.locator("tr", has_text="Preservation request").filter(
            has_text="X (formerly Twitter)")
        row.get_by_role("link", name="Fill in").click()
        page.get_by_role("heading", name="Targets on X (formerly Twitter)").wait_for()
        # Without the period a preservation asks for, the form comes back saying so.
        page.check(f"#target-{_world.x_post.id}")
        page.fill("#f-offence_provision", "§ 96 Abs. 2 AufenthG")
        page.click("text=Generate request")
        alert = page.locator(".alert")
        assert "Records: from and to: needed" in alert.inner_text(), alert.inner_text()
        assert alert.inner_text().count("Records") == 1
        assert page.is_checked(f"#target-{_world.x_post.id}")
        assert page.input_value("#f-offence_provision") == "§ 96 Abs. 2 AufenthG"
        page.screenshot(path=SHOTS / "generate-refused.png", full_page=True)
        # The list's link leads to the field, which is marked and says what is wrong with it.
        alert.get_by_role("link", name="Records: from and to").click()
        assert page.evaluate("location.hash") == "#date_from"
        date_from = page.get_by_label("From (date, UTC)")
        assert date_from.get_attribute("aria-invalid") == "true"
        assert page.get_by_label("To (date, UTC, the whole day)").get_attribute(
            "aria-invalid") == "true"
        assert page.locator("#problem-date_from").inner_text() == "needed"
        assert page.locator("#f-offence_provision").get_attribute("aria-invalid") is None
        page.set_viewport_size({"width": 420, "height": 900})
        page.screenshot(path=SHOTS / "generate-refused-field-420.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        page.set_viewport_size({"width": 1280, "height": 900})
        page.fill("#date_from", "2025-09-01")
        page.fill("#date_to", "2026-03-01")
        page.screenshot(path=SHOTS / "generate-form.png", full_page=True)
        page.click("text=Generate request")
        page.get_by_role("heading", name="Status history").wait_for()
        assert "OP/2026/9-PRES-1" in page.locator("h1").inner_text()
        assert "Next: approval" in page.locator("main").inner_text()
        with page.expect_download() as download:
            page.click("text=Download PDF")
        saved = download.value.path()
        assert saved is not None and Path(saved).read_bytes().startswith(b"%PDF")
        page.screenshot(path=SHOTS / "request-draft.png", full_page=True)

        # The supervisor approves (on a page of their own); the officer sends it.
        with api.runtime.session() as session:
            request_id = session.scalars(select(LegalRequest.id)).one()
        _approve(api, boss, str(request_id))
        page.reload()
        # Sending, the one step forward, is open; withdrawing is not.
        assert page.locator("details.step[open] summary").all_inner_texts() == [
            "sent to the platform"]
        page.fill("#platform_reference-sent", "LE-2026-778")
        page.fill("#answer-sent", "Submitted through the X law-enforcement portal.")
        page.screenshot(path=SHOTS / "request-record.png", full_page=True)
        page.click("button:has-text('Record: sent')")
        page.get_by_role("heading", name="Status history").wait_for()
        assert page.locator(".head .badge").first.inner_text() == "sent"
        history = page.locator("table.history").inner_text()
        assert "request.sent" in history and "LE-2026-778" in history
        page.screenshot(path=SHOTS / "request-sent.png", full_page=True)

        page.click("text=Legal requests")
        page.get_by_role("heading", name="Generate a request").wait_for()
        page.screenshot(path=SHOTS / "requests-list.png", full_page=True)
        page.click("text=Due across your cases")
        page.get_by_role("heading", name="Legal requests due").wait_for()
        page.click("text=90d")
        page.locator("table.due").wait_for()
        page.screenshot(path=SHOTS / "requests-due.png", full_page=True)


@pytest.mark.browser
def test_a_supervisor_who_drafted_a_request_leaves_its_approval_to_another_in_chromium(
    standing: Api,
) -> None:
    api = standing
    SHOTS.mkdir(parents=True, exist_ok=True)
    liaison, _world = _liaison_world(api)
    sam = _member(api, liaison, "sam", Role.SUPERVISOR, Access.WRITE)
    _member(api, liaison, "pia", Role.PROSECUTOR, Access.WRITE)
    request_id = _generated_ago(api, sam, timedelta(hours=1))
    url = f"{BASE}/{request_id}"
    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser:
        with walled_page(browser, served) as page:
            page.goto(f"{served}{url}")
            sign_in_on_page(page, "sam", PASSWORD)
            page.get_by_role("heading", name="Record the next step").wait_for()
            record = page.locator("#record + section.card")
            assert "You drafted this request, and four eyes means its drafter does not " \
                "approve it." in record.inner_text()
            # Only withdrawing is offered, and not opened.
            assert page.locator("details.step").evaluate_all(
                "steps => steps.map(d => [d.id, d.open])") == [["step-withdrawn", False]]
            record.scroll_into_view_if_needed()
            page.screenshot(path=SHOTS / "request-drafter-four-eyes.png", full_page=True)

        with walled_page(browser, served) as page:
            page.goto(f"{served}{url}")
            sign_in_on_page(page, "pia", PASSWORD)
            page.get_by_role("heading", name="Record the next step").wait_for()
            assert "You drafted" not in page.locator("main").inner_text()
            assert page.locator("details.step[open]").get_attribute("id") == "step-approved"
            page.click("button:has-text('Record: approved')")
            page.get_by_role("heading", name="Status history").wait_for()
            assert page.locator(".head .badge").first.inner_text() == "approved"
            history = page.locator("table.history").inner_text()
            assert "request.approved" in history and "pia" in history
            page.screenshot(path=SHOTS / "request-approved-by-another.png", full_page=True)


@pytest.mark.browser
def test_every_kinds_generate_form_fits_a_phone_in_chromium(api: Api) -> None:
    """Each kind's form, with its own data categories (some a whole sentence long), at 420 px."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    _liaison_world(api)
    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served) as page:
        page.set_viewport_size({"width": 420, "height": 900})
        page.goto(f"{served}/login?next={quote(BASE, safe='')}")
        sign_in_on_page(page, "lina", PASSWORD)
        kinds = page.locator("#kind option").evaluate_all("os => os.map(o => o.value)")
        assert "eu-epoc-pr" in kinds
        for kind in kinds:
            page.goto(f"{served}{BASE}?kind={kind}&platform=x#generate")
            page.locator("input[name=category]").first.wait_for()
            page.screenshot(path=SHOTS / f"generate-{kind}-420.png", full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= 420, kind


@pytest.mark.browser
def test_a_refused_form_far_down_is_said_in_the_first_screen_in_chromium(
    api: Api, tmp_path: Path,
) -> None:
    """A refused page opens at its top, where the forms of a request's page (more than a screen
    down) are out of sight: the refusal is said there, at desktop and phone width, and leads to
    the form; a refused file form says the file is to be chosen again."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    lina = api.user("lina", Role.LIAISON, password=PASSWORD)
    with api.runtime.session() as session:
        world = make_sent_request(session, api.runtime.store, api.runtime.settings,
                                  actor=lina.user, reference=REFERENCE,
                                  generated_at=datetime.now(UTC) - timedelta(days=2),
                                  sent_at=datetime.now(UTC) - timedelta(days=1))
    url = f"{BASE}/{world.request.id}"
    answer = tmp_path / "subscriber.csv"
    answer.write_bytes(b"account_id,ip\n1234567890,203.0.113.7\n")

    def said_in_first_screen(width: int, name: str) -> str:
        page.set_viewport_size({"width": width, "height": 900})
        refusal = page.locator(".refused")
        box = refusal.bounding_box()
        assert page.evaluate("window.scrollY") == 0
        assert box is not None and box["y"] + box["height"] <= 900, (width, box)
        # Within the width too: a refusal may hold a SHA-256, one word of 64 letters.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate("e => e.scrollWidth <= e.clientWidth", refusal.element_handle())
        page.screenshot(path=SHOTS / f"{name}-{width}.png")
        return refusal.inner_text()

    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served, refused_status=(409, 422)) as page:
        page.goto(f"{served}{url}")
        sign_in_on_page(page, "lina", PASSWORD)
        page.get_by_role("heading", name="Record the next step").wait_for()
        page.click("#step-acknowledged summary")
        page.fill("#at-acknowledged",
                  (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))
        page.fill("#platform_reference-acknowledged", "LE-2026-778")
        page.click("button:has-text('Record: acknowledged')")
        page.locator(".refused").wait_for()
        for width in (1280, 420):
            shown = said_in_first_screen(width, "request-step-refused")
            assert "The step was not recorded: The time of the change" in shown
        page.get_by_role("link", name="Go to the form").click()
        assert page.evaluate("location.hash") == "#record-refused"
        assert page.locator("#record-refused").is_visible()
        # The refused step's form is open below its refusal, with what was typed.
        assert page.locator("details.step[open]").get_attribute("id") == "step-acknowledged"
        assert page.input_value("#platform_reference-acknowledged") == "LE-2026-778"
        page.screenshot(path=SHOTS / "request-step-refused-form-420.png")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.locator("#record").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "request-step-refused-form-1280.png")

        # The same file twice: refused, what was typed kept, the file to be chosen again.
        for _ in range(2):
            page.set_input_files("#file", str(answer))
            page.fill("#received_at", (datetime.now(UTC) - timedelta(hours=3)).strftime(
                "%Y-%m-%dT%H:%M:%S"))
            page.fill("#via_detail", "portal download")
            page.click("button:has-text('Keep the file')")
            page.get_by_role("heading", name="Status history").wait_for()
        for width in (1280, 420):
            assert "Nothing was kept" in said_in_first_screen(width, "request-file-refused")
        page.get_by_role("link", name="Go to the form").click()
        assert page.input_value("#via_detail") == "portal download"
        assert page.eval_on_selector("#file", "input => input.files.length") == 0
        beside = page.locator("#problem-file")
        assert beside.inner_text() == ("Choose the file again: a browser cannot keep a chosen "
                                       "file when a form comes back.")
        beside.scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "request-file-refused-form-420.png")
        page.set_viewport_size({"width": 1280, "height": 900})

        # The generate form, below the list of requests, without the period it needs.
        page.goto(f"{served}{BASE}?kind=provider-preservation&platform=x#generate")
        page.click("text=Generate request")
        page.locator(".refused").wait_for()
        for width in (1280, 420):
            assert "The request cannot be generated" in said_in_first_screen(
                width, "generate-refused-top")
        page.get_by_role("link", name="Go to the form").click()
        assert page.evaluate("location.hash") == "#generate-refused"


@pytest.mark.browser
def test_a_liaison_officer_withdraws_a_wrong_draft_in_chromium(api: Api) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    liaison, _world = _liaison_world(api)
    kept = _generated_ago(api, liaison, timedelta(hours=3))
    wrong = _generated_ago(api, liaison, timedelta(hours=2))
    with served_app(api.runtime) as served, BrowserSession(api.runtime.settings) as browser, \
            walled_page(browser, served) as page:
        page.goto(f"{served}{BASE}/{wrong}")
        sign_in_on_page(page, "lina", PASSWORD)
        page.get_by_role("heading", name="Record the next step").wait_for()
        # A draft's steps take no platform's reference or answer: it has not reached one.
        assert page.locator("#record + section.card input[name=platform_reference]").count() == 0
        assert page.locator("#record + section.card textarea[name=answer]").count() == 0
        page.click("#step-withdrawn summary")
        page.fill("#reason-withdrawn",
                  "Drafted for the wrong account; redrafted as the next request.")
        page.locator("#record").scroll_into_view_if_needed()
        for width in (1280, 420):
            page.set_viewport_size({"width": width, "height": 900})
            page.locator("#record + section.card").screenshot(
                path=SHOTS / f"request-draft-steps-{width}.png")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.click("button:has-text('Record: withdrawn')")
        page.get_by_role("heading", name="Status history").wait_for()
        assert page.locator(".head .badge").first.inner_text() == "withdrawn"
        facts = page.locator("dl.facts").first.inner_text()
        assert "Drafted for the wrong account; redrafted" in facts
        for width in (1280, 420):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=SHOTS / f"request-withdrawn-{width}.png", full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.goto(f"{served}{BASE}")
        row = page.locator("tr.withdrawn")
        assert row.count() == 1 and "redrafted" in row.inner_text()
        # Greyed: the withdrawn row's text is the muted colour, the other request's is not.
        colour = "e => getComputedStyle(e).color"
        assert row.locator("td").nth(1).evaluate(colour) != page.locator(
            "tr", has=page.locator(f'a[href$="{kept}"]')).locator("td").nth(1).evaluate(colour)
        for width in (420, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=SHOTS / f"requests-withdrawn-{width}.png", full_page=True)
