"""The capture worker: claims a job, captures its page, seals and records the result.

Blobs are written before the transaction that records the rows pointing to them commits, so a
worker killed at any moment leaves at worst an unreferenced blob, never a row pointing at a
missing or partial one. While the browser works, a thread renews the job's lease; if the lease
is lost (the job was taken over after this worker stalled) the result is dropped unrecorded.
A worker asked to stop (`CaptureWorker.stop`) abandons the capture under way the same way, and
hands the job back (`jobs.release`): queued again for any worker at once, the attempt not
counted. If the database refuses that at the moment, or another writer holds it longer than
`HAND_BACK_LOCK_WAIT_S`, the job stays `running` under the lease it holds, and once that runs
out a worker takes it up again; the worker says so and ends within the grace it is given.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from capture import changes
from capture.browser import BrowserSession
from capture.errors import describe
from capture.pipeline import CapturePipeline
from evidence import captures, jobs, manifests, targets, timestamping
from evidence.captures import (
    StoredArtifact,
    http_answer,
    manifest_of,
    outcome_of,
    record_capture,
)
from evidence.errors import DatabaseBusy, StorageFull
from evidence.home import Runtime
from evidence.models import Capture, CaptureStatus, Case, Target, User

log = logging.getLogger("capture.worker")
LEASE_SECONDS = 120.0
# A stopping worker is killed `processes.STOP_GRACE_SECONDS` (15 s) after it is asked to stop
# (by `evidence serve` or `evidence worker --concurrency N`); killed while it waits for the
# database, it would leave its job to its lease without a word. So its hand-back waits at most
# this long for another writer (on SQLite for the write lock; on PostgreSQL for each lock, the
# job's row then the custody log's), after at most as long for a lease renewal under way: 6 s
# on SQLite, 9 s on PostgreSQL at worst, well inside the grace.
HAND_BACK_LOCK_WAIT_S = 3.0
KEEPER_STOP_SECONDS = 10.0  # how long a lease renewal under way is waited for, not stopping
# A refused address or a malformed URL will not get better by trying again; nor will a redirect
# loop or a redirect the browser will not follow (a fresh browser meets the same ones).
NOT_RETRYABLE = ("refused:", "is not an http")
NOT_RETRYABLE_NET_ERRORS = ("net::ERR_TOO_MANY_REDIRECTS", "net::ERR_UNSAFE_REDIRECT",
                            "net::ERR_INVALID_REDIRECT")


def _said(exc: Exception) -> str:
    # Playwright's own text carries its call log over many lines; the job says it in words.
    return (describe(exc) if isinstance(exc, PlaywrightError)
            else f"{type(exc).__name__}: {exc}")


def retryable(error: str) -> bool:
    """Whether a capture that failed with `error` may succeed if tried again."""
    return not error.startswith(NOT_RETRYABLE) and not any(
        code in error for code in NOT_RETRYABLE_NET_ERRORS)


ABANDONED = "abandoned"  # a JobResult's status: the worker stopped, nothing was recorded
STOPPED = "the worker stopped"  # why a job is handed back, unless the stop says more
LEFT_TO_LEASE = "a worker takes it up again once its lease runs out"


class _Abandoned(Exception):
    """The worker was asked to stop before the capture under way was recorded."""


@dataclass(frozen=True)
class JobResult:
    job_id: uuid.UUID
    capture_id: uuid.UUID | None
    status: str
    error: str | None
    recorded: bool
    # Of an abandoned job: handed back to the queue (else `error` says why not, and what then).
    handed_back: bool = False


class _LeaseKeeper(threading.Thread):
    """Renews a job's lease until stopped; notes when the lease was lost."""

    def __init__(self, runtime: Runtime, job_id: uuid.UUID, worker: str, lease: float) -> None:
        super().__init__(daemon=True, name=f"lease-{job_id}")
        self.runtime, self.job_id, self.worker, self.lease = runtime, job_id, worker, lease
        self.stop_event = threading.Event()
        self.lost = False

    def run(self) -> None:
        said: str | None = None  # what a refused renewal last said, said once in a line
        while not self.stop_event.wait(self.lease / 3):
            try:
                with self.runtime.session() as session:
                    if not jobs.renew_lease(session, job_id=self.job_id, worker=self.worker,
                                            lease_seconds=self.lease):
                        self.lost = True
                        return
                said = None
            except (StorageFull, DBAPIError) as exc:
                # The database full or out of reach for a moment: tried again on the next tick.
                words = exc.message if isinstance(exc, StorageFull) else (
                    str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
                if words != said:
                    log.warning("renewing the lease of job %s: %s (trying again every %.0f s)",
                                self.job_id, words, self.lease / 3)
                said = words
            except Exception:  # not the database's doing: the whole story, for the developer
                log.exception("renewing the lease of job %s", self.job_id)

    def stop(self, wait: float = KEEPER_STOP_SECONDS) -> None:
        self.stop_event.set()
        self.join(timeout=wait)


class CaptureWorker:
    """One browser, reused across jobs; each job gets a fresh context."""

    def __init__(self, runtime: Runtime, browser: BrowserSession, *,
                 worker_id: str | None = None, lease_seconds: float = LEASE_SECONDS) -> None:
        self.runtime = runtime
        self.browser = browser
        self.worker_id = worker_id or jobs.new_worker_id()
        self.lease_seconds = lease_seconds
        self.pipeline = CapturePipeline(browser, runtime.store, runtime.settings)
        self.authority = manifests.timestamp_authority(runtime.settings)
        # Failures a full database refused to record, by job: recorded as soon as it can write
        # again (the jobs stay this worker's meanwhile, as no other worker takes a job over
        # before its lease runs out).
        self.unrecorded: dict[uuid.UUID, str] = {}
        self.stopping = False
        self.stop_reason = STOPPED
        self._browsing = False

    def stop(self, why: str = STOPPED) -> None:
        """Claim no other job, and abandon the capture under way while its page is in the
        browser, stopping the browser (a page load may take minutes), handing its job back with
        `why`; a capture being recorded is recorded. Safe in a signal handler: it takes no
        lock."""
        self.stop_reason = why
        self.stopping = True
        if self._browsing:
            self.browser.stop_for_good()

    def record_failures(self) -> list[uuid.UUID]:
        """Record the failures a full database refused before, returning the jobs now marked
        failed; raises StorageFull while it still refuses."""
        recorded = []
        for job_id, error in list(self.unrecorded.items()):
            try:
                with self.runtime.session() as session:
                    jobs.fail(session, job_id=job_id, worker=self.worker_id, error=error,
                              retryable=False)
            except jobs.LeaseLost:
                log.warning("job %s was taken over before its failure could be recorded",
                            job_id)
            else:
                recorded.append(job_id)
            del self.unrecorded[job_id]
        return recorded

    def run_once(self, *, job_id: uuid.UUID | None = None) -> JobResult | None:
        """Claim one runnable job (or the given one) and carry it out; None if there is none."""
        if self.stopping:
            return None
        with contextlib.suppress(StorageFull):
            self.record_failures()  # or leave them until the database has room again
        with self.runtime.session() as session:
            claimed = jobs.claim_next(session, worker=self.worker_id,
                                      lease_seconds=self.lease_seconds, job_id=job_id)
        if claimed is None:
            return None
        keeper = _LeaseKeeper(self.runtime, claimed.job_id, self.worker_id, self.lease_seconds)
        keeper.start()
        try:
            return self._carry_out(claimed, keeper)
        except _Abandoned:
            log.info("job %s abandoned: the worker is stopping", claimed.job_id)
        except jobs.LeaseLost:
            # Another worker owns the job now; whatever this one made is dropped unrecorded.
            log.warning("job %s was taken over while capturing; result dropped", claimed.job_id)
            return JobResult(claimed.job_id, None, CaptureStatus.FAILED, "lease lost", False)
        except StorageFull as exc:
            # A capture missing the files the disk had no room for is not recorded as one
            # merely partial: the job fails, saying so. Trying again in a few seconds would meet
            # the same full disk; someone must free space first. (On SQLite, whose database may
            # be on that disk, this too may be refused: it is then recorded once it has room.)
            error = f"{exc.message}; the capture was not recorded: free space and capture again"
            self.unrecorded[claimed.job_id] = error
            with contextlib.suppress(StorageFull):
                self.record_failures()
            return JobResult(claimed.job_id, None, CaptureStatus.FAILED, error, False)
        except Exception as exc:
            log.exception("job %s failed", claimed.job_id)
            try:
                with self.runtime.session() as session:
                    jobs.fail(session, job_id=claimed.job_id, worker=self.worker_id,
                              error=f"worker error: {_said(exc)}")
            except jobs.LeaseLost:
                log.warning("job %s was taken over while failing", claimed.job_id)
            return JobResult(claimed.job_id, None, CaptureStatus.FAILED, str(exc), False)
        finally:
            # A renewal held up by another writer is not waited for long by a worker that must
            # end in its grace: it and the hand-back lock the job's row in turn, and a renewal
            # that comes second finds the job no longer this worker's and changes nothing.
            keeper.stop(HAND_BACK_LOCK_WAIT_S if self.stopping else KEEPER_STOP_SECONDS)
        return self._hand_back(claimed.job_id)  # abandoned: the lease keeper stopped first

    def _hand_back(self, job_id: uuid.UUID) -> JobResult:
        """Give the abandoned job back to the queue; failing that (the database out of reach,
        full, or held by another writer longer than `HAND_BACK_LOCK_WAIT_S`), it is left to its
        lease, as if this worker had died."""
        try:
            with self.runtime.session(lock_wait=HAND_BACK_LOCK_WAIT_S) as session:
                jobs.release(session, job_id=job_id, worker=self.worker_id,
                             reason=self.stop_reason)
        except jobs.LeaseLost as exc:
            why = f"not handed back ({exc.message}): another worker has it"
        except (StorageFull, DatabaseBusy) as exc:
            why = f"not handed back ({exc.message}): {LEFT_TO_LEASE}"
        except SQLAlchemyError as exc:
            said = " ".join(str(exc.orig if isinstance(exc, DBAPIError) else exc).split())
            why = f"not handed back (database unavailable: {said}): {LEFT_TO_LEASE}"
        else:
            return JobResult(job_id, None, ABANDONED, None, False, handed_back=True)
        return JobResult(job_id, None, ABANDONED, why, False)

    def _carry_out(self, claimed: jobs.ClaimedJob, keeper: _LeaseKeeper) -> JobResult:
        with self.runtime.session() as session:
            operator_name = (None if claimed.requested_by_id is None
                             else session.scalar(select(User.name).where(
                                 User.id == claimed.requested_by_id)))
        url = claimed.url or ""
        # Whatever a stop interrupts (the browser stopped under a page, a step failing for it)
        # says nothing about the page: no failure is recorded for it.
        self._browsing = True
        try:
            record = None if self.stopping else self.pipeline.run(url, operator=operator_name)
        except Exception as exc:
            if self.stopping:
                raise _Abandoned from exc
            raise
        finally:
            self._browsing = False
        if record is None or self.stopping:
            raise _Abandoned

        def fetch(artifact: StoredArtifact) -> Path:
            return self.runtime.store.fetch(artifact.sha256)

        with self.runtime.session() as session:
            case = session.get(Case, claimed.case_id)
            target = session.get(Target, claimed.target_id)
            assert case is not None and target is not None
            manifest = manifest_of(record, case=case, target_id=target.id)
            previous = captures.previous_capture(session, target.id)
            before = None if previous is None else changes.snapshot_from_artifacts(
                http_status=previous.http_status, final_url=previous.final_url,
                title=previous.title,
                artifacts=captures.stored_artifacts(
                    self.runtime.store, captures.artifacts_of(session, previous.id)),
                fetch=fetch,
            )
        now = changes.snapshot_of(record, fetch)
        comparison = None if before is None else changes.compare(before, now).to_json()
        gone = None if record.status == CaptureStatus.FAILED else changes.gone_reason(now)
        # The capture before this one that loaded found the page there: gone now, it
        # disappeared (a target that was never found there is not called removed).
        present_before = before is not None and changes.gone_reason(before) is None
        sealed = manifests.seal(manifest, self.runtime.signer, self.authority)
        extra = self._store_seal(sealed)
        if keeper.lost:
            raise jobs.LeaseLost(f"job {claimed.job_id} was taken over while capturing")
        with self.runtime.session() as session:
            case = session.get(Case, claimed.case_id)
            target = session.get(Target, claimed.target_id)
            operator = (None if claimed.requested_by_id is None
                        else session.get(User, claimed.requested_by_id))
            assert case is not None and target is not None
            # The job row is locked before the custody log, in the order a worker taking the
            # job over locks them, so the two can never deadlock.
            if record.status == CaptureStatus.FAILED:
                error = record.error or "page could not be loaded"
                jobs.fail(session, job_id=claimed.job_id, worker=self.worker_id, error=error,
                          retryable=retryable(error))
            else:
                jobs.complete(session, job_id=claimed.job_id, worker=self.worker_id,
                              capture_id=record.capture_id)
            record_capture(
                session, operator, record=record, case=case, target=target,
                job_id=claimed.job_id, sealed=sealed, extra_artifacts=extra,
                store=self.runtime.store, comparison=comparison,
            )
            if record.status != CaptureStatus.FAILED:
                targets.record_presence(
                    session, operator, target, case, gone=gone, present_before=present_before,
                    seen_at=record.finished_at or record.started_at,
                    capture_id=str(record.capture_id),
                )
        return JobResult(claimed.job_id, record.capture_id, record.status, record.error, True)

    def _store_seal(self, sealed: manifests.SealedManifest) -> list[StoredArtifact]:
        store = self.runtime.store
        stored = store.put_bytes(sealed.data)
        out = [StoredArtifact("manifest", "manifest.json", "application/json", stored.size,
                              stored.sha256, store.locate(stored.sha256))]
        signature = store.put_bytes(sealed.signature)
        out.append(StoredArtifact("signature", "manifest.sig", "application/octet-stream",
                                  signature.size, signature.sha256,
                                  store.locate(signature.sha256)))
        if sealed.token is not None:
            token = store.put_bytes(sealed.token)
            out.append(StoredArtifact("timestamp", "manifest.tsr", "application/timestamp-reply",
                                      token.size, token.sha256, store.locate(token.sha256)))
        return out


def capture_summary(capture: Capture, artifacts: list[Any], locate: Any) -> dict[str, Any]:
    """The `--json` shape of a capture."""
    return {
        "id": str(capture.id),
        "status": capture.status,
        "url": capture.requested_url,
        "final_url": capture.final_url,
        "http_status": capture.http_status,
        "http_answer": http_answer(capture.http_status),
        "error_answer": outcome_of(capture.status, capture.http_status).said,
        "redirects": capture.redirect_chain or [],
        "remote_ip": capture.remote_ip,
        "started_at": capture.started_at.isoformat(),
        "finished_at": None if capture.finished_at is None else capture.finished_at.isoformat(),
        "manifest_sha256": capture.manifest_sha256,
        "steps": [{"name": s["name"], "ok": s["ok"], "error": s.get("error")}
                  for s in capture.steps or []],
        "artifacts": [{"kind": a.kind, "media_type": a.media_type, "size": a.size,
                       "sha256": a.sha256, "path": locate(a.sha256)} for a in artifacts],
    }



def timestamp_line(capture: Capture) -> str:
    """One line saying when and by whom the manifest was timestamped, and what that rests on."""
    if capture.timestamp_token is None or capture.timestamp_time is None:
        return "not timestamped (no authority answered; see the custody entry)"
    token = timestamping.TimestampToken.from_der(bytes(capture.timestamp_token))
    line = f"timestamped {capture.timestamp_time.isoformat()} by {capture.timestamp_authority}"
    notice = token.clock_notice
    return f"{line}; {notice}" if notice else line
