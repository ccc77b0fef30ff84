"""Received material: the files a platform sends back in answer to a legal request (subscriber
records, IP logs, content as CSV, JSON, PDF, ZIP), or that the unit gets from another source
(a witness, another agency), kept as evidence of the case.

`register` streams the file into the content-addressed blob store first, then writes its row
and one `material.received` custody entry in the caller's transaction: a crash between the two
leaves an unreferenced blob, never a row without its bytes. The same file registered twice for
the same request (or twice from the same source) is refused, naming the earlier registration.
Reading a file's bytes appends `material.downloaded` before the first byte leaves.

Access: registering needs write access to an open case; reading, read access. A case (or
file) the caller may not see is reported as not found. Registering marks the request nothing;
with `fulfil` a request that was sent or acknowledged becomes fulfilled in the same transaction.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence import cases, custody, requests
from evidence.blobstore import BlobStore, StoredBlob, VerifyingReader
from evidence.errors import AccessDenied, BlobMissing, Conflict, InvalidInput
from evidence.models import (
    Access,
    Case,
    LegalRequest,
    ReceivedFile,
    ReceivedVia,
    RequestStatus,
    User,
    utcnow,
)
from evidence.pagination import Page, paginate
from evidence.times import to_the_second

MAX_FILENAME = 255
MAX_SOURCE = 2000
MAX_DETAIL = 2000
MAX_PLATFORM_REFERENCE = 255
# Clock drift between a laptop and the server: a time this far ahead is still "now".
FUTURE_SLACK = timedelta(minutes=5)
# The request statuses `fulfil` moves on from.
FULFILLABLE = frozenset({RequestStatus.SENT, RequestStatus.ACKNOWLEDGED})
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]"
                         r"{0,126}$")
# What the first bytes say, before anything the sender declares.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
)
SNIFF_BYTES = 16


class DuplicateMaterial(Conflict):
    """The same file (by SHA-256) was already registered for that request or source."""


@dataclass(frozen=True)
class Registered:
    row: ReceivedFile
    request: LegalRequest | None
    created_blob: bool


def sniff(head: bytes, *, declared: str | None, filename: str) -> str:
    """The media type: from the file's first bytes where they say, else as the sender declared
    it, else from the name's extension; `application/octet-stream` when nothing says."""
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and _MEDIA_TYPE.match(declared) and declared != "application/octet-stream":
        return declared
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def clean_filename(name: str | None) -> str:
    """The original name as given, cut to MAX_FILENAME characters; it is only ever shown."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("the received file has no name; give the name it came under")
    if "\x00" in name:
        raise InvalidInput("the file name holds a NUL character; no file is named so")
    return name[:MAX_FILENAME]


def _text(value: str | None, limit: int, what: str) -> str | None:
    value = (value or "").strip()
    if "\x00" in value:
        raise InvalidInput(f"{what} holds a NUL character")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    return value or None


def parse_via(via: str) -> ReceivedVia:
    try:
        return ReceivedVia(via.strip().lower())
    except ValueError:
        raise InvalidInput(f"unknown way of receiving {via!r}; one of "
                           f"{', '.join(v.value for v in ReceivedVia)}") from None


class _Head:
    """A stream's first bytes kept for sniffing as they pass to the store, and its progress."""

    def __init__(self, stream: BinaryIO | Iterable[bytes], progress: Any = None) -> None:
        self.stream = stream
        self.head = b""
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        read = getattr(self.stream, "read", None)
        chunks: Iterable[bytes] = (iter(lambda: read(1024 * 1024), b"") if read is not None
                                   else self.stream)
        done = 0
        for chunk in chunks:
            if len(self.head) < SNIFF_BYTES:
                self.head += chunk[:SNIFF_BYTES - len(self.head)]
            done += len(chunk)
            if self.progress is not None:
                self.progress(done)
            yield chunk


