"""Export bundles: a case's captures, their seals and its custody history in one BagIt ZIP.

The layout is specified in docs/bundle-format.md; `evidence.bundle_verifier` checks it and is
shipped inside the bundle as `data/verify.py`. An export runs in three steps, so that the
database is never held locked while gigabytes are written:

1. a read-only transaction verifies the whole custody log (a log that does not verify is not
   exported from); then one transaction reads the case, appends an `export.started` entry and
   cuts a signed, timestamped checkpoint after it, and computes an inclusion proof for every
   case entry;
2. the bundle is written, streaming each blob from the store, to a temporary file beside the
   destination (the SHA-256 of every file is computed as it is written and compared with the
   hash the evidence was recorded under: a corrupted blob stops the export);
3. the file is renamed into place and a second transaction records the bundle's SHA-256 and size
   (`export.completed`). If step 2 fails, the temporary file is removed and `export.failed`
   says why; no half-written bundle is ever left under the destination name.

The process holds a lease on the export from step 1 to its end (`export_leases`): if it dies
in step 2, the lease runs out and the export is recorded as interrupted.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import json
import os
import queue
import re
import tempfile
import textwrap
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import (
    __version__,
    caseuco,
    custody,
    export_leases,
    manifests,
    received,
    report,
    requests,
    wacz,
)
from evidence.bagit import BagWriter
from evidence.blobstore import BlobStore
from evidence.bundle_verifier import (
    BAG_SIGNATURE_TYPE,
    BUNDLE_REVISION,
    bag_signature_statement,
)
from evidence.captures import SEAL_KINDS, TOOL, iso, sealed_disagreements
from evidence.cases import case_for, require_access
from evidence.errors import (
    AccessDenied,
    BlobCorrupted,
    BlobMissing,
    EvidenceError,
    InvalidInput,
    LogBroken,
    NotFound,
    PermissionDenied,
)
from evidence.home import Runtime
from evidence.jobs import new_worker_id
from evidence.manifests import timestamper
from evidence.models import (
    Access,
    Account,
    Artifact,
    Capture,
    CaptureStatus,
    Case,
    Checkpoint,
    CustodyEntry,
    Export,
    ReceivedFile,
    Role,
    Target,
    User,
)
from evidence.pagination import DEFAULT_LIMIT, Page, paginate
from evidence.signing import Signer
from evidence.timestamping import (
    LOCAL_TSA_POLICY_OID,
    TimestampToken,
)
from evidence.users import resolve_actor

FORMAT = "evidence-locker/bundle"
FORMAT_VERSION = 1
CHUNK = 1024 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 120
_EXPORT_ROLES = frozenset({Role.PROSECUTOR, Role.ADMIN})

Progress = Callable[[str], None]


class ExportFailed(EvidenceError):
    """The bundle could not be written; nothing was left under the destination name."""

    status_code = 500


# --- what the first transaction gathers --------------------------------------------------------


@dataclass(frozen=True)
class _File:
    path: str  # relative to data/
    kind: str
    name: str
    media_type: str
    size: int
    sha256: str


@dataclass
class _Exhibit:
    number: str
    capture: Capture
    manifest: bytes
    manifest_doc: dict[str, Any]
    files: list[_File]
    warc_sha256: str | None
    thumbnail_sha256: str | None
    account: Account | None
    operator: User | None
    folder: str = ""

    def __post_init__(self) -> None:
        self.folder = f"exhibits/{self.number}"


@dataclass(frozen=True)
class _Received:
    number: str  # "RM-001"
    path: str  # relative to data/
    row: ReceivedFile
    request_reference: str | None
    registered_by: str | None

    def index(self) -> dict[str, Any]:
        r = self.row
        return {
            "number": self.number, "id": str(r.id), "path": self.path, "filename": r.filename,
            "media_type": r.media_type, "size": r.size, "sha256": r.sha256,
            "request": self.request_reference,
            "request_id": None if r.request_id is None else str(r.request_id),
            "source": r.source, "received_at": iso(r.received_at), "via": r.received_via,
            "via_detail": r.via_detail, "platform_reference": r.platform_reference,
            "registered_by": self.registered_by, "registered_at": iso(r.registered_at),
        }

    @property
    def via(self) -> str:
        r = self.row
        return r.received_via + (f": {r.via_detail}" if r.via_detail else "")

    def graph(self) -> caseuco.ReceivedInfo:
        r = self.row
        return caseuco.ReceivedInfo(
            id=r.id, number=self.number, received_at=r.received_at,
            file=caseuco.FileInfo(path_in_bundle=self.path, kind="received",
                                  media_type=r.media_type, size=r.size, sha256=r.sha256),
            via=self.via, request_reference=self.request_reference,
            platform_reference=r.platform_reference, source=r.source,
            registered_by=None if self.registered_by is None
            else caseuco.PerformerInfo(id=r.registered_by_id, name=self.registered_by))

    def report(self) -> report.ReportReceived:
        r = self.row
        if self.request_reference is not None:
            origin = f"request {self.request_reference}"
            if r.platform_reference:
                origin += f" (platform reference {r.platform_reference})"
        else:
            origin = f"source: {r.source}"
        return report.ReportReceived(
            number=self.number, path=self.path, filename=r.filename, media_type=r.media_type,
            size=r.size, sha256=r.sha256, origin=origin, received_at=r.received_at,
            via=self.via, registered_by=self.registered_by)


@dataclass(frozen=True)
class _LeftOut:
    """Received material of the case that a chosen-targets bundle does not carry, and why."""

    number: str  # its number in the case's order, as a whole-case bundle would give it
    row: ReceivedFile
    request_reference: str | None

    @property
    def reason(self) -> str:
        return "other-request" if self.row.request_id is not None else "no-request"

    @property
    def why(self) -> str:
        if self.row.request_id is not None:
            return (f"answers request {self.request_reference}, which concerns none of the "
                    "chosen targets")
        return "material from another source, not tied to any target"

    def index(self) -> dict[str, Any]:
        r = self.row
        return {
            "number": self.number, "id": str(r.id), "filename": r.filename, "size": r.size,
            "sha256": r.sha256, "request": self.request_reference,
            "request_id": None if r.request_id is None else str(r.request_id),
            "source": r.source, "reason": self.reason, "why": self.why,
        }

    def report(self) -> report.ReportLeftOut:
        r = self.row
        return report.ReportLeftOut(number=self.number, filename=r.filename, size=r.size,
                                    sha256=r.sha256, why=self.why)


def _received_files(
    session: Session, case: Case, target_ids: Sequence[uuid.UUID] | None,
) -> tuple[list[_Received], list[_LeftOut]]:
    """The case's received material a bundle carries, numbered in the order received (the
    case's order: a file has the same number in every bundle), at safe paths; and what it
    leaves out.

    A whole case's bundle carries all of it. One of chosen targets carries the answers to the
    requests that concern at least one of them (`requests.requests_concerning`) and leaves out
    the answers to other requests and the material from elsewhere, which names no target.
    """
    rows = received.received_of(session, case)
    refs, names = received.references_of(session, rows), received.registrars_of(session, rows)
    wanted = None if not target_ids else requests.requests_concerning(session, case, target_ids)
    taken: set[str] = set()
    out: list[_Received] = []
    left: list[_LeftOut] = []
    for n, row in enumerate(rows, 1):
        number = f"RM-{n:03d}"
        reference = None if row.request_id is None else refs.get(row.request_id)
        if wanted is not None and row.request_id not in wanted:
            left.append(_LeftOut(number=number, row=row, request_reference=reference))
            continue
        out.append(_Received(
            number=number, path=f"received/{safe_name(f'{number}-{row.filename}', taken)}",
            row=row, request_reference=reference,
            registered_by=names.get(row.registered_by_id)))
    return out, left


@dataclass
class _Plan:
    export_id: uuid.UUID
    created_at: datetime
    case: Case
    actor: User
    exhibits: list[_Exhibit]
    entries: list[CustodyEntry]
    proofs: list[custody.InclusionProof]
    checkpoint: Checkpoint
    checkpoint_note: str | None
    tsa_pems: list[tuple[str, bytes]] = field(default_factory=list)
    received: list[_Received] = field(default_factory=list)
    left_out: list[_LeftOut] = field(default_factory=list)
    target_ids: list[uuid.UUID] | None = None


@dataclass(frozen=True)
class ExportResult:
    export_id: uuid.UUID
    path: Path
    sha256: str
    size: int
    exhibits: int
    entries: int
    checkpoint_size: int
    received: int = 0
    received_left_out: int = 0


# --- authorisation ------------------------------------------------------------------------------


def authorise_export(session: Session, actor: User, case: Case) -> None:
    """A prosecutor or admin who can read the case, or one of its managers, may export it."""
    require_access(session, actor, case, Access.READ)  # 404 when the case is not visible
    if actor.role in _EXPORT_ROLES:
        return
    try:
        require_access(session, actor, case, Access.MANAGE)
    except AccessDenied as exc:
        raise PermissionDenied(
            f"exporting case {case.reference!r} needs the prosecutor role or manage access"
        ) from exc


# --- file names ---------------------------------------------------------------------------------


def safe_name(name: str, taken: set[str]) -> str:
    """A readable file name without characters BagIt or file systems trip on, unique in `taken`."""
    base = _UNSAFE_NAME.sub("_", name).strip("._") or "file"
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem or len(suffix) > 12:
        stem, suffix = base, ""
    suffix = f".{suffix}" if suffix else ""
    stem = stem[: _MAX_NAME - len(suffix)]
    candidate = stem + suffix
    n = 2
    while candidate.lower() in taken:
        tail = f"-{n}"
        candidate = stem[: _MAX_NAME - len(suffix) - len(tail)] + tail + suffix
        n += 1
    taken.add(candidate.lower())
    return candidate


def bundle_name(reference: str, created_at: datetime) -> str:
    ref = _UNSAFE_NAME.sub("_", reference).strip("._") or "case"
    return f"{ref}-export-{created_at.strftime('%Y%m%dT%H%M%SZ')}"


# --- step 1: gather in one transaction ----------------------------------------------------------


def _select_captures(
    session: Session, case: Case, target_ids: Sequence[uuid.UUID] | None
) -> list[Capture]:
    query = select(Capture).where(
        Capture.case_id == case.id, Capture.status != CaptureStatus.FAILED
    )
    if target_ids:
        known = set(session.scalars(
            select(Target.id).where(Target.case_id == case.id, Target.id.in_(target_ids))
        ))
        unknown = [str(t) for t in target_ids if t not in known]
        if unknown:
            raise NotFound(f"case {case.reference!r} has no target {', '.join(unknown)}")
        query = query.where(Capture.target_id.in_(target_ids))
    return list(session.scalars(query.order_by(Capture.started_at, Capture.id)))


def _exhibit(session: Session, runtime: Runtime, number: str, capture: Capture) -> _Exhibit:
    rows = list(session.scalars(
        select(Artifact).where(Artifact.capture_id == capture.id).order_by(Artifact.created_at)
    ))
    sealed = {a.kind: a for a in rows if a.kind in SEAL_KINDS}
    manifest_row = sealed.get("manifest")
    if manifest_row is None or capture.manifest_sha256 is None:
        raise ExportFailed(f"capture {capture.id} has no stored manifest; it cannot be exported")
    manifest = runtime.store.read_bytes(manifest_row.sha256)
    if hashlib.sha256(manifest).hexdigest() != capture.manifest_sha256:
        raise BlobCorrupted(
            f"capture {capture.id}: the stored manifest does not hash to the sealed "
            f"{capture.manifest_sha256}"
        )
    doc = orjson.loads(manifest)
    differ = sealed_disagreements(capture, doc)
    if differ:
        # The report, the index and the provenance graph show these columns: a bundle made
        # from them would state what the capture never signed.
        raise ExportFailed(
            f"capture {capture.id} no longer agrees with its signed manifest ("
            f"{'; '.join(differ)}); the database was changed after the capture: run "
            "`evidence store check` and restore from a backup")
    taken: set[str] = set()
    files: list[_File] = []
    warc = thumbnail = None
    full = None
    for item in doc.get("artifacts", []):
        name = safe_name(str(item.get("name") or item.get("kind") or "file"), taken)
        files.append(_File(
            path=f"exhibits/{number}/files/{name}", kind=str(item["kind"]), name=str(item["name"]),
            media_type=str(item["media_type"]), size=int(item["size"]), sha256=str(item["sha256"]),
        ))
        if item["kind"] == "warc" and warc is None:
            warc = str(item["sha256"])
        if item["kind"] == "screenshot_viewport" and thumbnail is None:
            thumbnail = str(item["sha256"])
        if item["kind"] == "screenshot" and full is None:
            full = str(item["sha256"])
    account = None
    target = session.get(Target, capture.target_id)
    if target is not None and target.account_id is not None:
        account = session.get(Account, target.account_id)
    operator = None if capture.operator_id is None else session.get(User, capture.operator_id)
    return _Exhibit(number=number, capture=capture, manifest=manifest, manifest_doc=doc,
                    files=files, warc_sha256=warc, thumbnail_sha256=thumbnail or full,
                    account=account, operator=operator)


LOCAL_TSA_CA = "local-tsa-ca.pem"  # the home's authority, in every bundle under this name


def _tsa_anchors(roots: Sequence[manifests.TsaRoot]) -> list[tuple[str, bytes]]:
    """The trusted authorities' roots, at their paths in the bundle."""
    taken = {LOCAL_TSA_CA}
    return [(f"keys/tsa/{LOCAL_TSA_CA if root.local else safe_name(root.name, taken)}", root.pem)
            for root in roots]


