"""Captures of a case: list, detail with artifacts, steps and changes, artifact download."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import AppRuntime, CaseRef, CurrentUser, DbSession, PageParams, quote_ref
from api.downloads import SHA256_HEADER, safe_filename, stream_stored
from api.schemas import (
    ERROR_RESPONSES,
    ArtifactRead,
    CaptureDetail,
    CaptureSummary,
    PageRead,
    b64,
)
from evidence import capture_reads, captures, cases

router = APIRouter(prefix="/api/cases/{ref}/captures", tags=["captures"],
                   responses=ERROR_RESPONSES)


@router.get("", response_model=PageRead[CaptureSummary])
def list_captures(
    ref: CaseRef, session: DbSession, actor: CurrentUser, paging: PageParams,
    target: Annotated[uuid.UUID | None, Query(description="Only this target's.")] = None,
    newest_first: Annotated[bool, Query(description="The newest first.")] = False,
) -> PageRead[CaptureSummary]:
    """The case's captures, oldest first (or newest first)."""
    case = cases.case_for(session, actor, ref)
    page = capture_reads.page_captures(session, case, target_id=target, limit=paging.limit,
                                       cursor=paging.cursor, newest_first=newest_first)
    since = captures.since_previous(session, page.items)
    return PageRead[CaptureSummary](items=[CaptureSummary.of(c, since[c.id]) for c in page.items],
                                    next=paging.next_link(page.next_cursor))


@router.get("/{capture_id}", response_model=CaptureDetail)
def show_capture(ref: CaseRef, capture_id: uuid.UUID, session: DbSession,
                 actor: CurrentUser) -> CaptureDetail:
    """One capture: what it established, each step's outcome, its artifacts and the changes
    since the previous capture. The viewing is recorded in the case's custody log."""
    case = cases.case_for(session, actor, ref)
    capture, artifacts = capture_reads.view_capture(session, actor, case, capture_id)
    base = f"/api/cases/{quote_ref(case.reference)}/captures/{capture.id}/artifacts"
    since = captures.since_previous(session, [capture])
    summary = CaptureSummary.of(capture, since[capture.id]).model_dump()
    return CaptureDetail(
        **summary,
        redirect_chain=capture.redirect_chain, remote_ip=capture.remote_ip,
        remote_port=capture.remote_port, tls_certificates=capture.tls_certificates,
        tool_version=capture.tool_version, browser_version=capture.browser_version,
        user_agent=capture.user_agent, viewport=capture.viewport,
        worker_host=capture.worker_host, steps=capture.steps, error=capture.error,
        key_id=capture.key_id, signature=b64(capture.signature),
        timestamp_time=capture.timestamp_time, timestamp_authority=capture.timestamp_authority,
        comparison=capture.comparison,
        artifacts=[
            ArtifactRead(id=a.id, kind=a.kind, name=a.name, media_type=a.media_type,
                         size=a.size, sha256=a.sha256, phash=a.phash, dhash=a.dhash,
                         created_at=a.created_at, download=f"{base}/{a.id}")
            for a in artifacts
        ],
    )


@router.get(
    "/{capture_id}/artifacts/{artifact_id}",
    response_class=StreamingResponse,
    responses={200: {"description": f"The stored bytes; their SHA-256 in `{SHA256_HEADER}` "
                     "(hex) and `Repr-Digest` (RFC 9530).",
                     "content": {"application/octet-stream": {}}}},
)
def download_artifact(ref: CaseRef, capture_id: uuid.UUID, artifact_id: uuid.UUID,
                      session: DbSession, actor: CurrentUser, runtime: AppRuntime) -> (
    StreamingResponse
):
    """Stream an artifact's stored bytes, re-hashed as they go; the download is recorded (who,
    what, when) in the case's custody log before the first byte is sent."""
    case = cases.case_for(session, actor, ref)
    artifact, reader = capture_reads.open_artifact(
        session, actor, case, capture_id=capture_id, artifact_id=artifact_id,
        store=runtime.store,
    )

    return stream_stored(reader, sha256=artifact.sha256, size=artifact.size,
                         media_type=artifact.media_type,
                         filename=safe_filename(artifact.name, artifact.kind))
