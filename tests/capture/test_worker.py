"""The capture worker as a user meets it: `evidence capture`, `evidence worker`, `evidence watch`
run as real processes against pages served on 127.0.0.1, on SQLite and on PostgreSQL.

What is checked is what an investigator, or the defence's expert, would check: the printed
record, the files it names and their hashes, the signature and the RFC 3161 timestamp (with the
real `openssl ts -verify`), the custody log, and that a worker killed mid-capture or four
workers racing over one queue never lose, duplicate or half-write a capture.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, make_url, select, text
from sqlalchemy.orm import Session

from capture.browser import BrowserSession
from capture.service import HAND_BACK_LOCK_WAIT_S, CaptureWorker
from evidence import cases, targets, users
from evidence.db import make_engine, make_session_factory, read_only_scope, session_scope
from evidence.home import open_runtime
from evidence.models import Artifact, Capture, CaptureJob, CustodyEntry, JobState, utcnow
from evidence.settings import Settings
from evidence.signing import Verifier
from tests.capture.worker_helpers import (
    Home,
    alive,
    descendants,
    kill_tree,
    make_home,
    sha256_of,
    stored_blobs,
    wait_for,
)
from tests.conftest import Databases
from tests.support import pages_server as pages

pytestmark = pytest.mark.browser

CASE = "OP-WORKER"
SUMMARY_KEYS = {"id", "status", "url", "final_url", "http_status", "http_answer",
                "error_answer", "redirects", "remote_ip", "started_at", "finished_at",
                "manifest_sha256", "steps", "artifacts"}
SEAL_KINDS = {"manifest", "signature", "timestamp"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def server() -> Iterator[pages.PagesServer]:
    with pages.PagesServer() as s:
        yield s


@pytest.fixture
def home(tmp_path: Path, backend: str, database_url: str) -> Iterator[Home]:
    made = make_home(tmp_path / "home", backend, database_url, case=CASE)
    try:
        yield made
    finally:
        made.stop_all()


@contextmanager
def db(home: Home) -> Iterator[Session]:
    """A committed unit of work on the home's database, as another process would see it."""
    engine = make_engine(home.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _settings(home: Home, **overrides: Any) -> Settings:
    return Settings(home=home.path, capture_allow="127.0.0.1",
                    database_url=home.database_url if home.backend == "postgresql" else None,
                    **overrides)


def _capture_json(home: Home, url: str) -> dict[str, Any]:
    done = home.run("capture", url, "--case", CASE, "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)  # the whole of stdout is one document
    return summary


def _custody_verifies(home: Home) -> None:
    """The log verifies, and the store holds every capture's files whole, each capture still
    saying what its signed manifest says."""
    home.ok("custody", "checkpoint")
    verified = home.run("custody", "verify")
    assert verified.returncode == 0, (verified.stdout, verified.stderr)
    assert verified.stdout.startswith("custody log verified:"), verified.stdout
    checked = home.run("store", "check")
    assert checked.returncode == 0, (checked.stdout, checked.stderr)
    assert checked.stdout.startswith("store whole:"), checked.stdout


def _entries(session: Session, action: str, job_id: uuid.UUID | None = None) -> list[
        dict[str, Any]]:
    query = select(CustodyEntry).where(CustodyEntry.action == action)
    if job_id is not None:
        query = query.where(CustodyEntry.object_type == "capture_job",
                            CustodyEntry.object_id == str(job_id))
    return [json.loads(e.entry) for e in session.scalars(query.order_by(CustodyEntry.seq))]


def _captures_of(session: Session, job_id: uuid.UUID) -> list[Capture]:
    return list(session.scalars(select(Capture).where(Capture.job_id == job_id)))


def _check_blob_store(home: Home) -> None:
    """Every stored file hashes to its address; every artifact row's blob is there in full."""
    root = home.path / "blobs"
    for path in stored_blobs(root):
        name = path.name
        assert HEX64.match(name), f"stray file {path} in the blob store"
        assert path.relative_to(root).parts == (name[:2], name[2:4], name), path
        assert sha256_of(path) == name, f"{path} does not hash to its name: a partial blob"
    for leftover in (root / ".incoming").iterdir():
        assert re.fullmatch(r"blob-.*\.part", leftover.name), leftover
    with db(home) as session:
        rows = session.execute(select(Artifact.sha256, Artifact.size)).all()
    for sha256, size in rows:
        path = root / sha256[:2] / sha256[2:4] / sha256
        assert path.is_file(), f"an artifact row points to missing blob {sha256}"
        assert path.stat().st_size == size


# --- 1. `evidence capture URL --json` -------------------------------------------------------


def test_capture_json_is_one_sealed_record_that_verifies_offline(
    home: Home, server: pages.PagesServer,
) -> None:
    url = server.url(pages.SIMPLE_PATH)
    summary = _capture_json(home, url)

    assert set(summary) == SUMMARY_KEYS
    assert summary["status"] == "complete", summary["steps"]
    uuid.UUID(summary["id"])
    assert summary["url"] == summary["final_url"] == url
    assert summary["http_status"] == 200 and summary["redirects"] == []
    assert summary["http_answer"] == "HTTP 200 OK" and summary["error_answer"] is None
    assert summary["remote_ip"] == "127.0.0.1"
    started = datetime.fromisoformat(summary["started_at"])
    finished = datetime.fromisoformat(summary["finished_at"])
    assert started.tzinfo is not None and started <= finished
    assert HEX64.match(summary["manifest_sha256"])
    for step in summary["steps"]:
        assert set(step) == {"name", "ok", "error"}
        assert step["ok"] is True and step["error"] is None, step
    assert summary["steps"][0]["name"] == "navigate"

    artifacts = summary["artifacts"]
    for art in artifacts:
        assert set(art) == {"kind", "media_type", "size", "sha256", "path"}
        path = Path(art["path"])
        assert path.is_file(), art
        assert path.stat().st_size == art["size"]
        assert sha256_of(path) == art["sha256"], art
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for art in artifacts:
        by_kind.setdefault(art["kind"], []).append(art)
    assert {"screenshot", "dom", "pdf", "text", "warc", "metadata", "media"} <= set(by_kind)
    assert all(len(by_kind[kind]) == 1 for kind in SEAL_KINDS), by_kind.keys()

    manifest_path = Path(by_kind["manifest"][0]["path"])
    manifest_bytes = manifest_path.read_bytes()
    assert by_kind["manifest"][0]["sha256"] == summary["manifest_sha256"]
    manifest = json.loads(manifest_bytes)
    assert manifest["capture_id"] == summary["id"] and manifest["requested_url"] == url
    assert manifest["status"] == summary["status"] and manifest["case"]["ref"] == CASE
    listed = sorted((a["kind"], a["sha256"], a["size"], a["media_type"])
                    for a in manifest["artifacts"])
    captured = sorted((a["kind"], a["sha256"], a["size"], a["media_type"])
                      for a in artifacts if a["kind"] not in SEAL_KINDS)
    assert listed == captured

    verifier = Verifier.load(home.path / "keys" / "signing.pub")
    verifier.verify(Path(by_kind["signature"][0]["path"]).read_bytes(), manifest_bytes)

    tsa = home.path / "tsa"
    checked = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(manifest_path),
         "-in", by_kind["timestamp"][0]["path"], "-CAfile", str(tsa / "tsa-ca-cert.pem"),
         "-untrusted", str(tsa / "tsa-cert.pem")],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "Verification: OK" in checked.stdout

    redirected = _capture_json(home, server.url(pages.REDIRECT_CHAIN[0]))
    assert redirected["status"] == "complete"
    assert redirected["redirects"] == [
        {"url": server.url(path), "status": status}
        for path, status in zip(pages.REDIRECT_CHAIN, pages.REDIRECT_STATUSES, strict=False)
    ]
    assert redirected["final_url"] == server.url(pages.REDIRECT_CHAIN[-1])
    assert redirected["http_status"] == 200

    _custody_verifies(home)


# --- 2. the plain output, refusals, --no-wait and `capture show` -----------------------------


def test_capture_shows_progress_then_id_status_and_manifest_hash(
    home: Home, server: pages.PagesServer,
) -> None:
    done = home.run("capture", server.url("/rtl?plain=1"), "--case", CASE)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "capturing" in done.stderr
    lines = done.stdout.splitlines()
    match = re.fullmatch(r"capture ([0-9a-f-]{36}): complete", lines[0])
    assert match, done.stdout
    hashed = re.fullmatch(r"\s+manifest sha256 ([0-9a-f]{64})", lines[1])
    assert hashed, done.stdout
    # Further lines (when it was timestamped, any failed step) may follow; progress may not.
    assert "capturing" not in done.stdout

    shown = json.loads(home.ok("capture", "show", match[1], "--json"))
    assert shown["manifest_sha256"] == hashed[1]
    assert shown["status"] == "complete" and shown["url"] == server.url("/rtl?plain=1")


def test_a_captured_pdf_is_found_by_its_words(home: Home, server: pages.PagesServer) -> None:
    """A price list posted as a PDF has no page to read text from: its words come from the file,
    and search finds the capture by them."""
    captured = _capture_json(home, server.url(pages.INLINE_PDF_PATH))
    assert captured["status"] == "complete"
    found = json.loads(home.ok("search", "text", '"locker test report"', "--case", CASE,
                               "--json"))
    assert [hit["capture_id"] for hit in found] == [captured["id"]]


def test_a_page_is_found_by_the_words_of_the_pdfs_it_embeds(
    home: Home, server: pages.PagesServer,
) -> None:
    """The page itself only says "Papers"; the price list in its <embed> is found by its words,
    and so is the page, as one capture."""
    captured = _capture_json(home, server.url(pages.PDF_EMBED_PATH))
    assert captured["status"] == "complete", captured["steps"]
    found = json.loads(home.ok("search", "text", '"crossing to lampedusa"', "--case", CASE,
                               "--json"))
    assert [hit["capture_id"] for hit in found] == [captured["id"]]
    assert "Lampedusa" in found[0]["snippet"]


def test_a_page_answered_with_an_error_status_is_captured_and_says_so(
    home: Home, server: pages.PagesServer,
) -> None:
    """A page taken down answers 404: that answer is the evidence (the capture is complete),
    and the output says it is an error answer, not the page."""
    done = home.run("capture", server.url("/no-such-post"), "--case", CASE)
    assert done.returncode == 0, (done.stdout, done.stderr)
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"capture [0-9a-f-]{36}: complete", lines[0]), done.stdout
    assert ("  Complete, but the page answered HTTP 404 Not Found (the page may have been "
            "removed, or the URL may be wrong): what was captured is that answer, not the page "
            "as it once stood") in lines, done.stdout

    found = home.run("capture", server.url("/simple.html"), "--case", CASE)
    assert found.returncode == 0 and "answered HTTP" not in found.stdout


