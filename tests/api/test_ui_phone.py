"""Each role's day's pages on a phone (420 px wide) in Chromium: every table is read without
scrolling sideways (a table too wide becomes a block of labelled lines per row), with the same
pages at desktop width as they were."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from capture.browser import BrowserSession
from evidence import cases, notes, targets, users
from evidence.home import Runtime
from evidence.models import Access, Role
from tests.api.conftest import Api, served_app, sign_in_on_page, walled_page
from tests.api.test_ui import PASSWORD
from tests.api.world import REFERENCE, build_world

SHOTS = Path("/tmp/ui-phone")

# Cells, links, buttons and fields that end past the window's right edge: reached only by
# scrolling a table sideways.
PAST_THE_WINDOW = """() => [...document.querySelectorAll('td, th, a, button, input, select')]
  .filter(e => e.checkVisibility() && e.getBoundingClientRect().right > window.innerWidth + 1)
  .map(e => e.tagName + ' ' + e.textContent.trim().slice(0, 40))"""


# Labelled lines of a stacked row with nothing after their label ("note:" alone).
BARE_LABELS = """() => [...document.querySelectorAll('.stacked td[data-label]')]
  .filter(td => td.checkVisibility() && !td.textContent.trim())
  .map(td => td.dataset.label)"""
# Tick boxes of stacked rows not on the line of the row's first label: [box top, label top].
TICKS_OFF_THEIR_LINE = """() => [...document.querySelectorAll('.stacked td')]
  .filter(td => td.children.length === 1 && td.firstElementChild.type === 'checkbox'
                && td.nextElementSibling)
  .map(td => [td.firstElementChild.getBoundingClientRect(),
              td.nextElementSibling.getBoundingClientRect()])
  .filter(([box, next]) => box.top >= next.top + next.height / 2 || box.bottom <= next.top)
  .map(([box, next]) => [box.top, next.top])"""


def _read_on_a_phone(page: Any, name: str) -> None:
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=SHOTS / f"{name}-420.png", full_page=True)
    assert page.evaluate(PAST_THE_WINDOW) == [], (name, page.url)
    assert page.evaluate(BARE_LABELS) == [], (name, page.url)
    assert page.evaluate(TICKS_OFF_THEIR_LINE) == [], (name, page.url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420, name
    page.set_viewport_size({"width": 1280, "height": 900})
    # At desktop width the tables stay tables.
    assert page.evaluate("[...document.querySelectorAll('table.grid')].every("
                         "t => getComputedStyle(t).display === 'table')"), name


def _members(runtime: Runtime) -> None:
    """The world's owner, and a supervisor, a liaison and a prosecutor of its case, and an
    auditor, all signing in with PASSWORD."""
    with runtime.session() as session:
        owner = users.get_user(session, "owner")
        owner.password_hash = users.hash_password(PASSWORD)
        case = cases.case_for(session, owner, REFERENCE)
        for name, role, access in [("sara", Role.SUPERVISOR, Access.WRITE),
                                   ("lina", Role.LIAISON, Access.WRITE),
                                   ("paul", Role.PROSECUTOR, Access.READ)]:
            member = users.create_user(session, None, name=name, role=role,
                                       unit="Border Unit", password=PASSWORD)
            cases.add_member(session, owner, case, member, access)
        users.create_user(session, None, name="aud", role=Role.AUDITOR, unit="Audit",
                          password=PASSWORD)


@pytest.mark.browser
def test_each_roles_pages_are_read_on_a_phone_without_scrolling_sideways_in_chromium(
    runtime: Runtime,
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ids, _owner = build_world(Api(TestClient(create_app(runtime)), runtime), complete=True)
    _members(runtime)
    case = f"/cases/{ids['ref']}"
    days = {
        "owner": ["/", case, f"/targets/{ids['target_id']}", f"/captures/{ids['capture_id']}",
                  "/search?q=Italy"],
        "sara": [f"/targets/{ids['target_id']}"],
        "lina": [f"{case}/requests", f"{case}/requests/{ids['request_id']}", "/requests/due",
                 f"{case}/requests?kind=provider-preservation&platform=x"],  # tick boxes
        "paul": [f"{case}/exports"],
        "aud": ["/audit", f"{case}/history"],
    }
    with BrowserSession(runtime.settings) as browser, served_app(runtime) as url:
        for name, paths in days.items():
            with walled_page(browser, url) as page:
                page.goto(f"{url}/login")
                sign_in_on_page(page, name, PASSWORD)
                page.wait_for_url(f"{url}/")
                for n, path in enumerate(paths):
                    page.goto(f"{url}{path}")
                    _read_on_a_phone(page, f"{name}-{n}")


# Where a piece of text sits in the element holding it: its distance from that element's left
# and right content edges, in px (null when the page does not show it).
TEXT_GAPS = """(text) => {
  const walk = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode, at = node.data.indexOf(text);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + text.length);
    const box = range.getBoundingClientRect(), holder = node.parentElement;
    const edge = holder.getBoundingClientRect(), style = getComputedStyle(holder);
    return {left: box.left - edge.left - parseFloat(style.paddingLeft),
            right: edge.right - parseFloat(style.paddingRight) - box.right};
  }
  return null;
}"""
ARABIC_REASON = "إعلان عن العبور"
GREEK_LINE = "Ο ύποπτος δημοσίευσε ξανά."
ARABIC_LINE = "المشتبه به نشر مرة أخرى."


@pytest.mark.browser
def test_right_to_left_text_keeps_its_label_first_and_each_line_its_own_side_in_chromium(
    api: Api,
) -> None:
    """On a phone an Arabic reason came after its label, read ":Reason" at the right end of the
    line; a note of a Greek line then an Arabic one showed the Arabic line left to right."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    nadia = api.user("nadia", password=PASSWORD)
    with api.runtime.session() as session:
        case = cases.create_case(session, nadia.user, reference="OP-9", title="Adverts")
        targets.flag_target(session, nadia.user, case, reason=ARABIC_REASON,
                            url="https://example.org/advert")
        note = notes.add_note(session, nadia.user, case, body=f"{GREEK_LINE}\n{ARABIC_LINE}")
        note_path = f"/cases/OP-9/notes/{note.note.id}"
    with BrowserSession(api.runtime.settings) as browser, served_app(api.runtime) as url, \
            walled_page(browser, url) as page:
        page.goto(f"{url}/login")
        sign_in_on_page(page, "nadia", PASSWORD)
        page.wait_for_url(f"{url}/")
        page.set_viewport_size({"width": 420, "height": 900})
        page.goto(f"{url}/cases/OP-9")
        page.screenshot(path=SHOTS / "arabic-reason-420.png", full_page=True)
        reason = page.evaluate(TEXT_GAPS, ARABIC_REASON)
        assert reason["left"] > 30, reason  # "Reason:" first, on the left, as on every row
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{url}{note_path}")
        page.screenshot(path=SHOTS / "mixed-note.png", full_page=True)
        greek, arabic = (page.evaluate(TEXT_GAPS, line) for line in (GREEK_LINE, ARABIC_LINE))
        assert greek["left"] < 2 and greek["right"] > 300, greek
        assert arabic["right"] < 2 and arabic["left"] > 300, arabic
