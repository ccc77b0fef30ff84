"""A full disk, for real: the data home on a tmpfs of a few megabytes (in a mount namespace of
its own, `unshare`), driven through `evidence` processes. Whatever the disk refuses is refused
in one plain line naming the full disk, nothing is half-written (no blob left over, no case, no
custody entry), and once space is freed the log verifies and the same action succeeds."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from api.app import create_app
from evidence import users
from evidence.db import PG_DISK_FULL, normalise_url
from evidence.home import open_runtime
from evidence.settings import Settings
from tests.capture.worker_helpers import REPO
from tests.conftest import Databases

DRIVER = Path(__file__).with_name("full_disk_driver.py")
DISK = "4m"
RECEIVED = ["--source", "X Corp. answer", "--received-at", "2026-12-04T10:00:00Z",
            "--via", "email"]


def _on_small_disk(home: Path, env: dict[str, str], steps: list[list[str]],
                   disk: str = DISK, others: tuple[tuple[Path, str], ...] = ()
                   ) -> list[dict[str, Any]]:
    """The steps run one after another with `home` a tmpfs of `disk` bytes (k, m suffixes), and
    each folder of `others` a tmpfs of its own (mounted after the home, so one may be in it)."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is needed to mount a small disk without touching the host"
    home.mkdir(parents=True)
    mounts = " && ".join(f"mkdir -p {shlex.quote(str(folder))} && mount -t tmpfs -o "
                         f"size={shlex.quote(size)} tmpfs {shlex.quote(str(folder))}"
                         for folder, size in ((home, disk), *others))
    # -r: root in a user namespace of its own (so any user may mount there), -m: its own mounts.
    script = f'{mounts} && exec "$0" "$1" "$2" "$3"'
    done = subprocess.run(
        [unshare, "-rm", "sh", "-c", script, sys.executable, str(DRIVER), str(home),
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


# PostgreSQL's own full disk: its answer is SQLSTATE 53100, which only a disk of its own that
# fills up gives. A tablespace on a tmpfs is such a disk; the server is a process of the host,
# so the tmpfs is mounted there (not in a namespace of the test's own) and always unmounted.
PG_DISK = "16m"  # the database copied from the migrated template takes about half
PG_FILL_ROWS = (1024 * 1024, 64 * 1024, 8 * 1024, 1024)  # the filler's row sizes, in turn


def _small_disk(size: str) -> tuple[Path | None, str]:
    """A tmpfs of `size` mounted on a new folder of the host and given to the server's user,
    or None and why not."""
    if os.geteuid() != 0:
        return None, "mounting one needs root"
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        return None, "the server's user `postgres` is not on this host"
    folder = Path(tempfile.mkdtemp(prefix="evl-pgfull-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                              str(folder)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        folder.rmdir()
        return None, f"the mount was refused: {mounted.stderr.strip()}"
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    return folder, ""


@contextmanager
def _small_tablespace(admin: Engine, size: str) -> Iterator[str]:
    """A tablespace on a tmpfs of `size` bytes, owned by the server's user; yields its name.
    Skipped, saying why, where this host cannot give the server such a disk: not root, or the
    server (its user `postgres`) is on another host, or the mount is refused."""
    folder, why = _small_disk(size)
    if folder is None:
        pytest.skip(f"PostgreSQL's own full disk needs a small tmpfs for a tablespace: {why}")
    name = f"evl_full_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE TABLESPACE {name} LOCATION '{folder}'"))
        try:
            yield name
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP TABLESPACE IF EXISTS {name}"))
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        folder.rmdir()


def _fill_database(url: str) -> None:
    """Fill the database's disk with a table of its own until the server says it is full."""
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE filler (b bytea)"))
            # Kept out of line and uncompressed: each row takes the room its size says.
            conn.execute(text("ALTER TABLE filler ALTER COLUMN b SET STORAGE EXTERNAL"))
            for size in PG_FILL_ROWS:
                try:
                    while True:
                        conn.execute(text("INSERT INTO filler VALUES (convert_to(repeat('x', "
                                          ":n), 'UTF8'))"), {"n": size})
                except OperationalError as exc:
                    assert getattr(exc.orig, "sqlstate", None) == PG_DISK_FULL, exc
    finally:
        engine.dispose()


def _free_database(url: str) -> None:
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP TABLE filler"))  # its files are emptied as it commits
    finally:
        engine.dispose()


def _evidence(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "evidence", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    return {"step": list(args), "code": done.returncode, "out": done.stdout, "err": done.stderr}


def test_a_full_database_server_disk_refuses_plainly_and_leaves_nothing_half_written(
        tmp_path: Path, postgresql_databases: Databases) -> None:
    with contextlib.ExitStack() as cleanup:
        space = cleanup.enter_context(_small_tablespace(postgresql_databases.admin, PG_DISK))
        url = postgresql_databases.new_url(tablespace=space)
        cleanup.callback(postgresql_databases.drop, url)
        home = tmp_path / "home"
        env = small_home_env(home, "postgresql", url)
        _ok(_evidence(env, "init"))
        _ok(_evidence(env, "case", "create", "C-1", "--title", "Crossings"))
        runtime = open_runtime(Settings(home=home, database_url=url))
        cleanup.callback(runtime.close)
        with runtime.session() as session:
            admin = users.get_user(session, "admin")
            headers = {"Authorization": f"Bearer {users.issue_token(session, admin, admin)}"}
        client = TestClient(create_app(runtime))
        cleanup.callback(client.close)

        _fill_database(url)
        # New cases go into pages that still have room until one needs a page of its own.
        for n in range(2, 200):
            case = {"reference": f"C-{n}", "title": "Prices"}
            answer = client.post("/api/cases", json=case, headers=headers)
            if answer.status_code != 201:
                break
        created = [f"C-{i}" for i in range(1, n)]
        assert answer.status_code == 507, answer.text
        said = answer.json()
        assert said["error"] == "StorageFull", said
        assert said["message"] == ("the database server's disk is full: nothing of this was "
                                   "saved; free space on it and try again"), said
        # The command line meets the same full disk, and says so in one line.
        refused = _refused(_evidence(env, "case", "create", case["reference"], "--title", "P"))
        assert refused == f"Error: {said['message']}", refused

        # Nothing of the refused case was kept, and the log holds what was done, whole.
        listed = [line.split()[0] for line in _ok(_evidence(env, "case", "list")).splitlines()]
        assert sorted(listed) == sorted(created), listed
        assert _ok(_evidence(env, "custody", "verify")).startswith("custody log verified: ")

        # Space freed: the very same request succeeds.
        _free_database(url)
        answer = client.post("/api/cases", json=case, headers=headers)
        assert answer.status_code == 201, answer.text
        _ok(_evidence(env, "case", "create", f"{case['reference']}-b", "--title", "P"))
        shown = _ok(_evidence(env, "case", "show", case["reference"]))
        assert shown.count("case.created") == 1, shown
        assert _ok(_evidence(env, "custody", "verify")).startswith("custody log verified: ")
