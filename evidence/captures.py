"""Captures as evidence: what one snapshot established, its manifest, and recording it.

The capture worker fills a `CaptureRecord`; `manifest_of` turns it into the canonical manifest
that is signed and timestamped; `record_capture` writes the capture, its artifacts and one
custody entry naming the manifest's hash in the caller's transaction, after checking that every
blob it points to is already in the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from http import HTTPStatus
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from evidence import __version__, custody, search
from evidence.blobstore import BlobStore
from evidence.errors import CustodyError, NotFound
from evidence.manifests import SealedManifest
from evidence.models import Artifact, Capture, CaptureStatus, Case, Target, User

MANIFEST_VERSION = 1
TOOL = f"evidence-locker {__version__}"


# The files that seal a capture (its signed manifest, the signature, the timestamp token),
# stored beside the files the manifest lists.
SEAL_KINDS = ("manifest", "signature", "timestamp")


@dataclass
class StoredArtifact:
    kind: str
    name: str
    media_type: str
    size: int
    sha256: str
    path: str
    phash: str | None = None
    dhash: str | None = None


@dataclass
class StepOutcome:
    name: str
    ok: bool
    error: str | None = None
    note: str | None = None
    ms: int | None = None  # how long the step took


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class CaptureRecord:
    """Everything one capture established, ready to be sealed and recorded."""

    capture_id: uuid.UUID
    requested_url: str
    operator: str | None
    worker_host: str
    started_at: datetime
    finished_at: datetime | None = None
    final_url: str | None = None
    redirects: list[dict[str, Any]] = field(default_factory=list)
    http_status: int | None = None
    response_headers: list[list[str]] = field(default_factory=list)
    remote_ip: str | None = None
    remote_port: int | None = None
    tls: dict[str, Any] | None = None
    title: str | None = None
    language: dict[str, str | None] = field(default_factory=dict)
    browser_version: str | None = None
    tool_version: str = TOOL
    user_agent: str | None = None
    viewport: str | None = None
    steps: list[StepOutcome] = field(default_factory=list)
    artifacts: list[StoredArtifact] = field(default_factory=list)
    dialogs: list[dict[str, str]] = field(default_factory=list)
    popups: list[str] = field(default_factory=list)
    blocked: list[dict[str, str]] = field(default_factory=list)
    # Each file the page had the browser download: its address, suggested name, whether it
    # was kept (then its size and hash), stopped (at how many bytes, why) or failed, and the
    # address of the pop-up it was downloaded in ("popup", null for the page's own).
    downloads: list[dict[str, Any]] = field(default_factory=list)
    # Each PDF the page loaded whose words were read (or not, and why): its address, its hash,
    # and the hash of the "pdf_text" artifact read from it.
    pdf_texts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    status: str = CaptureStatus.FAILED

    def step(self, name: str) -> StepOutcome | None:
        return next((s for s in self.steps if s.name == name), None)

    def metadata(self) -> dict[str, Any]:
        """The metadata document: plain JSON values only (it is hashed as canonical JSON)."""
        return {
            "capture_id": str(self.capture_id),
            "requested_url": self.requested_url,
            "final_url": self.final_url,
            "redirects": self.redirects,
            "http_status": self.http_status,
            "response_headers": self.response_headers,
            "remote_ip": self.remote_ip,
            "remote_port": self.remote_port,
            "tls": self.tls,
            "title": self.title,
            "language": self.language,
            "started_at": iso(self.started_at),
            "finished_at": None if self.finished_at is None else iso(self.finished_at),
            "browser_version": self.browser_version,
            "tool_version": self.tool_version,
            "user_agent": self.user_agent,
            "viewport": self.viewport,
            "operator": self.operator,
            "worker_host": self.worker_host,
            "dialogs": self.dialogs,
            "popups": self.popups,
            "blocked_requests": self.blocked,
            "downloads": self.downloads,
            "pdf_texts": self.pdf_texts,
            "steps": [asdict(s) for s in self.steps],
        }


# The capture columns the pages, the API, reports and bundles show that the signed manifest
# also holds: a row edited in the database no longer agrees with what the capture signed.
# (Manifests made before the title was signed have no "title": theirs is not compared.)
SEALED_COLUMNS = ("requested_url", "final_url", "http_status", "status", "remote_ip",
                  "started_at", "finished_at", "title")
# A title is the page's to choose, of any length: the manifest signs this much of it, and says
# whether it was cut.
MAX_SIGNED_TITLE_CHARS = 2000


# What an error answer may mean for the page asked for. One answer proves little: a mistyped
# URL, a login wall, a geo-block or a passing fault answer much as a removed page does.
_ERROR_MEANINGS = {
    401: "the page asks to sign in",
    403: ("the server would not show the page (a login wall, a geo-block or a block on "
          "automated visitors)"),
    404: "the page may have been removed, or the URL may be wrong",
    410: "the server says the page is gone for good",
    429: "the server is limiting how often it is asked; capture again later",
    451: "the page is withheld for legal reasons (a takedown, or a block in this country)",
}


def http_answer(http_status: int | None) -> str | None:
    """The status with its standard phrase, "HTTP 404 Not Found" (the number alone for a
    status HTTP does not define)."""
    if http_status is None:
        return None
    try:
        return f"HTTP {http_status} {HTTPStatus(http_status).phrase}"
    except ValueError:
        return f"HTTP {http_status}"


# From this status up, a page's answer is an error (4xx, 5xx, anything past them): a capture of
# it keeps what the server said, not the page itself.
ERROR_ANSWER_FROM = 400


def holds_the_page() -> ColumnElement[bool]:
    """Of captures in a query: those that hold the page itself, complete and not of an error
    answer (a complete capture of a 404 or a 403 login wall keeps what the server said)."""
    return and_(Capture.status == CaptureStatus.COMPLETE,
                or_(Capture.http_status.is_(None), Capture.http_status < ERROR_ANSWER_FROM))


def error_answer(http_status: int | None) -> str | None:
    """For a page that answered with an error status (4xx, 5xx), what it answered and what
    that may mean, or None: "the page answered HTTP 404 Not Found (the page may have been
    removed, or the URL may be wrong)"."""
    if http_status is None or http_status < ERROR_ANSWER_FROM:
        return None
    meaning = _ERROR_MEANINGS.get(http_status) or (
        "the server refused the request" if http_status < 500
        else "the server failed to serve the page; it may work again later")
    return f"the page answered {http_answer(http_status)} ({meaning})"