def test_a_refused_address_fails_with_the_reason_and_no_traceback(
    home: Home, server: pages.PagesServer,
) -> None:
    url = server.url("/simple.html?refused=1")
    done = home.run("capture", url, "--case", CASE, drop=("EVIDENCE_CAPTURE_ALLOW",))
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert re.search(r"capture [0-9a-f-]{36}: failed", done.stdout), output
    assert re.search(r"failed: refused: 127\.0\.0\.1 is a loopback address", done.stdout), output
    assert ("captures do not reach internal addresses unless the setting "
            "EVIDENCE_CAPTURE_ALLOW lists them") in done.stdout, output
    assert "/simple.html?refused=1" not in server.paths(), "a refused page was fetched"

    as_json = home.run("capture", url, "--case", CASE, "--json", drop=("EVIDENCE_CAPTURE_ALLOW",))
    assert as_json.returncode != 0 and "Traceback" not in as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["status"] == "failed"
    assert summary["steps"][0]["ok"] is False and "refused" in summary["steps"][0]["error"]
    with db(home) as session:
        states = session.scalars(select(CaptureJob.state)).all()
    # A refusal will not change on a retry: the jobs end failed, not queued again.
    assert states == [JobState.FAILED, JobState.FAILED]
    _custody_verifies(home)


