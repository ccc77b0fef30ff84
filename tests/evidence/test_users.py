"""Disabling and enabling users (evidence/users.py): admins only, never oneself nor the last
active admin, tokens revoked and web sessions ended at once, past records kept under the name,
memberships kept but unusable till the user is enabled again."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import cases, custody, sessions, targets, users
from evidence.errors import Conflict, InvalidInput, PermissionDenied
from evidence.models import Access, CaptureJob, CustodyEntry, JobState, Role
from tests.factories import make_case, make_user

PASSWORD = "correct horse battery staple"


def _entries(session: Session, action: str) -> list[dict[str, Any]]:
    return [custody.describe(e) for e in session.scalars(
        select(CustodyEntry).where(CustodyEntry.action == action).order_by(CustodyEntry.seq))]


def test_disabling_shuts_the_user_out_at_once_and_keeps_their_record(session: Session) -> None:
    admin = make_user(session, role=Role.ADMIN)
    officer = make_user(session, password=PASSWORD)
    case = make_case(session, officer)
    _target, job = targets.flag_target(session, officer, case, reason="advert",
                                       url="http://127.0.0.1:1/ad")
    token = users.issue_token(session, admin, officer)
    _user, cookie, _row = sessions.login(session, name=officer.name, password=PASSWORD)
    assert sessions.authenticate(session, bearer=token, cookie=None).id == officer.id

    assert users.disable_user(session, admin, officer, reason=" left the unit ") == (1, 1)
    with pytest.raises(sessions.NotAuthenticated):
        sessions.authenticate(session, bearer=token, cookie=None)
    with pytest.raises(sessions.NotAuthenticated):
        sessions.authenticate(session, bearer=None, cookie=cookie)
    with pytest.raises(sessions.LoginFailed):
        sessions.login(session, name=officer.name, password=PASSWORD)
    with pytest.raises(InvalidInput, match="disabled"):
        users.resolve_actor(session, officer.name)
    with pytest.raises(PermissionDenied, match="disabled"):
        cases.require_access(session, officer, case, Access.READ)
    [entry] = _entries(session, "user.disabled")
    assert entry["actor"]["name"] == admin.name
    assert entry["details"] == {"user": officer.name, "reason": "left the unit",
                                "tokens_revoked": 1, "sessions_ended": 1}
    assert len(_entries(session, "token.revoked")) == 1
    # What they did stays, under their name; the capture they queued still runs.
    flagged = _entries(session, "target.flagged")
    assert flagged[0]["actor"]["name"] == officer.name
    session.refresh(job)
    assert session.get(CaptureJob, job.id).state == JobState.QUEUED  # type: ignore[union-attr]

    users.enable_user(session, admin, officer, reason="back from secondment")
    assert cases.access_of(session, officer, case) == Access.MANAGE
    cases.require_access(session, officer, case, Access.WRITE)
    with pytest.raises(sessions.NotAuthenticated):  # revoked tokens stay revoked
        sessions.authenticate(session, bearer=token, cookie=None)
    assert sessions.login(session, name=officer.name, password=PASSWORD)[0].id == officer.id
    [enabled] = _entries(session, "user.enabled")
    assert enabled["details"] == {"user": officer.name, "reason": "back from secondment"}


def test_refusals(session: Session) -> None:
    admin = make_user(session, role=Role.ADMIN)
    other_admin = make_user(session, role=Role.ADMIN)
    officer = make_user(session)
    with pytest.raises(PermissionDenied, match="only an admin"):
        users.disable_user(session, officer, admin, reason="coup")
    with pytest.raises(users.DisablingOneself, match="cannot disable yourself"):
        users.disable_user(session, admin, admin, reason="leaving")
    with pytest.raises(InvalidInput, match="say why"):
        users.disable_user(session, admin, officer, reason="   ")
    with pytest.raises(Conflict, match="is not disabled"):
        users.enable_user(session, admin, officer, reason="r")
    users.disable_user(session, admin, other_admin, reason="left")
    with pytest.raises(Conflict, match="already disabled"):
        users.disable_user(session, admin, other_admin, reason="again")
    with pytest.raises(PermissionDenied, match="only an admin"):
        users.enable_user(session, officer, other_admin, reason="r")
    assert officer.is_active and admin.is_active and not other_admin.is_active
    assert len(_entries(session, "user.disabled")) == 1


def test_the_last_active_admin_is_never_disabled(session: Session) -> None:
    """Two admins disabling each other at once: the one whose request comes second was
    disabled meanwhile and finds the other the last active admin (on PostgreSQL the admins'
    rows are locked, so the second waits for the first and reads what it left)."""
    first = make_user(session, role=Role.ADMIN)
    for user in session.scalars(select(users.User).where(
            users.User.role == Role.ADMIN, users.User.is_active.is_(True),
            users.User.id != first.id)).all():
        users.disable_user(session, first, user, reason="tidy")
    second = make_user(session, role=Role.ADMIN)
    users.disable_user(session, first, second, reason="left")
    users.enable_user(session, first, second, reason="back")
    users.disable_user(session, second, first, reason="left")
    with pytest.raises(Conflict, match="last active admin"):
        users.disable_user(session, first, second, reason="left")
    assert second.is_active
    # The last admin disabling themselves hears that, not that "another admin can".
    with pytest.raises(users.LastActiveAdmin) as alone:
        users.disable_user(session, second, second, reason="leaving")
    assert alone.value.message == (f"{second.name!r} is the last active admin; make another "
                                   "admin first, who can then disable you")
    assert second.is_active