@dataclass(frozen=True)
class Outcome:
    """A capture's status as a reader is shown it: a complete capture of an error answer is
    complete (what the server sent is kept as evidence), but not the page itself."""

    tone: str  # the badge's colour: complete, partial, failed or error-answer
    label: str  # "complete", "complete · HTTP 404"
    said: str | None  # the sentence saying it, for a page that answered with an error

    @property
    def answered_error(self) -> bool:
        return self.said is not None


def outcome_of(status: str, http_status: int | None) -> Outcome:
    answered = error_answer(http_status)
    if answered is None:
        return Outcome(status, status, None)
    said = (f"{status.capitalize()}, but {answered}: what was captured is that answer, not the "
            "page as it once stood")
    tone = "error-answer" if status == CaptureStatus.COMPLETE else status
    return Outcome(tone, f"{status} · HTTP {http_status}", said)


def signed_title(title: str | None) -> tuple[str | None, bool]:
    """The title as the manifest signs it (as captured, escaped nowhere, cut to
    `MAX_SIGNED_TITLE_CHARS`), and whether it was cut."""
    if title is None or len(title) <= MAX_SIGNED_TITLE_CHARS:
        return title, False
    return title[:MAX_SIGNED_TITLE_CHARS], True


def sealed_disagreements(row: Any, manifest: Mapping[str, Any]) -> list[str]:
    """Each of `row`'s `SEALED_COLUMNS` that differs from the signed `manifest`, said."""
    out = []
    for column in SEALED_COLUMNS:
        shown, signed = getattr(row, column), manifest.get(column)
        if column == "title":
            if column not in manifest:
                continue
            shown, cut = signed_title(shown)
            if cut != manifest.get("title_truncated"):
                out.append(f"title_truncated is {cut!r} where the signed manifest says "
                           f"{manifest.get('title_truncated')!r}")
        if isinstance(shown, datetime):
            shown = iso(shown)
        elif isinstance(shown, Enum):
            shown = shown.value
        if shown != signed:
            out.append(f"{column} is {shown!r} where the signed manifest says {signed!r}")
    return out