def parse_moment(text: str) -> datetime:
    """When the unit received the file, as given at an edge (form, option): ISO 8601, a date and
    time, UTC unless it names its offset."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput("say when the unit received the file (received_at)")
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise InvalidInput(f"received_at {text[:40]!r} is not a date and time "
                           "(YYYY-MM-DDTHH:MM, UTC unless an offset is given)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_time(received_at: datetime, request: LegalRequest | None, now: datetime) -> datetime:
    if received_at.tzinfo is None:
        raise InvalidInput("the time of receipt must carry a time zone")
    received_at = received_at.astimezone(UTC)
    if received_at > now + FUTURE_SLACK:
        raise InvalidInput("the time of receipt is in the future")
    if request is not None and request.sent_at is not None and received_at < request.sent_at:
        raise InvalidInput(f"the time of receipt is before request {request.reference_number} "
                           f"was sent ({to_the_second(request.sent_at)})")
    return received_at


def _earlier(session: Session, case: Case, sha256: str, request: LegalRequest | None,
             source: str | None) -> ReceivedFile | None:
    query = select(ReceivedFile).where(ReceivedFile.case_id == case.id,
                                       ReceivedFile.sha256 == sha256)
    if request is not None:
        query = query.where(ReceivedFile.request_id == request.id)
    else:
        query = query.where(ReceivedFile.request_id.is_(None), ReceivedFile.source == source)
    return session.scalars(query.order_by(ReceivedFile.registered_at)).first()


def _request_of(session: Session, actor: User, case: Case,
                request_ref: str | uuid.UUID) -> LegalRequest:
    row, owner = requests.request_for(session, actor, request_ref, need=Access.WRITE)
    if owner.id != case.id:
        raise AccessDenied(f"no request {request_ref} in case {case.reference!r}")
    if row.sent_at is None:
        raise InvalidInput(f"request {row.reference_number} has not been sent ({row.status}); "
                           "material answers a request once it is sent")
    return row


def register(
    session: Session, actor: User, case: Case, stream: BinaryIO | Iterable[bytes], *,
    store: BlobStore, filename: str, received_at: datetime, via: str,
    request: str | uuid.UUID | None = None, source: str | None = None,
    via_detail: str | None = None, platform_reference: str | None = None,
    declared_type: str | None = None, fulfil: bool = False,
    progress: Any = None, now: datetime | None = None,
) -> Registered:
    """Keep one received file: the blob, then its row and `material.received` entry."""
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    now = now or utcnow()
    name = clean_filename(filename)
    how = parse_via(via)
    detail = _text(via_detail, MAX_DETAIL, "the way it was received")
    if how == ReceivedVia.OTHER and detail is None:
        raise InvalidInput("received 'other'wise: say how (via detail)")
    reference = _text(platform_reference, MAX_PLATFORM_REFERENCE, "the platform's reference")
    source = _text(source, MAX_SOURCE, "the source")
    row_request = None if request is None else _request_of(session, actor, case, request)
    if row_request is None and source is None:
        raise InvalidInput("material not tied to a request needs its source (who handed it "
                           "over, which agency)")
    if row_request is not None and source is not None:
        raise InvalidInput("material answering a request has the request as its source; give "
                           "one of the two")
    if fulfil and (row_request is None or row_request.status not in FULFILLABLE):
        raise InvalidInput("only a request that was sent or acknowledged can be marked "
                           "fulfilled with its material"
                           + ("" if row_request is None
                              else f"; {row_request.reference_number} is {row_request.status}"))
    when = _check_time(received_at, row_request, now)
    # The bytes first: content-addressed and idempotent, so a failure after it leaves only an
    # unreferenced blob, and one before it leaves nothing.
    head = _Head(stream, progress)
    blob: StoredBlob = store.put_stream(head)
    whose = (f"request {row_request.reference_number}" if row_request is not None
             else f"source {source!r}")
    earlier = _earlier(session, case, blob.sha256, row_request, source)
    if earlier is not None:
        raise DuplicateMaterial(
            f"this file (SHA-256 {blob.sha256}) was already registered for {whose} as "
            f"{earlier.filename!r} on {to_the_second(earlier.registered_at)} (id {earlier.id})")
    media_type = sniff(head.head, declared=declared_type, filename=name)
    row = ReceivedFile(
        case_id=case.id, request_id=None if row_request is None else row_request.id,
        source=source, sha256=blob.sha256, size=blob.size, filename=name,
        media_type=media_type, received_at=when, received_via=how.value, via_detail=detail,
        platform_reference=reference, registered_by_id=actor.id, registered_at=now,
    )
    # A registration of the same file for the same request or source that looked before this
    # one committed: the unique constraint (request) or index (source, migration 0016) refuses
    # this row, and only the savepoint is lost.
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise DuplicateMaterial(
            f"this file (SHA-256 {blob.sha256}) was registered for {whose} a moment ago, by "
            "another registration") from None
    custody.append(
        session, actor, action="material.received", case=case, object_type="received_file",
        object_id=row.id, sha256=blob.sha256,
        details={
            "filename": name, "filename_cut": len((filename or "").strip()) > MAX_FILENAME,
            "size": blob.size, "media_type": media_type,
            "request": None if row_request is None else row_request.reference_number,
            "request_id": None if row_request is None else str(row_request.id),
            "source": source, "received_at": requests.iso(when), "via": how.value,
            "via_detail": detail, "platform_reference": reference,
        },
    )
    if fulfil and row_request is not None:
        requests.change_status(session, actor, case, row_request.id, RequestStatus.FULFILLED,
                               at=when, platform_reference=reference, now=now)
    return Registered(row, row_request, blob.created)


# --- reading ----------------------------------------------------------------------------------


def list_received(session: Session, actor: User, case: Case, *,
                  request_id: uuid.UUID | None = None) -> list[ReceivedFile]:
    """The case's received material (of one request), in the order it was received."""
    cases.require_access(session, actor, case, Access.READ)
    return received_of(session, case, request_id=request_id)


