"""Legal requests of a case: generate, list, show, record their lifecycle, download documents;
and across the caller's cases, what is due and how each platform answers."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from api.deps import AppRuntime, CaseRef, CurrentUser, DbSession, PageParams, quote_ref
from api.downloads import SHA256_HEADER, safe_filename, stream_stored
from api.schemas import ERROR_RESPONSES, ErrorRead, PageRead
from api.schemas_requests import (
    DueRead,
    PlatformStatsRead,
    RequestCreate,
    RequestRead,
    RequestStatusChange,
)
from evidence import cases, requests
from evidence.models import Access, LegalRequest

router = APIRouter(tags=["requests"], responses=ERROR_RESPONSES)
WRITE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorRead, "description": "Needs write access (approving: the supervisor, "
          "prosecutor or admin role)."},
    409: {"model": ErrorRead, "description": "Not a step the request can take now, or "
          "FourEyesViolation: its drafter may not approve it."},
}


def _read(row: LegalRequest, reference: str) -> RequestRead:
    info = requests.describe(row, reference)
    document = f"/api/cases/{quote_ref(reference)}/requests/{row.id}/document"
    return RequestRead(**info, document=document)


@router.post("/api/cases/{ref}/requests", response_model=RequestRead,
             status_code=status.HTTP_201_CREATED, responses=WRITE)
def create_request(ref: CaseRef, body: RequestCreate, session: DbSession, actor: CurrentUser,
                   runtime: AppRuntime) -> RequestRead:
    """Fill a request from the case, check it (every problem listed at once, 422), and keep
    its PDF and JSON as evidence; the generation is recorded in the case's custody log."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    made = requests.generate(
        session, actor, case, store=runtime.store, settings=runtime.settings, kind=body.kind,
        platform=body.platform, target_ids=body.targets, fields=body.fields,
        categories=body.categories, date_from=body.date_from, date_to=body.date_to,
        do_not_notify=body.do_not_notify, emergency=body.emergency,
    )
    return _read(made.request, case.reference)


@router.get("/api/cases/{ref}/requests", response_model=PageRead[RequestRead])
def list_requests(ref: CaseRef, session: DbSession, actor: CurrentUser,
                  paging: PageParams) -> PageRead[RequestRead]:
    """The case's legal requests, oldest first."""
    case = cases.case_for(session, actor, ref)
    page = requests.page_requests(session, actor, case, limit=paging.limit, cursor=paging.cursor)
    return PageRead[RequestRead](items=[_read(r, case.reference) for r in page.items],
                                 next=paging.next_link(page.next_cursor))


@router.get("/api/cases/{ref}/requests/{request_id}", response_model=RequestRead)
def show_request(ref: CaseRef, request_id: uuid.UUID, session: DbSession,
                 actor: CurrentUser) -> RequestRead:
    """One request: status, deadlines, the platform's reference and answer."""
    case = cases.case_for(session, actor, ref)
    return _read(requests.get_request(session, actor, case, request_id), case.reference)


@router.post("/api/cases/{ref}/requests/{request_id}/status", response_model=RequestRead,
             responses=WRITE)
def change_status(ref: CaseRef, request_id: uuid.UUID, body: RequestStatusChange,
                  session: DbSession, actor: CurrentUser) -> RequestRead:
    """Record the request's next step (draft -> approved -> sent -> acknowledged -> fulfilled |
    refused | expired; draft or approved -> withdrawn, with the `reason`); each step is a
    custody entry."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    row = requests.change_status(session, actor, case, request_id, body.status,
                                 platform_reference=body.platform_reference,
                                 answer=body.answer, refusal=body.refusal, at=body.at,
                                 reason=body.reason)
    return _read(row, case.reference)


@router.post("/api/cases/{ref}/requests/{request_id}/extension", response_model=RequestRead,
             status_code=status.HTTP_201_CREATED, responses=WRITE)
def extend_request(ref: CaseRef, request_id: uuid.UUID, session: DbSession,
                   actor: CurrentUser, runtime: AppRuntime) -> RequestRead:
    """Generate the extension (EPOC-PR: Annex VI) or renewal of a sent preservation request
    from the original, as a new draft."""
    case = cases.case_for(session, actor, ref, need=Access.WRITE)
    row = requests.get_request(session, actor, case, request_id, need=Access.WRITE)
    made = requests.extend(session, actor, row.id, store=runtime.store)
    return _read(made.request, case.reference)


@router.get(
    "/api/cases/{ref}/requests/{request_id}/document",
    response_class=StreamingResponse,
    responses={200: {"description": f"The stored document; its SHA-256 in `{SHA256_HEADER}` "
                     "(hex) and `Repr-Digest` (RFC 9530).",
                     "content": {"application/pdf": {}, "application/json": {}}}},
)
def download_document(
    ref: CaseRef, request_id: uuid.UUID, session: DbSession, actor: CurrentUser,
    runtime: AppRuntime,
    format: Annotated[Literal["pdf", "json"], Query(description="pdf (default) or json")] = (
        "pdf"),
) -> StreamingResponse:
    """Stream the request's PDF (or JSON) as stored, re-hashed as it goes; the download is
    recorded in the case's custody log before the first byte is sent."""
    case = cases.case_for(session, actor, ref)
    kind = requests.PDF_KIND if format == "pdf" else requests.JSON_KIND
    artifact, reader = requests.open_document(session, actor, case, request_id,
                                              store=runtime.store, kind=kind)
    return stream_stored(reader, sha256=artifact.sha256, size=artifact.size,
                         media_type=artifact.media_type,
                         filename=safe_filename(artifact.name, kind))


@router.get("/api/requests/due", response_model=list[DueRead])
def due_requests(
    session: DbSession, actor: CurrentUser,
    within: Annotated[str, Query(max_length=10, description="How far ahead: 14d, 36h, 2w.")] = (
        "14d"),
) -> list[DueRead]:
    """Deadlines that fall within the period (overdue ones too) in the cases you see."""
    items = requests.due(session, actor, within=requests.parse_within(within))
    return [DueRead(**i.to_dict()) for i in items]


@router.get("/api/requests/stats", response_model=list[PlatformStatsRead])
def request_stats(session: DbSession, actor: CurrentUser) -> list[PlatformStatsRead]:
    """Per platform, over the cases you see: requests by status, median response times."""
    return [PlatformStatsRead(**s.to_dict()) for s in requests.stats(session, actor)]
