"""`evidence serve` as an operator starts it: a real uvicorn process over an initialised home."""

from __future__ import annotations

import json
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
from sqlalchemy import text

from evidence import migrate
from evidence.db import make_engine
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
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            try:
                health = _get(f"{base}/api/health")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert health is not None, "server did not answer within 30 s"
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
    """An insider altered an entry not yet sealed: every tick (and the seal at shutdown) says
    in one line that it signed nothing and which entry breaks, and the API goes on answering."""
    assert _evidence("init", env=env).returncode == 0  # seals the admin's entries
    assert _evidence("case", "create", "S-1", "--title", "t", env=env).returncode == 0
    url = database_url if backend == "postgresql" else \
        f"sqlite:///{Path(env['EVIDENCE_HOME']) / 'evidence.db'}"
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
    server = subprocess.Popen(
        [sys.executable, "-m", "evidence", "serve", "--no-worker", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _get(f"{base}/api/health")["status"] == "ok"
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "server did not answer within 30 s"
                time.sleep(0.2)
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
    assert len(said) >= 3, output  # two ticks and the shutdown
    assert set(said) == {refusal}, output
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT max(tree_size) FROM checkpoints")).scalar_one() \
                == sealed
    finally:
        engine.dispose()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not read its status


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_the_capture_worker_ends_with_serve_however_serve_is_stopped(
    env: dict[str, str], stop: signal.Signals,
) -> None:
    """systemd and docker stop a service with SIGTERM; a crash or the OOM killer with SIGKILL.
    A worker left behind would go on claiming jobs with nobody to stop it."""
    assert _evidence("init", env=env).returncode == 0
    server = subprocess.Popen([sys.executable, "-m", "evidence", "serve", "--port",
                               str(free_port())], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    try:
        line = server.stdout.readline()
        started = re.search(r"capture worker started \(pid (\d+)\)", line)
        assert started, line
        worker = int(started.group(1))
        deadline = time.monotonic() + 60
        while "worker" not in Path(f"/proc/{worker}/cmdline").read_text():  # it is exec'd
            assert time.monotonic() < deadline
            time.sleep(0.1)
        server.send_signal(stop)
        code = server.wait(timeout=60)
        assert code == (143 if stop == signal.SIGTERM else -signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the capture worker outlived serve"
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=30)


def test_serve_refuses_a_home_that_was_never_initialised(env: dict[str, str]) -> None:
    env.pop("EVIDENCE_DATABASE_URL", None)
    result = _evidence("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert "run `evidence init" in result.stderr
    assert "Traceback" not in result.stderr
