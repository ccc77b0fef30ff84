"""A capture on a full disk, for real: the data home on a small tmpfs (see
tests/evidence/test_full_disk.py), a page served from this process on 127.0.0.1, and the capture
run by `evidence capture URL`, whose worker runs in the same process with Chromium.

A capture is many files (screenshots, DOM, MHTML, PDF, WARC ...) put in the blob store, then a
signed manifest of them and the rows and custody entry that record it. The disk filling up part
way must not leave a capture that lacks files it should have (recorded as merely `partial`):
the job fails, saying the disk is full, nothing of the capture is recorded, no temporary file is
left, the log verifies, and once space is freed the same capture succeeds whole.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.evidence.test_full_disk import _ok, _on_small_disk, small_home_env
from tests.support import net
from tests.support import pages_server as pages

pytestmark = pytest.mark.browser

DISK = "16m"
ROOM = 512 * 1024  # left free: the small files of a capture fit, its DOM and MHTML do not
PAGE = "/big?size=1500000"  # an HTML page of 1.5 MB
JOBS = "SELECT state, attempts, error FROM capture_jobs ORDER BY created_at"


@pytest.fixture(scope="module")
def server() -> Iterator[pages.PagesServer]:
    with pages.PagesServer() as s:
        yield s


def _failed(result: dict[str, Any]) -> str:
    """What a capture that failed said: one line, after its progress, and no traceback."""
    assert result["code"] == 1, result
    assert "Traceback" not in result["err"], result["err"]
    *progress, said = result["err"].splitlines()
    assert progress in ([], ["capturing…"]), result["err"]
    assert said.startswith("Error: "), result["err"]
    return str(said)


def _capture_home(tmp_path: Path, backend: str, database_url: str,
                  tmpdir: Path) -> tuple[Path, dict[str, str]]:
    """A home for captures of the local pages, the captures' temporary folders in `tmpdir`."""
    home = tmp_path / "home"
    env = small_home_env(home, backend, database_url)
    env["EVIDENCE_CAPTURE_ALLOW"] = "127.0.0.1"
    env["TMPDIR"] = str(tmpdir)
    return home, env


def _rows(result: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = result["rows"]
    return rows


def test_a_capture_on_a_full_disk_fails_saying_so_and_records_nothing_half_written(
        tmp_path: Path, backend: str, database_url: str, server: pages.PagesServer,
        scratch: Path) -> None:
    home, env = _capture_home(tmp_path, backend, database_url, scratch)
    url = server.url(PAGE)
    capture = ["capture", url, "--case", "C-1"]
    recorded = "SELECT status FROM captures"
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["fill", str(ROOM)],
        capture,
        ["sql", recorded], ["sql", JOBS], ["files", "blobs/.incoming"],
        ["fill"],
        capture,
        ["files", "blobs/.incoming"],
        ["free"],
        ["sql", recorded],
        ["custody", "verify"], ["store", "check"],
        ["sql", "SELECT action FROM custody_entries ORDER BY seq"],
        [*capture, "--json"],
        ["custody", "verify"], ["store", "check"], ["files", "blobs/.incoming"],
        ["case", "show", "C-1"],
    ]
    (_init, _case, _fill_part, part_full, part_recorded, part_jobs, part_incoming, _fill,
     full, full_incoming, _free, full_recorded, verified, checked, actions, again,
     verified_after, checked_after, incoming_after, shown) = _on_small_disk(
        home, env, steps, disk=DISK)

    # The disk filled part way through the capture: refused in one line naming the full disk,
    # with no capture recorded (not one missing its DOM, its MHTML or its manifest).
    said = _failed(part_full)
    assert "is full" in said and "capture failed" in said, said
    assert _rows(part_recorded) == []
    ((state, attempts, error),) = _rows(part_jobs)
    # Trying again in a few seconds would meet the same full disk: the job ends at once.
    assert (state, attempts) == ("failed", "1"), _rows(part_jobs)
    assert "is full" in error and "Traceback" not in error and "worker error" not in error
    assert part_incoming["files"] == []

    # The disk quite full: on SQLite, whose database is on it, the capture cannot even be
    # queued; on PostgreSQL it is queued and fails as above.
    said = _failed(full)
    assert "is full" in said, said
    if backend == "sqlite":
        assert said.startswith(f"Error: the disk holding the database ({home}) is full"), said
    else:
        assert "capture failed" in said, said
    assert full_incoming["files"] == []

    # Space freed (SQLite cannot even open its database on a disk quite full): no capture was
    # recorded, and the log holds the failed jobs.
    assert _rows(full_recorded) == []
    assert _ok(verified).startswith("custody log verified: ")
    assert _ok(checked).startswith("store whole:")
    done = [action for (action,) in _rows(actions)]
    assert "capture.recorded" not in done, done
    assert done.count("capture.failed") == (1 if backend == "sqlite" else 2), done

    # The same capture now succeeds, whole, and the log verifies with it.
    summary = json.loads(_ok(again))
    assert summary["status"] == "complete", summary["steps"]
    kinds = {artifact["kind"] for artifact in summary["artifacts"]}
    assert {"dom", "mhtml", "warc", "screenshot", "manifest"} <= kinds, kinds
    assert _ok(verified_after).startswith("custody log verified: ")
    assert _ok(checked_after).startswith("store whole:")
    assert incoming_after["files"] == []
    history = _ok(shown)
    assert history.count("capture.recorded") == 1, history
    assert f"capture {summary['id']}" in history, history

    # No temporary capture folder (nor browser download folder) was left behind.
    assert sorted(p.name for p in scratch.iterdir()
                  if p.name.startswith("evidence-")) == [], list(scratch.iterdir())


