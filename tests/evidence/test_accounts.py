"""evidence/accounts.py: an account flagged by its handle before the platform's id is known,
and its id recorded on it later."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import accounts, cases, custody, deconfliction, targets
from evidence.errors import AccessDenied, CaseClosed, InvalidInput
from evidence.models import Access, Account, Case, CustodyEntry, Selector, User
from tests.factories import make_case, make_user


def _entries(session: Session, case: Case, action: str) -> list[dict[str, Any]]:
    found = session.scalars(select(CustodyEntry).where(CustodyEntry.case_id == case.id,
                                                       CustodyEntry.action == action)
                            .order_by(CustodyEntry.seq))
    return [custody.describe(e) for e in found]


def _two_cases(session: Session) -> tuple[User, Case, User, Case]:
    alice = make_user(session, unit="Border Unit North")
    bob = make_user(session, unit="Harbour Unit")
    return alice, make_case(session, alice), bob, make_case(session, bob)


@pytest.mark.parametrize(("platform", "url", "handle", "named"), [
    ("instagram", "https://www.instagram.com/Fast.Trips/", "Fast.Trips",
     "@Fast.Trips on Instagram"),
    ("telegram", "https://t.me/crossings_now", "crossings_now", "@crossings_now on Telegram"),
    ("tiktok", "https://www.tiktok.com/@boat.rides", "boat.rides", "@boat.rides on TikTok"),
])
def test_an_account_whose_profile_shows_only_its_handle_is_flagged_by_it(
        session: Session, platform: str, url: str, handle: str, named: str) -> None:
    alice, case, _bob, _theirs = _two_cases(session)
    target, job = accounts.flag_account(session, alice, case, platform=platform,
                                        profile_url=url, reason="advertises crossings")
    account = session.get(Account, target.account_id)
    assert account is not None and job.target_id == target.id
    assert (account.platform, account.platform_account_id, account.handle,
            account.profile_url) == (platform, None, handle, url)
    assert str(targets.target_name(target, account)) == named
    [linked] = _entries(session, case, "account.linked")
    assert linked["details"]["platform_account_id"] is None
    assert linked["details"]["handle"] == handle


def test_a_typed_handle_names_an_account_the_url_does_not_and_one_is_needed(
        session: Session) -> None:
    alice, case, _bob, _theirs = _two_cases(session)
    # A Telegram channel's link (t.me/c/...) is no handle: the typed one names the account.
    target, _ = accounts.flag_account(session, alice, case, platform="telegram",
                                      profile_url="https://t.me/c/1234/5", handle=" @Sea_Taxi ",
                                      reason="r")
    account = session.get(Account, target.account_id)
    assert account is not None and (account.handle, account.platform_account_id) == (
        "Sea_Taxi", None)
    with pytest.raises(InvalidInput) as refused:
        accounts.flag_account(session, alice, case, platform="instagram",
                              profile_url="https://www.instagram.com/p/ABC123/", reason="r")
    assert refused.value.message == ("give the account's handle or Instagram's id of the "
                                     "account (the profile URL shows neither)")
    with pytest.raises(InvalidInput) as refused:
        accounts.link_account(session, alice, case, platform="instagram", handle=" @ ")
    assert refused.value.message == ("an account needs its platform and the platform's stable "
                                     "account id or, until the id is known, its handle")


def test_one_row_per_handle_without_an_id_whatever_its_case_and_deconfliction_meets_it(
        session: Session) -> None:
    alice, mine, bob, theirs = _two_cases(session)
    held, _ = accounts.flag_account(session, bob, theirs, platform="instagram",
                                    profile_url="https://www.instagram.com/fast.trips",
                                    reason="theirs")
    # Typed with an @ and in other letters, through the API's link: the same account.
    account, new = accounts.link_account(session, alice, mine, platform="Instagram",
                                         handle="@FAST.TRIPS",
                                         profile_url="https://www.instagram.com/FAST.TRIPS")
    assert new and account.id == held.account_id
    assert session.scalars(select(Account).where(Account.platform == "instagram")).all() == [
        account]
    target, _ = targets.flag(session, alice, mine, reason="ours", account_id=account.id)
    hits = deconfliction.unresolved_hits(session, target)
    assert "account" in {h.kind for h in hits}
    assert {h.first_target_id for h in hits} == {held.id}
    # An account known by its handle alone registers the selector its profile URL would give,
    # whatever URL it was flagged with.
    by_handle = Account(platform="instagram", handle="@Fast.Trips")
    assert deconfliction.selector_values(None, by_handle) == [
        v for v in deconfliction.selector_values("https://www.instagram.com/fast.trips/")
        if v.kind == "account"]


@pytest.mark.parametrize(("first", "again"), [
    ("FAST_TRIPS", "fast_trips"),  # as ASCII handles are, so are those of every script:
    ("ÉLODIE", "élodie"),
    ("ДМИТРИЙ_ПЕРЕВОЗ", "дмитрий_перевоз"),  # Cyrillic
    ("ΟΔΟΣ", "οδος"),  # Greek: the capital Σ of a word's final ς
    ("STRASSE", "straße"),  # ß is ss in capitals
    ("E\u0301lodie", "\u00c9LODIE"),  # É typed as E and its accent, or as one character
])
def test_a_handle_in_another_script_is_one_account_whatever_its_case_on_every_database(
        session: Session, first: str, again: str) -> None:
    alice, mine, bob, theirs = _two_cases(session)
    url = "https://forum.example.org/members/1234/"  # a site the registry does not know
    held, _ = accounts.flag_account(session, alice, mine, platform="generic", profile_url=url,
                                    handle=first, reason="mine")
    target, _ = accounts.flag_account(session, bob, theirs, platform="generic", profile_url=url,
                                      handle=again, reason="theirs")
    assert target.account_id == held.account_id
    [account] = session.scalars(select(Account).where(Account.platform == "generic")).all()
    assert account.handle == first  # as written when it was first linked
    # Their case records the link to the account as it stands, with nothing changed.
    [linked] = _entries(session, theirs, "account.linked")
    assert (linked["details"]["handle"], linked["details"]["changes"]) == (first, {})
    # Linked again in the case that has it: nothing new, nothing recorded.
    assert accounts.link_account(session, alice, mine, platform="generic", handle=again,
                                 profile_url=url) == (account, False)
    assert len(_entries(session, mine, "account.linked")) == 1
    assert _entries(session, mine, "account.updated") == []
    assert {h.first_target_id for h in deconfliction.unresolved_hits(session, target)} == {
        held.id}


@pytest.mark.parametrize(("first", "other"), [
    ("elodie", "\u0435lodie"),  # the second's е is Cyrillic
    ("élodie", "elodie"),  # an accent makes another letter
    ("paypal", "\u0440\u0430\u0443\u0440\u0430l"),  # Cyrillic р, а and у
    ("fast", "\uff46\uff41\uff53\uff54"),  # full-width letters
    ("ΟΔΟΣ", "OΔOΣ"),  # Latin O in the second
])
def test_handles_that_only_look_alike_are_two_accounts(
        session: Session, first: str, other: str) -> None:
    alice, mine, _bob, _theirs = _two_cases(session)
    for handle in (first, other):
        accounts.link_account(session, alice, mine, platform="generic", handle=handle)
    handles = session.scalars(select(Account.handle).where(Account.platform == "generic")).all()
    assert len(handles) == 2 and set(handles) == {first, other}



def test_the_id_is_recorded_later_with_a_custody_entry_and_registered_for_deconfliction(
        session: Session) -> None:
    alice, mine, bob, theirs = _two_cases(session)
    target, _ = accounts.flag_account(session, alice, mine, platform="tiktok",
                                      profile_url="https://www.tiktok.com/@boat.rides",
                                      reason="r")
    assert target.account_id is not None
    # Another unit knows the account by its id only (a profile URL without the handle).
    known, _ = accounts.link_account(session, bob, theirs, platform="tiktok",
                                     platform_account_id="6890123456789",
                                     profile_url="https://www.tiktok.com/share/user/6890123")
    targets.flag(session, bob, theirs, reason="r", account_id=known.id)
    assert deconfliction.unresolved_hits(session, target) == []

    # The id another row holds: refused, naming neither that case nor its handle.
    with pytest.raises(accounts.AccountIdKnown) as refused:
        accounts.record_account_id(session, alice, mine, target.account_id,
                                   platform_account_id="6890123456789")
    assert refused.value.status_code == 409
    assert refused.value.message == (
        f"TikTok's id 6890123456789 is already held by another account (account {known.id}), "
        "which other cases flagged: the two are not merged; flag the account by its id to link "
        "that one to this case")
    account = session.get(Account, target.account_id)
    assert account is not None and account.platform_account_id is None

    account, new = accounts.record_account_id(session, alice, mine, target.account_id,
                                              platform_account_id=" 7001 ")
    assert new and account.platform_account_id == "7001"
    [entry] = _entries(session, mine, "account.id_recorded")
    assert entry["object"] == {"type": "account", "id": str(account.id)}
    assert entry["details"] == {"platform": "tiktok", "platform_account_id": "7001",
                                "handle": "boat.rides",
                                "profile_url": "https://www.tiktok.com/@boat.rides"}
    # The same id again changes nothing; another id is refused: an account's id stays.
    assert accounts.record_account_id(session, alice, mine, account.id,
                                      platform_account_id="7001") == (account, False)
    assert len(_entries(session, mine, "account.id_recorded")) == 1
    with pytest.raises(accounts.AccountIdKnown) as refused:
        accounts.record_account_id(session, alice, mine, account.id, platform_account_id="7002")
    assert refused.value.message == (
        "@boat.rides on TikTok already has TikTok's id 7001: an account's id does not change; "
        "flag the account with the other id if it is another one")

    # Linked by the id now learnt, it is the same account: one row, no second one.
    later, _ = accounts.link_account(session, bob, theirs, platform="tiktok",
                                     platform_account_id="7001",
                                     profile_url="https://www.tiktok.com/share/user/7001")
    assert later.id == account.id


def test_recording_the_id_meets_the_case_that_knew_it_and_names_this_case_s_holder(
        session: Session) -> None:
    alice, mine, bob, theirs = _two_cases(session)
    target, _ = accounts.flag_account(session, alice, mine, platform="x",
                                      profile_url="https://x.com/fast_trips_x", reason="r")
    assert target.account_id is not None
    # Another unit flagged the account's page by its id (no account row holds it).
    theirs_target, _ = targets.flag_target(session, bob, theirs, reason="r",
                                           url="https://x.com/i/user/777")
    assert deconfliction.unresolved_hits(session, target) == []
    accounts.record_account_id(session, alice, mine, target.account_id,
                               platform_account_id="777")
    [hit] = deconfliction.unresolved_hits(session, target)
    assert (hit.kind, hit.first_target_id, hit.second_target_id) == (
        "account", theirs_target.id, target.id)
    [ours] = _entries(session, mine, "deconfliction.hit")
    [told] = _entries(session, theirs, "deconfliction.hit")
    assert ours["details"]["other"]["unit"] == "Harbour Unit"
    assert told["details"]["other"]["unit"] == "Border Unit North"
    assert told["actor"] is None  # the system's doing in their chain

    # An id another account of this case holds: named by its handle, the two not merged.
    boatman, _ = accounts.link_account(session, alice, mine, platform="x",
                                       platform_account_id="99", handle="boatman",
                                       profile_url="https://x.com/i/user/99")
    other, _ = accounts.flag_account(session, alice, mine, platform="x",
                                     profile_url="https://x.com/other_handle", reason="r")
    assert other.account_id is not None
    with pytest.raises(accounts.AccountIdKnown) as refused:
        accounts.record_account_id(session, alice, mine, other.account_id,
                                   platform_account_id="99")
    assert refused.value.message == (
        f"X (formerly Twitter)'s id 99 is already held by @boatman on X (formerly Twitter) in "
        f"this case (account {boatman.id}): the two are not merged; if they are one account, "
        "go on with that one and resolve this one's target")


def test_only_a_writer_of_an_open_case_records_an_id_and_it_must_be_given(
        session: Session) -> None:
    alice, mine, _bob, _theirs = _two_cases(session)
    target, _ = accounts.flag_account(session, alice, mine, platform="instagram",
                                      profile_url="https://www.instagram.com/fast.trips",
                                      reason="r")
    assert target.account_id is not None
    for given, said in (("  ", "give Instagram's id of the account, the one that stays when "
                               "the handle changes"),
                        ("9" * 256, "the account id holds at most 255 characters")):
        with pytest.raises(InvalidInput) as refused:
            accounts.record_account_id(session, alice, mine, target.account_id,
                                       platform_account_id=given)
        assert refused.value.message == said
    reader = make_user(session)
    cases.add_member(session, alice, mine, reader, Access.READ)
    with pytest.raises(AccessDenied, match="needs write access") as denied:
        accounts.record_account_id(session, reader, mine, target.account_id,
                                   platform_account_id="1")
    assert denied.value.status_code == 403
    cases.close_case(session, alice, mine, reason="done")
    with pytest.raises(CaseClosed):
        accounts.record_account_id(session, alice, mine, target.account_id,
                                   platform_account_id="1")
    assert session.scalars(select(Selector.kind).where(Selector.target_id == target.id)).all()