def test_a_redirect_loop_fails_once_not_three_times(
    home: Home, server: pages.PagesServer,
) -> None:
    """A fresh browser meets the same loop: trying again would only delay the answer."""
    done = home.run("capture", server.url("/redirect/loop"), "--case", CASE)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "ERR_TOO_MANY_REDIRECTS" in done.stdout, done.stdout
    assert "attempt 1 of" not in done.stderr  # no "next try at ..."
    with db(home) as session:
        jobs = session.scalars(select(CaptureJob)).all()
        assert [(job.state, job.attempts) for job in jobs] == [(JobState.FAILED, 1)]
        captured = session.scalars(select(Capture)).one()
        assert len(captured.redirect_chain or []) >= 20  # the hops it went through are kept


def test_no_wait_queues_and_the_worker_carries_it_out_and_clears_killed_writes(
    home: Home, server: pages.PagesServer,
) -> None:
    path = f"/simple.html?queued={uuid.uuid4().hex}"  # unseen by any earlier test
    began = time.monotonic()
    queued = home.run("capture", server.url(path), "--case", CASE, "--no-wait", "--json")
    assert queued.returncode == 0, queued.stderr
    assert time.monotonic() - began < 15
    answer = json.loads(queued.stdout)
    assert answer["state"] == "queued"
    job_id = uuid.UUID(answer["job"])
    assert path not in server.paths(), "--no-wait must not capture"
    with db(home) as session:
        job = session.get(CaptureJob, job_id)
        assert job is not None and job.state == JobState.QUEUED
        assert _captures_of(session, job_id) == []

    # A writer killed two days ago left a half-written blob; one killed just now may still
    # be another process writing: the worker removes only the old one as it starts.
    incoming = home.path / "blobs" / ".incoming"
    stale, fresh = incoming / "blob-killed.part", incoming / "blob-writing.part"
    stale.write_bytes(b"half a screenshot")
    fresh.write_bytes(b"a screenshot being written")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    worked = home.run("worker", "--once")
    assert worked.returncode == 0, worked.stderr
    assert f"job {job_id}: complete" in worked.stderr
    assert path in server.paths()
    assert "removed 1 unfinished blob write(s)" in worked.stderr
    assert not stale.exists() and fresh.exists()

    history = json.loads(home.ok("case", "show", CASE, "--json"))["custody"]
    recorded = [e["object"]["id"] for e in history if e["action"] == "capture.recorded"]
    assert len(recorded) == 1
    shown = home.run("capture", "show", recorded[0])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"capture {recorded[0]}  complete  HTTP 200")
    assert server.url(path) in shown.stdout
    with db(home) as session:
        job = session.get(CaptureJob, job_id)
        assert job is not None and job.state == JobState.DONE
        assert [c.id for c in _captures_of(session, job_id)] == [uuid.UUID(recorded[0])]
    _custody_verifies(home)