def _verify_log(runtime: Runtime, session: Session, reference: str,
                roots: Sequence[manifests.TsaRoot], say: Progress) -> None:
    """Refuse to export from a log that does not verify.

    A bundle vouches for the log it comes from: made from a log that someone with database
    access has altered, its proofs could still hold (they rest on the stored leaf hashes) while
    the entries a lookup found, or missed, are not what was recorded. Run in a read-only
    transaction, before the one that starts the export: on SQLite recording goes on meanwhile.
    One process: the export may run inside the API server, which must not fork.
    """
    checked = custody.verify_log(session, runtime.verifier, case_reference=reference,
                                 workers=1, tsa_trust=[root.pem for root in roots],
                                 progress=say)
    if not checked.ok:
        raise LogBroken(f"{checked.summary()}. Run `evidence custody verify` and have the "
                        "log examined before exporting.")


def _plan(
    runtime: Runtime,
    session: Session,
    actor: User,
    reference: str,
    target_ids: Sequence[uuid.UUID] | None,
    lease_owner: str,
    roots: Sequence[manifests.TsaRoot] | None = None,
) -> _Plan:
    """Start the export: see step 1 of the module's doc (the log verified before)."""
    if roots is None:
        roots = manifests.tsa_trust(runtime.settings)
    case = case_for(session, actor, reference)
    authorise_export(session, actor, case)
    captures = _select_captures(session, case, target_ids)
    exhibits = [_exhibit(session, runtime, f"EX-{n:03d}", c) for n, c in enumerate(captures, 1)]
    # Every material.received entry before this export's own is then in `got` or `left`: the
    # verifier checks that nothing the bundle's custody slice records went missing unsaid.
    # Held from here to the commit (the export.started entry needs it anyway).
    custody.hold_log(session)
    got, left = _received_files(session, case, target_ids)
    if not captures and not got:
        raise InvalidInput(f"case {case.reference!r} has no capture to export"
                           + (" for those targets" if target_ids else ""))
    export = Export(case_id=case.id, target_ids=[str(t) for t in target_ids or []] or None,
                    requested_by_id=actor.id, approved_by_id=actor.id)
    session.add(export)
    session.flush()
    custody.append(
        session, actor, action="export.started", case=case, object_type="export",
        object_id=export.id,
        details={
            # Sealed with the entry: a bundle made to pass as an older revision (which checks
            # less, e.g. no bag signature) no longer agrees with its own export record.
            "revision": BUNDLE_REVISION,
            "targets": [str(t) for t in target_ids or []],
            "exhibits": [{"number": e.number, "capture": str(e.capture.id),
                          "manifest_sha256": e.capture.manifest_sha256} for e in exhibits],
            "received": [{"number": r.number, "id": str(r.row.id), "sha256": r.row.sha256}
                         for r in got],
            "received_left_out": [{"number": r.number, "id": str(r.row.id),
                                   "sha256": r.row.sha256, "reason": r.reason} for r in left],
        },
    )
    notes: list[str] = []
    checkpoint = custody.cut_checkpoint(
        session, runtime.signer, origin=runtime.settings.origin,
        timestamp=timestamper(runtime.settings, notes),
    )
    entries = list(session.scalars(
        select(CustodyEntry)
        .where(CustodyEntry.case_id == case.id, CustodyEntry.seq <= checkpoint.tree_size)
        .order_by(CustodyEntry.seq)
    ))
    proofs = custody.inclusion_proofs(session, [e.seq for e in entries], checkpoint)
    export_leases.take(export, lease_owner)  # last: its two minutes start as the plan commits
    return _Plan(
        export_id=export.id, created_at=export.created_at, case=case, actor=actor,
        exhibits=exhibits, entries=entries, proofs=proofs, checkpoint=checkpoint,
        checkpoint_note=notes[0] if notes else None, tsa_pems=_tsa_anchors(roots),
        received=got, left_out=left, target_ids=list(target_ids) if target_ids else None,
    )


