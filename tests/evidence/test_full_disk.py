"""A full disk, for real: the data home on a tmpfs of a few megabytes (in a mount namespace of
its own, `unshare`), driven through `evidence` processes. Whatever the disk refuses is refused
in one plain line naming the full disk, nothing is half-written (no blob left over, no case, no
custody entry), and once space is freed the log verifies and the same action succeeds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.capture.worker_helpers import REPO

DRIVER = Path(__file__).with_name("full_disk_driver.py")
DISK = "4m"
RECEIVED = ["--source", "X Corp. answer", "--received-at", "2026-12-04T10:00:00Z",
            "--via", "email"]


def _on_small_disk(home: Path, env: dict[str, str], steps: list[list[str]],
                   disk: str = DISK) -> list[dict[str, Any]]:
    """The steps run one after another with `home` a tmpfs of `disk` bytes (k, m suffixes)."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is needed to mount a small disk without touching the host"
    home.mkdir(parents=True)
    # -r: root in a user namespace of its own (so any user may mount there), -m: its own mounts.
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && exec "$3" "$4" "$2" "$5"'
    done = subprocess.run(
        [unshare, "-rm", "sh", "-c", script, "sh", disk, str(home), sys.executable, str(DRIVER),
         json.dumps(steps)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def small_home_env(home: Path, backend: str, database_url: str) -> dict[str, str]:
    """The environment of `evidence` commands over `home` (on PostgreSQL, the database is
    elsewhere), none of the caller's EVIDENCE_ settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update({"EVIDENCE_HOME": str(home), "EVIDENCE_USER": ""})
    if backend == "postgresql":
        env["EVIDENCE_DATABASE_URL"] = database_url
    return env


def _refused(result: dict[str, Any]) -> str:
    assert result["code"] == 1, result
    assert "Traceback" not in result["err"], result["err"]
    lines = result["err"].splitlines()
    assert len(lines) == 1, result["err"]
    return str(lines[0])


def _ok(result: dict[str, Any]) -> str:
    assert result["code"] == 0, result
    return str(result["out"])


def test_a_full_disk_refuses_plainly_and_leaves_nothing_half_written(
        tmp_path: Path, backend: str, database_url: str) -> None:
    home = tmp_path / "home"
    env = small_home_env(home, backend, database_url)
    answer = tmp_path / "answer.bin"
    answer.write_bytes(os.urandom(6 * 1024 * 1024))  # more than the whole disk
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(64 * 1024))
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["material", "add", "C-1", str(answer), *RECEIVED],
        ["app"],
        ["fill"],
        ["post", "/api/cases", json.dumps({"reference": "C-3", "title": "Prices"})],
        ["case", "create", "C-2", "--title", "Papers"],
        ["material", "add", "C-1", str(small), *RECEIVED],
        ["free"],
        ["custody", "verify"], ["case", "list"], ["material", "list", "C-1"],
        ["case", "create", "C-2", "--title", "Papers"],
        ["material", "add", "C-1", str(small), *RECEIVED],
        ["custody", "verify"],
    ]
    (init, first, too_big, _app, _fill, posted, second, while_full, _free, verified, listed,
     material, again, added, verified_after) = _on_small_disk(home, env, steps)
    _ok(init), _ok(first)

    # A file larger than the disk: refused as it streams in, nothing of it kept.
    assert "is full; nothing was stored" in _refused(too_big)
    if backend == "sqlite":
        # The database shares the full disk: a new case is refused and says why (SQLite
        # itself says only "disk I/O error" when its journal cannot grow).
        said = _refused(second)
        assert said.startswith(f"Error: the disk holding the database ({home}) is full"), said
        assert "nothing of this was saved" in said
        # The running service's transaction cannot commit: a 507 that says so, not a 500.
        assert posted["code"] == 507, posted
        assert json.loads(posted["out"])["error"] == "StorageFull", posted
        assert "is full" in json.loads(posted["out"])["message"]
    else:
        _ok(second)  # the database is on its server's disk, which has room
        assert posted["code"] == 201, posted
    assert "is full" in _refused(while_full)

    # Space freed: the log holds exactly what was done, and nothing half-made is in the way.
    assert _ok(verified).startswith("custody log verified: ")
    cases = [line.split()[0] for line in _ok(listed).splitlines()]
    assert sorted(cases) == (["C-1"] if backend == "sqlite" else ["C-1", "C-2", "C-3"]), cases
    assert "small.bin" not in _ok(material) and "answer.bin" not in _ok(material)
    if backend == "sqlite":
        _ok(again)
    else:
        assert "already" in _refused(again)
    assert "small.bin" in _ok(added)
    assert _ok(verified_after).startswith("custody log verified: ")