def test_capture_ends_with_a_result_when_the_byte_bound_is_reached(
    home: Home, server: pages.PagesServer,
) -> None:
    """A page that fills the capture's byte bound is a partial capture, not a hung command.

    With a 1000-byte bound, each large artifact is refused by its own step (recorded, the
    capture is partial) and the bound is still full when the metadata document is stored.
    """
    url = server.url("/simple.html?bound=1")
    try:
        done = home.run("capture", url, "--case", CASE,
                        env={"EVIDENCE_MAX_CAPTURE_BYTES": "1000"}, timeout=45)
    except subprocess.TimeoutExpired as exc:
        said = exc.stderr.decode() if isinstance(exc.stderr, bytes) else str(exc.stderr)
        lines = said.splitlines()
        pytest.fail("`evidence capture` was still running after 45 s; stderr began "
                    f"{lines[:12]!r} and ended {lines[-2:]!r}")
    assert "Traceback" not in done.stderr, done.stderr
    assert re.match(r"capture [0-9a-f-]{36}: partial", done.stdout), (done.stdout, done.stderr)
    assert "bound" in done.stdout


def test_capture_show_refuses_a_bad_id_clearly(home: Home) -> None:
    for bad, message in (("not-an-id", "Error: 'not-an-id' is not a capture id"),
                         (str(uuid.uuid4()), "Error: no capture")):
        done = home.run("capture", "show", bad)
        assert done.returncode == 1
        assert done.stderr.startswith(message), done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""


# --- 3. watching ---------------------------------------------------------------------------


def test_a_watched_page_is_captured_again_once_its_interval_has_passed(
    home: Home, server: pages.PagesServer,
) -> None:
    path = f"/charset/iso-8859-1?watched={uuid.uuid4().hex}"  # unseen by any earlier test
    # An hour, not a minute: on a loaded machine the first capture alone can take a minute.
    said = home.ok("watch", server.url(path), "--case", CASE, "--every", "1h")
    assert "every 1h as target" in said
    first = home.run("worker", "--once")
    assert first.returncode == 0, first.stderr
    with db(home) as session:
        target_id = session.scalars(select(CaptureJob.target_id)).one()
        assert session.scalar(select(func.count()).select_from(Capture)) == 1
        # Nothing is due yet: the worker must not have queued a second capture by itself.
        assert targets.schedule_due_watches(session) == []
    assert server.paths().count(path) == 1

    with db(home) as session:
        due = targets.schedule_due_watches(session, now=utcnow() + timedelta(seconds=3601))
        assert [job.target_id for job in due] == [target_id]
    second = home.run("worker", "--once")
    assert second.returncode == 0, second.stderr
    assert server.paths().count(path) == 2
    with db(home) as session:
        jobs_now = session.scalars(select(CaptureJob).order_by(CaptureJob.created_at)).all()
        assert [j.state for j in jobs_now] == [JobState.DONE, JobState.DONE]
        taken = session.scalars(select(Capture).order_by(Capture.started_at)).all()
        assert [c.job_id for c in taken] == [j.id for j in jobs_now]
        assert all(c.target_id == target_id and c.status == "complete" for c in taken)
    _custody_verifies(home)


# --- 4. a worker killed mid-capture --------------------------------------------------------


def test_a_worker_killed_mid_capture_leaves_nothing_half_written_and_its_job_is_reclaimed(
    home: Home, server: pages.PagesServer,
) -> None:
    before = json.loads(home.ok("capture", server.url("/simple.html?before-kill=1"),
                                "--case", CASE, "--no-wait", "--json"))
    slow_path = "/slow-body?delay=8"
    slow = json.loads(home.ok("capture", server.url(slow_path), "--case", CASE,
                              "--no-wait", "--json"))
    slow_job = uuid.UUID(slow["job"])
    server.clear_requests()
    # The real `evidence worker`, with a 3-second lease so the test need not wait two minutes.
    worker = home.start("worker", lease=3)

    def running_owner() -> str | None:
        with db(home) as session:
            job = session.get(CaptureJob, slow_job)
            assert job is not None
            return job.lease_owner if job.state == JobState.RUNNING else None

    dead_owner = wait_for("the slow job to run", running_owner, timeout=120, interval=0.2)
    server.wait_for_request("/slow-body", timeout=30)
    time.sleep(1.0)  # well into the trickled body
    killed = kill_tree(worker)
    worker.communicate(timeout=30)
    assert worker.returncode == -9
    wait_for("the worker and its Chromium to die", lambda: not any(alive(p) for p in killed),
             timeout=15)

    with db(home) as session:
        assert _captures_of(session, slow_job) == []
        job = session.get(CaptureJob, slow_job)
        assert job is not None and job.state == JobState.RUNNING
        assert job.lease_owner == dead_owner
        done_first = session.get(CaptureJob, uuid.UUID(before["job"]))
        assert done_first is not None and done_first.state == JobState.DONE
    _check_blob_store(home)

    settings = _settings(home)
    runtime = open_runtime(settings)
    try:
        with BrowserSession(settings) as browser:
            second = CaptureWorker(runtime, browser, lease_seconds=2)
            result = wait_for("the dead worker's job to be reclaimed", second.run_once,
                              timeout=30, interval=0.5)
    finally:
        runtime.close()
    assert result.job_id == slow_job and result.recorded, result
    assert result.status == "complete", result

    with db(home) as session:
        job = session.get(CaptureJob, slow_job)
        assert job is not None and job.state == JobState.DONE and job.attempts == 2
        taken = _captures_of(session, slow_job)
        assert [c.id for c in taken] == [result.capture_id]
        assert taken[0].status == "complete" and taken[0].http_status == 200
        reclaimed = _entries(session, "capture.reclaimed", slow_job)
        assert [e["details"]["reclaimed_from"] for e in reclaimed] == [dead_owner]
        assert len(_entries(session, "capture.done", slow_job)) == 1
    _check_blob_store(home)
    _custody_verifies(home)