WORDY = "/words?count=60000"  # some 470 KB of words, each one the search index must hold
DB_ROOM = 128 * 1024  # left on the database's disk: a claim fits, the capture's record not


def test_a_capture_the_full_database_cannot_record_is_failed_saying_so(
        tmp_path: Path, backend: str, database_url: str, server: pages.PagesServer,
        scratch: Path) -> None:
    home, env = _capture_home(tmp_path, backend, database_url, scratch)
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["capture", server.url(WORDY), "--case", "C-1", "--no-wait"],
        ["fill", str(DB_ROOM)],
        ["worker", "--once"],
        ["sql", JOBS], ["sql", "SELECT status FROM captures"],
        ["free"],
        ["worker", "--once"],
        ["sql", JOBS], ["custody", "verify"],
    ]
    # The blobs have a disk of their own, with room: only the database's is full.
    (_init, _case, _queued, _fill, worked, failed, recorded, _free, again, after,
     verified) = _on_small_disk(home, env, steps, disk="8m", others=((home / "blobs", "64m"),))
    _ok(worked)
    if backend == "postgresql":  # the database is on its server's disk, which has room
        assert _rows(recorded) == [["complete"]], _rows(recorded)
        return
    # The capture's rows (its text, indexed for search) did not fit: none of them was kept,
    # and the job failed at once, saying why; the small write that says so still fitted.
    assert _rows(recorded) == []
    ((state, attempts, error),) = _rows(failed)
    assert (state, attempts) == ("failed", "1"), _rows(failed)
    assert error.startswith(f"the disk holding the database ({home}) is full"), error
    assert "the capture was not recorded" in error, error
    assert f"failed ({error})" in worked["err"], worked["err"]
    # Space freed: nothing is left running or half-done, and the log verifies.
    _ok(again)
    assert _rows(after) == _rows(failed)
    assert _ok(verified).startswith("custody log verified: ")


SLOW = "/slow?delay=4"  # the seconds its page takes to answer: the disk fills meanwhile


