"""Platform accounts linked to cases: who posted, named by the platform's stable identifier.

An account is one row per platform and stable id, whatever its handle is today; a case links
to it. Handles and display names change, so a link brings the account's facts up to date and
records what they were before in the case's custody log.

Instagram, TikTok and Telegram profile URLs show only the handle, so an account may be flagged
before its id is known: it is then one row per platform and handle (compared without case, as
the platforms compare them, by `models.handle_key` alike on SQLite and PostgreSQL), and its id
is recorded on it later (`record_account_id`), never by merging it into another row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence import cases, custody, deconfliction, targets
from evidence.canonical import JsonValue
from evidence.errors import AccessDenied, Conflict, InvalidInput, NotFound
from evidence.models import (
    Access,
    Account,
    CaptureJob,
    Case,
    CaseAccount,
    Target,
    User,
    handle_key,
    utcnow,
)
from evidence.pagination import Page, paginate
from evidence.platforms import GENERIC, display_name, platform_registry

PLATFORM_MAX = 64
# The columns' bounds (and the API's): longer is refused in words, not by the database.
ACCOUNT_ID_MAX = HANDLE_MAX = 255
DISPLAY_NAME_MAX = 500


class AccountIdKnown(Conflict):
    """The platform id is already recorded, on this account (another id) or on another row."""


def link_account(
    session: Session,
    actor: User,
    case: Case,
    *,
    platform: str,
    platform_account_id: str | None = None,
    handle: str | None = None,
    display_name: str | None = None,
    profile_url: str | None = None,
) -> tuple[Account, bool]:
    """Link the account to the case, making or updating it; True if the link is new.

    Without the platform's id the account is the one of that handle on the platform."""
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    platform = platform.strip().lower()
    platform_account_id = (platform_account_id or "").strip() or None
    if profile_url is not None:
        profile_url = targets.validate_url(profile_url)
    if platform_account_id is None and not (handle or "").strip() and profile_url is not None:
        platform_account_id, handle = _shown_by(platform, profile_url)
    if platform_account_id is None and handle is not None:
        handle = handle.strip().lstrip("@").strip() or None  # the handle names this account
    if not platform or (platform_account_id is None and handle is None):
        raise InvalidInput("an account needs its platform and the platform's stable account id "
                           "or, until the id is known, its handle")
    for what, value, bound in (("the platform", platform, PLATFORM_MAX),
                               ("the account id", platform_account_id, ACCOUNT_ID_MAX),
                               ("the handle", handle, HANDLE_MAX),
                               ("the display name", display_name, DISPLAY_NAME_MAX)):
        if value is not None and len(value) > bound:
            raise InvalidInput(f"{what} holds at most {bound:,} characters")
    if platform_account_id is not None:
        account = _account_with_id(session, platform, platform_account_id)
    else:
        assert handle is not None
        account = session.scalars(select(Account).where(
            Account.platform == platform, Account.platform_account_id.is_(None),
            Account.handle_key == handle_key(handle))).first()
    now = utcnow()
    changed: dict[str, JsonValue] = {}
    if account is None:
        account = Account(platform=platform, platform_account_id=platform_account_id,
                          handle=handle, display_name=display_name, profile_url=profile_url,
                          first_seen_at=now, last_seen_at=now)
        # The same account made a moment ago by another link: the unique constraint (id) or
        # index (handle_key, migration 0018) refuses this row, and only the savepoint is lost.
        try:
            with session.begin_nested():
                session.add(account)
                session.flush()
        except IntegrityError:
            raise Conflict(
                f"{targets.account_name(account)} was linked a moment ago by someone else: "
                "try again") from None
    else:
        if platform_account_id is None:
            handle = None  # it named this account: the same handle, as written when first linked
        for name, value in (("handle", handle), ("display_name", display_name),
                            ("profile_url", profile_url)):
            before = getattr(account, name)
            if value is not None and value != before:
                setattr(account, name, value)
                changed[name] = {"from": before, "to": value}
        account.last_seen_at = now
    link = session.scalars(
        select(CaseAccount).where(CaseAccount.case_id == case.id,
                                  CaseAccount.account_id == account.id)
    ).first()
    new_link = link is None
    if link is None:
        session.add(CaseAccount(case_id=case.id, account_id=account.id, added_by_id=actor.id))
    session.flush()
    if new_link or changed:
        custody.append(
            session, actor, action="account.linked" if new_link else "account.updated",
            case=case, object_type="account", object_id=account.id,
            details={"platform": platform, "platform_account_id": platform_account_id,
                     "handle": account.handle, "display_name": account.display_name,
                     "profile_url": account.profile_url, "changes": changed},
        )
    return account, new_link