# --- 5. several worker processes over one queue --------------------------------------------

LIGHT_PAGES = ("/simple.html", "/rtl", "/charset/iso-8859-1", "/redirect/end", "/echo-headers")


@pytest.mark.slow
def test_worker_processes_racing_over_one_queue_do_every_job_exactly_once(
    home: Home, server: pages.PagesServer,
) -> None:
    workers, count = (4, 100) if home.backend == "postgresql" else (2, 20)
    with db(home) as session:
        actor = users.resolve_actor(session, None)
        case = cases.get_case(session, actor, CASE)
        job_ids = [
            targets.flag_target(
                session, actor, case, reason="race",
                url=server.url(f"{LIGHT_PAGES[n % len(LIGHT_PAGES)]}?n={n}"))[1].id
            for n in range(count)
        ]
    fast = {"EVIDENCE_MAX_SCROLL_STEPS": "0"}
    began = time.monotonic()
    procs = [home.start("worker", "--once", env=fast) for _ in range(workers)]
    logs = [proc.communicate(timeout=240) for proc in procs]
    elapsed = time.monotonic() - began
    for proc, (_out, err) in zip(procs, logs, strict=True):
        assert proc.returncode == 0, err
    carried = [line for _out, err in logs for line in err.splitlines() if line.startswith("job ")]
    assert len(carried) == count, carried

    with db(home) as session:
        states = {job: state for job, state in session.execute(
            select(CaptureJob.id, CaptureJob.state))}
        assert states == {job_id: JobState.DONE for job_id in job_ids}
        per_job = {job: n for job, n in session.execute(
            select(Capture.job_id, func.count()).group_by(Capture.job_id))}
        assert per_job == {job_id: 1 for job_id in job_ids}
        done = [uuid.UUID(e["object"]["id"]) for e in _entries(session, "capture.done")]
        assert sorted(done) == sorted(job_ids)
        recorded = _entries(session, "capture.recorded")
        assert len(recorded) == count
        statuses = session.scalars(select(Capture.status)).all()
        assert set(statuses) == {"complete"}, statuses
    _check_blob_store(home)
    _custody_verifies(home)
    print(f"{count} jobs by {workers} worker processes on {home.backend}: {elapsed:.0f} s")


# --- 6. a worker stopped with a signal ------------------------------------------------------

STOP_SECONDS = 60  # generous: a stop is prompt, but a loaded machine is slow


def _started(worker: subprocess.Popen[str]) -> str:
    """The worker's id, once it says it started (its browser running)."""
    assert worker.stderr is not None
    line = worker.stderr.readline()
    started = re.match(r"worker (\S+) \(Chromium [^)]*\) started$", line)
    assert started, line
    return started.group(1)


def _ended(worker: subprocess.Popen[str]) -> tuple[int, list[str]]:
    """The worker's exit status and the lines it said after starting, none of them noise of
    an exception raised where the signal landed."""
    _out, err = worker.communicate(timeout=STOP_SECONDS)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    return worker.returncode, err.splitlines()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_an_idle_worker_stopped_with_a_signal_closes_its_browser_and_ends_saying_so(
    home: Home, stop: signal.Signals,
) -> None:
    worker = home.start("worker", "--poll", "0.2")
    worker_id = _started(worker)
    browser = descendants(worker.pid)
    assert browser, "the worker started no browser"
    time.sleep(0.5)  # a few looks at the empty queue
    worker.send_signal(stop)
    code, said = _ended(worker)
    assert (code, said) == (0, [f"worker {worker_id} stopped ({stop.name})"])
    wait_for("the worker's browser to end", lambda: not any(alive(p) for p in browser),
             timeout=30)


def test_workers_of_one_command_stopped_with_sigterm_end_with_it_saying_so(home: Home) -> None:
    command = home.start("worker", "--concurrency", "2", "--poll", "0.2")
    ids = [_started(command), _started(command)]  # each says so on the stderr they share
    command.send_signal(signal.SIGTERM)
    code, said = _ended(command)
    # Each worker is sent SIGTERM in turn by the command, which then ends.
    assert code == 0, said
    assert sorted(said[:-1]) == sorted(f"worker {i} stopped (SIGTERM)" for i in ids), said
    assert said[-1] == "2 workers stopped (SIGTERM)", said