def test_a_failure_the_full_database_cannot_record_is_recorded_once_it_has_room(
        tmp_path: Path, backend: str, database_url: str, server: pages.PagesServer,
        scratch: Path) -> None:
    home, env = _capture_home(tmp_path, backend, database_url, scratch)
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["capture", server.url(SLOW), "--case", "C-1", "--no-wait"],
        ["start", "worker", "--poll", "0.2"],
        ["await", JOBS, "running"],
        ["fill"],  # while the page is still loading: the capture's first file has no room
        ["await-said", "failed"],  # (nor, on SQLite, has the job's failure)
        ["free"],
        ["await", JOBS, "failed"],
        ["stop"],
        ["sql", "SELECT status FROM captures"], ["custody", "verify"],
    ]
    (_init, _case, _queued, _start, _running, _fill, _said, _free, failed, stopped, recorded,
     verified) = _on_small_disk(home, env, steps)
    # Stopped as a service manager stops it, the worker ends by itself saying so, and nothing
    # is printed of where the signal landed.
    said = stopped["err"]
    assert (stopped["code"], stopped["killed"]) == (0, False), stopped
    assert "Traceback" not in said and "Exception ignored" not in said, said
    assert said.splitlines()[-1].endswith(" stopped (SIGTERM)"), said
    ((state, attempts, error),) = _rows(failed)
    assert (state, attempts) == ("failed", "1"), _rows(failed)
    assert "is full" in error and "the capture was not recorded" in error, error
    if backend == "sqlite":
        # The worker said the failure waits for room, went on, and recorded it once there was.
        assert (f"failed ({error}); the database is full: the job is marked failed once it "
                "has room") in said, said
    assert _rows(recorded) == []
    assert _ok(verified).startswith("custody log verified: ")


def _job_id(result: dict[str, Any]) -> str:
    """The one job's id as the commands print it (SQLite keeps it without its dashes)."""
    ((ident,),) = _rows(result)
    return str(uuid.UUID(ident))


def test_a_one_shot_worker_waits_for_room_to_record_a_failure_then_ends(
        tmp_path: Path, backend: str, database_url: str, server: pages.PagesServer,
        scratch: Path) -> None:
    home, env = _capture_home(tmp_path, backend, database_url, scratch)
    sqlite = backend == "sqlite"
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["capture", server.url(SLOW), "--case", "C-1", "--no-wait"],
        ["sql", "SELECT id FROM capture_jobs"],
        ["start", "worker", "--once", "--poll", "0.2"],
        ["await", JOBS, "running"],
        ["fill"],
        # On SQLite the failure cannot be recorded: the worker says it waits, and for what.
        ["await-said", "waiting for room" if sqlite else "failed"],
        ["sql", JOBS],
        ["free"],
        ["wait"],  # it ends by itself once the queue is done
        ["sql", JOBS], ["sql", "SELECT status FROM captures"], ["custody", "verify"],
        ["sql", "SELECT action FROM custody_entries ORDER BY seq"],
    ]
    (_init, _case, _queued, ident, _start, _running, _fill, said, while_full, _free, ended,
     failed, recorded, verified, actions) = _on_small_disk(home, env, steps)
    job = _job_id(ident)
    assert ended["code"] == 0, ended
    err = ended["err"]
    assert "Traceback" not in err, err
    ((state, attempts, error),) = _rows(failed)
    assert (state, attempts) == ("failed", "1"), _rows(failed)
    assert "is full" in error and "the capture was not recorded" in error, error
    if sqlite:
        # While the disk was full the job stayed this worker's, running: the run neither
        # ended nor dropped the failure.
        assert [row[0] for row in _rows(while_full)] == ["running"], _rows(while_full)
        assert said["said"].startswith(
            f"waiting for room: the disk holding the database ({home}) is full"), said
        assert (f"Job {job} failed and is marked failed as soon as there is room; stopped "
                "before then, a worker takes the job up again once its lease runs out"
                ) in said["said"], said
        assert f"job {job}: marked failed, now that the database has room" in err, err
    else:  # the database is on its server's disk, which has room: recorded at once
        assert "waiting for room" not in err, err
    assert f"job {job}: failed ({error})" in err, err
    assert _rows(recorded) == []
    assert _ok(verified).startswith("custody log verified: ")
    done = [action for (action,) in _rows(actions)]
    assert done[-2:] == ["capture.claimed", "capture.failed"], done


