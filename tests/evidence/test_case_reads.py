"""The display summaries of the web pages: each target's newest capture and capture job."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from evidence import case_reads, targets
from evidence.blobstore import FolderStore
from evidence.models import Capture, JobState, utcnow
from tests.factories import make_capture, make_case, make_user


def test_latest_of_gives_each_targets_newest_capture_and_job(session: Session,
                                                            tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "blobs")
    actor = make_user(session)
    case = make_case(session, actor)
    watched, first_job = targets.flag_target(session, actor, case, reason="advert",
                                             url="https://example.org/a")
    quiet, quiet_job = targets.flag_target(session, actor, case, reason="advert",
                                           url="https://example.org/b")
    other_case = make_case(session, actor)
    elsewhere, _job = targets.flag_target(session, actor, other_case, reason="advert",
                                          url="https://example.org/a")
    now = utcnow()
    made = []
    for age in (3, 1, 2):  # the middle one is the newest
        capture = make_capture(session, case, watched, store)
        row = session.get(Capture, capture.id)
        assert row is not None
        row.started_at = now - timedelta(hours=age)
        made.append(row)
    first_job.state = JobState.DONE  # carried out: the captures above
    again = targets.request_capture(session, actor, case, watched, reason="changed?")
    assert again is not first_job
    first_job.created_at = now - timedelta(days=1)
    again.created_at = now
    quiet_job.created_at = now - timedelta(days=2)
    session.flush()

    latest = case_reads.latest_of(session, case, [watched.id, quiet.id, elsewhere.id])
    assert latest[watched.id].capture is made[1]
    assert latest[watched.id].job is again
    assert latest[quiet.id].capture is None and latest[quiet.id].job is quiet_job
    # Another case's target is not this case's to summarise.
    assert latest[elsewhere.id].capture is None and latest[elsewhere.id].job is None
    assert case_reads.latest_of(session, case, []) == {}
