"""Disabling and enabling users over HTTP (`POST /api/users/{user}/disable|enable`): admins
only, with the refusals of `evidence user disable|enable`, each changing nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from evidence import custody, sessions
from evidence.models import CustodyEntry, Role, User
from tests.api.conftest import Api, Caller

PASSWORD = "correct horse battery staple"
NO_CREDENTIALS = "log in, or send an API token as 'Authorization: Bearer TOKEN'"


def _entries(api: Api, action: str) -> list[dict[str, Any]]:
    with api.runtime.session() as session:
        return [custody.describe(e) for e in session.scalars(
            select(CustodyEntry).where(CustodyEntry.action == action).order_by(CustodyEntry.seq))]


def _active(api: Api, name: str) -> bool:
    with api.runtime.session() as session:
        return bool(session.scalars(select(User.is_active).where(User.name == name)).one())


def _refused(api: Api, caller: Caller | None, url: str, status: int, error: str,
             message: str, body: Any = None) -> None:
    answer = api.post(caller, url, json={"reason": "left the unit"} if body is None else body)
    assert answer.status_code == status, answer.text
    assert answer.json() == {"error": error, "message": message}


def test_an_admin_disables_and_enables_a_user(api: Api) -> None:
    root = api.user("root", Role.ADMIN, unit="IT")
    nadia = api.user("nadia", password=PASSWORD)
    with api.runtime.session() as session:
        sessions.login(session, name="nadia", password=PASSWORD)
    assert api.get(nadia, "/api/cases").status_code == 200

    disabled = api.post(root, "/api/users/nadia/disable", json={"reason": "left the unit"})
    assert disabled.status_code == 200, disabled.text
    assert disabled.json() == {
        "id": str(nadia.user.id), "name": "nadia", "display_name": None, "unit": "Border Unit",
        "role": "investigator", "active": False, "tokens_revoked": 1, "sessions_ended": 1}
    assert api.get(nadia, "/api/cases").status_code == 401
    assert not _active(api, "nadia")
    [entry] = _entries(api, "user.disabled")
    assert entry["actor"]["name"] == "root"
    assert entry["details"] == {"user": "nadia", "reason": "left the unit",
                                "tokens_revoked": 1, "sessions_ended": 1}

    enabled = api.post(root, "/api/users/nadia/enable", json={"reason": "back from secondment"})
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["active"] is True and set(enabled.json()) == {
        "id", "name", "display_name", "unit", "role", "active"}
    assert _active(api, "nadia")
    assert api.get(nadia, "/api/cases").status_code == 401  # revoked tokens stay revoked
    [entry] = _entries(api, "user.enabled")
    assert entry["details"] == {"user": "nadia", "reason": "back from secondment"}


def test_each_refusal_is_named_and_changes_nothing(api: Api) -> None:
    root = api.user("root", Role.ADMIN)
    nadia = api.user("nadia")
    sam = api.user("sam", Role.SUPERVISOR)
    url = "/api/users/{}/{}"
    for change in ("disable", "enable"):
        _refused(api, None, url.format("nadia", change), 401, "NotAuthenticated",
                 NO_CREDENTIALS)
        # Anyone but an admin is refused whoever they name, so no refusal tells who exists.
        for who in ("nadia", "root", "nobody"):
            _refused(api, sam, url.format(who, change), 403, "PermissionDenied",
                     "only an admin may manage users; 'sam' is supervisor")
        _refused(api, nadia, url.format("nadia", change), 403, "PermissionDenied",
                 "only an admin may manage users; 'nadia' is investigator")
        _refused(api, root, url.format("nobody", change), 404, "NotFound", "no user 'nobody'")
        _refused(api, root, url.format("nadia", change), 422, "InvalidInput",
                 f"say why the user is {change}d", body={"reason": "  "})
        missing = api.post(root, url.format("nadia", change), json={})
        assert missing.status_code == 422 and missing.json()["error"] == "InvalidInput"
    _refused(api, root, url.format("nadia", "enable"), 409, "Conflict", "'nadia' is not disabled")
    # The only admin: told first that none would be left, which another admin would change.
    _refused(api, root, url.format("root", "disable"), 409, "LastActiveAdmin",
             "'root' is the last active admin; make another admin first, who can then disable "
             "you")
    assert _active(api, "nadia") and _active(api, "root") and _active(api, "sam")
    assert _entries(api, "user.disabled") == [] and _entries(api, "user.enabled") == []

    # With a second admin, disabling oneself is still refused: the other may do it.
    ines = api.user("ines", Role.ADMIN)
    _refused(api, root, url.format("root", "disable"), 409, "DisablingOneself",
             "you cannot disable yourself; another admin can")
    assert api.post(ines, url.format("root", "disable"), json={"reason": "retired"}).json()[
        "active"] is False
    _refused(api, ines, url.format("root", "disable"), 409, "Conflict",
             "'root' is already disabled")
    # root can act no more; ines is now the last active admin, even to herself.
    _refused(api, root, url.format("ines", "disable"), 401, "NotAuthenticated",
             "the API token is unknown, revoked or its user disabled")
    _refused(api, ines, url.format("ines", "disable"), 409, "LastActiveAdmin",
             "'ines' is the last active admin; make another admin first, who can then disable "
             "you")
    assert _active(api, "ines") and not _active(api, "root")
    with api.runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(CustodyEntry).where(
            CustodyEntry.action == "user.disabled")) == 1


def test_the_routes_are_documented_for_admins(api: Api) -> None:
    root = api.user("root", Role.ADMIN)
    paths = api.get(root, "/api/openapi.json").json()["paths"]
    for change, read in (("disable", "UserDisabledRead"), ("enable", "UserStateRead")):
        operation = paths[f"/api/users/{{user}}/{change}"]["post"]
        assert operation["tags"] == ["users"]
        assert set(operation["responses"]) >= {"200", "401", "403", "404", "409", "422"}
        assert operation["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"].endswith(read)
        assert operation["requestBody"]["content"]["application/json"]["schema"][
            "$ref"].endswith("UserStatusChange")