def test_a_one_shot_worker_gives_up_waiting_for_room_after_its_bound_saying_so(
        tmp_path: Path, server: pages.PagesServer, scratch: Path) -> None:
    # A run from cron must end: `--once` waits for room a while (--room-wait), then exits with
    # an error, the failure unrecorded and its job left to its lease; a worker takes it up again.
    # The embedded default only: its database is in the home, on the full disk (a PostgreSQL
    # server's disk has room, so a failure is recorded at once and nothing waits, as the test
    # above shows on both backends).
    home, env = _capture_home(tmp_path, "sqlite", "", scratch)
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["capture", server.url(SLOW), "--case", "C-1", "--no-wait"],
        ["sql", "SELECT id FROM capture_jobs"],
        ["start", "worker", "--once", "--poll", "0.2", "--room-wait", "3", "--lease", "1"],
        ["await", JOBS, "running"],
        ["fill"],
        ["wait"],  # it gives up by itself
        ["free"],
        ["sql", JOBS],
        # A worker takes the job up once the lease of the one that gave up has run out.
        ["start", "worker", "--poll", "0.2"],
        ["await", JOBS, "done"],
        ["stop"],
        ["sql", JOBS], ["sql", "SELECT status FROM captures"], ["custody", "verify"],
    ]
    (_init, _case, _queued, ident, _start, _running, _fill, gave_up, _free, left, _again,
     _done, stopped, after, recorded, verified) = _on_small_disk(home, env, steps)
    job = _job_id(ident)
    assert gave_up["code"] == 1, gave_up
    err = gave_up["err"]
    assert "Traceback" not in err, err
    assert f"waiting for room: the disk holding the database ({home}) is full" in err, err
    last = err.splitlines()[-1]
    assert last.startswith(f"Error: no room after waiting 3 seconds: the disk holding the "
                           f"database ({home}) is full"), err
    assert last.endswith(f". Job {job} failed, which could not be recorded; a worker takes the "
                         "job up again once its lease runs out"), err
    # Nothing of the failure was recorded: the job stayed the worker's until its lease ran out.
    ((state, attempts, _error),) = _rows(left)
    assert (state, attempts) == ("running", "1"), _rows(left)
    assert stopped["code"] == 0 and "Traceback" not in stopped["err"], stopped
    ((state, attempts, _error),) = _rows(after)
    assert (state, attempts) == ("done", "2"), _rows(after)
    assert _rows(recorded) == [["complete"]]
    assert _ok(verified).startswith("custody log verified: ")


def test_a_capture_whose_failure_the_full_database_refuses_waits_for_room_saying_so(
        tmp_path: Path, backend: str, database_url: str, server: pages.PagesServer,
        scratch: Path) -> None:
    home, env = _capture_home(tmp_path, backend, database_url, scratch)
    sqlite = backend == "sqlite"
    capture = ["capture", server.url(SLOW), "--case", "C-1"]
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["start", *capture],
        ["await", JOBS, "running"],
        ["fill"],
        # (On PostgreSQL the failure is recorded at once, the database being elsewhere.)
        ["await-said", "waiting for room"] if sqlite else ["await", JOBS, "failed"],
        ["free"],
        ["wait"],
        ["sql", JOBS], ["sql", "SELECT id FROM capture_jobs"], ["custody", "verify"],
        ["store", "check"],
        [*capture, "--json"],
    ]
    (_init, _case, _start, _running, _fill, said, _free, ended, failed, ident, verified,
     checked, again) = _on_small_disk(home, env, steps)
    job = _job_id(ident)
    # The one line the user reads last: the capture failed, why, and that nothing of it was
    # recorded; by then the job is marked failed with the same words.
    ((state, attempts, error),) = _rows(failed)
    assert (state, attempts) == ("failed", "1"), _rows(failed)
    assert ended["code"] == 1, ended
    err = ended["err"]
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last == f"Error: capture failed: {error}", err
    assert "is full" in error and "the capture was not recorded: free space and capture again" \
        in error, error
    if sqlite:
        assert error.startswith(f"blob store {home / 'blobs'} is full"), error
        assert said["said"].startswith(
            f"waiting for room: the disk holding the database ({home}) is full"), said
        assert f"Job {job} failed and is marked failed as soon as there is room" in said["said"]
        assert f"job {job}: marked failed, now that the database has room" in err, err
    else:
        assert "waiting for room" not in err, err
    # Room again: the log verifies, nothing half-stored is in the store, and the same capture
    # succeeds whole.
    assert _ok(verified).startswith("custody log verified: ")
    assert _ok(checked).startswith("store whole:")
    summary = json.loads(_ok(again))
    assert summary["status"] == "complete", summary["steps"]


