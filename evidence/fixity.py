"""Fixity checks: every blob the database refers to is still in the store, whole.

A stored blob is addressed by its SHA-256, so re-hashing it says whether a single bit has
changed since it was kept; the check reads every blob that an artifact (a capture's files, its
signed manifest and timestamp, a request's PDF and JSON) or a kept bundle refers to, and names,
for each one missing or altered, what held it. Each check is recorded in the custody log with
what it found, so that when the store was last found whole is itself provable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from sqlalchemy import String, cast, literal, null, select, union_all
from sqlalchemy.orm import Session

from evidence import cases, custody
from evidence.errors import BlobCorrupted, BlobMissing, NotFound, PermissionDenied
from evidence.home import Runtime
from evidence.models import Artifact, Case, Export, Role, User
from evidence.users import resolve_actor

PROGRESS_EVERY_SECONDS = 2.0
BATCH = 1000  # addresses read per transaction

Progress = Callable[[str], None]


@dataclass
class FixityProblem:
    sha256: str
    problem: str  # "missing", "altered" or "size"
    detail: str
    held_by: list[str]

    def line(self) -> str:
        return f"{self.problem} {self.sha256}: {self.detail}; held by {'; '.join(self.held_by)}"


@dataclass
class FixityReport:
    case_reference: str | None
    blobs: int = 0
    bytes: int = 0
    problems: list[FixityProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for p in self.problems if p.problem == kind)
                for kind in ("missing", "altered", "size")}

    def summary(self) -> str:
        scope = "store" if self.case_reference is None else f"case {self.case_reference}'s blobs"
        checked = f"{self.blobs} blobs, {self.bytes} bytes re-hashed"
        if self.ok:
            return f"{scope} whole: {checked}"
        found = ", ".join(f"{n} {kind}" for kind, n in self.counts().items() if n)
        return f"{scope} NOT whole: {found} ({checked}); first: {self.problems[0].line()}"


def _case_in_scope(session: Session, actor: User, reference: str | None) -> Case | None:
    """The case to check (None: every blob); the whole store is for admins and auditors."""
    watchers = (Role.ADMIN, Role.AUDITOR)
    if reference is None:
        if actor.role not in watchers:
            raise PermissionDenied("checking the whole store needs an admin or an auditor; "
                                   "a case's members check its blobs with --case REF")
        return None
    if actor.role in watchers:
        # Neither opens the case's evidence here: they see hashes and names, not contents.
        case = session.scalars(select(Case).where(Case.reference == reference)).first()
        if case is None:
            raise NotFound(f"no case {reference!r}")
        return case
    return cases.case_for(session, actor, reference)


def _holders(runtime: Runtime, case_id: uuid.UUID | None) -> Iterator[tuple[str, list[Any]]]:
    """(sha256, the rows that hold it) in address order: artifacts and kept bundles.

    Read a batch of addresses at a time, each in its own short transaction, so that hashing,
    which can take hours, never holds one open (on SQLite a transaction holds the write lock).
    """
    artifacts = select(
        Artifact.sha256.label("sha256"), Artifact.size.label("size"),
        Artifact.kind.label("kind"), Artifact.name.label("name"),
        Artifact.capture_id.label("capture_id"), Artifact.id.label("id"),
        Case.reference.label("reference"),
    ).join(Case, Case.id == Artifact.case_id)
    bundles = select(
        Export.bundle_sha256.label("sha256"), Export.size.label("size"),
        literal("bundle", String).label("kind"),
        cast(null(), Artifact.name.type).label("name"),
        cast(null(), Artifact.capture_id.type).label("capture_id"),
        Export.id.label("id"), Case.reference.label("reference"),
    ).join(Case, Case.id == Export.case_id).where(Export.bundle_sha256.is_not(None))
    if case_id is not None:
        artifacts = artifacts.where(Artifact.case_id == case_id)
        bundles = bundles.where(Export.case_id == case_id)
    both = union_all(artifacts, bundles).subquery()
    after = ""
    while True:
        with runtime.session() as session:
            hashes = list(session.scalars(
                select(both.c.sha256).where(both.c.sha256 > after).distinct()
                .order_by(both.c.sha256).limit(BATCH)))
            rows = session.execute(
                select(both).where(both.c.sha256.in_(hashes))
                .order_by(both.c.sha256, both.c.reference, both.c.id)).all() if hashes else []
        if not hashes:
            return
        for sha256, group in groupby(rows, key=lambda row: row.sha256):
            yield sha256, list(group)
        after = hashes[-1]


def _describe(row: Any) -> str:
    if row.kind == "bundle":
        return f"the bundle of export {row.id} (case {row.reference})"
    of = f"capture {row.capture_id}" if row.capture_id is not None else "a legal request"
    return f"{row.kind} {row.name or row.id} of {of} (case {row.reference})"


def check_store(
    runtime: Runtime, actor_name: str | None, *, case_reference: str | None = None,
    progress: Progress | None = None,
) -> FixityReport:
    """Re-hash every blob the database refers to (one case's, or all) and record the check.

    The database is read in short transactions and the check recorded in one of its own: the
    system goes on capturing and recording while the store is re-read.
    """
    say = progress or (lambda _msg: None)
    store = runtime.store
    with runtime.session() as session:
        actor = resolve_actor(session, actor_name)
        case = _case_in_scope(session, actor, case_reference)
        case_id = None if case is None else case.id
        report = FixityReport(case_reference=None if case is None else case.reference)
    said_at = time.monotonic()
    for sha256, rows in _holders(runtime, case_id):
        report.blobs += 1
        held_by = [_describe(row) for row in rows]
        try:
            size = store.size(sha256)
            store.verify(sha256)
        except BlobMissing:
            report.problems.append(FixityProblem(sha256, "missing", "not in the store",
                                                 held_by))
            continue
        except BlobCorrupted as exc:
            report.problems.append(FixityProblem(sha256, "altered", str(exc), held_by))
            continue
        report.bytes += size
        recorded = {row.size for row in rows if row.size is not None}
        if recorded - {size}:
            report.problems.append(FixityProblem(
                sha256, "size", f"recorded as {', '.join(map(str, sorted(recorded)))} bytes, "
                f"the blob has {size}", held_by))
        if time.monotonic() - said_at >= PROGRESS_EVERY_SECONDS:
            said_at = time.monotonic()
            say(f"checked {report.blobs} blobs, {report.bytes} bytes")
    with runtime.session() as session:
        actor = resolve_actor(session, actor_name)
        custody.append(
            session, actor, action="store.checked",
            case=None if case_id is None else session.get(Case, case_id),
            details={"blobs": report.blobs, "bytes": report.bytes, **report.counts(),
                     "problems": [{"sha256": p.sha256, "problem": p.problem}
                                  for p in report.problems[:100]]},
        )
    return report
