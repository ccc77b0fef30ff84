"""Platform accounts linked to a case."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import CaseRef, CurrentUser, DbSession, PageParams
from api.schemas import (
    ERROR_RESPONSES,
    AccountCreate,
    AccountDetail,
    AccountIdUpdate,
    AccountRead,
    ErrorRead,
    PageRead,
    TargetRead,
)
from evidence import accounts, cases
from evidence.models import Access

router = APIRouter(prefix="/api/cases/{ref}/accounts", tags=["accounts"],
                   responses=ERROR_RESPONSES)


@router.post("", response_model=AccountRead, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": AccountRead, "description": "Already linked."},
                        403: {"model": ErrorRead}, 409: {"model": ErrorRead}})
def link_account(ref: CaseRef, body: AccountCreate, response: Response, session: DbSession,
                 actor: CurrentUser) -> AccountRead:
    """Link an account (by platform and stable id, or by its handle until the id is known) to
    the case; updates its handle and names."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    account, new = accounts.link_account(
        session, actor, case, platform=body.platform,
        platform_account_id=body.platform_account_id, handle=body.handle,
        display_name=body.display_name, profile_url=body.profile_url,
    )
    if not new:
        response.status_code = status.HTTP_200_OK
    return AccountRead.model_validate(account)


@router.get("", response_model=PageRead[AccountRead])
def list_accounts(ref: CaseRef, session: DbSession, actor: CurrentUser, paging: PageParams) -> (
    PageRead[AccountRead]
):
    """The accounts linked to the case."""
    case = cases.case_for(session, actor, ref)
    page = accounts.page_accounts(session, case, limit=paging.limit, cursor=paging.cursor)
    return PageRead[AccountRead](items=[AccountRead.model_validate(a) for a in page.items],
                                 next=paging.next_link(page.next_cursor))


@router.get("/{account_id}", response_model=AccountDetail)
def show_account(ref: CaseRef, account_id: uuid.UUID, session: DbSession,
                 actor: CurrentUser) -> AccountDetail:
    """One linked account with the case's targets for it."""
    case = cases.case_for(session, actor, ref)
    account = accounts.get_case_account(session, case, account_id)
    found = accounts.targets_of_account(session, case, account)
    return AccountDetail(**AccountRead.model_validate(account).model_dump(),
                         targets=[TargetRead.model_validate(t) for t in found])


@router.put("/{account_id}/platform-account-id", response_model=AccountRead,
            responses={403: {"model": ErrorRead}, 409: {"model": ErrorRead, "description":
                       "The case is closed, the account has another id already, or another "
                       "account holds this one (named; the two are not merged)."}})
def record_account_id(ref: CaseRef, account_id: uuid.UUID, body: AccountIdUpdate,
                      session: DbSession, actor: CurrentUser) -> AccountRead:
    """Record the platform's stable id on an account flagged by its handle; its targets register
    it for deconfliction. The same id again changes nothing."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    account, _new = accounts.record_account_id(session, actor, case, account_id,
                                               platform_account_id=body.platform_account_id)
    return AccountRead.model_validate(account)