def test_a_full_temporary_folder_fails_the_capture_saying_so_and_records_nothing(
        tmp_path: Path, backend: str, database_url: str, server: pages.PagesServer,
        scratch: Path) -> None:
    # TMPDIR alone fills up: the home (database and blobs) has room. (The browser keeps its
    # shared memory there too, tens of MB for a big page: the disk is not small.)
    tmp = scratch / "tmp"
    home, env = _capture_home(tmp_path, backend, database_url, tmp)
    capture = ["capture", server.url(PAGE), "--case", "C-1"]
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["fill", str(2 * 1024 * 1024), str(tmp)],
        capture,
        ["sql", "SELECT status FROM captures"], ["sql", "SELECT state, error FROM capture_jobs"],
        ["files", "blobs/.incoming"], ["files", str(tmp)],
        ["fill", "0", str(tmp)],
        capture,
        ["free", str(tmp)],
        ["sql", "SELECT status FROM captures"], ["files", "blobs/.incoming"], ["files", str(tmp)],
        ["custody", "verify"], ["store", "check"],
        [*capture, "--json"],
    ]
    (_init, _case, _fill_part, part_full, part_recorded, part_jobs, part_blobs, part_tmp,
     _fill, full, _free, full_recorded, full_blobs, full_tmp, verified, checked,
     again) = _on_small_disk(home, env, steps, disk="64m", others=((tmp, "256m"),))

    # Part way through: one line naming the full temporary folder, nothing recorded, no blob
    # half-written, no temporary file left (blobs stored whole before are merely unreferenced).
    said = _failed(part_full)
    assert said.startswith(f"Error: capture failed: the disk of the capture's temporary folder "
                           f"({tmp}) is full"), said
    assert _rows(part_recorded) == []
    ((state, error),) = _rows(part_jobs)
    assert state == "failed" and f"({tmp}) is full" in error, error
    assert part_blobs["files"] == [] and part_tmp["files"] == [f"{tmp}/filler"]

    # Quite full from the start: the same, though the browser itself keeps files there.
    said = _failed(full)
    assert said.startswith("Error: capture failed: "), said
    assert f"({tmp}) is full" in said, said
    assert _rows(full_recorded) == []
    assert full_blobs["files"] == [] and full_tmp["files"] == []
    assert _ok(verified).startswith("custody log verified: ")
    assert _ok(checked).startswith("store whole:")

    # Room again: the same capture succeeds, whole.
    summary = json.loads(_ok(again))
    assert summary["status"] == "complete", summary["steps"]


def test_a_full_temporary_folder_is_named_in_the_browser_s_own_words(
        tmp_path: Path, backend: str, database_url: str, scratch: Path) -> None:
    # TMPDIR has under 1 MB left: not room enough for the browser's traffic record even of a
    # page that does not answer. The refused connection is not blamed on the disk (Chromium
    # said why); the step that had no room says ENOSPC, and the capture fails for the full disk
    # in those words, not a guess from the room left when a failure is read. The job ends at
    # once, nothing recorded.
    tmp = scratch / "tmp"
    home, env = _capture_home(tmp_path, backend, database_url, tmp)
    refused = f"http://127.0.0.1:{net.free_port()}/gone"
    steps = [
        ["init"], ["case", "create", "C-1", "--title", "Crossings"],
        ["capture", refused, "--case", "C-1", "--no-wait"],
        ["fill", str(1000 * 1024), str(tmp)],
        ["worker", "--once"],
        ["sql", JOBS], ["sql", "SELECT status FROM captures"], ["files", str(tmp)],
        ["custody", "verify"],
    ]
    (_init, _case, _queued, _fill, worked, jobs, recorded, left, verified) = _on_small_disk(
        home, env, steps, disk="64m", others=((tmp, "256m"),))
    _ok(worked)
    ((state, attempts, error),) = _rows(jobs)
    assert (state, attempts) == ("failed", "1"), _rows(jobs)
    assert error.startswith(
        f"the disk of the capture's temporary folder ({tmp}) is full: the browser had no room "
        "(BrowserContext.close: ENOSPC: no space left on device"), error
    assert f"failed ({error})" in worked["err"], worked["err"]
    assert _rows(recorded) == []
    assert left["files"] == [f"{tmp}/filler"]
    assert _ok(verified).startswith("custody log verified: ")