def _stopped_mid_capture(home: Home, server: pages.PagesServer, scratch: Path,
                         *stops: signal.Signals, lease: float | None = None,
                         meanwhile: AbstractContextManager[None] | None = None,
                         ) -> tuple[uuid.UUID, str, int, list[str]]:
    """A worker whose page is still loading is sent `stops` (within `meanwhile`, until it
    ended): the job, the worker's id, its exit status and what it said after starting. Its
    browser ended with it."""
    queued = json.loads(home.ok("capture", server.url("/slow?delay=10"), "--case", CASE,
                                "--no-wait", "--json"))
    server.clear_requests()
    worker = home.start("worker", "--poll", "0.2", lease=lease, env={"TMPDIR": str(scratch)})
    worker_id = _started(worker)
    server.wait_for_request("/slow", timeout=60)
    browser = descendants(worker.pid)
    with meanwhile or nullcontext():
        for stop in stops:
            worker.send_signal(stop)
        code, said = _ended(worker)
    wait_for("the worker's browser to end", lambda: not any(alive(p) for p in browser),
             timeout=30)
    return uuid.UUID(queued["job"]), worker_id, code, said


def _left(scratch: Path) -> list[str]:
    """The temporary folders of captures and browsers in `scratch`."""
    return sorted(p.name for p in scratch.iterdir() if p.name.startswith("evidence-"))


def _handed_back(home: Home, job_id: uuid.UUID, reason: str, scratch: Path) -> None:
    """The stopped attempt left nothing recorded and the job queued again, that attempt not
    counted, saying so in the custody log; the next worker takes it up at once (well within
    the lease the stopped worker held) and captures the page whole."""
    with db(home) as session:
        job = session.get(CaptureJob, job_id)
        assert job is not None
        assert (job.state, job.lease_owner, job.lease_until, job.attempts) == (
            JobState.QUEUED, None, None, 0)
        assert _captures_of(session, job_id) == []
        entries = _entries_of_job(session, job_id)
        assert [e["action"] for e in entries] == [
            "capture.queued", "capture.claimed", "capture.released"]
        claimed, released = entries[1]["details"], entries[2]["details"]
        assert released == {"worker": claimed["worker"], "reason": reason, "attempt": 1,
                            "counted": False}
    _custody_verifies(home)
    again = home.run("worker", "--once", env={"TMPDIR": str(scratch)})
    assert again.returncode == 0, again.stderr
    with db(home) as session:
        job = session.get(CaptureJob, job_id)
        assert job is not None and (job.state, job.attempts) == (JobState.DONE, 1)
        assert [c.status for c in _captures_of(session, job_id)] == ["complete"]
        assert [e["action"] for e in _entries_of_job(session, job_id)] == [
            "capture.queued", "capture.claimed", "capture.released", "capture.claimed",
            "capture.done"]
    _check_blob_store(home)
    _custody_verifies(home)


def _taken_up_again(home: Home, job_id: uuid.UUID, stopped: str, scratch: Path) -> str:
    """The stopped worker's attempt left nothing recorded and the job `running` under its
    lease; once that ran out the next worker took the job over and captured the page whole.
    What that worker said."""
    with db(home) as session:
        job = session.get(CaptureJob, job_id)
        assert job is not None
        assert (job.state, job.lease_owner, job.attempts) == (JobState.RUNNING, stopped, 1)
        assert _captures_of(session, job_id) == []
        assert [e["action"] for e in _entries_of_job(session, job_id)] == [
            "capture.queued", "capture.claimed"]
        lease_until = job.lease_until
    assert lease_until is not None
    _custody_verifies(home)
    wait_for("the stopped worker's lease to run out", lambda: utcnow() > lease_until,
             timeout=(lease_until - utcnow()).total_seconds() + 30, interval=0.2)
    again = home.run("worker", "--once", env={"TMPDIR": str(scratch)})
    assert again.returncode == 0, again.stderr
    with db(home) as session:
        job = session.get(CaptureJob, job_id)
        assert job is not None and (job.state, job.attempts) == (JobState.DONE, 2)
        taken = _captures_of(session, job_id)
        assert [c.status for c in taken] == ["complete"]
        reclaimed = _entries(session, "capture.reclaimed", job_id)
        assert [e["details"]["reclaimed_from"] for e in reclaimed] == [stopped]
    _check_blob_store(home)
    _custody_verifies(home)
    return again.stderr


HANDED_BACK = ("handed back to the queue, its attempt not counted: another worker may take it "
               "up at once")


# A hand-back that waited as long as it may for another writer: on SQLite for the database's
# write lock, on PostgreSQL for the job's row.
LOCKED_OUT = (f"not handed back (another process kept the database locked for more than "
              f"{HAND_BACK_LOCK_WAIT_S:g} s): a worker takes it up again once its lease runs out")
