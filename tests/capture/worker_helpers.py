"""Helpers for test_worker.py: a data home driven through the real `evidence` command, process
trees that can be killed whole, and a look inside the blob store."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 180.0
T = TypeVar("T")


@dataclass
class Home:
    """A data home made by `evidence init`, with the environment its commands run in."""

    path: Path
    env: dict[str, str]
    database_url: str
    backend: str
    spawned: list[subprocess.Popen[str]] = field(default_factory=list)

    def command(self, *args: str, lease: float | None = None) -> list[str]:
        # A short lease lets a test see a killed worker's job taken over within seconds.
        extra = [] if lease is None else ["--lease", str(lease)]
        return [sys.executable, "-m", "evidence", *args, *extra]

    def environment(self, env: dict[str, str] | None, drop: tuple[str, ...]) -> dict[str, str]:
        merged = {**self.env, **(env or {})}
        return {k: v for k, v in merged.items() if k not in drop}

    def run(self, *args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = (),
            timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run `evidence ARGS` to the end; `drop` names variables to leave unset."""
        return subprocess.run(
            self.command(*args), env=self.environment(env, drop), cwd=REPO,
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run a command that must succeed; its stdout."""
        done = self.run(*args, env=env)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def start(self, *args: str, env: dict[str, str] | None = None,
              lease: float | None = None) -> subprocess.Popen[str]:
        """A command in its own process group, left running; stopped at the end of the test."""
        proc = subprocess.Popen(
            self.command(*args, lease=lease), env=self.environment(env, ()), cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.spawned.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.spawned:
            if proc.poll() is None:
                kill_tree(proc)
            proc.communicate(timeout=30)


def make_home(path: Path, backend: str, database_url: str, *, case: str) -> Home:
    """`evidence init` and `evidence case create CASE` in a fresh home on `backend`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update({"EVIDENCE_HOME": str(path), "EVIDENCE_USER": "",
                "EVIDENCE_CAPTURE_ALLOW": "127.0.0.1"})
    url = f"sqlite:///{path / 'evidence.db'}"
    if backend == "postgresql":
        env["EVIDENCE_DATABASE_URL"] = url = database_url
    home = Home(path, env, url, backend)
    home.ok("init")
    home.ok("case", "create", case, "--title", "Smuggling adverts")
    return home


# --- processes -------------------------------------------------------------------------------


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may hold spaces; the fields after it are plain.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, found before it dies (orphans are reparented)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_tree(proc: subprocess.Popen[str]) -> list[int]:
    """SIGKILL the process group of `proc` and the group of every process below it.

    Playwright launches Chromium detached (a process group of its own), so killing the
    worker's group alone would leave the browser running. Returns the pids that were killed.
    """
    below = descendants(proc.pid)
    groups = {proc.pid}
    for pid in below:
        with suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    for group in groups:
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    return [proc.pid, *below]


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float,
             interval: float = 0.1) -> T:
    """Poll `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --- the blob store ---------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stored_blobs(root: Path) -> Iterator[Path]:
    """Every file under a real address ROOT/ab/cd/NAME (the .incoming folder excluded)."""
    for path in root.rglob("*"):
        if path.is_file() and path.relative_to(root).parts[0] != ".incoming":
            yield path
