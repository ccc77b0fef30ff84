"""`evidence serve` as an operator starts it: a real uvicorn process over an initialised home."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from api.app import Sealing, _checkpoint_loop
from evidence import cases, custody, migrate, users
from evidence.db import make_engine
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import CustodyEntry
from evidence.settings import Settings
from tests.factories import drop_append_only
from tests.support.net import free_port


def _evidence(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evidence", *args], env=env, text=True,
                          capture_output=True, timeout=120)


def _get(url: str, token: str | None = None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                timeout=5) as response:
        return json.loads(response.read())


def _healthy(base: str) -> dict[str, Any]:
    """The health answer of a server just started, once it answers (at most 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return dict(_get(f"{base}/api/health"))
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "server did not answer within 30 s"
            time.sleep(0.2)


def _serve_without_worker(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "evidence", "serve", "--no-worker", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _home_database(env: dict[str, str], database_url: str, backend: str) -> str:
    """The database the home of `env` runs on."""
    if backend == "postgresql":
        return database_url
    return f"sqlite:///{Path(env['EVIDENCE_HOME']) / 'evidence.db'}"


@pytest.fixture
def env(tmp_path: Path, backend: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["EVIDENCE_HOME"] = str(tmp_path / "home")
    if backend == "postgresql":
        env["EVIDENCE_DATABASE_URL"] = database_url
    return env


def test_serve_answers_health_and_openapi_and_seals_the_log(env: dict[str, str]) -> None:
    init = _evidence("init", env=env)
    assert init.returncode == 0
    token = re.search(r"evl_\S+", init.stdout)
    assert token is not None, init.stdout
    made = _evidence("case", "create", "S-1", "--title", "served", env=env)
    assert made.returncode == 0, made.stderr
    port = free_port()
    env["EVIDENCE_CHECKPOINT_INTERVAL_SECONDS"] = "1"
    server = subprocess.Popen([sys.executable, "-m", "evidence", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        health = _healthy(base)
        assert health["status"] == "ok" and health["database"] == "ok"
        assert health["schema_revision"] == migrate.head_revision()
        assert len(health["signing_key_id"]) == 64
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            _get(f"{base}/api/openapi.json")
        assert anonymous.value.code == 401
        openapi = _get(f"{base}/api/openapi.json", token.group(0))
        assert openapi["info"]["title"] == "evidence-locker"
        assert "/api/health" in openapi["paths"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(f"{base}/api/nothing-here")
        assert missing.value.code == 404
        time.sleep(2.5)  # at least one checkpoint tick
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}" in output
    verified = _evidence("custody", "verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "not yet in a checkpoint" not in verified.stdout, verified.stdout


def test_serve_refuses_to_seal_a_broken_log_says_why_and_keeps_serving(
    env: dict[str, str], database_url: str, backend: str,
) -> None:
    """An insider altered an entry not yet sealed: the first tick says in one line that it
    signed nothing and which entry breaks (the next ticks and the seal at shutdown, refused over
    the same entry, do not repeat it), and the API goes on answering."""
    assert _evidence("init", env=env).returncode == 0  # seals the admin's entries
    assert _evidence("case", "create", "S-1", "--title", "t", env=env).returncode == 0
    url = _home_database(env, database_url, backend)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            drop_append_only(conn, "custody_entries")
            entry = bytes(conn.execute(
                text("SELECT entry FROM custody_entries WHERE seq = 3")).scalar_one())
            assert b'"title":"t"' in entry  # the case's creation
            conn.execute(text("UPDATE custody_entries SET entry = :e WHERE seq = 3"),
                         {"e": entry.replace(b'"title":"t"', b'"title":"x"')})
            sealed = conn.execute(text("SELECT max(tree_size) FROM checkpoints")).scalar_one()
    finally:
        engine.dispose()
    port = free_port()
    env["EVIDENCE_CHECKPOINT_INTERVAL_SECONDS"] = "1"
    server = _serve_without_worker(env, port)
    try:
        base = f"http://127.0.0.1:{port}"
        assert _healthy(base)["status"] == "ok"
        time.sleep(2.5)  # at least two checkpoint ticks
        assert _get(f"{base}/api/health")["status"] == "ok"
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "Traceback" not in output, output
    refusal = ("checkpoint refused, nothing signed: the custody log is broken at entry seq 3: "
               "entry bytes do not match its recorded hash (altered) (1 more problems). Run "
               "`evidence custody verify` and have the log examined.")
    said = [line for line in output.splitlines() if "checkpoint" in line]
    # Two ticks and the shutdown refused the same break: said once.
    assert said == [refusal], output
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT max(tree_size) FROM checkpoints")).scalar_one() \
                == sealed
    finally:
        engine.dispose()


def _alter(runtime: Runtime, seq: int, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` in entry `seq`, as an insider with database access would."""
    with runtime.engine.begin() as conn:
        entry = bytes(conn.execute(
            text("SELECT entry FROM custody_entries WHERE seq = :s"), {"s": seq}).scalar_one())
        assert old in entry
        conn.execute(text("UPDATE custody_entries SET entry = :e WHERE seq = :s"),
                     {"e": entry.replace(old, new), "s": seq})


def test_the_checkpoint_loop_says_a_refusal_once_until_its_break_changes_or_clears(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url,
                        checkpoint_interval_seconds=1)
    init_home(settings)
    runtime = open_runtime(settings)
    try:
        with runtime.session() as session:
            admin = users.first_admin(session)
            assert admin is not None
            cases.create_case(session, admin, reference="S-1", title="first")
            cases.create_case(session, admin, reference="S-2", title="second")
            first, second = session.scalars(
                select(CustodyEntry.seq).where(CustodyEntry.action == "case.created")
                .order_by(CustodyEntry.seq)).all()[-2:]
        with runtime.engine.begin() as conn:
            drop_append_only(conn, "custody_entries")
        _alter(runtime, first, b'"title":"first"', b'"title":"FIRST"')
        sealing = Sealing(runtime)

        def loop(ticks: int) -> list[str]:
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="evidence.api"):
                asyncio.run(_checkpoint_loop(runtime, sealing, ticks=ticks))
            return [r.getMessage() for r in caplog.records if r.name == "evidence.api"]

        def refused_at(seq: int, said: list[str]) -> bool:
            return len(said) == 1 and said[0].startswith(
                "checkpoint refused, nothing signed: the custody log is broken at entry seq "
                f"{seq}: entry bytes do not match its recorded hash (altered)")

        # Three ticks over the same break: said once.
        assert refused_at(first, loop(3))
        # Put right, while the next entry is altered: the break moved, so it is said again.
        _alter(runtime, first, b'"title":"FIRST"', b'"title":"first"')
        _alter(runtime, second, b'"title":"second"', b'"title":"SECOND"')
        assert refused_at(second, loop(2))
        assert loop(1) == []
        # Put right too: the log seals again, and that is said.
        _alter(runtime, second, b'"title":"SECOND"', b'"title":"second"')
        with runtime.session() as session:
            size = session.scalar(select(func.max(CustodyEntry.seq)))
        assert loop(2) == [
            f"custody checkpoint signed again (log size {size}): the log checks out, the "
            f"refusal over entry seq {second}: entry bytes do not match its recorded hash "
            "(altered) has cleared"]
        with runtime.session() as session:
            latest = custody.latest_checkpoint(session)
            assert latest is not None and latest.tree_size == size
    finally:
        runtime.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not read its status


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C", "SIGKILL"])
def test_the_capture_worker_ends_with_serve_however_serve_is_stopped(
    env: dict[str, str], stop: str,
) -> None:
    """systemd and docker stop a service with SIGTERM; Ctrl-C sends SIGINT to every process of
    the terminal's group, the worker included; a crash or the OOM killer is SIGKILL. A worker
    left behind would go on claiming jobs with nobody to stop them; a stop that is asked is
    clean: both end saying so, exit 0, and nothing is printed of a signal landing mid-work."""
    assert _evidence("init", env=env).returncode == 0
    server = subprocess.Popen([sys.executable, "-m", "evidence", "serve", "--port",
                               str(free_port())], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert server.stdout is not None
    try:
        line = server.stdout.readline()
        started = re.search(r"capture worker started \(pid (\d+)\)", line)
        assert started, line
        worker = int(started.group(1))
        said = [line]
        while not re.match(r"worker \S+ \(Chromium .*\) started$", said[-1]):
            said.append(server.stdout.readline())
            assert said[-1], said
        if stop == "Ctrl-C":
            os.killpg(server.pid, signal.SIGINT)
        else:
            server.send_signal(getattr(signal, stop))
        code = server.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the capture worker outlived serve"
    finally:
        if server.poll() is None:
            server.kill()
        rest, _ = server.communicate(timeout=30)
    if stop == "SIGKILL":
        assert code == -signal.SIGKILL
        return
    output = "".join(said) + rest
    assert code == 0, output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    # Ctrl-C reached the worker too, then serve's SIGTERM: one stop, not a second signal.
    assert "again: stopping at once" not in output, output
    name = "SIGINT" if stop == "Ctrl-C" else "SIGTERM"
    assert re.search(rf"^worker \S+ stopped \({name}\)$", output, re.M), output
    assert output.splitlines()[-1] == f"evidence-locker stopped ({name})", output


@pytest.mark.parametrize(("proxies", "recorded"), [
    (None, "203.0.113.7"),  # a reverse proxy on the same machine: its X-Forwarded-For counts
    ("192.0.2.1", "127.0.0.1"),  # the proxy is elsewhere: a client's own header counts for nothing
])
def test_a_failed_sign_in_is_recorded_with_the_address_the_proxy_names(
    env: dict[str, str], database_url: str, backend: str, proxies: str | None, recorded: str,
) -> None:
    """Behind a reverse proxy every request comes from the proxy's address: sign-ins are
    throttled by, and recorded with, the client's address it forwards, and only a proxy
    FORWARDED_ALLOW_IPS names may forward one (README, Settings)."""
    assert _evidence("init", env=env).returncode == 0
    env.pop("FORWARDED_ALLOW_IPS", None)
    if proxies is not None:
        env["FORWARDED_ALLOW_IPS"] = proxies
    port = free_port()
    server = _serve_without_worker(env, port)
    try:
        base = f"http://127.0.0.1:{port}"
        assert _healthy(base)["status"] == "ok"
        attempt = urllib.request.Request(
            f"{base}/api/auth/login", method="POST",
            data=json.dumps({"name": "admin", "password": "not the password"}).encode(),
            headers={"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.7"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(attempt, timeout=5)
        assert refused.value.code == 401
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert "Traceback" not in output, output
    url = _home_database(env, database_url, backend)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            addresses = conn.execute(text("SELECT remote_address FROM login_failures")).scalars()
            assert list(addresses) == [recorded]
    finally:
        engine.dispose()


def test_serve_refuses_a_home_that_was_never_initialised(env: dict[str, str]) -> None:
    env.pop("EVIDENCE_DATABASE_URL", None)
    result = _evidence("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert "run `evidence init" in result.stderr
    assert "Traceback" not in result.stderr
