"""Fixity checks: every blob the database refers to is still in the store, whole, and every
capture still says what its signed manifest says.

A stored blob is addressed by its SHA-256, so re-hashing it says whether a single bit has
changed since it was kept; the check reads every blob that an artifact (a capture's files, its
signed manifest and timestamp, a request's PDF and JSON) or a kept bundle refers to, and names,
for each one missing or altered, what held it. A blob can be whole while the row that points at
it was changed (to another intact blob, say), so each capture's seal is checked too: its
manifest's signature and timestamp, its files against the hashes the manifest lists, and the
facts the pages show (URLs, HTTP status, outcome) against the manifest's. Each check is
recorded in the custody log with what it found, so that when the store was last found whole is
itself provable.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import orjson
from sqlalchemy import String, cast, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from evidence import cases, custody, manifests, timestamping
from evidence.captures import SEAL_KINDS, SEALED_COLUMNS, sealed_disagreements
from evidence.errors import BlobCorrupted, BlobMissing, PermissionDenied
from evidence.home import Runtime
from evidence.models import Artifact, Capture, Case, Export, Role, User
from evidence.signing import SignatureInvalid
from evidence.users import resolve_actor

PROGRESS_EVERY_SECONDS = 2.0
BATCH = 1000  # addresses read per transaction

Progress = Callable[[str], None]


@dataclass
class FixityProblem:
    sha256: str
    problem: str  # "missing", "altered", "size" or "seal"
    detail: str
    held_by: list[str]

    def line(self) -> str:
        return f"{self.problem} {self.sha256}: {self.detail}; held by {'; '.join(self.held_by)}"


@dataclass
class FixityReport:
    case_reference: str | None
    blobs: int = 0
    bytes: int = 0
    seals: int = 0  # captures whose seal was checked
    problems: list[FixityProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for p in self.problems if p.problem == kind)
                for kind in ("missing", "altered", "size", "seal")}

    def summary(self) -> str:
        scope = "store" if self.case_reference is None else f"case {self.case_reference}'s blobs"
        checked = (f"{self.blobs} blobs, {self.bytes} bytes re-hashed, {self.seals} capture "
                   "seals checked")
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
        return cases.case_named(session, reference)
    return cases.case_for(session, actor, reference)


def blob_holders(runtime: Runtime, case_id: uuid.UUID | None
                 ) -> Iterator[tuple[str, list[Any]]]:
    """(sha256, the rows that hold it) in address order: artifacts and kept bundles.

    Read a batch of addresses at a time, each in its own short read-only transaction: hashing
    can take hours, and a transaction held that long would keep SQLite's write-ahead log from
    being folded back (and PostgreSQL's vacuum from cleaning up).
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
    ).join(Case, Case.id == Export.case_id).where(
        Export.bundle_sha256.is_not(None),
        # A bundle `evidence export` wrote to a file was never in the store.
        or_(Export.kept.is_(None), Export.kept.is_(True)))
    if case_id is not None:
        artifacts = artifacts.where(Artifact.case_id == case_id)
        bundles = bundles.where(Export.case_id == case_id)
    both = union_all(artifacts, bundles).subquery()
    after = ""
    while True:
        with runtime.read_session() as session:
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


def describe_holder(row: Any) -> str:
    """A row of `blob_holders` as a person reads it: which artifact of which capture, or which
    export's bundle, and of which case."""
    if row.kind == "bundle":
        return f"the bundle of export {row.id} (case {row.reference})"
    of = f"capture {row.capture_id}" if row.capture_id is not None else "a legal request"
    return f"{row.kind} {row.name or row.id} of {of} (case {row.reference})"




def _captures(runtime: Runtime, case_id: uuid.UUID | None) -> Iterator[tuple[Any, list[Any]]]:
    """(capture row, its artifact rows), a batch of captures per short read-only transaction."""
    after: uuid.UUID | None = None
    while True:
        query = (select(Capture.id, Capture.case_id, Capture.target_id, Capture.manifest_sha256,
                        Capture.signature, Capture.timestamp_token, Case.reference,
                        *(getattr(Capture, c) for c in SEALED_COLUMNS))
                 .join(Case, Case.id == Capture.case_id).order_by(Capture.id).limit(BATCH))
        if case_id is not None:
            query = query.where(Capture.case_id == case_id)
        if after is not None:
            query = query.where(Capture.id > after)
        with runtime.read_session() as session:
            rows = session.execute(query).all()
            files = session.execute(
                select(Artifact.capture_id, Artifact.kind, Artifact.name, Artifact.media_type,
                       Artifact.size, Artifact.sha256)
                .where(Artifact.capture_id.in_([r.id for r in rows]))).all() if rows else []
        if not rows:
            return
        by_capture: dict[uuid.UUID, list[Any]] = {}
        for f in files:
            by_capture.setdefault(f.capture_id, []).append(f)
        for row in rows:
            yield row, by_capture.get(row.id, [])
        after = rows[-1].id