# --- step 2: write ------------------------------------------------------------------------------


class _HashingWriter:
    """A write-only, non-seekable stream that hashes what passes through it, on a thread.

    Non-seekable on purpose: zipfile then writes each entry once, with a data descriptor, and
    the bundle's SHA-256 is known the moment it is closed, without reading it back. hashlib
    lets go of the GIL on large buffers, so on a second core the hash costs the writer nothing.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)  # 16 MiB at most
        self._thread = threading.Thread(target=self._run, name="bundle-hash", daemon=True)
        self._thread.start()
        self._digest: str | None = None
        self.size = 0

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hash.update(data)

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self._queue.put(bytes(data))  # a copy only when handed a reusable buffer
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        if self._digest is None:
            self.close()
            self._digest = self._hash.hexdigest()
        return self._digest


def _entry_line(entry: CustodyEntry) -> bytes:
    return bytes(entry.entry) + b"\n"


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"


def verifier_source() -> bytes:
    """The standalone verifier, exactly as shipped in every bundle."""
    return importlib.resources.files("evidence").joinpath("bundle_verifier.py").read_bytes()


class _BundleWriter:
    def __init__(self, runtime: Runtime, plan: _Plan, bag: BagWriter, workdir: Path,
                 progress: Progress) -> None:
        self.runtime = runtime
        self.plan = plan
        self.bag = bag
        self.workdir = workdir
        self.progress = progress
        self.index_exhibits: list[dict[str, Any]] = []

    def blob(self, path: str, sha256: str) -> int:
        """Copy a blob into the bag, checking it still hashes to what was recorded."""
        with self.runtime.store.open(sha256, verify=False) as stream:
            entry = self.bag.add_file(path, stream)
        if entry.sha256 != sha256:
            raise BlobCorrupted(f"blob {sha256} in the store no longer hashes to its name "
                                f"(got {entry.sha256}); the export stops here")
        return entry.size

    def exhibit(self, ex: _Exhibit) -> dict[str, Any]:
        capture = ex.capture
        self.progress(f"{ex.number}: {capture.requested_url} ({len(ex.files)} files)")
        self.bag.add_file(f"{ex.folder}/manifest.json", ex.manifest)
        self.bag.add_file(f"{ex.folder}/manifest.sig", bytes(capture.signature or b""))
        entry: dict[str, Any] = {
            "number": ex.number,
            "capture_id": str(capture.id),
            "target_id": str(capture.target_id),
            "url": capture.requested_url,
            "final_url": capture.final_url,
            "status": capture.status,
            "manifest_sha256": capture.manifest_sha256,
            "manifest": f"{ex.folder}/manifest.json",
            "signature": f"{ex.folder}/manifest.sig",
            "timestamp_token": None,
            "wacz": None,
        }
        if capture.timestamp_token is not None:
            self.bag.add_file(f"{ex.folder}/manifest.tsr", bytes(capture.timestamp_token))
            entry["timestamp_token"] = f"{ex.folder}/manifest.tsr"
        else:
            entry["timestamp_note"] = "no timestamp authority answered when this was captured"
        for f in ex.files:
            self.blob(f.path, f.sha256)
        if ex.warc_sha256 is not None:
            try:
                entry["wacz"] = self.wacz(ex)
            except wacz.WaczError as exc:
                # The WARC itself is in the bundle and signed; only the replay package is lost.
                entry["wacz_note"] = f"no WACZ could be built from the capture's WARC: {exc}"
                self.progress(f"{ex.number}: {entry['wacz_note']}")
        else:
            entry["wacz_note"] = "the capture holds no WARC (its traffic step failed)"
        entry["files"] = [
            {"path": f.path, "kind": f.kind, "name": f.name, "media_type": f.media_type,
             "size": f.size, "sha256": f.sha256} for f in ex.files
        ]
        return entry

    def wacz(self, ex: _Exhibit) -> str:
        capture = ex.capture
        assert ex.warc_sha256 is not None
        target = self.workdir / f"{ex.number}.wacz"
        # Not re-hashed on the way in: the WACZ states the WARC's SHA-256, checked below.
        with self.runtime.store.open(ex.warc_sha256, verify=False) as warc, \
                target.open("wb") as out:
            summary = wacz.build_wacz(
                warc,  # type: ignore[arg-type]
                out,
                title=f"{self.plan.case.reference} {ex.number}",
                pages=[wacz.PageInfo(url=capture.final_url or capture.requested_url,
                                     ts=capture.started_at, title=capture.title or "")],
                created=self.plan.created_at,
                software=TOOL,
                extra_metadata={"description": f"Exhibit {ex.number}, capture {capture.id}"},
            )
        if summary.archive.hash != f"sha256:{ex.warc_sha256}":
            raise BlobCorrupted(f"blob {ex.warc_sha256} (the WARC of {ex.number}) no longer "
                                f"hashes to its name: {summary.archive.hash}")
        path = f"{ex.folder}/archive.wacz"
        try:
            self.bag.add_file(path, target)
        finally:
            target.unlink()
        return path

    def write(self) -> None:
        plan = self.plan
        for ex in plan.exhibits:
            self.index_exhibits.append(self.exhibit(ex))
        for item in plan.received:
            self.progress(f"{item.number}: received material ({item.row.size} bytes)")
            self.blob(item.path, item.row.sha256)
        self.progress(f"custody: {len(plan.entries)} entries, checkpoint of "
                      f"{plan.checkpoint.tree_size}")
        self.bag.add_file("custody/entries.jsonl", b"".join(_entry_line(e) for e in plan.entries))
        self.bag.add_file("custody/proofs.json", _json_bytes({
            "tree_size": plan.checkpoint.tree_size,
            "root": bytes(plan.checkpoint.root_hash).hex(),
            "proofs": [{"seq": p.seq, "leaf_index": p.seq - 1, "path": [h.hex() for h in p.proof]}
                       for p in plan.proofs],
        }))
        self.bag.add_file("custody/checkpoint.json",
                          _json_bytes(custody.checkpoint_document(plan.checkpoint)))
        if plan.checkpoint.timestamp_token is not None:
            self.bag.add_file("custody/checkpoint.tsr", bytes(plan.checkpoint.timestamp_token))
        self.bag.add_file("keys/signing-key.pem", self.runtime.verifier.public_pem())
        for path, pem in plan.tsa_pems:
            self.bag.add_file(path, pem)
        self.bag.add_file("case.jsonld", _json_bytes(self.case_graph()))
        verifier = verifier_source()
        self.bag.add_file("verify.py", verifier)
        self.progress("report.pdf")
        report_path = self.workdir / "report.pdf"
        report.write_report(self.report_data(hashlib.sha256(verifier).hexdigest()), report_path)
        self.bag.add_file("report.pdf", report_path)
        self.bag.add_file("README.txt", readme(plan, self.runtime.signer.key_id).encode())
        self.bag.add_file("bundle.json", _json_bytes(self.index()))

    def index(self) -> dict[str, Any]:
        plan = self.plan
        case = plan.case
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "revision": BUNDLE_REVISION,
            "export_id": str(plan.export_id),
            "created_at": iso(plan.created_at),
            "tool": TOOL,
            "case": {"id": str(case.id), "reference": case.reference, "title": case.title,
                     "offence": case.offence, "offence_provision": case.offence_provision,
                     "max_penalty_years": case.max_penalty_years, "facts": case.facts,
                     "jurisdiction": case.jurisdiction},
            "exported_by": {"id": str(plan.actor.id), "name": plan.actor.name,
                            "unit": plan.actor.unit},
            "signing_key": {"path": "keys/signing-key.pem", "key_id": self.runtime.signer.key_id},
            "tsa_certificates": [path for path, _ in plan.tsa_pems],
            "custody": {
                "entries": "custody/entries.jsonl",
                "proofs": "custody/proofs.json",
                "checkpoint": "custody/checkpoint.json",
                "checkpoint_token": None if plan.checkpoint.timestamp_token is None
                else "custody/checkpoint.tsr",
                **({"checkpoint_token_note": plan.checkpoint_note} if plan.checkpoint_note
                   else {}),
            },
            "case_graph": "case.jsonld",
            "report": "report.pdf",
            "verifier": "verify.py",
            "targets": None if plan.target_ids is None else [str(t) for t in plan.target_ids],
            "exhibits": self.index_exhibits,
            "received": [item.index() for item in plan.received],
            "received_left_out": [item.index() for item in plan.left_out],
        }

    def case_graph(self) -> dict[str, Any]:
        plan = self.plan
        case = plan.case
        captures = []
        accounts: dict[uuid.UUID, caseuco.AccountInfo] = {}
        for ex in plan.exhibits:
            c = ex.capture
            if ex.account is not None:
                a = ex.account
                accounts[a.id] = caseuco.AccountInfo(
                    id=a.id, platform=a.platform, platform_account_id=a.platform_account_id,
                    handle=a.handle, profile_url=a.profile_url)
            captures.append(caseuco.CaptureInfo(
                id=c.id, requested_url=c.requested_url, started_at=c.started_at,
                tool_name="evidence-locker", tool_version=__version__, status=c.status,
                final_url=c.final_url, finished_at=c.finished_at,
                browser_version=c.browser_version,
                performer=None if ex.operator is None else caseuco.PerformerInfo(
                    id=ex.operator.id, name=ex.operator.name, unit=ex.operator.unit),
                exhibit_number=ex.number, manifest_sha256=c.manifest_sha256,
                account_id=None if ex.account is None else ex.account.id,
                artifacts=tuple(caseuco.FileInfo(path_in_bundle=f.path, kind=f.kind,
                                                 media_type=f.media_type, size=f.size,
                                                 sha256=f.sha256) for f in ex.files),
            ))
        return caseuco.build_case_graph(
            caseuco.InvestigationInfo(id=case.id, reference=case.reference, title=case.title,
                                      offence=case.offence,
                                      offence_provision=case.offence_provision,
                                      facts=case.facts, jurisdiction=case.jurisdiction),
            captures, list(accounts.values()),
            received=[item.graph() for item in plan.received],
        )

    def report_data(self, verifier_sha256: str) -> report.ReportData:
        plan = self.plan
        # What each line says comes from the entry's own bytes (the ones the bundle proves),
        # not from the columns beside them.
        by_object: dict[str, list[dict[str, Any]]] = {}
        for e in plan.entries:
            doc = custody.describe(e)
            obj = doc.get("object") or {}
            if obj.get("id") is not None:
                by_object.setdefault(str(obj["id"]), []).append(doc)
        exhibits = []
        for ex in plan.exhibits:
            c = ex.capture
            thumb = None
            if ex.thumbnail_sha256 is not None:
                try:
                    thumb = self.runtime.store.fetch(ex.thumbnail_sha256)
                except BlobMissing:
                    thumb = None
            related = sorted(
                {doc["seq"]: doc for key in (str(c.id), str(c.target_id))
                 for doc in by_object.get(key, [])}.values(), key=lambda doc: doc["seq"])
            is_local = False
            if c.timestamp_token is not None:
                is_local = TimestampToken.from_der(bytes(c.timestamp_token)).policy_oid \
                    == LOCAL_TSA_POLICY_OID
            exhibits.append(report.ReportExhibit(
                number=ex.number, capture_id=str(c.id), url=c.requested_url,
                final_url=c.final_url, status=c.status, http_status=c.http_status,
                title=c.title, started_at=c.started_at, finished_at=c.finished_at,
                manifest_sha256=c.manifest_sha256 or "", key_id=c.key_id or "",
                timestamp_time=c.timestamp_time, timestamp_authority=c.timestamp_authority,
                timestamp_local=is_local,
                timestamp_note=None if c.timestamp_token is not None
                else "not timestamped: no authority answered",
                thumbnail=thumb,
                files=tuple(report.ReportFile(path=f.path, kind=f.kind, media_type=f.media_type,
                                              size=f.size, sha256=f.sha256) for f in ex.files),
                custody=tuple(_custody_line(doc) for doc in related),
                steps_failed=tuple(f"{s['name']}: {s.get('error') or 'failed'}"
                                   for s in c.steps or [] if not s.get("ok")),
            ))
        cp = plan.checkpoint
        cp_time = None
        cp_authority = None
        if cp.timestamp_token is not None:
            token = TimestampToken.from_der(bytes(cp.timestamp_token))
            cp_time = token.gen_time
            cp_authority = token.authority_url or token.tsa_name
        case = plan.case
        return report.ReportData(
            bundle_name=bundle_name(case.reference, plan.created_at),
            export_id=str(plan.export_id), created_at=plan.created_at, tool=TOOL,
            case_reference=case.reference, case_title=case.title, offence=case.offence,
            offence_provision=case.offence_provision, max_penalty_years=case.max_penalty_years,
            facts=case.facts, jurisdiction=case.jurisdiction, exported_by=plan.actor.name,
            exported_by_unit=plan.actor.unit, key_id=self.runtime.signer.key_id,
            checkpoint_origin=cp.origin, checkpoint_tree_size=cp.tree_size,
            checkpoint_root=bytes(cp.root_hash).hex(), checkpoint_timestamp=cp_time,
            checkpoint_timestamp_authority=cp_authority, exhibits=tuple(exhibits),
            tsa_fingerprints=tuple((path, _pem_fingerprint(pem)) for path, pem in plan.tsa_pems),
            verifier_sha256=verifier_sha256,
            received=tuple(item.report() for item in plan.received),
            received_scope=_received_scope(plan),
            targets_chosen=None if plan.target_ids is None else len(plan.target_ids),
            received_left_out=tuple(item.report() for item in plan.left_out),
        )


def _pem_fingerprint(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _custody_line(doc: dict[str, Any]) -> report.CustodyLine:
    """A report line from an entry as its canonical JSON says it."""
    details = doc.get("details") or {}
    summary = ", ".join(f"{k}: {v}" for k, v in details.items()
                        if v not in (None, "", [], {}) and k in _SUMMARY_KEYS)
    actor = doc.get("actor") or {}
    return report.CustodyLine(
        seq=doc["seq"], case_seq=doc.get("case_seq") or 0, at=doc.get("at", ""),
        actor=actor.get("name"), action=doc.get("action", ""), sha256=doc.get("sha256"),
        summary=summary,
    )


_SUMMARY_KEYS = ("status", "url", "reason", "http_status", "timestamp", "error", "changes",
                 "state", "kind", "watch_interval_seconds")


def _received_scope(plan: _Plan) -> str | None:
    """What received material a chosen-targets bundle carries and leaves out, in one paragraph;
    None for a whole case's, which carries all of it."""
    if plan.target_ids is None:
        return None
    answers = sum(1 for r in plan.left_out if r.row.request_id is not None)
    elsewhere = len(plan.left_out) - answers
    text = (f"This bundle was exported for {len(plan.target_ids)} chosen target(s), not the "
            "whole case. It carries the received material that answers the legal requests "
            "concerning at least one of them (a request concerns the targets whose sealed "
            "captures its identifiers cite, and the other targets of the same account).")
    if not plan.left_out:
        return text + " No received material of the case was left out."
    return (text + f" It leaves out {len(plan.left_out)} received file(s) of the case: "
            f"{answers} answering requests that concern none of the chosen targets, and "
            f"{elsewhere} from other sources, which are tied to no target. bundle.json lists "
            "each (received_left_out) with its SHA-256, and the custody entries in this bundle "
            "record every one.")


