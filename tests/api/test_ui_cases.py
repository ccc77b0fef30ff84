"""The pages of a case's own record (`api/ui/cases.py`, `api/ui/notes.py`): opening a case,
editing, closing and reopening it, its members, notes and their revisions, its custody history
and the auditor's list; each through its form as a user sends it, with the custody entry it
writes, its refusals, who gets no form and a 403, CSRF; and one walk in Chromium."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from capture.browser import BrowserSession
from evidence import cases, custody, targets
from evidence.models import Access, Case, CustodyEntry, Role
from tests.api.conftest import Api, Caller, served_app, sign_in_on_page, walled_page
from tests.api.test_ui import HOSTILE, PASSWORD, _browser_client, _sign_in
from tests.api.test_ui_phone import PAST_THE_WINDOW

REFERENCE = "OP/2026/21"
CASE = f"/cases/{quote(REFERENCE, safe='')}"
SHOTS = Path("/tmp/ui-ui-cases")
NEW_CASE = {"reference": REFERENCE, "title": "Crossing adverts, Evros",
            "offence": "Migrant smuggling", "offence_provision": "", "max_penalty_years": "10",
            "facts": "", "jurisdiction": "gr", "handling_code": "RESTRICTED", "contact": ""}


def _entries(api: Api, reference: str = REFERENCE) -> list[dict[str, Any]]:
    """The case's custody entries as they say themselves, oldest first."""
    with api.runtime.session() as session:
        case = session.scalars(select(Case).where(Case.reference == reference)).first()
        if case is None:
            return []
        return [custody.describe(e) for e in session.scalars(
            select(CustodyEntry).where(CustodyEntry.case_id == case.id)
            .order_by(CustodyEntry.seq))]


def _changes(api: Api, reference: str = REFERENCE) -> list[dict[str, Any]]:
    """The case's entries but for reads of it (case.viewed), which every page writes."""
    return [e for e in _entries(api, reference) if e["action"] != "case.viewed"]


def _actions(api: Api) -> list[str]:
    return [e["action"] for e in _changes(api)]


def _text(page: Any) -> str:
    return html.unescape(page.text)


def _manager(api: Api) -> tuple[Caller, str]:
    """Nadia, signed in on `api.client`, manager of the case REFERENCE; and her form token."""
    nadia = api.user("nadia", password=PASSWORD)
    with api.runtime.session() as session:
        cases.create_case(session, nadia.user, reference=REFERENCE, title="Boats",
                          jurisdiction="GR")
    return nadia, _sign_in(api.client, "nadia")