ROW_LOCKED_OUT = (f"not handed back (another process kept what this needs locked for more than "
                  f"{HAND_BACK_LOCK_WAIT_S:g} s): a worker takes it up again once its lease "
                  "runs out")


def _abandoned(job_id: uuid.UUID, fate: str = HANDED_BACK) -> str:
    return f"job {job_id}: abandoned, nothing of it recorded; {fate}"


def _entries_of_job(session: Session, job_id: uuid.UUID) -> list[dict[str, Any]]:
    query = select(CustodyEntry).where(CustodyEntry.object_type == "capture_job",
                                       CustodyEntry.object_id == str(job_id))
    return [json.loads(e.entry) for e in session.scalars(query.order_by(CustodyEntry.seq))]


def test_a_worker_stopped_mid_capture_records_nothing_of_it_and_hands_the_job_back_at_once(
    home: Home, server: pages.PagesServer, scratch: Path,
) -> None:
    # The page would take 10 s to answer, and a capture may take minutes: the worker does not
    # wait for it, nor records a failure the page did not cause, nor holds the job under its
    # lease (two minutes) or counts the attempt against it: a deploy costs the job nothing.
    job_id, worker_id, code, said = _stopped_mid_capture(home, server, scratch, signal.SIGTERM)
    assert code == 0, said
    assert said == [_abandoned(job_id), f"worker {worker_id} stopped (SIGTERM)"]
    # Nor does it leave the capture's temporary folder, nor the browser's downloads folder.
    assert _left(scratch) == []
    _handed_back(home, job_id, "worker stopped (SIGTERM)", scratch)


def test_a_second_signal_stops_a_stopping_worker_at_once_and_the_next_worker_sweeps_its_folders(
    home: Home, server: pages.PagesServer, scratch: Path,
) -> None:
    # A 3-second lease, so the test need not wait two minutes for the job to be taken up again.
    job_id, worker_id, code, said = _stopped_mid_capture(
        home, server, scratch, signal.SIGTERM, signal.SIGINT, lease=3)
    # (Python runs the handlers of signals pending together in the order of their numbers.)
    second = signal.Signals(code - 128)
    assert second in (signal.SIGTERM, signal.SIGINT), (code, said)
    assert said == [f"{second.name} again: stopping at once; a capture under way is taken "
                    "up again once its lease runs out"], said
    # Ended at once, it left the capture's folder and the browser's, each named for it.
    pid = worker_id.split(":")[1]
    left = _left(scratch)
    assert [name.rsplit("-", 1)[0] for name in left] == [
        f"evidence-capture-{pid}", f"evidence-downloads-{pid}"], left
    again = _taken_up_again(home, job_id, worker_id, scratch)
    assert "removed 2 temporary folders a stopped capture left" in again.splitlines(), again
    assert _left(scratch) == []


@contextmanager
def _database_out_of_reach(home: Home, databases: Databases) -> Iterator[None]:
    """No process may write to the home's database meanwhile: on SQLite another holds its
    write lock; a PostgreSQL server takes no connection to it and drops those it had."""
    if home.backend == "sqlite":
        engine = make_engine(home.database_url)
        try:
            with engine.connect() as holder, holder.begin():  # BEGIN IMMEDIATE
                yield
        finally:
            engine.dispose()
        return
    name = make_url(home.database_url).database
    with databases.admin.connect() as admin:
        admin.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
        try:
            yield
        finally:
            admin.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))


def test_a_worker_stopped_while_the_database_is_out_of_reach_leaves_the_job_to_its_lease(
    home: Home, server: pages.PagesServer, scratch: Path, databases: Databases,
) -> None:
    # A lease long enough that no renewal falls while the database is out of reach (a
    # renewal that fails says so with its traceback, a hiccup the worker rides out).
    job_id, worker_id, code, said = _stopped_mid_capture(
        home, server, scratch, signal.SIGTERM, lease=30,
        meanwhile=_database_out_of_reach(home, databases))
    assert code == 0, said
    assert len(said) == 2 and said[1] == f"worker {worker_id} stopped (SIGTERM)", said
    if home.backend == "sqlite":  # it waited for the write lock as long as a hand-back may
        assert said[0] == _abandoned(job_id, LOCKED_OUT), said
    else:
        fate = re.fullmatch(
            re.escape(_abandoned(job_id, "not handed back (database unavailable: "))
            + r"(.+)\): a worker takes it up again once its lease runs out", said[0])
        assert fate, said
        assert "is not currently accepting connections" in fate.group(1), said
    assert _left(scratch) == []
    _taken_up_again(home, job_id, worker_id, scratch)


@contextmanager
def _held_by_another_writer(home: Home, job_ids: list[uuid.UUID]) -> Iterator[None]:
    """Another process's transaction holds, meanwhile, what handing the jobs back needs: on
    SQLite the database's write lock (BEGIN IMMEDIATE), on PostgreSQL the jobs' rows (SELECT
    ... FOR UPDATE); it writes nothing."""
    engine = make_engine(home.database_url)
    try:
        with engine.connect() as holder, holder.begin():
            if home.backend == "postgresql":
                held = holder.execute(select(CaptureJob.id).where(CaptureJob.id.in_(job_ids))
                                      .with_for_update()).scalars().all()
                assert sorted(held) == sorted(job_ids)
            yield
    finally:
        engine.dispose()


