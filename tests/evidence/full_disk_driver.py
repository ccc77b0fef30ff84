"""Run inside a mount namespace whose data home is a small tmpfs (see test_full_disk.py): each
step is `evidence ARGS`, or `fill [BYTES]` (write a file until the disk is full, then give
BYTES of it back), `free` (remove it), `app` (open the web app over the home, in this process,
signed in as the admin), `post PATH JSON` (post to it, as the API's client or, for a page, as a
form), `files DIR` (the files under DIR in the home, as paths relative to it) or `sql QUERY`
(its rows, read from the home's database); prints one JSON list of what each step gave."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# This checkout's code, as the `evidence` processes it starts (run from it) use.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
home, steps = Path(sys.argv[1]), json.loads(sys.argv[2])
filler = home / "filler"
results = []
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
        with filler.open("wb", buffering=0) as out:
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
            str(p.relative_to(home)) for p in folder.rglob("*") if p.is_file())
        results.append({"step": step, "files": found})
        continue
    if step[0] == "sql":
        from sqlalchemy import text

        from evidence.home import open_runtime
        from evidence.settings import Settings

        reader = open_runtime(Settings())
        with reader.read_session() as session:
            rows = [[str(v) for v in row] for row in session.execute(text(step[1]))]
        reader.close()
        results.append({"step": step, "rows": rows})
        continue
    if step == ["free"]:
        filler.unlink()
        results.append({"step": step})
        continue
    done = subprocess.run([sys.executable, "-m", "evidence", *step], capture_output=True,
                          text=True, timeout=300, check=False)
    results.append({"step": step, "code": done.returncode, "out": done.stdout,
                    "err": done.stderr})
print(json.dumps(results))