def _member(api: Api, owner: Caller, name: str, access: Access) -> Caller:
    caller = api.user(name, password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.get_case(session, owner.user, REFERENCE)
        cases.add_member(session, owner.user, case, caller.user, access)
    return caller


def _add_note(api: Api, token: str, body: str) -> str:
    """Add a note to the case through its form; returns the note page's path."""
    added = api.client.post(f"{CASE}/notes", data={"csrf_token": token, "body": body},
                            follow_redirects=False)
    assert added.status_code == 303, added.text
    return str(added.headers["location"]).split("?")[0]


def _refused(client: Any, token: str, posts: list[tuple[str, dict[str, str]]],
             status: int) -> None:
    """Each form posted (with its token) is refused with `status`."""
    for path, data in posts:
        answer = client.post(path, data={"csrf_token": token, **data})
        assert answer.status_code == status, (path, answer.text)


def _write_forms(page: str) -> list[str]:
    """Where the page's forms post, but for signing out."""
    return [a for a in re.findall(r'<form method="post" action="([^"]*)"', page)
            if a != "/logout"]


# --- opening a case ------------------------------------------------------------------------------

def test_a_case_opened_through_the_form_is_recorded_with_its_opener_as_manager(api: Api) -> None:
    api.user("nadia", password=PASSWORD)
    token = _sign_in(api.client, "nadia")
    assert 'href="/new-case"' in api.client.get("/").text
    form = api.client.get("/new-case")
    assert form.status_code == 200 and 'name="handling_code"' in form.text
    made = api.client.post("/new-case", data={"csrf_token": token, **NEW_CASE},
                           follow_redirects=False)
    assert made.status_code == 303, made.text
    assert made.headers["location"] == CASE
    page = api.client.get(CASE)
    assert "Edit or close" in page.text  # she manages it
    assert "Crossing adverts, Evros" in page.text and "RESTRICTED" in page.text
    entries = _entries(api)
    assert [e["action"] for e in entries][:2] == ["case.created", "case.member_added"]
    details = entries[0]["details"]
    assert (details["jurisdiction"], details["handling_code"], details["max_penalty_years"]) == (
        "GR", "RESTRICTED", "10")
    assert entries[1]["details"] == {"user": "nadia", "access": "manage"}
    assert "Crossing adverts, Evros" in api.client.get("/").text


@pytest.mark.parametrize(("changes", "status", "field", "message"), [
    ({"reference": "op/2026/21"}, 409, "reference",
     "Case 'OP/2026/21' already exists ('op/2026/21' differs only in capital letters)."),
    ({"jurisdiction": "EL"}, 422, "jurisdiction",
     "Jurisdiction 'EL' is written 'GR' in ISO 3166-1."),
    ({"jurisdiction": "ZZ"}, 422, "jurisdiction",
     "Jurisdiction 'ZZ' is not an ISO 3166-1 country code (such as DE or GR)."),
    ({"title": "   "}, 422, "title", "A case needs a title."),
    ({"title": "x" * 501}, 422, "title", "Title holds at most 500 characters."),
    ({"max_penalty_years": "life"}, 422, "max_penalty_years",
     "Maximum penalty 'life' is not a number of years."),
    ({"reference": "-bad ref"}, 422, "reference", "must be 1-100 letters, digits or . _ / -"),
])
def test_a_refused_new_case_comes_back_with_what_was_typed_and_why(
        api: Api, changes: dict[str, str], status: int, field: str, message: str) -> None:
    _nadia, token = _manager(api)  # REFERENCE is taken
    typed = {**NEW_CASE, "reference": "OP/2026/22", "offence": f"Smuggling {HOSTILE}",
             **changes}
    before = _changes(api)
    refused = api.client.post("/new-case", data={"csrf_token": token, **typed})
    assert refused.status_code == status, refused.text
    # Under the field it is about, the field marked; and in the one alert at the top.
    said = re.search(rf'<p class="field-problem" id="{field}-error">([^<]*)</p>', refused.text)
    assert said and message in html.unescape(said.group(1)), refused.text
    assert f'aria-invalid="true" aria-describedby="{field}-error"' in refused.text
    assert refused.text.count('role="alert"') == 1
    assert message in _text(refused).split('role="alert"', 1)[1].split("</div>", 1)[0]
    for name in ("reference", "title", "jurisdiction", "handling_code", "max_penalty_years"):
        assert f'value="{html.escape(typed[name])}"' in refused.text, name
    assert f">{html.escape(typed['offence'])}</textarea>" in refused.text
    assert HOSTILE not in refused.text
    assert _changes(api) == before and _entries(api, typed["reference"]) == []


def _beside(page: Any) -> dict[str, str]:
    """What a refused case form says beside each of its inputs, by the input's name."""
    return {name: html.unescape(text) for name, text in re.findall(
        r'<p class="field-problem" id="([a-z_]+)-error">([^<]*)</p>', page.text)}


def test_a_new_case_with_several_problems_is_refused_for_all_at_once(api: Api) -> None:
    _nadia, token = _manager(api)  # REFERENCE is taken
    typed = {**NEW_CASE, "reference": "", "title": "", "jurisdiction": "XX1",
             "max_penalty_years": "life", "facts": "x" * 100_001, "offence": "Smuggling"}
    before = _changes(api)
    refused = api.client.post("/new-case", data={"csrf_token": token, **typed})
    assert refused.status_code == 422, refused.text
    assert _beside(refused) == {
        "reference": "Case reference '' must be 1-100 letters, digits or . _ / - and start "
                     "with a letter or digit.",
        "title": "A case needs a title.",
        "max_penalty_years": "Maximum penalty 'life' is not a number of years.",
        "facts": "Facts holds at most 100,000 characters.",
        "jurisdiction": "Jurisdiction 'XX1' must be an ISO 3166 country code such as DE or GR, "
                        "or a subdivision such as US-CA.",
    }
    top = _text(refused).split('id="case-refused"', 1)[1].split("</div>", 1)[0]
    assert "The case was not opened: 5 problems, each said at its field." in top
    # Listed in the form's order, each linking to its input.
    assert re.findall(r'<a href="#([a-z_]+)">', top) == [
        "reference", "title", "max_penalty_years", "facts", "jurisdiction"]
    assert refused.text.count('aria-invalid="true"') == 5
    assert 'value="XX1"' in refused.text and 'value="life"' in refused.text
    assert ">Smuggling</textarea>" in refused.text
    assert _changes(api) == before

    # A reference taken is said with the rest, not after they are fixed.
    taken = api.client.post("/new-case", data={"csrf_token": token, **NEW_CASE,
                                               "title": "   ", "jurisdiction": "EL"})
    assert taken.status_code == 422, taken.text
    assert _beside(taken) == {"reference": "Case 'OP/2026/21' already exists.",
                              "title": "A case needs a title.",
                              "jurisdiction": "Jurisdiction 'EL' is written 'GR' in ISO 3166-1."}
    assert _changes(api) == before


def test_an_edit_with_several_problems_is_refused_for_all_at_once(api: Api) -> None:
    _nadia, token = _manager(api)
    before = _changes(api)
    refused = api.client.post(f"{CASE}/edit", data={
        "csrf_token": token, **NEW_CASE, "title": "", "jurisdiction": "UK",
        "max_penalty_years": "0", "contact": "x" * 501})
    assert refused.status_code == 422, refused.text
    assert _beside(refused) == {
        "title": "A case needs a title.",
        "max_penalty_years": "Maximum penalty must be more than 0 and at most 100 years, not "
                             "'0'; for a life sentence name it in the provision and give no "
                             "maximum.",
        "jurisdiction": "Jurisdiction 'UK' is written 'GB' in ISO 3166-1.",
        "contact": "Contact holds at most 500 characters.",
    }
    assert "Nothing was saved: 4 problems, each said at its field." in _text(refused)
    assert 'value="UK"' in refused.text and _changes(api) == before


def test_an_auditor_opens_no_case(api: Api) -> None:
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    token = _sign_in(api.client, "aud")
    home = api.client.get("/")
    assert "/new-case" not in home.text and 'href="/audit"' in home.text
    assert api.client.get("/new-case").status_code == 403
    refused = api.client.post("/new-case", data={"csrf_token": token, **NEW_CASE})
    assert refused.status_code == 403 and "auditor" in refused.text
    assert _entries(api) == []


# --- editing, closing, reopening -----------------------------------------------------------------

def test_a_manager_edits_closes_and_reopens_the_case_each_recorded(api: Api) -> None:
    _nadia, token = _manager(api)
    assert f'href="{CASE}/edit"' in api.client.get(CASE).text
    form = api.client.get(f"{CASE}/edit")
    assert 'value="Boats"' in form.text and 'value="GR"' in form.text
    edited = api.client.post(f"{CASE}/edit", data={
        "csrf_token": token, **NEW_CASE, "title": "Boats and vans", "jurisdiction": "de",
        "facts": "Adverts offer crossings."}, follow_redirects=True)
    assert "Saved; the changes are recorded" in edited.text
    assert 'value="Boats and vans"' in edited.text and 'value="DE"' in edited.text
    changes = _changes(api)[-1]
    assert changes["action"] == "case.updated"
    assert changes["details"]["changes"]["title"] == {"from": "Boats", "to": "Boats and vans"}
    assert changes["details"]["changes"]["jurisdiction"] == {"from": "GR", "to": "DE"}
    assert "to_sha256" in changes["details"]["changes"]["facts"]

    refused = api.client.post(f"{CASE}/edit", data={
        "csrf_token": token, **NEW_CASE, "title": "Boats again", "jurisdiction": "UK"})
    assert refused.status_code == 422
    assert "Jurisdiction 'UK' is written 'GB' in ISO 3166-1." in _text(refused)
    assert 'value="Boats again"' in refused.text and 'value="UK"' in refused.text
    assert _actions(api)[-1] == "case.updated"  # nothing more

    closed = api.client.post(f"{CASE}/close", data={"csrf_token": token,
                                                    "reason": "Referred to the prosecutor"},
                             follow_redirects=True)
    assert "Case closed" in closed.text and "Reopen the case" in closed.text
    assert 'action="/cases/OP%2F2026%2F21/edit"' not in closed.text  # a closed case stands
    assert _changes(api)[-1]["action"] == "case.closed"
    assert _changes(api)[-1]["details"] == {"reason": "Referred to the prosecutor",
                                            "jobs_cancelled": [], "watches_stopped": []}
    again = api.client.post(f"{CASE}/close", data={"csrf_token": token, "reason": "twice"})
    assert again.status_code == 409 and "is already closed" in _text(again)
    assert 'value="twice"' in again.text
    reopened = api.client.post(f"{CASE}/reopen", data={"csrf_token": token, "reason": ""},
                               follow_redirects=True)
    assert "Case reopened." in reopened.text
    assert _actions(api)[-2:] == ["case.closed", "case.reopened"]


def test_a_writer_and_an_auditor_get_no_edit_form_and_a_403_for_posting_one(api: Api) -> None:
    nadia, _token = _manager(api)
    _member(api, nadia, "petros", Access.WRITE)
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    before = _changes(api)
    for name in ("petros", "aud"):
        client = _browser_client(api)
        token = _sign_in(client, name)
        if name == "petros":
            page = client.get(CASE)
            assert f"{CASE}/edit" not in page.text and "Edit or close" not in page.text
        assert client.get(f"{CASE}/edit").status_code == 403
        _refused(client, token, [(f"{CASE}/edit", {**NEW_CASE, "title": "Mine"}),
                                 (f"{CASE}/close", {}), (f"{CASE}/reopen", {})], 403)
    assert _changes(api) == before


# --- members -----------------------------------------------------------------------------------

def test_a_manager_adds_changes_and_removes_members_each_recorded(api: Api) -> None:
    _nadia, token = _manager(api)
    api.user("petros")
    page = api.client.get(f"{CASE}/members")
    assert page.status_code == 200 and "nadia" in page.text and "manage" in page.text
    added = api.client.post(f"{CASE}/members", data={"csrf_token": token, "user": "petros",
                                                     "access": "write", "at": "add"},
                            follow_redirects=True)
    assert "Access given" in added.text and 'id="member-petros"' in added.text
    changed = api.client.post(f"{CASE}/members", data={"csrf_token": token, "user": "petros",
                                                       "access": "read", "at": "petros"},
                              follow_redirects=True)
    assert re.search(r'value="read" selected', changed.text.split('id="member-petros"')[1])
    removed = api.client.post(f"{CASE}/members/petros/remove", data={"csrf_token": token},
                              follow_redirects=True)
    assert "Member removed" in removed.text and 'id="member-petros"' not in removed.text
    entries = _changes(api)[-3:]
    assert [(e["action"], e["details"]) for e in entries] == [
        ("case.member_added", {"user": "petros", "access": "write"}),
        ("case.member_changed", {"user": "petros", "access": "read", "was": "write"}),
        ("case.member_removed", {"user": "petros"}),
    ]


@pytest.mark.parametrize(("path", "data", "status", "message"), [
    ("members", {"user": "nobody", "access": "read", "at": "add"}, 404, "No user 'nobody'."),
    ("members", {"user": "aud", "access": "read", "at": "add"}, 422,
     "'aud' is an auditor: auditors read the custody log of every case and are never members."),
    ("members", {"user": "petros", "access": "owner", "at": "add"}, 422, "The access: "),
    ("members", {"user": "nadia", "access": "write", "at": "nadia"}, 409,
     "'nadia' is the last manager of case 'OP/2026/21'; make someone else a manager first."),
    ("members/nadia/remove", {}, 409, "'nadia' is the last manager of case 'OP/2026/21'"),
    ("members/petros/remove", {}, 422, "'petros' is not a member of case 'OP/2026/21'."),
])
def test_a_refused_member_change_says_why_and_keeps_what_was_typed(
        api: Api, path: str, data: dict[str, str], status: int, message: str) -> None:
    _nadia, token = _manager(api)
    api.user("petros")
    api.user("aud", Role.AUDITOR)
    before = _changes(api)
    refused = api.client.post(f"{CASE}/{path}", data={"csrf_token": token, **data})
    assert refused.status_code == status, refused.text
    assert message in _text(refused)
    alert = refused.text.index('role="alert"')
    add_form = refused.text.index('<section class="card" id="add">')
    if data.get("at") == "add":
        assert f'id="user" name="user" value="{data["user"]}"' in refused.text
        assert alert > add_form
    elif path.endswith("petros/remove"):  # no row to show it in
        assert alert > add_form
    else:  # next to nadia's row
        assert refused.text.index('id="member-nadia"') < alert < add_form
    assert _changes(api) == before
    assert len(re.findall(r'<tr id="member-', refused.text)) == 1  # only nadia still


def test_a_reader_and_an_auditor_see_the_members_without_forms_and_get_403(api: Api) -> None:
    nadia, _token = _manager(api)
    _member(api, nadia, "rita", Access.READ)
    _member(api, nadia, "wim", Access.WRITE)
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    before = _changes(api)
    for name in ("rita", "wim", "aud"):
        client = _browser_client(api)
        token = _sign_in(client, name)
        if name != "aud":
            page = client.get(f"{CASE}/members")
            assert page.status_code == 200 and "rita" in page.text
            assert _write_forms(page.text) == []
            assert "Only the case's managers add and remove members." in page.text
        _refused(client, token, [
            (f"{CASE}/members", {"user": name, "access": "manage", "at": "add"}),
            (f"{CASE}/members/nadia/remove", {})], 403)
    assert _changes(api) == before


# --- notes -------------------------------------------------------------------------------------

def test_a_case_note_is_added_revised_and_every_revision_shown(api: Api) -> None:
    _nadia, token = _manager(api)
    page = api.client.get(CASE)
    assert "No notes yet." in page.text and f'action="{CASE}/notes"' in page.text
    added = api.client.post(f"{CASE}/notes", data={"csrf_token": token,
                                                   "body": f"Same phone {HOSTILE}"},
                            follow_redirects=False)
    assert added.status_code == 303
    note_url = added.headers["location"].split("?")[0]
    shown = api.client.get(added.headers["location"])
    assert "Note added" in shown.text and "Revision 1" in shown.text
    assert html.escape(f"Same phone {HOSTILE}") in shown.text and HOSTILE not in shown.text
    revised = api.client.post(f"{note_url}/revisions", data={
        "csrf_token": token, "body": "Same phone as OP-2025-101"}, follow_redirects=True)
    text = _text(revised)
    assert "Revision 2" in text and "Revision 1" in text
    assert text.index("Same phone as OP-2025-101") < text.index(f"Same phone {HOSTILE}")
    case_page = api.client.get(CASE)
    assert "Same phone as OP-2025-101" in case_page.text and "revision 2" in case_page.text
    assert "Nadia" in case_page.text or "nadia" in case_page.text
    notes = [e for e in _entries(api) if e["object"] and e["object"]["type"] == "note"]
    assert [(e["action"], e["details"]["revision"]) for e in notes] == [
        ("note.added", 1), ("note.revised", 2)]
    assert notes[1]["sha256"] in revised.text and notes[0]["sha256"] in revised.text


def test_a_refused_note_keeps_its_text(api: Api) -> None:
    _nadia, token = _manager(api)
    blank = api.client.post(f"{CASE}/notes", data={"csrf_token": token, "body": "  "})
    assert blank.status_code == 422 and "A note needs some text." in blank.text
    assert 'action="/cases/OP%2F2026%2F21/notes"' in blank.text
    note_url = _add_note(api, token, "first")
    long = "a" * 100_001
    refused = api.client.post(f"{note_url}/revisions", data={"csrf_token": token, "body": long})
    assert refused.status_code == 422
    assert "A note holds at most 100,000 characters." in refused.text
    assert f">{long}</textarea>" in refused.text and "Revision 2" not in refused.text
    assert [e["action"] for e in _entries(api)].count("note.revised") == 0


def test_saving_a_note_unchanged_adds_no_revision(api: Api) -> None:
    """The revise form holds the current text: pressing Save without changing it added a
    revision identical to the one before, and a custody entry, each time."""
    _nadia, token = _manager(api)
    note_url = _add_note(api, token, "Same phone\nas in 2025")
    same = api.client.post(f"{note_url}/revisions",
                           data={"csrf_token": token, "body": "Same phone\nas in 2025"})
    assert same.status_code == 422
    assert "The text is the same as revision 1: nothing was saved." in _text(same)
    assert ">Same phone\nas in 2025</textarea>" in same.text and "Revision 2" not in same.text
    crlf = api.client.post(f"{note_url}/revisions",  # as a browser sends the textarea back
                           data={"csrf_token": token, "body": "Same phone\r\nas in 2025"})
    assert crlf.status_code == 422
    assert [e["action"] for e in _entries(api)].count("note.revised") == 0
    changed = api.client.post(f"{note_url}/revisions", data={
        "csrf_token": token, "body": "Same phone\nas in 2025 and 2026"}, follow_redirects=True)
    assert "Revision 2" in changed.text


def test_a_target_note_is_on_the_target_page_not_the_case_page(api: Api) -> None:
    nadia, token = _manager(api)
    with api.runtime.session() as session:
        case = cases.get_case(session, nadia.user, REFERENCE)
        target, _job = targets.flag_target(session, nadia.user, case, reason="advert",
                                           url="https://example.org/ad")
        target_id = str(target.id)
    page = api.client.get(f"/targets/{target_id}")
    assert f'name="target_id" value="{target_id}"' in page.text
    added = api.client.post(f"{CASE}/notes", data={"csrf_token": token,
                                                   "body": "Seller's number",
                                                   "target_id": target_id})
    assert "Seller&#39;s number" in api.client.get(f"/targets/{target_id}").text
    assert "Seller&#39;s number" not in api.client.get(CASE).text
    assert _changes(api)[-1]["details"] == {"revision": 1, "target": target_id}
    # The note's page, the form adding one and that form refused lead up to the target by
    # its name (here its URL), not "Target 1a2b3c4d".
    named = f'<a href="/targets/{target_id}"><bdi class="url">https://example.org/ad</bdi></a>'
    form = api.client.get(f"{CASE}/notes/new", params={"target": target_id}).text
    blank = api.client.post(f"{CASE}/notes", data={"csrf_token": token, "body": " ",
                                                   "target_id": target_id})
    assert blank.status_code == 422
    for shown in (added.text, form, blank.text):
        crumbs = shown.split('<p class="crumbs">', 1)[1].split("</p>", 1)[0]
        assert f" › {named} › " in crumbs and "Target" not in crumbs
    assert ('<h1>Add a note to the target <bdi class="url">https://example.org/ad</bdi></h1>'
            in form)
    # A refused form whose target is not one of the case's names none.
    stray = api.client.post(f"{CASE}/notes", data={"csrf_token": token, "body": "x",
                                                   "target_id": "not-a-target"})
    assert stray.status_code == 422 and "/targets/" not in stray.text.split("</h1>", 1)[0]


def test_a_reader_and_an_auditor_get_no_note_form_and_a_403_for_posting_one(api: Api) -> None:
    nadia, token = _manager(api)
    note_url = _add_note(api, token, "first")
    _member(api, nadia, "rita", Access.READ)
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    before = _changes(api)
    for name in ("rita", "aud"):
        client = _browser_client(api)
        token = _sign_in(client, name)
        if name == "rita":
            for path in (CASE, note_url):
                page = client.get(path)
                assert page.status_code == 200 and "first" in page.text
                assert _write_forms(page.text) == [], path
        else:
            assert client.get(note_url).status_code == 404  # no evidence for an auditor
        _refused(client, token, [(f"{CASE}/notes", {"body": "mine"}),
                                 (f"{note_url}/revisions", {"body": "mine"})], 403)
    assert _changes(api) == before


# --- history and audit -------------------------------------------------------------------------

def test_the_history_pages_through_every_entry_with_its_seq_and_hash(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.ui import cases as ui_cases

    monkeypatch.setattr(ui_cases, "HISTORY_PER_PAGE", 2)
    _nadia, token = _manager(api)
    api.client.post(f"{CASE}/notes", data={"csrf_token": token, "body": "first"})
    with api.runtime.session() as session:
        case = session.scalars(select(Case).where(Case.reference == REFERENCE)).one()
        rows = [(e.seq, bytes(e.leaf_hash).hex(), custody.describe(e)["action"])
                for e in session.scalars(select(CustodyEntry).where(
                    CustodyEntry.case_id == case.id).order_by(CustodyEntry.seq))]
    seen: list[str] = []
    url: str | None = f"{CASE}/history"
    while url is not None:
        page = api.client.get(url)
        assert page.status_code == 200
        seen += re.findall(r'<tr id="seq-(\d+)">', page.text)
        for seq, leaf, action in rows:
            if f'id="seq-{seq}"' in page.text:
                row = page.text.split(f'id="seq-{seq}"')[1].split("</tr>")[0]
                assert leaf in row and action in row and "nadia" in row
        found = re.search(r'href="([^"]*history\?cursor=[^"]*)">Later entries', page.text)
        url = html.unescape(found.group(1)) if found else None
    assert seen == [str(seq) for seq, _leaf, _action in rows]
    assert [a for _s, _l, a in rows][:2] == ["case.created", "case.member_added"]


def test_an_auditor_reads_every_case_history_and_nothing_else(api: Api) -> None:
    _nadia, token = _manager(api)
    api.client.post(f"{CASE}/notes", data={"csrf_token": token, "body": "secret words"})
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    assert api.client.get("/audit").status_code == 404  # not for a manager either
    client = _browser_client(api)
    _sign_in(client, "aud")
    audit = client.get("/audit")
    assert audit.status_code == 200 and f'href="{CASE}/history"' in audit.text
    assert 'href="/audit"' in audit.text  # in the header
    history = client.get(f"{CASE}/history")
    assert history.status_code == 200 and "note.added" in history.text
    assert "secret words" not in history.text and "Boats" not in history.text.split("<table")[0]
    assert _write_forms(history.text) == [] and _write_forms(audit.text) == []
    assert client.get(CASE).status_code == 404


def test_a_stranger_gets_not_found_for_every_new_page_of_a_case(api: Api) -> None:
    _nadia, token = _manager(api)
    note_url = _add_note(api, token, "first")
    api.user("stranger", password=PASSWORD)
    client = _browser_client(api)
    token = _sign_in(client, "stranger")
    before = _changes(api)
    answers = [client.get(f"{CASE}/{path}") for path in ("edit", "members", "history",
                                                         "notes/new")]
    answers.append(client.get(note_url))
    _refused(client, token, [
        (f"{CASE}/edit", {**NEW_CASE, "title": "Mine"}), (f"{CASE}/close", {}),
        (f"{CASE}/members", {"user": "stranger", "access": "manage", "at": "add"}),
        (f"{CASE}/members/nadia/remove", {}), (f"{CASE}/notes", {"body": "mine"}),
        (f"{note_url}/revisions", {"body": "mine"})], 404)
    answers.append(client.post(f"{CASE}/close", data={"csrf_token": token}))
    for answer in answers:
        assert answer.status_code == 404, answer.request.url
        assert "Boats" not in answer.text and REFERENCE not in answer.text
    assert len({a.text for a in answers}) == 1
    assert _changes(api) == before


# --- CSRF --------------------------------------------------------------------------------------

def test_every_form_without_its_token_is_refused_and_changes_nothing(api: Api) -> None:
    _nadia, token = _manager(api)
    api.user("petros")
    note_url = _add_note(api, token, "first")
    before = _changes(api)
    posts = [("/new-case", {**NEW_CASE, "reference": "OP/2026/99"}),
             (f"{CASE}/edit", {**NEW_CASE, "title": "Forged"}),
             (f"{CASE}/close", {"reason": "forged"}), (f"{CASE}/reopen", {}),
             (f"{CASE}/members", {"user": "petros", "access": "manage", "at": "add"}),
             (f"{CASE}/members/nadia/remove", {}),
             (f"{CASE}/notes", {"body": "forged"}),
             (f"{note_url}/revisions", {"body": "forged"})]
    for path, data in posts:
        for sent in ({}, {"csrf_token": "forged"}):
            refused = api.client.post(path, data={**data, **sent})
            assert refused.status_code == 403, (path, refused.text)
            assert "Form refused" in refused.text
    assert _changes(api) == before and _entries(api, "OP/2026/99") == []


# --- in Chromium -------------------------------------------------------------------------------

def _shots(page: Any, name: str) -> None:
    """Screenshots at desktop width and at 420 px, where the page must not be wider."""
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=SHOTS / f"{name}-420.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420, name
    assert page.evaluate(_OVERLAPS) == [], name  # nothing to click hides another
    page.set_viewport_size({"width": 1280, "height": 900})


# Pairs of visible links, buttons and fields whose boxes overlap (one inside the other aside).
_OVERLAPS = """() => {
  const els = [...document.querySelectorAll('a, button, input, select, textarea, summary')]
    .filter(e => e.checkVisibility({checkVisibilityCSS: true}) && e.type !== 'hidden');
  const found = [];
  for (let i = 0; i < els.length; i++) {
    for (let j = i + 1; j < els.length; j++) {
      const a = els[i], b = els[j];
      if (a.contains(b) || b.contains(a)) continue;
      const r = a.getBoundingClientRect(), q = b.getBoundingClientRect();
      if (r.left < q.right - 1 && q.left < r.right - 1 && r.top < q.bottom - 1
          && q.top < r.bottom - 1) found.push([a.textContent.trim(), b.textContent.trim()]);
    }
  }
  return found;
}"""


@pytest.mark.browser
def test_a_case_is_opened_noted_shared_and_its_history_read_in_chromium(api: Api) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    api.user("nadia", password=PASSWORD)
    api.user("petros")
    api.user("aud", Role.AUDITOR, password=PASSWORD)
    with BrowserSession(api.runtime.settings) as browser, served_app(api.runtime) as url:
        with walled_page(browser, url, refused_status=(409, 422)) as page:
            page.goto(f"{url}/")
            sign_in_on_page(page, "nadia", PASSWORD)
            page.click("text=New case")
            for name, value in NEW_CASE.items():
                page.fill(f"#{name}", value)
            # Three problems (a blank title passes the browser's own check): all said at once.
            page.fill("#title", "   ")
            page.fill("#max_penalty_years", "life")
            page.fill("#jurisdiction", "EL")
            page.click("button:has-text('Open the case')")
            page.locator(".alert", has_text="Jurisdiction 'EL' is written 'GR'").wait_for()
            assert page.locator(".field-problem").all_inner_texts() == [
                "A case needs a title.", "Maximum penalty 'life' is not a number of years.",
                "Jurisdiction 'EL' is written 'GR' in ISO 3166-1."]
            assert page.input_value("#offence") == NEW_CASE["offence"]
            _shots(page, "new-case-refused")
            page.click("#case-refused a[href='#max_penalty_years']")
            assert page.evaluate("document.activeElement.id") == "max_penalty_years"
            page.fill("#title", NEW_CASE["title"])
            page.fill("#max_penalty_years", "10")
            page.fill("#jurisdiction", "GR")
            page.click("button:has-text('Open the case')")
            page.get_by_role("heading", name="Notes").wait_for()
            assert page.url == f"{url}{CASE}"
            page.click("text=Edit or close")
            _shots(page, "edit")
            page.click("text=Back to the case")
            page.fill("#note-body", "Same phone number as in the 2025 adverts.")
            page.click("button:has-text('Add the note')")
            page.get_by_text("Note added").wait_for()
            page.fill("#body", "Same phone number as in OP-2025-101's adverts.")
            page.click("button:has-text('Save as a new revision')")
            page.get_by_text("Revision 2").wait_for()
            _shots(page, "note")

            page.click(f"a.ref:has-text('{REFERENCE}')")
            page.click("nav.tabs >> text=Members")
            page.fill("#user", "petros")
            page.select_option("#access", "write")
            page.click("button:has-text('Give access')")
            page.get_by_text("Access given").wait_for()
            page.locator("#member-nadia select").select_option("read")
            page.locator("#member-nadia button:has-text('Change')").click()
            page.locator(".alert", has_text="is the last manager").wait_for()
            _shots(page, "members")

            page.click(f"a.ref:has-text('{REFERENCE}')")
            _shots(page, "case")
            page.click("nav.tabs >> text=Custody history")
            rows = page.locator("table.history tbody tr")
            rows.first.wait_for()
            assert rows.count() == len(_entries(api))
            _shots(page, "history")
        with walled_page(browser, url) as page:
            page.goto(f"{url}/")
            sign_in_on_page(page, "aud", PASSWORD)
            page.click("header >> text=Audit")
            _shots(page, "audit")
            # On a phone every case's row is read whole, its history link in view with no
            # sideways scrolling (in a table it fell past the window's edge).
            page.set_viewport_size({"width": 420, "height": 900})
            assert page.evaluate(PAST_THE_WINDOW) == []
            assert page.get_by_text("Custody history ›").first.is_visible()
            page.set_viewport_size({"width": 1280, "height": 900})
            page.click(f"text={REFERENCE}")
            page.locator("table.history tbody tr").first.wait_for()
            assert page.locator("form[method=post]").count() == 1  # signing out only
            _shots(page, "audit-history")
    made = [(e["action"], e["details"].get("user") or e["details"].get("revision"))
            for e in _changes(api)]
    assert made == [("case.created", None), ("case.member_added", "nadia"),
                    ("note.added", 1), ("note.revised", 2), ("case.member_added", "petros")]
