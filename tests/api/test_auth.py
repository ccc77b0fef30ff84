"""Who may call the API: API tokens, login sessions, 401 for everyone else, throttled password
guessing, `evidence user`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.app import create_app
from api.cli import user as user_group
from evidence import custody, sessions
from evidence.cli import main_group
from evidence.home import open_runtime
from evidence.models import CustodyEntry, LoginFailure, LoginSession, Role, utcnow
from evidence.settings import Settings
from tests.api.conftest import Api, use_clock
from tests.factories import make_user


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


def _client(api: Api, address: str) -> TestClient:
    """A caller of the app from `address`."""
    return TestClient(api.client.app, client=(address, 50000))


def _login(client: TestClient, name: str, password: str) -> Response:
    return client.post("/api/auth/login", json={"name": name, "password": password})


def _throttle_entries(session: Session) -> list[dict[str, Any]]:
    described = (custody.describe(e) for e in session.scalars(
        select(CustodyEntry).order_by(CustodyEntry.seq)))
    return [d for d in described if d["action"] == "user.login_throttled"]


def _refused(answer: Response, retry_after: int, message: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["retry-after"] == str(retry_after)
    assert answer.json() == {"error": "LoginThrottled", "message": message}


FROM_HERE = "too many failed sign-ins for this name from your address; try again in "
LATELY = "too many failed sign-ins for this name lately; try again in "


def test_failed_logins_from_one_address_wait_twice_as_long_each_time(api: Api) -> None:
    api.user("nadia", password="correct horse")
    clock = use_clock(api)
    here = _client(api, "198.51.100.7")
    for name in ("nadia", "ghost"):
        for _ in range(sessions.ADDRESS_FREE_FAILURES):
            assert _login(here, name, "guess").status_code == 401
    # Closed for a minute: the right password is not even checked, known name or not.
    _refused(_login(here, "nadia", "correct horse"), 60, FROM_HERE + "1 minute")
    _refused(_login(here, "ghost", "correct horse"), 60, FROM_HERE + "1 minute")
    assert "evidence_session" not in here.cookies
    clock.advance(seconds=45)
    # The same name as typed otherwise; refused while waiting, it is not counted.
    _refused(_login(here, "NADIA ", "guess"), 15, FROM_HERE + "15 seconds")
    clock.advance(seconds=15)
    # The wait is over; one more wrong password starts one twice as long, and so on.
    assert _login(here, "nadia", "guess").status_code == 401
    _refused(_login(here, "nadia", "correct horse"), 120, FROM_HERE + "2 minutes")
    clock.advance(minutes=2)
    assert _login(here, "nadia", "guess").status_code == 401
    _refused(_login(here, "nadia", "correct horse"), 240, FROM_HERE + "4 minutes")
    clock.advance(minutes=3, seconds=59)
    _refused(_login(here, "nadia", "correct horse"), 1, FROM_HERE + "1 second")
    clock.advance(seconds=1)
    signed_in = _login(here, "nadia", "correct horse")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.cookies["evidence_session"].startswith("evs_")
    # A login forgives the failures before it: the next wrong password is only wrong.
    clock.advance(seconds=1)
    assert _login(here, "nadia", "guess").status_code == 401
    assert _login(here, "nadia", "correct horse").status_code == 200

    with api.runtime.session() as session:
        # Each failure outlived its request's rollback; refusals while waiting are not kept.
        counts = {name: count for name, count in session.execute(
            select(LoginFailure.name, func.count()).group_by(LoginFailure.name))}
        assert counts == {"nadia": 8, "ghost": 5}
        assert {row.remote_address for row in session.scalars(select(LoginFailure))} == {
            "198.51.100.7"}
        assert {row.remote_address for row in session.scalars(select(LoginSession))} == {
            "198.51.100.7"}
        # Logged once for each wait started, under the user the name belongs to: not for each
        # refusal, and nothing for "ghost", which is nobody's.
        entries = _throttle_entries(session)
        assert [e["details"]["wait_seconds"] for e in entries] == [60, 120, 240]
        assert all(e["actor"]["name"] == "nadia" and e["object"]["type"] == "user"
                   for e in entries)
        first = entries[0]["details"]
        assert first == {"scope": "address", "remote_address": "198.51.100.7",
                         "failures_from_address": 5, "failures_for_name": 5,
                         "wait_seconds": 60, "until": first["until"]}
        assert "ghost" not in str([custody.describe(e)
                                   for e in session.scalars(select(CustodyEntry))])


def test_another_address_is_slowed_only_by_the_gentler_wait_of_the_name(api: Api) -> None:
    api.user("nadia", password="correct horse")
    api.user("omar", password="his own")
    clock = use_clock(api)
    guesser, office = _client(api, "203.0.113.9"), _client(api, "192.0.2.10")
    for _ in range(sessions.ADDRESS_FREE_FAILURES):
        assert _login(guesser, "nadia", "guess").status_code == 401
    _refused(_login(guesser, "nadia", "correct horse"), 60, FROM_HERE + "1 minute")
    # From the office the name's owner signs in at once, and another name from the guesser's
    # address too; neither opens the name to the guesser.
    assert _login(office, "nadia", "correct horse").status_code == 200
    assert _login(guesser, "omar", "his own").status_code == 200
    _refused(_login(guesser, "nadia", "correct horse"), 60, FROM_HERE + "1 minute")

    # Guessing spread over many addresses, one failure each: past the name's free failures
    # (counted since its last login), every address waits, briefly.
    clock.advance(seconds=1)
    for i in range(sessions.NAME_FREE_FAILURES):
        assert _login(_client(api, f"203.0.113.{100 + i}"), "nadia", "guess").status_code == 401
    _refused(_login(office, "nadia", "correct horse"), 10, LATELY + "10 seconds")
    clock.advance(seconds=10)
    assert _login(office, "nadia", "correct horse").status_code == 200
    # The guesser's own wait is longer and still runs.
    _refused(_login(guesser, "nadia", "correct horse"), 49, FROM_HERE + "49 seconds")

    with api.runtime.session() as session:
        entries = [e["details"] for e in _throttle_entries(session)]
    assert [(e["scope"], e["remote_address"], e["failures_from_address"],
             e["failures_for_name"], e["wait_seconds"]) for e in entries] == [
        ("address", "203.0.113.9", 5, 5, 60),
        ("name", "203.0.113.114", 1, 15, 10),
    ]


def test_waits_double_up_to_an_hour_and_a_day_forgets_them(session: Session) -> None:
    make_user(session, name="nadia", password="correct horse")
    now = utcnow()
    waits: list[int | None] = []
    for _ in range(12):
        with pytest.raises(sessions.LoginFailed):
            sessions.login(session, name="nadia", password="guess", remote_address="10.0.0.7",
                           now=now)
        wait = sessions.throttle(session, "nadia", "10.0.0.7", now=now)
        waits.append(None if wait is None else wait.seconds(now))
        if wait is not None:
            with pytest.raises(sessions.LoginThrottled):
                sessions.login(session, name="nadia", password="correct horse",
                               remote_address="10.0.0.7", now=wait.until - timedelta(seconds=1))
            now = wait.until
    assert waits == [None] * 4 + [60, 120, 240, 480, 960, 1920, 3600, 3600]
    # A day after the last failure, the failures before it count no more.
    now += sessions.FAILURE_MEMORY
    with pytest.raises(sessions.LoginFailed):
        sessions.login(session, name="nadia", password="guess", remote_address="10.0.0.7",
                       now=now)
    assert sessions.throttle(session, "nadia", "10.0.0.7", now=now) is None
    user, _token, row = sessions.login(session, name="nadia", password="correct horse",
                                       remote_address="10.0.0.7", now=now)
    assert user.name == "nadia" and row.remote_address == "10.0.0.7"


def test_failures_are_kept_for_the_retention_then_pruned(session: Session) -> None:
    start = utcnow()
    retention = sessions.LOGIN_FAILURE_RETENTION
    for name, when in (("old", start - retention - timedelta(minutes=1)),
                       ("kept", start - retention + timedelta(minutes=1))):
        with pytest.raises(sessions.LoginFailed):
            sessions.login(session, name=name, password="guess", now=when)

    def names() -> set[str]:
        return set(session.scalars(select(LoginFailure.name)))

    assert names() == {"old", "kept"}
    # The next failure, whoever it guesses at, deletes what is past the retention.
    with pytest.raises(sessions.LoginFailed):
        sessions.login(session, name="new", password="guess", now=start)
    assert names() == {"kept", "new"}


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
        # A new token replaces the revoked one; only an admin gives one to someone else.
        other = _run(home_env, "user", "token", "admin", user="nadia")
        assert other.exit_code == 1 and "only an admin" in other.output
        given = _run(home_env, "user", "token", "nadia", "--label", "laptop")
        assert given.exit_code == 0, given.output
        fresh = given.output.split("keep it safe):")[1].split()[0]
        assert fresh.startswith("evl_") and fresh != token
        me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {fresh}"})
        assert me.status_code == 200 and me.json()["name"] == "nadia"
        assert client.get("/api/auth/me", headers=bearer).status_code == 401
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


def test_a_web_session_unused_for_an_hour_ends_while_one_in_use_stays_open(api: Api) -> None:
    clock = use_clock(api)
    api.user("nadia", password="correct horse")
    caller = api.user("script")
    ok = api.post(None, "/api/auth/login", json={"name": "nadia", "password": "correct horse"})
    assert ok.status_code == 200, ok.text
    api.client.cookies.set("evidence_session", ok.cookies["evidence_session"])
    for _ in range(5):  # used every 59 minutes: still open after almost five hours
        clock.advance(minutes=59)
        assert api.client.get("/api/auth/me").status_code == 200
        assert api.client.get("/", follow_redirects=False).status_code == 200
    clock.advance(minutes=60)  # the desk left for an hour
    ended = api.client.get("/api/auth/me")
    assert ended.status_code == 401 and "log in again" in ended.json()["message"]
    page = api.client.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert api.client.get("/login", follow_redirects=False).status_code == 200  # no loop back
    # API tokens are for scripts, not desks: no idle bound.
    assert api.get(caller, "/api/auth/me").status_code == 200

    # A service sets its own bound.
    api.runtime.settings = api.runtime.settings.model_copy(update={"session_idle_minutes": 5})
    again = api.post(None, "/api/auth/login", json={"name": "nadia", "password": "correct horse"})
    api.client.cookies.set("evidence_session", again.cookies["evidence_session"])
    clock.advance(minutes=4, seconds=59)
    assert api.client.get("/api/auth/me").status_code == 200
    clock.advance(minutes=5)
    assert api.client.get("/api/auth/me").status_code == 401