def _received_line(plan: _Plan) -> str:
    scope = _received_scope(plan)
    tail = "" if scope is None else "\n" + textwrap.fill(scope, 95) + "\n\n"
    if not plan.received:
        return tail[1:] if tail else ""
    return (f"data/received/ holds {len(plan.received)} file(s) the unit received (a platform's "
            "answer to a legal\nrequest, or material from another source), as they came; "
            "bundle.json lists each with its\nSHA-256, which its material.received custody "
            "entry records too.\n" + tail)


def readme(plan: _Plan, key_id: str) -> str:
    case = plan.case
    return f"""Evidence bundle for case {case.reference}: {case.title}
Export {plan.export_id}, made {iso(plan.created_at)} (UTC) by {plan.actor.name} with {TOOL}.

This is a BagIt 1.0 bag (RFC 8493). It holds {len(plan.exhibits)} exhibit(s) under
data/exhibits/, each with the files the capture stored, the capture manifest that lists their
SHA-256 hashes, the manifest's Ed25519 signature (manifest.sig) and its RFC 3161 timestamp
(manifest.tsr), and a WACZ web archive that replay tools open. data/custody/ holds the case's
chain of custody, proven against a signed checkpoint of the system's whole custody log.
{_received_line(plan)}data/report.pdf describes every exhibit for people; data/case.jsonld
describes them in the CASE/UCO ontology.

To check everything, offline, with Python 3.11 or newer and the `cryptography` package:

    python3 verify.py ..   (from inside data/, or: python3 data/verify.py BUNDLE.zip)

It exits 0 only when every file, hash, signature, timestamp and custody proof holds, and names
what is wrong otherwise. Compare the signing key id it prints with the one the unit publishes:
{key_id}
A verify.py inside a bundle is only as trustworthy as the bundle: whoever altered the bundle
could alter it too. To check a bundle you were handed, run a verify.py you obtained
independently (from evidence-locker, or another bundle of known origin), and pin the unit's
key with --key. The evidence is sealed by the signatures, timestamps and custody proofs;
tagmanifest-sha256.txt.sig signs the bag as a whole (this README, report.pdf, verify.py,
bag-info.txt and bundle.json included) with the same key, over tagmanifest-sha256.txt.
The format is described in docs/bundle-format.md of evidence-locker.
"""