def _shown_by(platform: str, profile_url: str) -> tuple[str | None, str | None]:
    """The id and handle a profile URL on `platform` shows, as far as the registry reads it
    (instagram.com/name: the handle; facebook.com/profile.php?id=1: the id)."""
    found = platform_registry().recognise(profile_url)
    try:
        on = platform_registry().get(platform).name
    except NotFound:
        return None, None
    if found is None or found.platform != on or found.short_link or not found.identifier:
        return None, None
    if found.identifier_kind == "user_id":
        return found.identifier, None
    return (None, found.identifier) if found.identifier_kind == "username" else (None, None)


def _account_with_id(session: Session, platform: str, platform_account_id: str) -> Account | None:
    return session.scalars(select(Account).where(
        Account.platform == platform, Account.platform_account_id == platform_account_id)).first()


def record_account_id(
    session: Session, actor: User, case: Case, account_id: uuid.UUID, *, platform_account_id: str
) -> tuple[Account, bool]:
    """Record the platform's stable id on a case's account flagged by its handle; True if it
    was not recorded before.

    Another row that holds the id already is named and the two are not merged: its cases and
    custody entries are its own. The account's targets, in every case that flagged it,
    register the id for deconfliction."""
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    account = get_case_account(session, case, account_id)
    name = targets.account_name(account)
    given = platform_account_id.strip()
    platform = display_name(account.platform)
    if not given:
        raise InvalidInput(f"give {platform}'s id of the account, the one that stays when the "
                           "handle changes")
    if len(given) > ACCOUNT_ID_MAX:
        raise InvalidInput(f"the account id holds at most {ACCOUNT_ID_MAX:,} characters")
    if account.platform_account_id == given:
        return account, False
    if account.platform_account_id is not None:
        raise AccountIdKnown(
            f"{name} already has {platform}'s id {account.platform_account_id}: an account's "
            "id does not change; flag the account with the other id if it is another one")
    held = _account_with_id(session, account.platform, given)
    if held is not None:
        raise _held_by(session, case, held, given, platform)
    account.platform_account_id = given
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        account.platform_account_id = None
        raise AccountIdKnown(f"{platform}'s id {given} was recorded on another account a moment "
                             "ago: look again") from None
    custody.append(
        session, actor, action="account.id_recorded", case=case, object_type="account",
        object_id=account.id,
        details={"platform": account.platform, "platform_account_id": given,
                 "handle": account.handle, "profile_url": account.profile_url},
    )
    deconfliction.register_account_id(session, actor, case, account)
    return account, True


def _held_by(session: Session, case: Case, held: Account, given: str,
             platform: str) -> AccountIdKnown:
    """The refusal of an id another account holds: named by its handle if this case links it;
    an account of other cases only by its row, which says nothing of what they hold."""
    linked = session.scalars(select(CaseAccount.id).where(
        CaseAccount.case_id == case.id, CaseAccount.account_id == held.id)).first()
    if linked is not None:
        return AccountIdKnown(
            f"{platform}'s id {given} is already held by {targets.account_name(held)} in this "
            f"case (account {held.id}): the two are not merged; if they are one account, go on "
            "with that one and resolve this one's target")
    return AccountIdKnown(
        f"{platform}'s id {given} is already held by another account (account {held.id}), "
        "which other cases flagged: the two are not merged; flag the account by its id to "
        "link that one to this case")


