"""A stand-in capture worker for test_jobs.py's multi-process tests, run as its own process.

    python jobs_worker_proc.py DATABASE_URL WORKER [--lease S] [--hang]

It prints "ready", waits for a line on stdin (so every worker starts racing at once), then
claims and completes jobs until none is left queued or running, printing "done <job id>" for
each job it completed. With --hang it claims one job, prints "claimed <job id>" and then waits
to be killed, as a worker that dies mid-capture would.
"""

from __future__ import annotations

import argparse
import sys
import time

from sqlalchemy import func, select

from evidence import jobs
from evidence.db import make_engine, make_session_factory, session_scope
from evidence.models import CaptureJob, JobState

GIVE_UP_AFTER_SECONDS = 60.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("worker")
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    engine = make_engine(args.url)
    factory = make_session_factory(engine)
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + GIVE_UP_AFTER_SECONDS
    while time.monotonic() < deadline:
        with session_scope(factory) as session:
            claimed = jobs.claim_next(session, worker=args.worker, lease_seconds=args.lease)
        if claimed is None:
            with session_scope(factory) as session:
                unfinished = session.scalar(
                    select(func.count())
                    .select_from(CaptureJob)
                    .where(CaptureJob.state.in_([JobState.QUEUED, JobState.RUNNING]))
                )
            if not unfinished:
                return 0
            # Another worker holds the rest, or a dead worker's lease has yet to run out.
            time.sleep(0.05)
            continue
        if args.hang:
            print(f"claimed {claimed.job_id}", flush=True)
            time.sleep(GIVE_UP_AFTER_SECONDS)
            return 1
        time.sleep(0.002)  # the capture itself
        try:
            with session_scope(factory) as session:
                jobs.complete(session, job_id=claimed.job_id, worker=args.worker)
        except jobs.LeaseLost:
            continue
        print(f"done {claimed.job_id}", flush=True)
    print("gave up: jobs still unfinished", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
