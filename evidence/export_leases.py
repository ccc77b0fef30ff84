"""Leases of running exports: an export whose process died is seen and recorded as interrupted.

The process that writes a bundle holds a lease on its `Export` row, taken in the transaction
that starts the export (`take`) and renewed from a thread while the bundle is written
(`LeaseKeeper`). The export ends by giving the lease back in the transaction that records
`export.completed` or `export.failed` (`give_back`); a completion whose lease was taken away
records nothing. A lease that ran out with no ending means the process stopped (killed, its
machine lost): `end_interrupted_exports`, run by the API server when it starts and at every
checkpoint tick, records `export.failed` for the system, so the exports page and the custody
log say so instead of "running" forever. Lease times come from each process's clock, as for
capture jobs: hosts must keep their clocks in step to well within a lease.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evidence import custody
from evidence.models import Case, CustodyEntry, Export, utcnow
from evidence.times import to_the_second

LEASE_SECONDS = 120.0
RENEW_EVERY_SECONDS = 30.0
# Temporary folders of API exports in the home (`bundles.export_and_keep`); a live export
# touches its partial bundle at every renewal.
LEFTOVER_PREFIX = ".export-"
LEFTOVER_AGE_SECONDS = 3600.0

log = logging.getLogger(__name__)

ExportStatus = Literal["complete", "failed", "running", "interrupted"]


def take(export: Export, owner: str, *, lease_seconds: float = LEASE_SECONDS,
         now: datetime | None = None) -> None:
    export.lease_owner = owner
    export.lease_until = (now or utcnow()) + timedelta(seconds=lease_seconds)


def renew(session: Session, export_id: uuid.UUID, owner: str, *,
          lease_seconds: float = LEASE_SECONDS, now: datetime | None = None) -> bool:
    """Extend the lease; False when it is no longer `owner`'s (the export was declared
    interrupted)."""
    until = (now or utcnow()) + timedelta(seconds=lease_seconds)
    result: Any = session.execute(update(Export).where(
        Export.id == export_id, Export.lease_owner == owner).values(lease_until=until))
    return bool(result.rowcount == 1)


def _locked(session: Session, export_id: uuid.UUID) -> Export | None:
    return session.scalars(select(Export).where(Export.id == export_id)
                           .with_for_update()).first()


def give_back(session: Session, export_id: uuid.UUID, owner: str) -> bool:
    """End the lease, in the transaction that records how the export ended; False when it was
    no longer `owner`'s: the export was already recorded as interrupted."""
    export = _locked(session, export_id)
    if export is None or export.lease_owner != owner:
        return False
    export.lease_owner = export.lease_until = None
    return True


