"""Fixity checks: every blob the database refers to is still in the store, whole.

A stored blob is addressed by its SHA-256, so re-hashing it says whether a single bit has
changed since it was kept; the check reads every blob that an artifact (a capture's files, its
signed manifest and timestamp, a request's PDF and JSON) or a kept bundle refers to, and names,
for each one missing or altered, what held it. Each check is recorded in the custody log with
what it found, so that when the store was last found whole is itself provable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from sqlalchemy import String, cast, literal, null, select, union_all
from sqlalchemy.orm import Session

from evidence import cases, custody
from evidence.blobstore import BlobStore
from evidence.errors import BlobCorrupted, BlobMissing, NotFound, PermissionDenied
from evidence.models import Artifact, Case, Export, Role, User

PROGRESS_EVERY_SECONDS = 2.0

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


def _holders(session: Session, case: Case | None) -> Iterator[tuple[str, list[Any]]]:
    """(sha256, the rows that hold it) in address order, streamed: artifacts and kept bundles."""
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
    if case is not None:
        artifacts = artifacts.where(Artifact.case_id == case.id)
        bundles = bundles.where(Export.case_id == case.id)
    both = union_all(artifacts, bundles).subquery()
    rows = session.execute(
        select(both).order_by(both.c.sha256, both.c.reference, both.c.id)
        .execution_options(yield_per=1000))
    for sha256, group in groupby(rows, key=lambda row: row.sha256):
        yield sha256, list(group)


def _describe(row: Any) -> str:
    if row.kind == "bundle":
        return f"the bundle of export {row.id} (case {row.reference})"
    of = f"capture {row.capture_id}" if row.capture_id is not None else "a legal request"
    return f"{row.kind} {row.name or row.id} of {of} (case {row.reference})"


def check_store(
    session: Session, store: BlobStore, actor: User, *, case_reference: str | None = None,
    progress: Progress | None = None,
) -> FixityReport:
    """Re-hash every blob the database refers to (one case's, or all) and record the check."""
    say = progress or (lambda _msg: None)
    case = _case_in_scope(session, actor, case_reference)
    report = FixityReport(case_reference=None if case is None else case.reference)
    said_at = time.monotonic()
    for sha256, rows in _holders(session, case):
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
    custody.append(
        session, actor, action="store.checked", case=case,
        details={"blobs": report.blobs, "bytes": report.bytes, **report.counts(),
                 "problems": [{"sha256": p.sha256, "problem": p.problem}
                              for p in report.problems[:100]]},
    )
    return report
