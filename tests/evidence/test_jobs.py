"""The capture job queue: claim order, leases and their takeover, retries with backoff, custody
entries for every transition, and workers in separate processes capturing each job exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from evidence import custody, jobs, targets
from evidence.db import make_engine, make_session_factory, session_scope
from evidence.errors import InvalidInput, NotFound
from evidence.models import CaptureJob, Case, CustodyEntry, JobState, User, utcnow
from evidence.signing import Signer
from tests.factories import make_case, make_user

ROOT = Path(__file__).resolve().parents[2]
WORKER_SCRIPT = Path(__file__).with_name("jobs_worker_proc.py")
ORIGIN = "evidence-locker/test"


def _flag(session: Session, count: int, *, case: Case | None = None,
          actor: User | None = None) -> list[CaptureJob]:
    actor = actor or make_user(session)
    case = case or make_case(session, actor)
    return [
        targets.flag_target(
            session, actor, case, reason="threat", url=f"http://127.0.0.1:1/page/{n}"
        )[1]
        for n in range(count)
    ]


def _job_entries(session: Session, job_id: uuid.UUID) -> list[CustodyEntry]:
    return list(session.scalars(
        select(CustodyEntry)
        .where(CustodyEntry.object_type == "capture_job", CustodyEntry.object_id == str(job_id))
        .order_by(CustodyEntry.seq)
    ))


def _actions(session: Session, job_id: uuid.UUID) -> list[str]:
    return [e.action for e in _job_entries(session, job_id)]


def _details(session: Session, job_id: uuid.UUID, action: str) -> dict[str, object]:
    [entry] = [e for e in _job_entries(session, job_id) if e.action == action]
    doc = custody.describe(entry)
    assert doc["actor"] is None
    assert doc["case"]["id"] == str(entry.case_id)
    details: dict[str, object] = doc["details"]
    return details


def _job(session: Session, job_id: uuid.UUID) -> CaptureJob:
    job = session.get(CaptureJob, job_id, populate_existing=True)
    assert job is not None
    return job


def test_claims_oldest_runnable_job_first_and_hands_out_ids(session: Session) -> None:
    first, second, third, later = _flag(session, 4)
    t = utcnow()
    # Set out of creation order: the claim follows run_after, not insertion.
    first.run_after = t - timedelta(seconds=1)
    second.run_after = t - timedelta(seconds=3)
    third.run_after = t - timedelta(seconds=2)
    later.run_after = t + timedelta(seconds=60)
    session.flush()

    claimed = [jobs.claim_next(session, worker=f"w{n}", lease_seconds=60, now=t) for n in range(4)]

    assert [c.job_id if c else None for c in claimed] == [second.id, third.id, first.id, None]
    one = claimed[0]
    assert one is not None
    assert (one.target_id, one.case_id) == (second.target_id, second.case_id)
    assert one.url == "http://127.0.0.1:1/page/1"
    assert (one.attempt, one.max_attempts, one.worker) == (1, 3, "w0")
    assert one.lease_until == t + timedelta(seconds=60)
    assert one.reclaimed_from is None
    row = _job(session, second.id)
    assert (row.state, row.attempts, row.lease_owner) == (JobState.RUNNING, 1, "w0")
    assert row.lease_until == t + timedelta(seconds=60)
    assert _actions(session, second.id) == ["capture.queued", "capture.claimed"]
    details = _details(session, second.id, "capture.claimed")
    assert details == {"worker": "w0", "attempt": 1,
                       "lease_until": custody.format_time(t + timedelta(seconds=60))}


def test_a_lease_that_ran_out_passes_to_another_worker_and_the_first_loses_it(
    session: Session,
) -> None:
    [job] = _flag(session, 1)
    t = utcnow()
    assert jobs.claim_next(session, worker="a", lease_seconds=60, now=t) is not None
    assert jobs.claim_next(session, worker="b", lease_seconds=60, now=t + timedelta(seconds=59)) \
        is None
    # Renewed in time, the lease holds past its first end.
    assert jobs.renew_lease(session, job_id=job.id, worker="a", lease_seconds=60,
                            now=t + timedelta(seconds=50))
    assert jobs.claim_next(session, worker="b", lease_seconds=60,
                           now=t + timedelta(seconds=110)) is None

    taken = jobs.claim_next(session, worker="b", lease_seconds=60, now=t + timedelta(seconds=111))

    assert taken is not None
    assert (taken.job_id, taken.attempt, taken.reclaimed_from) == (job.id, 2, "a")
    lease_of_b = t + timedelta(seconds=171)
    assert not jobs.renew_lease(session, job_id=job.id, worker="a", lease_seconds=600,
                                now=t + timedelta(seconds=112))
    assert _job(session, job.id).lease_until == lease_of_b
    with pytest.raises(jobs.LeaseLost, match="leased to b"):
        jobs.complete(session, job_id=job.id, worker="a", capture_id=uuid.uuid4())
    with pytest.raises(jobs.LeaseLost):
        jobs.fail(session, job_id=job.id, worker="a", error="late")
    assert jobs.renew_lease(session, job_id=job.id, worker="b", lease_seconds=60,
                            now=t + timedelta(seconds=150))
    capture_id = uuid.uuid4()
    jobs.complete(session, job_id=job.id, worker="b", capture_id=capture_id)

    row = _job(session, job.id)
    assert (row.state, row.lease_owner, row.lease_until) == (JobState.DONE, None, None)
    assert _actions(session, job.id) == [
        "capture.queued", "capture.claimed", "capture.reclaimed", "capture.done"
    ]
    reclaimed = _details(session, job.id, "capture.reclaimed")
    assert reclaimed["reclaimed_from"] == "a"
    assert reclaimed["worker"] == "b"
    assert reclaimed["lease_expired_at"] == custody.format_time(t + timedelta(seconds=110))
    assert _details(session, job.id, "capture.done") == {
        "worker": "b", "attempt": 2, "capture": str(capture_id)
    }
    with pytest.raises(jobs.LeaseLost, match="done"):
        jobs.complete(session, job_id=job.id, worker="b", capture_id=None)
    with pytest.raises(NotFound):
        jobs.complete(session, job_id=uuid.uuid4(), worker="b", capture_id=None)


def test_failed_attempts_back_off_then_fail_with_the_reason(session: Session) -> None:
    [job] = _flag(session, 1)
    t = utcnow()

    def at(seconds: float) -> datetime:
        return t + timedelta(seconds=seconds)

    assert jobs.claim_next(session, worker="w", lease_seconds=60, now=at(0)) is not None
    state = jobs.fail(session, job_id=job.id, worker="w", error="navigation timeout", now=at(1))
    row = _job(session, job.id)
    assert state == JobState.QUEUED
    assert (row.state, row.error, row.lease_owner) == (JobState.QUEUED, "navigation timeout", None)
    assert row.run_after == at(31)  # 30 s after the first attempt
    assert jobs.claim_next(session, worker="w", lease_seconds=60, now=at(30)) is None
    second = jobs.claim_next(session, worker="w", lease_seconds=60, now=at(31))
    assert second is not None and second.attempt == 2

    jobs.fail(session, job_id=job.id, worker="w", error="reset by peer", now=at(40))
    assert _job(session, job.id).run_after == at(100)  # 60 s after the second
    assert jobs.claim_next(session, worker="w", lease_seconds=60, now=at(99)) is None
    assert jobs.claim_next(session, worker="w", lease_seconds=60, now=at(100)) is not None

    state = jobs.fail(session, job_id=job.id, worker="w", error="HTTP 503", now=at(101))

    row = _job(session, job.id)
    assert state == JobState.FAILED
    assert (row.state, row.attempts, row.error) == (JobState.FAILED, 3, "HTTP 503")
    assert jobs.claim_next(session, worker="w", lease_seconds=60, now=at(10_000)) is None
    assert _actions(session, job.id) == [
        "capture.queued",
        "capture.claimed", "capture.retry_scheduled",
        "capture.claimed", "capture.retry_scheduled",
        "capture.claimed", "capture.failed",
    ]
    assert _details(session, job.id, "capture.failed") == {
        "worker": "w", "attempt": 3, "error": "HTTP 503", "retryable": True
    }


def test_a_job_handed_back_by_a_stopping_worker_is_runnable_at_once_its_attempt_not_counted(
    session: Session,
) -> None:
    [job] = _flag(session, 1)
    t = utcnow()

    def at(seconds: float) -> datetime:
        return t + timedelta(seconds=seconds)

    jobs.claim_next(session, worker="a", lease_seconds=60, now=at(0))
    jobs.fail(session, job_id=job.id, worker="a", error="HTTP 503", now=at(1))
    run_after = _job(session, job.id).run_after
    claimed = jobs.claim_next(session, worker="a", lease_seconds=60, now=at(40))
    assert claimed is not None and claimed.attempt == 2
    # Stopped on every attempt (restarts, deploys), the job never fails for it.
    for n in range(4):
        jobs.release(session, job_id=job.id, worker="a", reason="worker stopped (SIGTERM)",
                     now=at(41 + n))
        row = _job(session, job.id)
        assert (row.state, row.attempts, row.lease_owner, row.lease_until) == (
            JobState.QUEUED, 1, None, None)
        # Its place in the queue kept, the last failure still said.
        assert (row.run_after, row.error) == (run_after, "HTTP 503")
        again = jobs.claim_next(session, worker=f"b{n}", lease_seconds=60, now=at(41 + n))
        assert again is not None
        assert (again.job_id, again.attempt, again.reclaimed_from) == (job.id, 2, None)
        with pytest.raises(jobs.LeaseLost, match=f"leased to b{n}"):
            jobs.release(session, job_id=job.id, worker="a", reason="worker stopped (SIGTERM)")
        jobs.release(session, job_id=job.id, worker=f"b{n}", reason="worker stopped (SIGINT)",
                     now=at(41 + n))
        jobs.claim_next(session, worker="a", lease_seconds=60, now=at(41 + n))

    assert _actions(session, job.id) == [
        "capture.queued", "capture.claimed", "capture.retry_scheduled", "capture.claimed",
        *["capture.released", "capture.claimed"] * 8,
    ]
    released = [custody.describe(e)["details"] for e in _job_entries(session, job.id)
                if e.action == "capture.released"]
    assert released[:2] == [
        {"worker": "a", "reason": "worker stopped (SIGTERM)", "attempt": 2, "counted": False},
        {"worker": "b0", "reason": "worker stopped (SIGINT)", "attempt": 2, "counted": False},
    ]
    jobs.complete(session, job_id=job.id, worker="a", capture_id=None)
    assert (_job(session, job.id).state, _job(session, job.id).attempts) == (JobState.DONE, 2)
    with pytest.raises(jobs.LeaseLost, match="done"):
        jobs.release(session, job_id=job.id, worker="a", reason="worker stopped (SIGTERM)")
    with pytest.raises(InvalidInput, match="say why"):
        jobs.release(session, job_id=job.id, worker="a", reason="  ")


def test_backoff_base_is_configurable(session: Session) -> None:
    [job] = _flag(session, 1)
    t = utcnow()
    jobs.claim_next(session, worker="w", lease_seconds=60, now=t)
    jobs.fail(session, job_id=job.id, worker="w", error="flaky", backoff_base_seconds=2, now=t)
    assert _job(session, job.id).run_after == t + timedelta(seconds=2)
    details = _details(session, job.id, "capture.retry_scheduled")
    assert details["run_after"] == custody.format_time(t + timedelta(seconds=2))
    assert details["error"] == "flaky"


def test_a_non_retryable_failure_fails_at_once(session: Session) -> None:
    [job] = _flag(session, 1)
    t = utcnow()
    jobs.claim_next(session, worker="w", lease_seconds=60, now=t)
    state = jobs.fail(session, job_id=job.id, worker="w", error="URL resolves to a private address",
                      retryable=False, now=t)
    row = _job(session, job.id)
    assert state == JobState.FAILED
    assert (row.attempts, row.error) == (1, "URL resolves to a private address")
    assert _actions(session, job.id)[-1] == "capture.failed"
    assert _details(session, job.id, "capture.failed")["retryable"] is False


def test_a_job_whose_worker_died_on_its_last_attempt_fails_instead_of_looping(
    session: Session,
) -> None:
    doomed, other = _flag(session, 2)
    doomed.max_attempts = 1
    t = utcnow()
    other.run_after = t + timedelta(seconds=1)
    session.flush()
    assert jobs.claim_next(session, worker="dead", lease_seconds=10, now=t) is not None

    next_job = jobs.claim_next(session, worker="w", lease_seconds=10, now=t + timedelta(seconds=11))

    assert next_job is not None and next_job.job_id == other.id
    row = _job(session, doomed.id)
    assert row.state == JobState.FAILED
    assert row.error is not None and "dead" in row.error
    details = _details(session, doomed.id, "capture.failed")
    assert (details["abandoned_by"], details["worker"]) == ("dead", "w")


@pytest.mark.parametrize(("attempt", "base", "seconds"), [
    (1, 30, 30), (2, 30, 60), (3, 30, 120), (7, 30, 1920), (8, 30, 3600), (10_000, 30, 3600),
    (1, 5, 5), (4, 5, 40),
])
def test_backoff_doubles_per_attempt_up_to_an_hour(attempt: int, base: float,
                                                   seconds: float) -> None:
    t = utcnow()
    assert jobs.run_after_for(attempt, now=t, base_seconds=base) == t + timedelta(seconds=seconds)


def test_backoff_refuses_attempt_zero() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        jobs.run_after_for(0, now=utcnow())


def test_transitions_commit_with_their_entries_and_the_log_verifies(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as s:
            retried, done, refused = (j.id for j in _flag(s, 3))
        # A claim whose transaction rolls back leaves neither the change nor its entry.
        with pytest.raises(RuntimeError), session_scope(factory) as s:
            jobs.claim_next(s, worker="w", lease_seconds=60)
            raise RuntimeError("crash before commit")
        with session_scope(factory) as s:
            assert _job(s, retried).state == JobState.QUEUED
            assert _actions(s, retried) == ["capture.queued"]
        with session_scope(factory) as s:
            claim = jobs.claim_next(s, worker="w", lease_seconds=60)
            assert claim is not None and claim.job_id == retried
        with session_scope(factory) as s:
            jobs.fail(s, job_id=retried, worker="w", error="timeout", backoff_base_seconds=0.001)
        time.sleep(0.01)
        for _ in range(3):
            with session_scope(factory) as s:
                claim = jobs.claim_next(s, worker="w", lease_seconds=60)
            assert claim is not None
            with session_scope(factory) as s:
                if claim.job_id == refused:
                    jobs.fail(s, job_id=claim.job_id, worker="w", error="blocked",
                              retryable=False)
                else:
                    jobs.complete(s, job_id=claim.job_id, worker="w", capture_id=None)
        signer = Signer.generate()
        with session_scope(factory) as s:
            custody.cut_checkpoint(s, signer, origin=ORIGIN)
        with session_scope(factory) as s:
            assert [_job(s, j).state for j in (retried, done, refused)] == [
                JobState.DONE, JobState.DONE, JobState.FAILED
            ]
            assert _actions(s, retried) == [
                "capture.queued", "capture.claimed", "capture.retry_scheduled",
                "capture.claimed", "capture.done",
            ]
            assert _actions(s, done) == ["capture.queued", "capture.claimed", "capture.done"]
            assert _actions(s, refused) == ["capture.queued", "capture.claimed", "capture.failed"]
            report = custody.verify_log(s, signer.verifier)
            assert report.ok, report.summary()
            assert report.sealed == report.entries
    finally:
        engine.dispose()


def test_a_claim_skips_a_job_another_worker_has_locked(postgresql_database_url: str) -> None:
    # Row locks are PostgreSQL's; on SQLite one writer at a time makes the question moot.
    engine = make_engine(postgresql_database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as s:
            first, second = (j.id for j in _flag(s, 2))
            _job(s, first).run_after = utcnow() - timedelta(seconds=10)
        with session_scope(factory) as holder:
            holder.execute(
                text("SELECT id FROM capture_jobs WHERE id = :id FOR UPDATE"), {"id": first}
            )
            with session_scope(factory) as s:
                # Fail fast rather than hang if the claim ever waits on the locked row.
                s.execute(text("SET LOCAL lock_timeout = '2s'"))
                claim = jobs.claim_next(s, worker="w", lease_seconds=60)
            assert claim is not None and claim.job_id == second
    finally:
        engine.dispose()


def _spawn(database_url: str, worker: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKER_SCRIPT), database_url, worker, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, env=env,
    )


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"worker did not start: {line!r} {err}")


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_worker_processes_capture_every_job_exactly_once(
    backend: str, database_url: str
) -> None:
    # SQLite admits one writer at a time; two processes still race for every claim.
    workers = 4 if backend == "postgresql" else 2
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    procs: list[subprocess.Popen[str]] = []
    try:
        with session_scope(factory) as s:
            actor = make_user(s)
            job_ids = {
                j.id
                for c in range(4)
                for j in _flag(s, 25, case=make_case(s, actor), actor=actor)
            }
        procs = [_spawn(database_url, f"worker-{n}") for n in range(workers)]
        for proc in procs:
            _wait_ready(proc)
        for proc in procs:
            _go(proc)
        done_by: dict[str, list[str]] = {}
        for n, proc in enumerate(procs):
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            done_by[f"worker-{n}"] = [line.split()[1] for line in out.splitlines()
                                      if line.startswith("done ")]

        reported = [j for ids in done_by.values() for j in ids]
        assert sorted(reported) == sorted(str(j) for j in job_ids)
        if backend == "postgresql":
            assert sum(1 for ids in done_by.values() if ids) > 1, done_by
        with session_scope(factory) as s:
            rows = s.execute(
                select(CustodyEntry.object_id, CustodyEntry.action)
                .where(CustodyEntry.object_type == "capture_job")
            ).all()
            per_action = {
                action: Counter(object_id for object_id, a in rows if a == action)
                for action in ("capture.claimed", "capture.reclaimed", "capture.done")
            }
            expected = Counter({str(j): 1 for j in job_ids})
            assert per_action["capture.done"] == expected
            assert per_action["capture.claimed"] == expected
            assert not per_action["capture.reclaimed"]
            states = Counter(s.scalars(select(CaptureJob.state)))
            assert states == {JobState.DONE: len(job_ids)}
            signer = Signer.generate()
            custody.cut_checkpoint(s, signer, origin=ORIGIN)
            report = custody.verify_log(s, signer.verifier)
            assert report.ok, report.summary()
    finally:
        _stop(procs)
        engine.dispose()


def test_the_job_of_a_killed_worker_process_is_taken_over(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    procs: list[subprocess.Popen[str]] = []
    try:
        with session_scope(factory) as s:
            [job_id] = [j.id for j in _flag(s, 1)]
        dying = _spawn(database_url, "dying", "--lease", "0.5", "--hang")
        procs.append(dying)
        _wait_ready(dying)
        _go(dying)
        assert dying.stdout is not None
        assert dying.stdout.readline().split() == ["claimed", str(job_id)]
        dying.kill()
        dying.wait()

        deadline = time.monotonic() + 10
        claim = None
        while claim is None and time.monotonic() < deadline:
            with session_scope(factory) as s:
                claim = jobs.claim_next(s, worker="survivor", lease_seconds=60)
            time.sleep(0.05)
        assert claim is not None
        assert (claim.job_id, claim.reclaimed_from, claim.attempt) == (job_id, "dying", 2)
        with session_scope(factory) as s:
            jobs.complete(s, job_id=job_id, worker="survivor", capture_id=None)
        with session_scope(factory) as s:
            assert _actions(s, job_id) == [
                "capture.queued", "capture.claimed", "capture.reclaimed", "capture.done"
            ]
    finally:
        _stop(procs)
        engine.dispose()