def end_interrupted_exports(session: Session, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Record `export.failed` for every export whose lease ran out without an ending."""
    now = now or utcnow()
    lapsed = list(session.scalars(
        select(Export).where(Export.lease_until < now, Export.bundle_sha256.is_(None))
        .order_by(Export.created_at).with_for_update(skip_locked=True)))
    for export in lapsed:
        owner, until = export.lease_owner, export.lease_until
        assert until is not None
        export.lease_owner = export.lease_until = None
        custody.append(
            session, None, action="export.failed", case=session.get(Case, export.case_id),
            object_type="export", object_id=export.id,
            details={"reason": f"interrupted: the process writing the bundle ({owner}) "
                               f"stopped renewing its lease, which ran out at "
                               f"{custody.format_time(until)}; no bundle was kept",
                     "abandoned_by": owner, "lease_expired_at": custody.format_time(until)})
    return [e.id for e in lapsed] + _end_leaseless(session, now)


def _end_leaseless(session: Session, now: datetime) -> list[uuid.UUID]:
    """Record `export.failed` for exports started before exports held leases (migration 0011)
    that never ended: no process can still be writing them. Every export since takes its lease
    in the transaction that starts it and gives it back only with its ending, so an export
    with neither is one of those."""
    unkept = list(session.scalars(
        select(Export).where(Export.lease_until.is_(None), Export.bundle_sha256.is_(None),
                             Export.created_at < now - timedelta(seconds=LEASE_SECONDS))
        .order_by(Export.created_at).with_for_update(skip_locked=True)))
    if not unkept:
        return []
    ended = set(session.scalars(select(CustodyEntry.object_id).where(
        CustodyEntry.object_type == "export",
        CustodyEntry.object_id.in_([str(e.id) for e in unkept]),
        CustodyEntry.action.in_(("export.completed", "export.failed")))))
    never = [e for e in unkept if str(e.id) not in ended]
    for export in never:
        custody.append(
            session, None, action="export.failed", case=session.get(Case, export.case_id),
            object_type="export", object_id=export.id,
            details={"reason": "interrupted: it never ended (it was started before this system "
                               "kept export leases); no bundle was kept",
                     "abandoned_by": None, "lease_expired_at": None})
    return [e.id for e in never]


def status(export: Export, ending: dict[str, Any], *, now: datetime | None = None) -> tuple[
    ExportStatus, str | None
]:
    """How an export stands, and why when it did not complete: `complete`, `failed` (it ended
    so, `ending` being its ending entry as `custody.describe` gives it), `running` (its lease
    holds), or `interrupted` (its lease ran out, or it never had one, without an ending)."""
    if export.bundle_sha256 is not None:
        return "complete", None
    if ending.get("action") == "export.failed":
        reason = (ending.get("details") or {}).get("reason")
        return "failed", None if reason is None else str(reason)
    if export.lease_until is not None and export.lease_until >= (now or utcnow()):
        return "running", None
    if export.lease_until is None:
        return "interrupted", "it never ended: the process making it stopped"
    return "interrupted", (f"the process making it ({export.lease_owner}) stopped renewing "
                           f"its lease, which ran out at "
                           f"{to_the_second(export.lease_until)}")


class LeaseKeeper:
    """Renews an export's lease from a thread while the bundle is written, and touches the
    partial bundle (`touch`) so its temporary folder is not taken for a dead export's."""

    def __init__(self, sessions: Callable[[], AbstractContextManager[Session]],
                 export_id: uuid.UUID, owner: str, *, touch: Path | None = None,
                 every: float = RENEW_EVERY_SECONDS, lease_seconds: float = LEASE_SECONDS):
        self._sessions, self._id, self._owner = sessions, export_id, owner
        self._touch, self._every, self._lease = touch, every, lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"export-lease-{export_id}",
                                        daemon=True)
        self.lost = False

    def __enter__(self) -> LeaseKeeper:
        self._renew()  # at once too: the lease was taken before a plan that may have been slow
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self.lost and not self._stop.wait(self._every):
            self._renew()

    def _renew(self) -> None:
        try:
            with self._sessions() as session:
                if not renew(session, self._id, self._owner, lease_seconds=self._lease):
                    self.lost = True  # the completion will find it so, and keep nothing
                    return
            if self._touch is not None:
                with contextlib.suppress(OSError):
                    os.utime(self._touch)
        except Exception:  # the database may come back before the lease runs out
            log.exception("could not renew the lease of export %s", self._id)


def newest_change(folder: Path) -> float:
    """When anything in `folder` (or the folder) last changed: a dead writer's leftovers stop."""
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            newest = max(newest, path.stat().st_mtime)
    return newest


def clean_leftovers(folder: Path, *, partial_of: str | None = None,
                    older_than_seconds: float = LEFTOVER_AGE_SECONDS) -> int:
    """Remove what dead exports left in `folder` that nothing touched for a while (a live
    export touches its partial bundle at every renewal): their temporary folders, and with
    `partial_of` the partial bundles of a bundle of that name (`.NAME.*.partial`, as a
    command-line export killed while writing NAME leaves one beside it). Returns how many."""
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in folder.glob(f"{LEFTOVER_PREFIX}*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and newest_change(path) < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
    if partial_of is not None:
        for path in folder.glob(f".{glob.escape(partial_of)}.*.partial"):
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
    return removed