# --- the service ----------------------------------------------------------------------------------


def export_case(
    runtime: Runtime,
    actor_name: str | None,
    *,
    reference: str,
    out: Path,
    target_ids: Sequence[uuid.UUID] | None = None,
    progress: Progress | None = None,
    keep: Callable[[Path], str] | None = None,
) -> ExportResult:
    """Write the bundle of a case (or of some of its targets) to `out`; see the module doc.

    `keep` is given the finished bundle before the export is recorded complete, and returns
    the SHA-256 it kept it under (the API keeps bundles in the blob store): a bundle that could
    not be kept, or was kept as other bytes, fails the export.
    """
    say = progress or (lambda _msg: None)
    out = out.expanduser().absolute()
    if out.exists():
        raise InvalidInput(f"{out} already exists; an export never overwrites a file")
    if not out.parent.is_dir():
        raise InvalidInput(f"folder {out.parent} does not exist")
    owner = new_worker_id()
    with runtime.read_session() as session:
        actor = resolve_actor(session, actor_name)
        authorise_export(session, actor, case_for(session, actor, reference))
        say("checking the custody log before exporting from it")
        roots = manifests.tsa_trust(runtime.settings)
        _verify_log(runtime, session, reference, roots, say)
    with runtime.session() as session:
        plan = _plan(runtime, session, resolve_actor(session, actor_name), reference,
                     target_ids, owner, roots)
    name = bundle_name(plan.case.reference, plan.created_at)
    say(f"exporting {len(plan.exhibits)} exhibits of case {plan.case.reference} as {name}")
    if cleared := export_leases.clean_leftovers(out.parent, partial_of=out.name):
        say(f"removed {cleared} leftover(s) of earlier exports that were killed while writing "
            f"to {out.parent}")
    fd, partial_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial",
                                        dir=out.parent)
    partial = Path(partial_name)
    sink: _HashingWriter | None = None
    try:
        with os.fdopen(fd, "wb") as raw, tempfile.TemporaryDirectory(
            prefix=".export-", dir=out.parent
        ) as work, export_leases.LeaseKeeper(runtime.session, plan.export_id, owner,
                                             touch=partial):
            sink = _HashingWriter(raw)
            bag = BagWriter(sink, bag_name=name, bagging_time=plan.created_at)  # type: ignore[arg-type]
            try:
                _BundleWriter(runtime, plan, bag, Path(work), say).write()
                bag.close(_bag_info(plan), seal=functools.partial(bag_signature,
                                                                  runtime.signer))
            except BaseException:
                bag.abort()
                raise
            raw.flush()
            os.fsync(raw.fileno())
            if keep is not None:
                say("keeping the bundle")
                kept = keep(partial)
                if kept != sink.hexdigest():
                    raise BlobCorrupted(f"the bundle changed on its way to where it is kept: "
                                        f"written {sink.hexdigest()}, kept {kept}")
        os.link(partial, out)  # fails rather than replace a file that appeared meanwhile
        partial.unlink()
    except BaseException as exc:
        if sink is not None:
            sink.close()
        partial.unlink(missing_ok=True)
        reason = exc.message if isinstance(exc, EvidenceError) else f"{type(exc).__name__}: {exc}"
        with runtime.session() as session:
            if export_leases.give_back(session, plan.export_id, owner):  # else recorded already
                custody.append(session, session.get(User, plan.actor.id),
                               action="export.failed", case=session.get(Case, plan.case.id),
                               object_type="export", object_id=plan.export_id,
                               details={"reason": reason[:2000]})
        if isinstance(exc, EvidenceError | KeyboardInterrupt):
            raise
        raise ExportFailed(f"the export failed and left nothing behind: {reason}") from exc
    with runtime.session() as session:
        if not export_leases.give_back(session, plan.export_id, owner):
            out.unlink()
            raise ExportFailed(
                f"export {plan.export_id} was recorded as interrupted while its bundle was "
                "written (this process could not renew its lease in time); the bundle was "
                "removed: export again")
        export = session.get(Export, plan.export_id)
        assert export is not None
        export.bundle_sha256 = sink.hexdigest()
        export.size = sink.size
        export.kept = keep is not None
        custody.append(
            session, session.get(User, plan.actor.id), action="export.completed",
            case=session.get(Case, plan.case.id), object_type="export", object_id=plan.export_id,
            sha256=sink.hexdigest(),
            details={"size": sink.size, "file": out.name, "kept": keep is not None,
                     "exhibits": len(plan.exhibits), "received": len(plan.received),
                     "received_left_out": len(plan.left_out),
                     "entries": len(plan.entries), "checkpoint": plan.checkpoint.tree_size},
        )
    return ExportResult(
        export_id=plan.export_id, path=out, sha256=sink.hexdigest(), size=sink.size,
        exhibits=len(plan.exhibits), entries=len(plan.entries),
        checkpoint_size=plan.checkpoint.tree_size, received=len(plan.received),
        received_left_out=len(plan.left_out),
    )


