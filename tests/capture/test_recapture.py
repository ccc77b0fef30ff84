"""Re-captures of the same target, carried out by the worker: what changed is stored and shown,
and a page that disappears marks its target removed from the time it was first seen gone."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from capture.browser import BrowserSession
from capture.service import CaptureWorker, JobResult
from evidence import captures, cases, jobs, targets, timestamping, users
from evidence.custody import describe
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import (
    Artifact,
    Capture,
    CaptureJob,
    CustodyEntry,
    JobState,
    Target,
    TargetState,
    utcnow,
)
from evidence.settings import Settings
from tests.support import pages_server as pages
from tests.support.s3_server import S3Server
from tests.support.tsa_server import TsaServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server() -> Iterator[pages.PagesServer]:
    with pages.PagesServer() as s:
        yield s


@pytest.fixture
def runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    settings = Settings(home=tmp_path / "home", database_url=database_url,
                        capture_allow="127.0.0.1", max_scroll_steps=2)
    init_home(settings)
    rt = open_runtime(settings)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserSession]:
    with BrowserSession(Settings(home=tmp_path_factory.mktemp("b"))) as b:
        yield b


def _watch(runtime: Runtime, url: str) -> Target:
    with runtime.session() as s:
        actor = users.create_user(s, None, name="ines", role="investigator")
        case = cases.create_case(s, actor, reference="WATCH-1", title="watched adverts")
        target, _ = targets.flag_target(s, actor, case, url=url, reason="advert",
                                        watch_interval_seconds=60)
        return target


def _recapture(runtime: Runtime, worker: CaptureWorker, hours: int) -> Capture:
    with runtime.session() as s:
        queued = targets.schedule_due_watches(s, now=utcnow() + timedelta(hours=hours))
        assert len(queued) == 1
    result = worker.run_once()
    assert result is not None and result.capture_id is not None, result
    with runtime.session() as s:
        capture = s.get(Capture, result.capture_id)
        assert capture is not None
        return capture


def _actions(runtime: Runtime) -> list[str]:
    with runtime.session() as s:
        return [e.action for e in s.scalars(select(CustodyEntry).order_by(CustodyEntry.seq))]


def test_a_changed_page_is_compared_with_its_previous_capture(
    runtime: Runtime, browser: BrowserSession, server: pages.PagesServer,
) -> None:
    server.set_version("/changing", 1)
    target = _watch(runtime, server.url("/changing"))
    worker = CaptureWorker(runtime, browser)
    first = worker.run_once()
    assert first is not None and first.status == "complete"
    server.set_version("/changing", 2)
    second = _recapture(runtime, worker, hours=1)
    comparison = second.comparison
    assert comparison is not None and comparison["changed"] is True
    diff = "\n".join(comparison["text"]["diff"])
    assert "-" + pages.CHANGING_PAGES[1].text in diff
    assert "+" + pages.CHANGING_PAGES[2].text in diff
    assert comparison["title"] == {"from": pages.CHANGING_PAGES[1].title,
                                   "to": pages.CHANGING_PAGES[2].title}
    added = [m["name"] for m in comparison["media"]["added"]]
    removed = [m["name"] for m in comparison["media"]["removed"]]
    assert any(n.endswith("/changing/img/new.png") for n in added), comparison
    assert any(n.endswith("/changing/img/old.png") for n in removed), comparison
    # main.png, swapped at the same address, is one changed picture, not one gone and one new.
    [swapped] = comparison["media"]["changed"]
    assert swapped["before"]["name"] == swapped["after"]["name"] == server.url(
        "/changing/img/main.png")
    assert swapped["before"]["sha256"] != swapped["after"]["sha256"]
    assert not any(n.endswith("main.png") for n in added + removed), comparison
    assert "1 media changed" in comparison["summary"]
    assert "£3,950" in comparison["summary"] or "text" in comparison["summary"]
    with runtime.session() as s:
        entries = [describe(e) for e in s.scalars(
            select(CustodyEntry).where(CustodyEntry.action == "capture.recorded")
            .order_by(CustodyEntry.seq))]
    assert entries[0]["details"]["changes"] is None
    assert entries[1]["details"]["changes"] == comparison["summary"]
    assert target.state == TargetState.ACTIVE


def test_workers_on_two_machines_share_an_s3_store(
    tmp_path: Path, database_url: str, browser: BrowserSession, server: pages.PagesServer,
    s3_server: S3Server,
) -> None:
    """The scale path: one database, one bucket, a worker on each of two machines. The second
    machine has never held the first capture's files; it compares against them all the same,
    reading them from the bucket, and every file of both captures is in the bucket."""
    bucket = s3_server.new_bucket()
    with s3_server.machines(tmp_path, bucket, "a", "b", database_url=database_url,
                            store_url=f"s3://{bucket}/evidence", capture_allow="127.0.0.1",
                            max_scroll_steps=2) as machines:
        server.set_version("/changing", 1)
        _watch(machines[0], server.url("/changing"))
        first = CaptureWorker(machines[0], browser).run_once()
        assert first is not None and first.status == "complete"
        server.set_version("/changing", 2)
        second = _recapture(machines[1], CaptureWorker(machines[1], browser), hours=1)
        comparison = second.comparison
        assert comparison is not None and comparison["changed"] is True
        diff = "\n".join(comparison["text"]["diff"])
        assert "-" + pages.CHANGING_PAGES[1].text in diff
        assert "+" + pages.CHANGING_PAGES[2].text in diff
        listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
        in_bucket = {o["Key"].rsplit("/", 1)[-1] for o in listed}
        with machines[1].session() as s:
            held = set(s.scalars(select(Artifact.sha256)))
        assert held and held <= in_bucket
        assert not (tmp_path / "a" / "blobs").exists()
        assert not (tmp_path / "b" / "blobs").exists()


def test_a_vanished_page_marks_its_target_removed_then_reappeared(
    runtime: Runtime, browser: BrowserSession, server: pages.PagesServer,
) -> None:
    server.restore("/vanishing")
    target = _watch(runtime, server.url("/vanishing"))
    worker = CaptureWorker(runtime, browser)
    assert worker.run_once() is not None
    server.remove("/vanishing", status=410)
    try:
        gone = _recapture(runtime, worker, hours=1)
        assert gone.http_status == 410 and gone.status == "complete"
        assert gone.comparison is not None
        assert gone.comparison["status"] == {"from": 200, "to": 410}
        with runtime.session() as s:
            row = s.get(Target, target.id)
            assert row is not None and row.state == TargetState.REMOVED
            assert row.removed_first_seen_at == gone.finished_at
        again = _recapture(runtime, worker, hours=2)
        with runtime.session() as s:
            row = s.get(Target, target.id)
            assert row is not None and row.removed_first_seen_at == gone.finished_at
            assert again.finished_at is not None and gone.finished_at is not None
            assert again.finished_at > gone.finished_at
    finally:
        server.restore("/vanishing")
    _recapture(runtime, worker, hours=3)
    with runtime.session() as s:
        row = s.get(Target, target.id)
        assert row is not None and row.state == TargetState.ACTIVE
    actions = _actions(runtime)
    assert actions.count("target.removed") == 1 and actions.count("target.reappeared") == 1


def test_a_url_that_answers_404_from_its_first_capture_is_not_called_removed(
    runtime: Runtime, browser: BrowserSession, server: pages.PagesServer,
) -> None:
    """One 404 at the first capture is as often a mistyped URL, a login wall or a passing
    fault as a removal: nothing shows the page was ever there. The capture says what the URL
    answered; the target is called removed only once a page that was there disappears."""
    server.remove("/vanishing", status=404)
    try:
        target = _watch(runtime, server.url("/vanishing"))
        worker = CaptureWorker(runtime, browser)
        result = worker.run_once()
        assert result is not None and result.status == "complete"
        with runtime.session() as s:
            capture = s.get(Capture, result.capture_id)
            assert capture is not None and capture.http_status == 404
            said = captures.outcome_of(capture.status, capture.http_status).said
        assert said == ("Complete, but the page answered HTTP 404 Not Found (the page may "
                        "have been removed, or the URL may be wrong): what was captured is "
                        "that answer, not the page as it once stood")
        still = _recapture(runtime, worker, hours=1)
        assert still.http_status == 404
        with runtime.session() as s:
            row = s.get(Target, target.id)
            assert row is not None and row.state == TargetState.ACTIVE
            assert row.removed_first_seen_at is None
    finally:
        server.restore("/vanishing")
    found = _recapture(runtime, worker, hours=2)
    assert found.http_status == 200
    server.remove("/vanishing", status=404)
    try:
        gone = _recapture(runtime, worker, hours=3)
    finally:
        server.restore("/vanishing")
    with runtime.session() as s:
        row = s.get(Target, target.id)
        assert row is not None and row.state == TargetState.REMOVED
        assert row.removed_first_seen_at == gone.finished_at
    actions = _actions(runtime)
    assert actions.count("target.removed") == 1 and "target.reappeared" not in actions


def test_captures_are_timestamped_by_the_configured_authorities(
    tmp_path: Path, database_url: str, browser: BrowserSession, server: pages.PagesServer,
) -> None:

    material = timestamping.generate_local_tsa("External test TSA")
    external = timestamping.LocalTimestampAuthority.from_material(material)
    with TsaServer(external, "http_error") as broken, TsaServer(external) as working:
        settings = Settings(home=tmp_path / "home", database_url=database_url,
                            capture_allow="127.0.0.1", max_scroll_steps=2,
                            tsa_urls=f"{broken},{working}")
        init_home(settings)
        rt = open_runtime(settings)
        try:
            _watch(rt, server.url(pages.SIMPLE_PATH))
            result = CaptureWorker(rt, browser).run_once()
            assert result is not None and result.capture_id is not None
            with rt.session() as s:
                capture = s.get(Capture, result.capture_id)
                assert capture is not None and capture.timestamp_token is not None
                assert capture.timestamp_authority == working
                manifest = rt.store.read_bytes(capture.manifest_sha256 or "")
                recorded = describe(s.scalars(select(CustodyEntry).where(
                    CustodyEntry.action == "capture.recorded")).one())
        finally:
            rt.close()
    digest = hashlib.sha256(manifest).digest()
    info = timestamping.verify_token(capture.timestamp_token, digest=digest,
                                     trusted_certs=[material.ca_certificate_pem])
    assert info.trust_anchor_subject is not None
    assert "External test TSA" in info.trust_anchor_subject
    home_ca = (tmp_path / "home" / "tsa" / "tsa-ca-cert.pem").read_bytes()
    with pytest.raises(timestamping.TimestampError, match="trusted"):
        timestamping.verify_token(capture.timestamp_token, digest=digest,
                                  trusted_certs=[home_ca])
    assert recorded["details"]["timestamp_error"] is None


def test_capturing_a_url_again_compares_it_and_capture_show_says_what_changed(
    tmp_path: Path, database_url: str, backend: str, server: pages.PagesServer,
) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")},
           "EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_CAPTURE_ALLOW": "127.0.0.1",
           "EVIDENCE_MAX_SCROLL_STEPS": "2"}
    if backend == "postgresql":
        env["EVIDENCE_DATABASE_URL"] = database_url

    def run(*args: str) -> str:
        # A real process, as an operator runs it (and a browser of its own).
        done = subprocess.run([sys.executable, "-m", "evidence", *args], env=env, text=True,
                              capture_output=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run("init")
    run("case", "create", "AGAIN-1", "--title", "price watch")
    server.set_version("/changing", 1)
    url = server.url("/changing")
    run("capture", url, "--case", "AGAIN-1")
    server.set_version("/changing", 2)
    second = run("capture", url, "--case", "AGAIN-1", "--json")
    capture_id = json.loads(second[second.index("{"):])["id"]
    shown = run("capture", "show", capture_id)
    assert "compared with the previous capture:" in shown
    assert "-" + pages.CHANGING_PAGES[1].text in shown
    assert "+" + pages.CHANGING_PAGES[2].text in shown
    history = run("case", "show", "AGAIN-1")
    assert history.count("target.flagged") == 1
    assert history.count("capture.recorded") == 2


def test_a_worker_whose_job_was_taken_over_records_nothing(
    runtime: Runtime, browser: BrowserSession, server: pages.PagesServer,
) -> None:
    server.clear_requests()  # the log is shared by the module's tests
    _watch(runtime, server.url("/slow-body?delay=4&chunks=4"))
    slow = CaptureWorker(runtime, browser, worker_id="slow-worker", lease_seconds=60)
    taken: list[jobs.ClaimedJob | None] = []

    def take_over() -> None:
        # While the slow worker is still fetching, its lease runs out and another worker
        # claims the job, as happens when a worker stalls longer than its lease.
        server.wait_for_request("/slow-body", timeout=30)
        with runtime.session() as s:
            job = s.scalars(select(CaptureJob)).one()
            job.lease_until = utcnow() - timedelta(seconds=1)
        with runtime.session() as s:
            taken.append(jobs.claim_next(s, worker="other-worker", lease_seconds=60))

    thread = threading.Thread(target=take_over)
    thread.start()
    result = slow.run_once()  # Playwright's sync API stays on the thread that started it
    thread.join(timeout=60)
    assert taken and taken[0] is not None and taken[0].reclaimed_from == "slow-worker"
    assert isinstance(result, JobResult) and not result.recorded
    assert result.error == "lease lost"
    with runtime.session() as s:
        assert s.scalars(select(Capture)).all() == []
        job = s.scalars(select(CaptureJob)).one()
        assert job.lease_owner == "other-worker" and job.state == JobState.RUNNING