def flag_account(
    session: Session,
    actor: User,
    case: Case,
    *,
    platform: str,
    profile_url: str,
    reason: str,
    handle: str | None = None,
    platform_account_id: str | None = None,
) -> tuple[Target, CaptureJob]:
    """Link the account on `platform` (a registry name) whose profile is at `profile_url` and
    flag it, as the API's two calls do, in the caller's transaction.

    The handle and the stable id are read from the profile URL where the registry can
    (x.com/name, facebook.com/profile.php?id=...); what is typed must agree with it. Without
    the stable id (instagram.com/name shows only the handle) the account is flagged by its
    handle, and its id is recorded on it once known (`record_account_id`).
    """
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    registry = platform_registry()
    try:
        chosen = registry.get(platform)
    except NotFound as exc:
        raise InvalidInput(f"choose the platform from the list ({exc.message})") from exc
    profile_url = targets.validate_url(profile_url)
    found = registry.recognise(profile_url)
    on = GENERIC if found is None else found.platform
    if on != chosen.name:
        where = ("a host the platform registry does not know" if found is None
                 else registry.get(on).display_name)
        raise InvalidInput(
            f"the profile URL {profile_url} is on {where}, not {chosen.display_name}: choose the "
            "platform the "
            "profile is on" + (f", or {registry.get(GENERIC).display_name}"
                               if found is None else ""))
    handle = (handle or "").strip() or None
    platform_account_id = (platform_account_id or "").strip() or None
    if found is not None and found.identifier and not found.short_link:
        if found.identifier_kind == "username":
            if handle is not None and (handle_key(handle.lstrip("@"))
                                       != handle_key(found.identifier)):
                raise InvalidInput(f"the handle {handle} is not the one the profile URL shows "
                                   f"(@{found.identifier}): give the account's own URL")
            handle = handle or found.identifier
        elif found.identifier_kind == "user_id":
            if platform_account_id not in (None, found.identifier):
                raise InvalidInput(
                    f"the account id {platform_account_id} is not the one the profile URL shows "
                    f"({found.identifier})")
            platform_account_id = found.identifier
    if platform_account_id is None and handle is None:
        raise InvalidInput(
            f"give the account's handle or {chosen.display_name}'s id of the account (the "
            "profile URL shows neither)")
    account, _new = link_account(session, actor, case, platform=chosen.name,
                                 platform_account_id=platform_account_id, handle=handle,
                                 profile_url=profile_url)
    return targets.flag(session, actor, case, reason=reason, account_id=account.id)


def accounts_by_id(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Account]:
    """The accounts with these ids (the accounts of a page of targets), by id."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(wanted)))}


def target_names(session: Session, found: list[Target]) -> dict[uuid.UUID, targets.TargetName]:
    """Each target's name for display (`targets.target_name`), its account read with it."""
    linked = accounts_by_id(session, [t.account_id for t in found if t.account_id])
    return {t.id: targets.target_name(t, linked.get(t.account_id) if t.account_id else None)
            for t in found}


def names_of_targets(session: Session,
                     ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, targets.TargetName]:
    """`target_names` for targets known by id (the captures of a page of search hits), in two
    queries however many there are."""
    wanted = set(ids)
    if not wanted:
        return {}
    return target_names(session, list(session.scalars(select(Target).where(
        Target.id.in_(wanted)))))


def get_case_account(session: Session, case: Case, account_id: uuid.UUID) -> Account:
    """The account if it is linked to this case; an account of another case is not found."""
    account = session.scalars(
        select(Account)
        .join(CaseAccount, CaseAccount.account_id == Account.id)
        .where(CaseAccount.case_id == case.id, Account.id == account_id)
    ).first()
    if account is None:
        raise AccessDenied(f"no account {account_id} in case {case.reference!r}")
    return account


def page_accounts(
    session: Session, case: Case, *, limit: int, cursor: str | None
) -> Page[Account]:
    return paginate(
        session,
        select(Account)
        .join(CaseAccount, CaseAccount.account_id == Account.id)
        .where(CaseAccount.case_id == case.id),
        key=(Account.first_seen_at, Account.id), limit=limit, cursor=cursor,
    )


def targets_of_account(session: Session, case: Case, account: Account) -> list[Target]:
    return list(session.scalars(
        select(Target).where(Target.case_id == case.id, Target.account_id == account.id)
        .order_by(Target.flagged_at, Target.id)
    ))