def received_of(session: Session, case: Case, *,
                request_id: uuid.UUID | None = None) -> list[ReceivedFile]:
    """`list_received` without the access check, for a caller that made it (an export)."""
    query = select(ReceivedFile).where(ReceivedFile.case_id == case.id)
    if request_id is not None:
        query = query.where(ReceivedFile.request_id == request_id)
    return list(session.scalars(query.order_by(ReceivedFile.received_at,
                                               ReceivedFile.registered_at, ReceivedFile.id)))


def page_received(session: Session, case: Case, *, limit: int,
                  cursor: str | None = None) -> Page[ReceivedFile]:
    """A page of the case's received material, the newest received first."""
    return paginate(session, select(ReceivedFile).where(ReceivedFile.case_id == case.id),
                    key=(ReceivedFile.received_at, ReceivedFile.registered_at, ReceivedFile.id),
                    limit=limit, cursor=cursor, descending=True)


def count_received(session: Session, case: Case) -> int:
    return session.scalar(select(func.count()).select_from(ReceivedFile)
                          .where(ReceivedFile.case_id == case.id)) or 0


@dataclass(frozen=True)
class AnswersByTarget:
    """What a bundle of chosen targets would carry of the case's received material."""

    per_target: dict[uuid.UUID, int]  # files answering requests that concern the target
    elsewhere: int  # files from other sources: in a whole case's bundle only
    total: int


def answers_by_target(session: Session, case: Case) -> AnswersByTarget:
    """Per target, how many received files answer requests concerning it
    (`requests.request_targets`, the rule an export of chosen targets follows); the caller has
    checked access."""
    counts: dict[uuid.UUID | None, int] = {request_id: n for request_id, n in session.execute(
        select(ReceivedFile.request_id, func.count()).where(ReceivedFile.case_id == case.id)
        .group_by(ReceivedFile.request_id))}
    elsewhere = counts.pop(None, 0)
    per_target: dict[uuid.UUID, int] = {}
    for request_id, concerned in requests.request_targets(session, case).items():
        for target_id in concerned:
            per_target[target_id] = per_target.get(target_id, 0) + counts.get(request_id, 0)
    return AnswersByTarget(per_target, elsewhere, elsewhere + sum(counts.values()))


def references_of(session: Session, rows: Iterable[ReceivedFile]) -> dict[uuid.UUID, str]:
    """The reference number of each request the rows answer, in one query."""
    ids = {r.request_id for r in rows if r.request_id is not None}
    if not ids:
        return {}
    return {i: ref or str(i) for i, ref in session.execute(
        select(LegalRequest.id, LegalRequest.reference_number)
        .where(LegalRequest.id.in_(ids)))}


def registrars_of(session: Session, rows: Iterable[ReceivedFile]) -> dict[uuid.UUID, str]:
    """The name of each user who registered one of the rows, in one query."""
    ids = {r.registered_by_id for r in rows}
    if not ids:
        return {}
    return {i: name for i, name in session.execute(
        select(User.id, User.name).where(User.id.in_(ids)))}


def get_received(session: Session, actor: User, case: Case, file_id: uuid.UUID) -> ReceivedFile:
    cases.require_access(session, actor, case, Access.READ)
    row = session.scalars(select(ReceivedFile).where(ReceivedFile.id == file_id,
                                                     ReceivedFile.case_id == case.id)).first()
    if row is None:
        raise AccessDenied(f"no received file {file_id} in case {case.reference!r}")
    return row


def open_received(session: Session, actor: User, case: Case, file_id: uuid.UUID, *,
                  store: BlobStore) -> tuple[ReceivedFile, BinaryIO | VerifyingReader]:
    """Record the download in the case's custody log, then open the stored bytes (re-hashed as
    they stream)."""
    row = get_received(session, actor, case, file_id)
    if not store.exists(row.sha256):
        raise BlobMissing(f"the bytes of {row.filename!r} ({row.sha256}) are missing from the "
                          "blob store")
    custody.append(session, actor, action="material.downloaded", case=case,
                   object_type="received_file", object_id=row.id, sha256=row.sha256,
                   details={"filename": row.filename, "size": row.size})
    return row, store.open(row.sha256, verify=True)


def described(session: Session, rows: list[ReceivedFile]) -> list[dict[str, Any]]:
    """`describe` of each row, with its request's reference and its registrar's name looked up
    in two queries."""
    refs, names = references_of(session, rows), registrars_of(session, rows)
    return [describe(r, request_reference=None if r.request_id is None
                     else refs.get(r.request_id), registered_by=names.get(r.registered_by_id))
            for r in rows]


def describe(row: ReceivedFile, *, request_reference: str | None,
             registered_by: str | None) -> dict[str, Any]:
    """A received file as JSON-ready data for the CLI and the API."""
    return {
        "id": str(row.id), "request_id": None if row.request_id is None else str(row.request_id),
        "request": request_reference, "source": row.source, "filename": row.filename,
        "sha256": row.sha256, "size": row.size, "media_type": row.media_type,
        "received_at": requests.iso(row.received_at), "via": row.received_via,
        "via_detail": row.via_detail, "platform_reference": row.platform_reference,
        "registered_by": registered_by, "registered_at": requests.iso(row.registered_at),
    }
