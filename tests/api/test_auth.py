"""Who may call the API: API tokens, login sessions, 401 for everyone else, `evidence user`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import user as user_group
from evidence.cli import main_group
from evidence.home import open_runtime
from evidence.models import Role
from evidence.settings import Settings
from tests.api.conftest import Api


def test_everything_but_health_and_login_needs_credentials(api: Api) -> None:
    assert api.get(None, "/api/health").status_code == 200
    missing = api.get(None, "/api/cases")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json() == {
        "error": "NotAuthenticated",
        "message": "log in, or send an API token as 'Authorization: Bearer TOKEN'",
    }
    wrong = api.client.get("/api/cases", headers={"Authorization": "Bearer evl_nope"})
    assert wrong.status_code == 401 and "unknown, revoked" in wrong.json()["message"]
    assert api.get(None, "/api/cases/C%00X").status_code == 401
    assert api.get(None, "/api/cases/C-1/targets/not-a-uuid").status_code == 401
    basic = api.client.get("/api/cases", headers={"Authorization": "Basic dTpw"})
    assert basic.status_code == 401 and "Bearer" in basic.json()["message"]
    api.client.cookies.set("evidence_session", "evs_forged")
    cookie = api.client.get("/api/cases")
    assert cookie.status_code == 401 and "log in again" in cookie.json()["message"]
    api.client.cookies.clear()
    caller = api.user("nadia")
    assert api.get(caller, "/api/auth/me").json()["name"] == "nadia"


def test_login_sets_an_http_only_strict_cookie_that_logout_ends(api: Api) -> None:
    api.user("nadia", password="correct horse")
    api.user("tokenonly")
    wrong = api.post(None, "/api/auth/login", json={"name": "nadia", "password": "wrong"})
    unknown = api.post(None, "/api/auth/login", json={"name": "ghost", "password": "wrong"})
    no_password = api.post(None, "/api/auth/login", json={"name": "tokenonly", "password": "x"})
    for refused in (wrong, unknown, no_password):
        assert refused.status_code == 401
        assert refused.json() == {"error": "LoginFailed",
                                  "message": "wrong user name or password"}
    ok = api.post(None, "/api/auth/login", json={"name": "nadia", "password": "correct horse"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["user"]["name"] == "nadia" and "token" not in ok.text
    set_cookie = ok.headers["set-cookie"]
    assert set_cookie.startswith("evidence_session=evs_")
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie.replace("Strict", "strict")
    assert "Secure" not in set_cookie  # development default
    token = ok.cookies["evidence_session"]
    api.client.cookies.set("evidence_session", token)
    assert api.client.get("/api/auth/me").json()["name"] == "nadia"
    assert api.client.post("/api/cases", json={"reference": "C-1", "title": "t"}
                           ).status_code == 201
    out = api.client.post("/api/auth/logout")
    assert out.status_code == 204
    assert 'evidence_session=""' in out.headers["set-cookie"] or \
        "Max-Age=0" in out.headers["set-cookie"]
    api.client.cookies.set("evidence_session", token)
    assert api.client.get("/api/auth/me").status_code == 401


def test_session_cookies_are_secure_when_configured(api: Api) -> None:
    api.user("nadia", password="pw")
    client = TestClient(create_app(api.runtime, secure_cookies=True))
    ok = client.post("/api/auth/login", json={"name": "nadia", "password": "pw"})
    assert ok.status_code == 200 and "Secure" in ok.headers["set-cookie"]


def test_an_auditor_and_a_liaison_cannot_open_cases(api: Api) -> None:
    auditor = api.user("aud", Role.AUDITOR)
    refused = api.post(auditor, "/api/cases", json={"reference": "C-1", "title": "t"})
    assert refused.status_code == 403 and "auditor" in refused.json()["message"]
    liaison = api.user("lia", Role.LIAISON)
    assert api.post(liaison, "/api/cases", json={"reference": "C-2", "title": "t"}
                    ).status_code == 201


@pytest.fixture
def home_env(tmp_path: Path, backend: str, database_url: str) -> dict[str, str]:
    env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_USER": ""}
    if backend == "postgresql":
        env["EVIDENCE_DATABASE_URL"] = database_url
    return env


def _run(env: dict[str, str], *args: str, user: str | None = None,
         stdin: str | None = None) -> Result:
    if "user" not in main_group.commands:
        main_group.add_command(user_group, "user")
    env = {**env, "EVIDENCE_USER": user or ""}
    return CliRunner().invoke(main_group, list(args), env=env, input=stdin,
                              catch_exceptions=False)


def test_user_add_prints_a_token_once_that_works_until_revoked(home_env: dict[str, str]) -> None:
    assert _run(home_env, "init").exit_code == 0
    added = _run(home_env, "user", "add", "nadia", "--role", "investigator", "--unit", "Border",
                 "--password", stdin="s3cret pass\ns3cret pass\n")
    assert added.exit_code == 0, added.output
    assert "user nadia (investigator, Border) added" in added.output
    token = added.output.split("keep it safe):")[1].split()[0]
    assert token.startswith("evl_")
    listed = _run(home_env, "user", "list")
    assert listed.exit_code == 0 and "nadia" in listed.output and "tokens:1" in listed.output
    assert token not in listed.output
    refused = _run(home_env, "user", "add", "eve", "--role", "admin", user="nadia")
    assert refused.exit_code == 1 and "only an admin" in refused.output
    bad_role = _run(home_env, "user", "add", "eve", "--role", "boss")
    assert bad_role.exit_code == 2

    settings = Settings(home=Path(home_env["EVIDENCE_HOME"]),
                        database_url=home_env.get("EVIDENCE_DATABASE_URL"))
    runtime = open_runtime(settings)
    try:
        client = TestClient(create_app(runtime))
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/auth/me", headers=bearer).json()["role"] == "investigator"
        login = client.post("/api/auth/login", json={"name": "nadia", "password": "s3cret pass"})
        assert login.status_code == 200
        client.cookies.clear()
        revoked = _run(home_env, "user", "revoke-token", "nadia")
        assert revoked.exit_code == 0 and "revoked 1 token(s) of nadia" in revoked.output
        assert client.get("/api/auth/me", headers=bearer).status_code == 401
        again = _run(home_env, "user", "revoke-token", "nadia", "--prefix", token[:8])
        assert again.exit_code == 1 and "no live token" in again.output
    finally:
        runtime.close()


def test_a_password_set_from_the_command_line_signs_in_and_ends_open_sessions(
    home_env: dict[str, str],
) -> None:
    made = _run(home_env, "init")
    assert "For the web UI, set a password: evidence user password admin" in made.output
    assert _run(home_env, "user", "add", "nadia", "--role", "investigator").exit_code == 0
    settings = Settings(home=Path(home_env["EVIDENCE_HOME"]),
                        database_url=home_env.get("EVIDENCE_DATABASE_URL"))
    runtime = open_runtime(settings)
    try:
        client = TestClient(create_app(runtime))

        def login(name: str, password: str) -> int:
            client.cookies.clear()
            return client.post("/api/auth/login",
                               json={"name": name, "password": password}).status_code

        assert login("admin", "first one here") == 401  # init makes no password
        first = _run(home_env, "user", "password", "admin",
                     stdin="first one here\nfirst one here\n")
        assert first.exit_code == 0 and first.output.strip().endswith("password of admin set")
        assert login("admin", "first one here") == 200
        session_cookie = client.cookies["evidence_session"]
        # A new password ends the open session: whoever held the old one is out.
        again = _run(home_env, "user", "password", "admin", stdin="second pass\nsecond pass\n")
        assert "1 open web session(s) ended" in again.output
        client.cookies.set("evidence_session", session_cookie)
        assert client.get("/api/auth/me").status_code == 401
        assert login("admin", "first one here") == 401 and login("admin", "second pass") == 200
        # Users set their own; only an admin sets another's.
        own = _run(home_env, "user", "password", "nadia", user="nadia", stdin="mine 1\nmine 1\n")
        assert own.exit_code == 0 and login("nadia", "mine 1") == 200
        other = _run(home_env, "user", "password", "admin", user="nadia", stdin="x y\nx y\n")
        assert other.exit_code == 1 and "only an admin" in other.output
        empty = _run(home_env, "user", "password", "nadia", stdin=" \n \n")
        assert empty.exit_code == 1 and "the password is empty" in empty.output
        assert "Traceback" not in empty.output + other.output
    finally:
        runtime.close()
