"""Deconfliction: URL normalisation, keyed selectors, hits that name only unit and contact."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import accounts, cases, deconfliction, targets
from evidence.errors import AccessDenied, ConfigurationError, Conflict, InvalidInput, NotInitialised
from evidence.home import init_home, open_runtime
from evidence.models import Case, CustodyEntry, DeconflictionHit, Selector, User
from evidence.settings import Settings
from legal_forms.platforms import Registry, load_registry
from tests.factories import make_case, make_user

SAME = [
    ("https://example.org/ad", "http://example.org/ad"),
    ("https://EXAMPLE.org/ad", "https://example.org/ad"),
    ("https://www.example.org/ad", "https://example.org/ad"),
    ("https://example.org/ad/", "https://example.org/ad"),
    ("https://example.org/", "https://example.org"),
    ("https://example.org/ad#comments", "https://example.org/ad"),
    ("https://example.org/ad?utm_source=fb&utm_medium=social", "https://example.org/ad"),
    ("https://example.org/ad?fbclid=IwAR0abc", "https://example.org/ad"),
    ("https://example.org/ad?b=2&a=1", "https://example.org/ad?a=1&b=2"),
    ("https://example.org:443/ad", "https://example.org/ad"),
    ("http://example.org:80/ad", "https://example.org/ad"),
    ("https://user:secret@example.org/ad", "https://example.org/ad"),
    ("https://example.org/a/./b/../ad", "https://example.org/a/ad"),
    ("https://example.org//ad//", "https://example.org/ad"),
    ("https://example.org/%7Eseller", "https://example.org/~seller"),
    ("https://example.org./ad", "https://example.org/ad"),
    ("https://www.facebook.com/fast.trips/posts/123", "https://m.facebook.com/fast.trips/posts/123"),
    ("https://mbasic.facebook.com/fast.trips/posts/123/", "https://facebook.com/fast.trips/posts/123"),
    ("https://fb.com/fast.trips/posts/123", "https://www.facebook.com/fast.trips/posts/123"),
    ("https://www.facebook.com/fast.trips?__cft__[0]=AZX&__tn__=%2CO%2CP-R",
     "https://facebook.com/fast.trips"),
    ("https://twitter.com/seller/status/1789", "https://x.com/seller/status/1789"),
    ("https://mobile.twitter.com/seller/status/1789", "https://x.com/seller/status/1789"),
    ("https://mobile.x.com/seller/status/1789?s=20&t=abcDEF", "https://x.com/seller/status/1789"),
    ("https://twitter.com/#!/seller", "https://x.com/seller"),
    ("https://www.instagram.com/p/Cabc123/?igshid=MzRlODBiNWFlZA==",
     "https://instagram.com/p/Cabc123"),
    ("https://instagr.am/p/Cabc123", "https://www.instagram.com/p/Cabc123/?igsh=abc"),
    ("https://m.youtube.com/watch?v=abc&si=XYZ&feature=share", "https://youtube.com/watch?v=abc&feature=share"),
    ("https://telegram.me/crossings_now", "https://t.me/crossings_now"),
    ("https://m.tiktok.com/@seller/video/1", "https://www.tiktok.com/@seller/video/1?utm_campaign=x"),
]

DIFFERENT = [
    ("https://example.org/ad", "https://example.org/ad2"),
    ("https://example.org/ad", "https://example.com/ad"),
    ("https://example.org/Ad", "https://example.org/ad"),  # paths are case-sensitive
    ("https://example.org/ad?id=1", "https://example.org/ad?id=2"),
    ("https://example.org/ad", "https://example.org:8443/ad"),
    ("https://m.example.org/ad", "https://example.org/ad"),  # not a registry platform
    ("https://t.co/abc", "https://x.com/abc"),  # a short link is not the page it points to
    ("https://facebook.com/seller/posts/1", "https://facebook.com/seller/posts/2"),
    ("https://youtube.com/watch?v=abc", "https://youtube.com/watch?v=abd"),
    ("https://business.facebook.com/seller", "https://facebook.com/seller"),
    ("https://m.me/seller", "https://me/seller"),
]

HOSTILE = [
    "", "   ", "javascript:alert(1)", "ftp://example.org/x", "example.org/ad", "http://",
    "https://exa mple.org/", "https://example.org/\x00ad", "https://example.org:99999/",
    "https://[::1/", "https://example.org/" + "a" * 9000, "data:text/html,<b>x</b>",
    "file:///etc/passwd", "https://\u202eexample.org\n/",
]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.mark.parametrize(("left", "right"), SAME)
def test_spellings_of_one_page_normalise_alike(left: str, right: str, registry: Registry) -> None:
    assert deconfliction.normalise_url(left) == deconfliction.normalise_url(right)


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_different_pages_stay_apart(left: str, right: str) -> None:
    try:
        right_form = deconfliction.normalise_url(right)
    except InvalidInput:
        return
    assert deconfliction.normalise_url(left) != right_form


def test_the_tables_are_big_enough() -> None:
    assert len(SAME) >= 20 and len(DIFFERENT) >= 8


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_input_is_refused_cleanly(url: str) -> None:
    with pytest.raises(InvalidInput):
        deconfliction.normalise_url(url)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_normalises_or_is_refused(text: str) -> None:
    try:
        once = deconfliction.normalise_url(text)
    except InvalidInput:
        return
    # Normalising the normal form changes nothing.
    assert deconfliction.normalise_url("https://" + once) == once


def test_alternate_hosts_belong_to_one_registry_platform(registry: Registry) -> None:
    reg = load_registry()
    for alias, main in deconfliction.SAME_SITE.items():
        owner = reg.platform_for_host(alias)
        assert owner is not None and owner is reg.platform_for_host(main), (alias, main)
    for platform in reg:
        for host in platform.hosts:
            assert deconfliction.canonical_host(f"m.{host}") in (
                deconfliction.canonical_host(host), f"m.{deconfliction.canonical_host(host)}")


def test_selectors_name_the_account_the_url_shows() -> None:
    post = deconfliction.selector_values("https://m.facebook.com/Fast.Trips/posts/1")
    profile = deconfliction.selector_values("https://www.facebook.com/fast.trips")
    assert [v.kind for v in post] == ["url", "account"]
    assert post[1] == profile[1]  # the same account, whatever the case of its name
    short = deconfliction.selector_values("https://t.co/abc")
    assert [v.kind for v in short] == ["url"]


def test_digests_are_keyed() -> None:
    value = deconfliction.selector_values("https://example.org/ad")[0]
    a = deconfliction.digest(b"k" * 32, value)
    assert a == deconfliction.digest(b"k" * 32, value)
    assert a != deconfliction.digest(b"j" * 32, value)
    assert "example" not in a and len(a) == 64


# --- hits between cases --------------------------------------------------------------------------


def _world(session: Session) -> tuple[User, User, Case, Case]:
    alice = make_user(session, unit="Border Unit North", display_name="DS Alice North")
    bob = make_user(session, unit="Harbour Unit", display_name="DC Bob Harbour")
    mine = make_case(session, alice, reference="NORTH-1", title="Evros crossings")
    theirs = make_case(session, bob, reference="HARB-SECRET-9", title="Operation Lantern")
    return alice, bob, mine, theirs


def test_the_same_page_in_two_cases_is_a_hit_naming_only_unit_and_contact(
    session: Session,
) -> None:
    alice, bob, mine, theirs = _world(session)
    held, _ = targets.flag_target(session, bob, theirs, reason="r",
                                  url="https://www.facebook.com/seller.one/posts/77")
    assert session.scalars(select(DeconflictionHit)).all() == []
    target, _ = targets.flag_target(session, alice, mine, reason="r",
                                    url="http://m.facebook.com/seller.one/posts/77/?fbclid=x")
    hits = session.scalars(select(DeconflictionHit)).all()
    assert {h.kind for h in hits} == {"url", "account"}
    assert all(h.first_target_id == held.id and h.second_target_id == target.id for h in hits)
    assert [u.id for u in deconfliction.unresolved_hits(session, target)] == [h.id for h in hits]

    for case, other_unit, other_contact, hidden in (
        (mine, "Harbour Unit", "DC Bob Harbour", ("HARB-SECRET-9", "Operation Lantern")),
        (theirs, "Border Unit North", "DS Alice North", ("NORTH-1", "Evros crossings")),
    ):
        views = deconfliction.page_hits(session, case).items
        assert len(views) == 2
        assert {(v.other_unit, v.other_contact) for v in views} == {(other_unit, other_contact)}
        # The custody entries of each chain do not name the other case either.
        entries = session.scalars(select(CustodyEntry.entry).where(
            CustodyEntry.case_id == case.id, CustodyEntry.action == "deconfliction.hit")).all()
        assert len(entries) == 2
        for raw in entries:
            text = bytes(raw).decode()
            assert all(h not in text for h in hidden), text
            assert orjson.loads(raw)["details"]["other"]["unit"] == other_unit


def test_a_hit_names_the_contact_the_other_case_gives(session: Session) -> None:
    alice, bob, mine, theirs = _world(session)
    cases.update_case(session, bob, theirs, {"contact": "  Harbour duty desk, +30 210 555 0100 "})
    targets.flag_target(session, bob, theirs, reason="r", url="https://t.me/crossings_now")
    targets.flag_target(session, alice, mine, reason="r", url="https://t.me/crossings_now")
    views = deconfliction.page_hits(session, mine).items
    assert views and {(v.other_unit, v.other_contact) for v in views} == {
        ("Harbour Unit", "Harbour duty desk, +30 210 555 0100")}
    # Cleared, the contact falls back to whoever opened the case.
    cases.update_case(session, bob, theirs, {"contact": ""})
    assert {v.other_contact for v in deconfliction.page_hits(session, mine).items} == {
        "DC Bob Harbour"}
    with pytest.raises(InvalidInput, match="at most 500"):
        cases.update_case(session, bob, theirs, {"contact": "x" * 501})


def test_account_targets_meet_url_targets_of_the_same_account(session: Session) -> None:
    alice, bob, mine, theirs = _world(session)
    account, _ = accounts.link_account(session, bob, theirs, platform="Twitter",
                                       platform_account_id="1234567890",
                                       profile_url="https://x.com/i/user/1234567890")
    targets.flag_target(session, bob, theirs, reason="r", account=account)
    target, _ = targets.flag_target(session, alice, mine, reason="r",
                                    url="https://twitter.com/i/user/1234567890")
    kinds = sorted(h.kind for h in deconfliction.unresolved_hits(session, target))
    assert kinds == ["account", "url"]


def test_same_case_and_unrelated_pages_make_no_hit(session: Session) -> None:
    alice, bob, mine, theirs = _world(session)
    targets.flag_target(session, alice, mine, reason="r", url="https://example.org/ad")
    targets.flag_target(session, alice, mine, reason="r", url="https://www.example.org/ad/")
    targets.flag_target(session, bob, theirs, reason="r", url="https://example.org/other")
    assert session.scalars(select(DeconflictionHit)).all() == []
    assert len(session.scalars(select(Selector)).all()) == 3


def test_both_cases_must_agree_before_a_hit_is_resolved(session: Session) -> None:
    alice, bob, mine, theirs = _world(session)
    targets.flag_target(session, bob, theirs, reason="r", url="https://example.org/ad")
    target, _ = targets.flag_target(session, alice, mine, reason="r",
                                    url="https://example.org/ad")
    (hit,) = deconfliction.unresolved_hits(session, target)
    with pytest.raises(InvalidInput):
        deconfliction.agree(session, alice, mine, hit.id, note="  ")
    view = deconfliction.agree(session, alice, mine, hit.id, note="Called Bob; fine after Friday")
    assert not view.resolved and len(deconfliction.unresolved_hits(session, target)) == 1
    with pytest.raises(Conflict, match="already agreed"):
        deconfliction.agree(session, alice, mine, hit.id, note="again")
    theirs_view = deconfliction.agree(session, bob, theirs, hit.id, note="Agreed with Alice")
    assert theirs_view.resolved and deconfliction.unresolved_hits(session, target) == []
    agreed = {(a.this_case, a.user, a.note) for a in theirs_view.agreements}
    # Bob sees that Alice agreed, but not her note.
    assert agreed == {(False, "DS Alice North", None), (True, "DC Bob Harbour",
                                                         "Agreed with Alice")}
    actions = session.scalars(select(CustodyEntry.action).where(
        CustodyEntry.case_id == mine.id).order_by(CustodyEntry.seq)).all()
    assert actions[-2:] == ["deconfliction.agreed", "deconfliction.resolved"]


def test_a_case_sees_no_hit_of_others(session: Session) -> None:
    alice, bob, mine, theirs = _world(session)
    carol = make_user(session)
    third = make_case(session, carol)
    targets.flag_target(session, bob, theirs, reason="r", url="https://example.org/ad")
    target, _ = targets.flag_target(session, alice, mine, reason="r",
                                    url="https://example.org/ad")
    (hit,) = deconfliction.unresolved_hits(session, target)
    assert deconfliction.page_hits(session, third).items == []
    assert deconfliction.count_hits(session, third) == deconfliction.HitCounts(0, 0)
    with pytest.raises(AccessDenied):
        deconfliction.agree(session, carol, third, hit.id, note="x")


def test_hits_come_a_page_at_a_time_and_unresolved_ones_can_be_asked_for_alone(
    session: Session,
) -> None:
    alice, bob, mine, theirs = _world(session)
    for n in range(7):
        targets.flag_target(session, bob, theirs, reason="r", url=f"https://example.org/ad/{n}")
        targets.flag_target(session, alice, mine, reason="r", url=f"https://example.org/ad/{n}")
    every = session.scalars(select(DeconflictionHit).order_by(DeconflictionHit.created_at,
                                                              DeconflictionHit.id)).all()
    assert len(every) == 7
    for n in (1, 4):  # both cases agree: resolved
        deconfliction.agree(session, alice, mine, every[n].id, note="called")
        deconfliction.agree(session, bob, theirs, every[n].id, note="called")
    deconfliction.agree(session, alice, mine, every[5].id, note="only we agreed")

    for case in (mine, theirs):
        assert deconfliction.count_hits(session, case) == deconfliction.HitCounts(7, 5)
        seen, cursor = [], None
        while True:
            page = deconfliction.page_hits(session, case, limit=3, cursor=cursor)
            assert len(page.items) <= 3
            seen += [v.hit.id for v in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == [h.id for h in every]
        open_ = deconfliction.page_hits(session, case, limit=3, unresolved_only=True)
        rest = deconfliction.page_hits(session, case, limit=3, unresolved_only=True,
                                       cursor=open_.next_cursor)
        assert [v.hit.id for v in open_.items + rest.items] == [
            h.id for i, h in enumerate(every) if i not in (1, 4)]
        assert rest.next_cursor is None
    with pytest.raises(InvalidInput, match="cursor"):
        deconfliction.page_hits(session, mine, cursor="not-a-cursor")


# --- the secret ------------------------------------------------------------------------------


def test_init_makes_a_private_key_once_and_the_runtime_uses_it(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    init_home(settings)
    path = deconfliction.key_path(settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = path.read_bytes()
    assert not init_home(settings).changed and path.read_bytes() == key
    runtime = open_runtime(settings)
    try:
        with runtime.session() as session:
            assert deconfliction.secret_for(session) == bytes.fromhex(key.decode().strip())
    finally:
        runtime.close()


def test_the_setting_wins_and_no_secret_refuses_to_run(tmp_path: Path, database_url: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    init_home(settings)
    shared = "a shared secret of more than thirty-two characters"
    with_env = Settings(home=tmp_path / "home", database_url=database_url,
                        deconfliction_secret=SecretStr(shared))
    assert deconfliction.load_secret(with_env) == shared.encode()
    with pytest.raises(ConfigurationError, match="at least 32"):
        deconfliction.load_secret(Settings(home=tmp_path / "home",
                                           deconfliction_secret=SecretStr("short")))
    deconfliction.key_path(settings).unlink()
    with pytest.raises(NotInitialised, match="EVIDENCE_DECONFLICTION_SECRET"):
        open_runtime(settings)
    assert shared not in repr(with_env)