def manifest_of(record: CaptureRecord, *, case: Case, target_id: uuid.UUID) -> dict[str, Any]:
    """The manifest that is signed: the capture's facts and every artifact's hash."""
    meta = record.metadata()
    return {
        "v": MANIFEST_VERSION,
        "type": "evidence-locker/capture-manifest",
        "capture_id": str(record.capture_id),
        "case": {"id": str(case.id), "ref": case.reference},
        "target_id": str(target_id),
        "status": record.status,
        "error": record.error,
        "requested_url": record.requested_url,
        "final_url": record.final_url,
        "title": signed_title(record.title)[0],
        "title_truncated": signed_title(record.title)[1],
        "redirects": record.redirects,
        "http_status": record.http_status,
        "remote_ip": record.remote_ip,
        "remote_port": record.remote_port,
        "started_at": meta["started_at"],
        "finished_at": meta["finished_at"],
        "browser_version": record.browser_version,
        "tool_version": record.tool_version,
        "operator": record.operator,
        "worker_host": record.worker_host,
        "steps": meta["steps"],
        "artifacts": [
            {"kind": a.kind, "name": a.name, "media_type": a.media_type, "size": a.size,
             "sha256": a.sha256}
            for a in record.artifacts
        ],
    }


def record_capture(
    session: Session,
    operator: User | None,
    *,
    record: CaptureRecord,
    case: Case,
    target: Target,
    job_id: uuid.UUID | None,
    sealed: SealedManifest,
    extra_artifacts: list[StoredArtifact],
    store: BlobStore,
    comparison: dict[str, Any] | None = None,
) -> Capture:
    """Write the capture, its artifacts and its custody entry; refuses dangling blob hashes."""
    artifacts = [*record.artifacts, *extra_artifacts]
    missing = [a.sha256 for a in artifacts if not store.exists(a.sha256)]
    if missing:
        raise CustodyError(f"refusing to record capture {record.capture_id}: blobs missing "
                           f"from the store: {', '.join(missing)}")
    capture = Capture(
        id=record.capture_id,
        case_id=case.id,
        target_id=target.id,
        job_id=job_id,
        requested_url=record.requested_url,
        final_url=record.final_url,
        redirect_chain=record.redirects,
        http_status=record.http_status,
        remote_ip=record.remote_ip,
        remote_port=record.remote_port,
        tls_certificates=None if record.tls is None else [record.tls],
        title=record.title,
        started_at=record.started_at,
        finished_at=record.finished_at,
        tool_version=record.tool_version,
        browser_version=record.browser_version,
        user_agent=record.user_agent,
        viewport=record.viewport,
        operator_id=None if operator is None else operator.id,
        worker_host=record.worker_host,
        status=record.status,
        steps=[asdict(s) for s in record.steps],
        error=record.error,
        manifest_sha256=sealed.sha256,
        signature=sealed.signature,
        key_id=sealed.key_id,
        timestamp_token=sealed.token,
        timestamp_time=sealed.timestamp_time,
        timestamp_authority=sealed.timestamp_authority,
        comparison=comparison,
    )
    session.add(capture)
    session.flush()
    for a in artifacts:
        session.add(Artifact(capture_id=capture.id, case_id=case.id, kind=a.kind, name=a.name,
                             media_type=a.media_type, size=a.size, sha256=a.sha256,
                             phash=a.phash, dhash=a.dhash))
    session.flush()
    search.index_capture(session, capture, store=store)
    custody.append(
        session,
        operator,
        action="capture.recorded",
        case=case,
        object_type="capture",
        object_id=capture.id,
        sha256=sealed.sha256,
        details={
            "status": record.status,
            "url": record.requested_url,
            "final_url": record.final_url,
            "http_status": record.http_status,
            "artifacts": len(artifacts),
            "key_id": sealed.key_id,
            "timestamp": None if sealed.timestamp_time is None else iso(sealed.timestamp_time),
            "timestamp_note": sealed.timestamp_note,
            "timestamp_error": sealed.timestamp_error,
            "error": record.error,
            "changes": None if comparison is None else comparison.get("summary"),
        },
    )
    return capture


