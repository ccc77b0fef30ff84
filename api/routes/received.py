"""Received material of a case: upload a file a platform (or another source) sent, list them,
download one's bytes (recorded in the custody log before the first byte leaves)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse

from api.deps import AppRuntime, CaseRef, CurrentUser, DbSession, get_runtime, quote_ref
from api.downloads import SHA256_HEADER, safe_filename, stream_stored
from api.schemas import ERROR_RESPONSES, ErrorRead
from api.schemas_requests import ReceivedRead
from api.uploads import FILE_FIELD, Upload, stream_upload
from evidence import cases, received
from evidence.models import Access, Case, ReceivedFile

router = APIRouter(tags=["received material"], responses=ERROR_RESPONSES)
# A platform's file is hostile input: it is only ever downloaded, never shown by a browser.
DOWNLOAD_MEDIA_TYPE = "application/octet-stream"
TRUE = frozenset({"1", "true", "yes", "on"})


async def posted_upload(request: Request) -> AsyncIterator[Upload]:
    """The multipart body streamed to a file in the home. A route lists it after the caller and
    the case: FastAPI settles those first, so no byte is kept for a stranger."""
    async for upload in stream_upload(request, get_runtime(request)):
        yield upload


Posted = Annotated[Upload, Depends(posted_upload)]


def writable_case(ref: CaseRef, session: DbSession, actor: CurrentUser) -> Case:
    return cases.case_for(session, actor, ref, need=Access.WRITE)


# Listed before `Posted`: a caller without write access is answered before the body is read.
WritableCase = Annotated[Case, Depends(writable_case)]


def received_reads(session: Any, rows: list[ReceivedFile], reference: str) -> list[ReceivedRead]:
    return [ReceivedRead(**info, content=content_link(reference, row.id))
            for row, info in zip(rows, received.described(session, rows), strict=True)]


def content_link(reference: str, file_id: uuid.UUID) -> str:
    return f"/api/cases/{quote_ref(reference)}/received/{file_id}/content"


def register_upload(session: Any, actor: Any, case: Any, upload: Upload, *, store: Any,
                    request: str | None) -> received.Registered:
    """Register the posted file with the form's fields (the API's and the page's form alike)."""
    assert upload.path is not None
    with upload.path.open("rb") as stream:
        return received.register(
            session, actor, case, stream, store=store, filename=upload.filename,
            received_at=received.parse_moment(upload.get("received_at")),
            via=upload.get("via"), request=request, source=upload.get("source") or None,
            via_detail=upload.get("via_detail") or None,
            platform_reference=upload.get("platform_reference") or None,
            declared_type=upload.content_type,
            fulfil=upload.get("fulfil").strip().lower() in TRUE)


@router.post(
    "/api/cases/{ref}/received", response_model=ReceivedRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": [FILE_FIELD, "received_at", "via"],
                   "properties": {
                       FILE_FIELD: {"type": "string", "format": "binary"},
                       "received_at": {"type": "string", "description": "When the unit "
                                       "received it: ISO 8601, UTC unless an offset is given."},
                       "via": {"type": "string", "enum": ["portal", "email", "medium", "other"]},
                       "via_detail": {"type": "string", "description": "How, for other."},
                       "request": {"type": "string", "description": "The request it answers "
                                   "(reference number or id)."},
                       "source": {"type": "string", "description": "Where it came from, "
                                  "when no request."},
                       "platform_reference": {"type": "string"},
                       "fulfil": {"type": "boolean", "description": "Also record the sent or "
                                  "acknowledged request as fulfilled, at received_at."}}}}}}},
    responses={403: {"model": ErrorRead, "description": "Needs write access."},
               409: {"model": ErrorRead, "description": "The same file was already registered "
                     "for the request (or source); the message names it."},
               413: {"model": ErrorRead, "description": "Over EVIDENCE_RECEIVED_MAX_BYTES."},
               415: {"model": ErrorRead, "description": "Not multipart/form-data."}},
)
def upload_received(case: WritableCase, session: DbSession, actor: CurrentUser,
                    runtime: AppRuntime, upload: Posted) -> ReceivedRead:
    """Keep a file the unit received: a platform's answer to a legal request (`request`), or
    material from another source (`source`). Its bytes are stored as they came, its SHA-256
    and a `material.received` entry recorded in the case's custody log."""
    done = register_upload(session, actor, case, upload, store=runtime.store,
                           request=upload.get("request") or None)
    return received_reads(session, [done.row], case.reference)[0]


@router.get("/api/cases/{ref}/received", response_model=list[ReceivedRead])
def list_received(
    ref: CaseRef, session: DbSession, actor: CurrentUser,
    request: Annotated[uuid.UUID | None, Query(description="Only what answers this request.")]
    = None,
) -> list[ReceivedRead]:
    """The case's received material, in the order it was received."""
    case = cases.case_for(session, actor, ref)
    rows = received.list_received(session, actor, case, request_id=request)
    return received_reads(session, rows, case.reference)


@router.get(
    "/api/cases/{ref}/received/{file_id}/content",
    response_class=StreamingResponse,
    responses={200: {"description": f"The file as received, as an attachment; its SHA-256 in "
                     f"`{SHA256_HEADER}` and `Repr-Digest`.",
                     "content": {DOWNLOAD_MEDIA_TYPE: {}}}},
)
def download_received(ref: CaseRef, file_id: uuid.UUID, session: DbSession, actor: CurrentUser,
                      runtime: AppRuntime) -> StreamingResponse:
    """Stream the stored bytes, re-hashed as they go; the download is recorded in the case's
    custody log first. Always an attachment of type application/octet-stream: a platform's
    file is never opened by the browser."""
    case = cases.case_for(session, actor, ref)
    row, reader = received.open_received(session, actor, case, file_id, store=runtime.store)
    return stream_stored(reader, sha256=row.sha256, size=row.size,
                         media_type=DOWNLOAD_MEDIA_TYPE,
                         filename=safe_filename(row.filename, f"received-{row.id}"))
