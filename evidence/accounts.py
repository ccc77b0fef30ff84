"""Platform accounts linked to cases: who posted, named by the platform's stable identifier.

An account is one row per platform and stable id, whatever its handle is today; a case links
to it. Handles and display names change, so a link brings the account's facts up to date and
records what they were before in the case's custody log.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import cases, custody, targets
from evidence.canonical import JsonValue
from evidence.errors import AccessDenied, InvalidInput
from evidence.models import Access, Account, Case, CaseAccount, Target, User, utcnow
from evidence.pagination import Page, paginate

PLATFORM_MAX = 64


def link_account(
    session: Session,
    actor: User,
    case: Case,
    *,
    platform: str,
    platform_account_id: str,
    handle: str | None = None,
    display_name: str | None = None,
    profile_url: str | None = None,
) -> tuple[Account, bool]:
    """Link the account to the case, making or updating it; True if the link is new."""
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    platform = platform.strip().lower()
    platform_account_id = platform_account_id.strip()
    if not platform or not platform_account_id:
        raise InvalidInput("an account needs its platform and the platform's stable account id")
    if profile_url is not None:
        profile_url = targets.validate_url(profile_url)
    account = session.scalars(
        select(Account).where(
            Account.platform == platform, Account.platform_account_id == platform_account_id
        )
    ).first()
    now = utcnow()
    changed: dict[str, JsonValue] = {}
    if account is None:
        account = Account(platform=platform, platform_account_id=platform_account_id,
                          handle=handle, display_name=display_name, profile_url=profile_url,
                          first_seen_at=now, last_seen_at=now)
        session.add(account)
        session.flush()
    else:
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