def get_capture(session: Session, capture_id: uuid.UUID) -> Capture:
    capture = session.get(Capture, capture_id)
    if capture is None:
        raise NotFound(f"no capture {capture_id}")
    return capture


def previous_capture(session: Session, target_id: uuid.UUID, *,
                     before: datetime | None = None) -> Capture | None:
    """The target's latest capture that loaded the page (of those started `before`), to
    compare a new one with, or to show which one a capture was compared with."""
    query = select(Capture).where(Capture.target_id == target_id,
                                  Capture.status != CaptureStatus.FAILED)
    if before is not None:
        query = query.where(Capture.started_at < before)
    return session.scalars(query.order_by(Capture.started_at.desc()).limit(1)).first()


def first_loaded_capture_ids(session: Session, target_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Of each of the targets, its earliest capture that loaded the page: the one with nothing
    before it to be compared with."""
    wanted = set(target_ids)
    if not wanted:
        return set()
    ranked = select(Capture.id, func.row_number().over(
        partition_by=Capture.target_id, order_by=(Capture.started_at, Capture.id)).label("n")
    ).where(Capture.target_id.in_(wanted), Capture.status != CaptureStatus.FAILED).subquery()
    return set(session.scalars(select(ranked.c.id).where(ranked.c.n == 1)))


@dataclass(frozen=True)
class SincePrevious:
    """Whether a capture differs from the one before it that loaded the page, as the worker
    found when it made the capture (stored with it, never compared again when read)."""

    # changed | unchanged | first (nothing before it loaded) | not compared (made before
    # comparisons were kept); None for a capture that did not load the page
    state: str | None
    summary: str | None  # the stored comparison's summary, "price changed; 1 new image"


def since_previous(session: Session, rows: Sequence[Capture]) -> dict[uuid.UUID, SincePrevious]:
    """For each of the captures, what changed since the capture before it, by capture id."""
    first = first_loaded_capture_ids(session, {c.target_id for c in rows})
    return {c.id: _since(c, c.id in first) for c in rows}


def _since(capture: Capture, is_first: bool) -> SincePrevious:
    if capture.status == CaptureStatus.FAILED:
        return SincePrevious(None, None)  # the page did not load: nothing to compare
    if capture.comparison is None:
        return SincePrevious("first" if is_first else "not compared", None)
    return SincePrevious("changed" if capture.comparison.get("changed") else "unchanged",
                         capture.comparison.get("summary"))


def stored_artifacts(store: BlobStore, rows: list[Artifact]) -> list[StoredArtifact]:
    return [StoredArtifact(a.kind, a.name or "", a.media_type, a.size, a.sha256,
                           store.locate(a.sha256), a.phash, a.dhash) for a in rows]


def artifacts_of(session: Session, capture_id: uuid.UUID) -> list[Artifact]:
    return list(session.scalars(
        select(Artifact).where(Artifact.capture_id == capture_id).order_by(Artifact.created_at)))