def bag_signature(signer: Signer, bag: str, tagmanifest_sha256: str) -> bytes:
    """The bag's signature file (bundle_verifier.BAG_SIGNATURE): the system key's signature over
    the tag manifest, which seals every file of the bag, in the JSON the verifier reads."""
    signature = signer.sign(bag_signature_statement(bag, tagmanifest_sha256))
    return (json.dumps({
        "type": BAG_SIGNATURE_TYPE, "bag": bag, "tagmanifest_sha256": tagmanifest_sha256,
        "algorithm": "Ed25519", "key_id": signer.key_id,
        "signature": base64.b64encode(signature).decode(),
    }, indent=2) + "\n").encode()


def _bag_info(plan: _Plan) -> dict[str, str | list[str]]:
    actor = plan.actor
    return {
        "Source-Organization": actor.unit or "evidence-locker",
        "Contact-Name": actor.name,
        "External-Identifier": str(plan.export_id),
        "External-Description": f"Evidence bundle of case {plan.case.reference}: "
                                f"{len(plan.exhibits)} exhibits",
        "Internal-Sender-Identifier": plan.case.reference,
        "Internal-Sender-Description": f"Made by {TOOL}; check with data/verify.py",
        "Bag-Group-Identifier": plan.case.reference,
    }


# --- exports kept for download -------------------------------------------------------------------


