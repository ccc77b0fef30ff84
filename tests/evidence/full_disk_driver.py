"""Run inside a mount namespace whose data home is a small tmpfs (see test_full_disk.py): each
step is `evidence ARGS`, or `fill [BYTES [DIR]]` (write a file until the disk is full, then
give BYTES of it back; on the disk of DIR if given, else the home's), `free [DIR]` (remove it),
`app` (open the web app over the home, in this process, signed in as the admin), `post PATH
JSON` (post to it, as the API's client or, for a page, as a form), `files DIR` (the files under
DIR, in the home unless absolute, as paths relative to the home), `sql QUERY` (its rows, read
from the home's database), `start ARGS` (start `evidence ARGS` and go on while it runs), `await
QUERY VALUE` (wait until the query's first row starts with VALUE), `await-said TEXT` (wait until
what `start` started says a line with TEXT on stderr), `stop` (stop it, as a service manager
does, and give all it said) or `wait` (wait for it to end by itself, and give all it said);
prints one JSON list of what each step gave."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# This checkout's code, as the `evidence` processes it starts (run from it) use.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
home, steps = Path(sys.argv[1]), json.loads(sys.argv[2])
# The browser's processes may outlive the `evidence` process that started them by a moment,
# holding deleted files' room: made this process's children when orphaned, each step waits for
# them, so the next one (say, a `fill`) sees the disk as the step left it.
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap() -> None:
    """Wait for every process the steps started (and those they started) to end."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def filler(folder: str | None) -> Path:
    """The file that fills the disk of `folder` (by default the home's)."""
    return (Path(folder) if folder else home) / "filler"


AWAIT_SECONDS = 120.0


def rows_of(query: str) -> list[list[str]]:
    from sqlalchemy import text

    from evidence.home import open_runtime
    from evidence.settings import Settings

    reader = open_runtime(Settings())
    try:
        with reader.read_session() as session:
            return [[str(v) for v in row] for row in session.execute(text(query))]
    finally:
        reader.close()


results = []
started: subprocess.Popen[str] | None = None
heard: list[str] = []  # what it said on stderr, read by `await-said`
client: Any = None
headers: dict[str, str] = {}
for step in steps:
    if step == ["app"]:
        from fastapi.testclient import TestClient

        from api.app import create_app
        from evidence import users
        from evidence.home import open_runtime
        from evidence.settings import Settings

        runtime = open_runtime(Settings())
        with runtime.session() as session:
            admin = users.get_user(session, "admin")
            headers = {"Authorization": f"Bearer {users.issue_token(session, admin, admin)}"}
        client = TestClient(create_app(runtime))
        results.append({"step": step})
        continue
    if step[0] == "post":
        answer = client.post(step[1], json=json.loads(step[2]), headers=headers)
        results.append({"step": step, "code": answer.status_code, "out": answer.text,
                        "type": answer.headers.get("content-type", "")})
        continue
    if step[0] == "fill":
        with filler(step[2] if len(step) > 2 else None).open("wb", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
            room = int(step[1]) if len(step) > 1 else 0
            os.ftruncate(out.fileno(), max(0, out.tell() - room))
        results.append({"step": step})
        continue
    if step[0] == "files":
        folder = home / step[1]
        found = [] if not folder.is_dir() else sorted(
            str(p.relative_to(home) if p.is_relative_to(home) else p)
            for p in folder.rglob("*") if p.is_file())
        results.append({"step": step, "files": found})
        continue
    if step[0] == "sql":
        results.append({"step": step, "rows": rows_of(step[1])})
        continue
    if step[0] == "start":
        started = subprocess.Popen([sys.executable, "-m", "evidence", *step[1:]],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results.append({"step": step})
        continue
    if step[0] == "await":
        give_up = time.monotonic() + AWAIT_SECONDS
        while not (rows := rows_of(step[1])) or rows[0][0] != step[2]:
            assert time.monotonic() < give_up, f"{step}: still {rows} after {AWAIT_SECONDS} s"
            time.sleep(0.05)
        results.append({"step": step, "rows": rows})
        continue
    if step[0] == "await-said":
        assert started is not None and started.stderr is not None, "await-said: nothing started"
        while not heard or step[1] not in heard[-1]:
            line = started.stderr.readline()
            assert line, f"{step}: it ended, having said {heard}"
            heard.append(line)
        results.append({"step": step, "said": heard[-1]})
        continue
    if step in (["stop"], ["wait"]):
        assert started is not None, f"{step[0]}: nothing was started"
        killed = False
        if step == ["stop"]:
            started.send_signal(signal.SIGTERM)
            try:
                said, errors = started.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                # As `evidence serve` stops its worker: SIGTERM, a grace, then SIGKILL (`killed`
                # says so), so that a stop that hangs fails the test that reads it and no other.
                started.kill()
                said, errors = started.communicate(timeout=60)
                killed = True
        else:
            said, errors = started.communicate(timeout=300)
        reap()
        results.append({"step": step, "code": started.returncode, "out": said,
                        "err": "".join(heard) + errors, "killed": killed})
        started = None
        continue
    if step[0] == "free":
        filler(step[1] if len(step) > 1 else None).unlink()
        results.append({"step": step})
        continue
    done = subprocess.run([sys.executable, "-m", "evidence", *step], capture_output=True,
                          text=True, timeout=300, check=False)
    if started is None:  # (a process still running would be waited for too)
        reap()
    results.append({"step": step, "code": done.returncode, "out": done.stdout,
                    "err": done.stderr})
print(json.dumps(results))