def _leases_ran_out(home: Home, job_ids: list[uuid.UUID]) -> bool:
    """Whether the jobs' leases have all run out, read beside a writer holding the database."""
    engine = make_engine(home.database_url)
    try:
        with read_only_scope(make_session_factory(engine)) as session:
            until = session.scalars(select(CaptureJob.lease_until)
                                    .where(CaptureJob.id.in_(job_ids))).all()
    finally:
        engine.dispose()
    return all(u is not None and u < utcnow() for u in until)


@pytest.mark.parametrize("renewing", [False, True], ids=["idle-keeper", "renewal-held-up"])
def test_workers_stopped_while_another_writer_holds_the_database_say_so_within_their_grace(
    home: Home, server: pages.PagesServer, scratch: Path, renewing: bool,
) -> None:
    # `evidence worker --concurrency 2` asks its workers to stop and kills those still running
    # 15 s later, as `evidence serve` does its worker. A hand-back waiting for the lock as long
    # as any other write would (30 s on SQLite, for ever on PostgreSQL) is killed mid-wait:
    # the job waits out its lease and nothing says why. Each worker gives up in time instead,
    # says its job was left to its lease, and ends cleanly; also when a renewal of its lease
    # (every second, of a 3-second lease) is held up by the same writer.
    job_ids = [uuid.UUID(json.loads(home.ok(
        "capture", server.url(f"/slow?delay={delay}"), "--case", CASE, "--no-wait", "--json",
    ))["job"]) for delay in (40, 41)]
    server.clear_requests()
    command = home.start("worker", "--concurrency", "2", "--poll", "0.2",
                         lease=3 if renewing else 60, env={"TMPDIR": str(scratch)})
    worker_ids = sorted([_started(command), _started(command)])
    wait_for("both pages to be asked for", lambda: len(server.requests_for("/slow")) == 2,
             timeout=60)
    browsers = descendants(command.pid)
    with _held_by_another_writer(home, job_ids):
        if renewing:  # a lease renewed every second has run out: its renewal is held up
            wait_for("the leases to run out", lambda: _leases_ran_out(home, job_ids),
                     timeout=60, interval=0.5)
        command.send_signal(signal.SIGTERM)
        code, said = _ended(command)
    wait_for("the workers' browsers to end", lambda: not any(alive(p) for p in browsers),
             timeout=30)
    assert code == 0, said
    left = LOCKED_OUT if home.backend == "sqlite" else ROW_LOCKED_OUT
    assert sorted(said[:-1]) == sorted(
        [_abandoned(job_id, left) for job_id in job_ids]
        + [f"worker {worker_id} stopped (SIGTERM)" for worker_id in worker_ids]), said
    assert said[-1] == "2 workers stopped (SIGTERM)", said
    assert _left(scratch) == []
    # Nothing was half done: each job is still running under its worker's lease, its custody
    # entries those of its queueing and its claim, and the log verifies.
    with db(home) as session:
        for job_id in job_ids:
            job = session.get(CaptureJob, job_id)
            assert job is not None
            assert (job.state, job.attempts) == (JobState.RUNNING, 1)
            assert job.lease_owner in worker_ids and job.lease_until is not None
            assert _captures_of(session, job_id) == []
            assert [e["action"] for e in _entries_of_job(session, job_id)] == [
                "capture.queued", "capture.claimed"]
        owners = session.scalars(select(CaptureJob.lease_owner)).all()
        assert sorted(o or "" for o in owners) == worker_ids  # one job each
    _custody_verifies(home)


def test_ctrl_c_stops_a_capture_from_the_command_line_saying_so_and_hands_the_job_back(
    home: Home, server: pages.PagesServer, scratch: Path,
) -> None:
    server.clear_requests()
    command = home.start("capture", server.url("/slow?delay=10"), "--case", CASE,
                         env={"TMPDIR": str(scratch)})
    server.wait_for_request("/slow", timeout=60)
    browser = descendants(command.pid)
    # Ctrl-C in a terminal: SIGINT to every process of the command's group.
    os.killpg(command.pid, signal.SIGINT)
    out, err = command.communicate(timeout=STOP_SECONDS)
    wait_for("the command's browser to end", lambda: not any(alive(p) for p in browser),
             timeout=30)
    with db(home) as session:
        [job_id] = session.scalars(select(CaptureJob.id)).all()
    assert (command.returncode, out) == (130, ""), err
    assert err.splitlines() == [
        "capturing…",
        f"stopped (SIGINT): nothing of the capture was recorded; job {job_id} {HANDED_BACK}",
    ], err
    assert _left(scratch) == []
    _handed_back(home, job_id, "worker stopped (SIGINT)", scratch)