def _seal_problems(runtime: Runtime, row: Any, files: list[Any],
                   tsa_trust: list[bytes]) -> list[str]:
    """What no longer agrees with the capture's signed manifest; nothing when all does."""
    if row.manifest_sha256 is None:
        return ["the capture has no signed manifest"]
    try:
        data = runtime.store.read_bytes(row.manifest_sha256)
    except (BlobMissing, BlobCorrupted) as exc:
        return [f"its signed manifest cannot be read: {exc}"]
    problems = []
    try:
        runtime.verifier.verify(bytes(row.signature or b""), data)
    except SignatureInvalid:
        problems.append("the manifest's signature does not verify with this system's key")
    if row.timestamp_token is not None:
        try:
            timestamping.verify_token(bytes(row.timestamp_token),
                                      digest=bytes.fromhex(row.manifest_sha256),
                                      trusted_certs=tsa_trust)
        except timestamping.TimestampError as exc:
            problems.append(f"the manifest's timestamp does not hold: {exc}")
    manifest = orjson.loads(data)
    owner = (str(row.id), str(row.case_id), str(row.target_id))
    if (manifest.get("capture_id"), (manifest.get("case") or {}).get("id"),
            manifest.get("target_id")) != owner:
        problems.append("the manifest is another capture's")
    problems += sealed_disagreements(row, manifest)
    seal_bytes = {"signature": row.signature, "timestamp": row.timestamp_token}
    for f in files:
        kept = seal_bytes.get(f.kind)
        if kept is not None and hashlib.sha256(bytes(kept)).hexdigest() != f.sha256:
            problems.append(f"its {f.kind} file is not the {f.kind} kept with the capture")
    held = sorted((f.kind, f.name or "", f.media_type, f.size, f.sha256)
                  for f in files if f.kind not in SEAL_KINDS)
    listed = sorted((i.get("kind"), i.get("name") or "", i.get("media_type"), i.get("size"),
                     i.get("sha256")) for i in manifest.get("artifacts") or [])
    if held != listed:
        extra = [f"{t[0]} {t[1]} ({t[4]})" for t in held if t not in listed]
        gone = [f"{t[0]} {t[1]} ({t[4]})" for t in listed if t not in held]
        problems.append("its files are not the ones the manifest lists: "
                        + "; ".join([*(f"not listed: {x}" for x in extra),
                                     *(f"listed, not held: {x}" for x in gone)]))
    return problems


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
    for sha256, rows in blob_holders(runtime, case_id):
        report.blobs += 1
        held_by = [describe_holder(row) for row in rows]
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
        except OSError as exc:  # a folder or an unreadable file where the blob should be
            report.problems.append(FixityProblem(
                sha256, "missing", f"cannot be read: {exc.strerror or exc}", held_by))
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
    tsa_trust = manifests.trusted_roots(runtime.settings)
    for row, files in _captures(runtime, case_id):
        report.seals += 1
        for problem in _seal_problems(runtime, row, files, tsa_trust):
            report.problems.append(FixityProblem(row.manifest_sha256 or "-", "seal", problem,
                                                 [f"capture {row.id} (case {row.reference})"]))
        if time.monotonic() - said_at >= PROGRESS_EVERY_SECONDS:
            said_at = time.monotonic()
            say(f"checked {report.seals} capture seals")
    with runtime.session() as session:
        actor = resolve_actor(session, actor_name)
        custody.append(
            session, actor, action="store.checked",
            case=None if case_id is None else session.get(Case, case_id),
            details={"blobs": report.blobs, "bytes": report.bytes, "seals": report.seals,
                     **report.counts(),
                     "problems": [{"sha256": p.sha256, "problem": p.problem}
                                  for p in report.problems[:100]]},
        )
    return report