@dataclass(frozen=True)
class ListedExport:
    export: Export
    ending: dict[str, Any]  # its ending entry (`export_endings`); empty while it has none
    status: export_leases.ExportStatus
    note: str | None  # why it did not complete


def list_exports(session: Session, actor: User, reference: str, *,
                 limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page[ListedExport]:
    """A page of the case's exports, newest first, each with how it stands
    (`export_leases.status`); anyone who may read the case sees them."""
    case = case_for(session, actor, reference)
    page = paginate(session, select(Export).where(Export.case_id == case.id),
                    key=(Export.created_at, Export.id), limit=limit, cursor=cursor,
                    descending=True)
    endings = export_endings(session, case, page.items)
    listed = []
    for export in page.items:
        ending = endings.get(str(export.id), {})
        status, note = export_leases.status(export, ending)
        listed.append(ListedExport(export, ending, status, note))
    return Page(listed, page.next_cursor)


def export_endings(session: Session, case: Case, exports: Sequence[Export]) -> dict[
    str, dict[str, Any]
]:
    """How each export ended, by export id: its `export.completed` or `export.failed` custody
    entry, as the entry says it (`custody.describe`); an export without one has not ended.

    The export row records only the bundle's hash and size; whether an unfinished export is
    still running or failed, and how many exhibits a finished one holds, the custody log says.
    """
    if not exports:
        return {}
    rows = session.scalars(select(CustodyEntry).where(
        CustodyEntry.case_id == case.id, CustodyEntry.object_type == "export",
        CustodyEntry.object_id.in_([str(e.id) for e in exports]),
        CustodyEntry.action.in_(("export.completed", "export.failed")),
    ).order_by(CustodyEntry.seq))
    return {str(row.object_id): custody.describe(row) for row in rows}


def open_bundle(
    session: Session, actor: User, reference: str, export_id: uuid.UUID, store: BlobStore
) -> tuple[Case, Export, BinaryIO]:
    """A kept bundle, re-hashed as it is read; the download is recorded in the custody log."""
    case = case_for(session, actor, reference)
    authorise_export(session, actor, case)
    export = session.get(Export, export_id)
    if export is None or export.case_id != case.id:
        raise NotFound(f"case {case.reference!r} has no export {export_id}")
    if export.bundle_sha256 is None or not store.exists(export.bundle_sha256):
        raise NotFound(f"export {export_id} was not completed or its bundle was not kept")
    reader = store.open(export.bundle_sha256, verify=True)
    custody.append(session, actor, action="export.downloaded", case=case, object_type="export",
                   object_id=export.id, sha256=export.bundle_sha256,
                   details={"size": export.size})
    return case, export, reader  # type: ignore[return-value]


def export_and_keep(
    runtime: Runtime,
    actor_name: str,
    *,
    reference: str,
    target_ids: Sequence[uuid.UUID] | None = None,
) -> ExportResult:
    """Export into the blob store (for the API): the bundle is then downloaded by its hash.
    It is in the store before the export is recorded complete."""
    with tempfile.TemporaryDirectory(prefix=".export-", dir=runtime.settings.home_path) as tmp:
        return export_case(runtime, actor_name, reference=reference,
                           out=Path(tmp) / "bundle.zip", target_ids=target_ids,
                           keep=lambda path: runtime.store.put_file(path).sha256)
