"""A worker's lease keeper says in one line, once, that the database refused a renewal, and
goes on renewing once it can: no traceback every tick while a database is out of reach."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import text

from capture.service import _LeaseKeeper
from evidence import jobs, targets
from evidence.home import Runtime
from evidence.models import CaptureJob, utcnow
from tests.factories import make_case, make_user

LEASE = 0.3  # renewed every 0.1 s


def _rename(runtime: Runtime, old: str, new: str) -> None:
    with runtime.session() as session:
        session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def _renewals_said(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "renewing the lease" in r.getMessage()]


def test_a_refused_renewal_is_said_once_in_a_line(runtime: Runtime,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with runtime.session() as session:
        actor = make_user(session)
        case = make_case(session, actor)
        targets.flag_target(session, actor, case, reason="threat", url="http://127.0.0.1:1/p")
        claimed = jobs.claim_next(session, worker="w1", lease_seconds=LEASE)
        assert claimed is not None
        job_id = claimed.job_id
    keeper = _LeaseKeeper(runtime, job_id, "w1", LEASE)
    caplog.set_level(logging.WARNING, logger="capture.worker")
    keeper.start()
    try:
        _rename(runtime, "capture_jobs", "capture_jobs_away")  # the table out of reach
        time.sleep(6 * LEASE / 3)
        said = _renewals_said(caplog)
        assert len(said) == 1, [r.getMessage() for r in said]
        assert said[0].exc_info is None and "trying again" in said[0].getMessage()
        _rename(runtime, "capture_jobs_away", "capture_jobs")
        back = utcnow()
        time.sleep(3 * LEASE / 3)
        assert keeper.is_alive() and not keeper.lost
        with runtime.session() as session:  # renewed since (the claim's lease ran out before)
            job = session.get(CaptureJob, job_id)
            assert job is not None and job.lease_owner == "w1"
            assert job.lease_until is not None and job.lease_until > back
        assert len(_renewals_said(caplog)) == 1  # nothing more once it renews again
    finally:
        keeper.stop()
