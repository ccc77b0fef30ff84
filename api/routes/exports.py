"""Evidence bundles of a case over HTTP: export (prosecutors, admins or the case's managers),
list, and download. The bundle is the same as `evidence export` writes; it is kept in the blob
store and served by its SHA-256, re-hashed as it streams."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AppRuntime, CaseRef, CurrentUser, DbSession, PageParams, quote_ref
from api.downloads import SHA256_HEADER, stream_stored
from api.schemas import ERROR_RESPONSES, ErrorRead, PageRead
from evidence import bundles, export_leases

router = APIRouter(prefix="/api/cases/{ref}/exports", tags=["exports"],
                   responses=ERROR_RESPONSES)


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"targets": None},
        {"targets": ["7d0c9c2e-3f5e-4d61-9a52-2a9f0f0c1b11"]},
    ]})

    targets: list[uuid.UUID] | None = Field(
        default=None, max_length=1000,
        description="Only these targets' captures and the received material answering legal "
        "requests about them; the whole case when absent.")


class ExportRead(BaseModel):
    id: uuid.UUID
    created_at: datetime
    target_ids: list[str] | None
    status: export_leases.ExportStatus = Field(
        description="`interrupted`: the process writing it stopped (its lease ran out) and the "
        "server has not yet recorded the failure, or it never ended.")
    note: str | None = Field(description="Why it did not complete.")
    bundle_sha256: str | None = Field(description="Null unless complete.")
    size: int | None
    download: str | None


class ExportDone(BaseModel):
    id: uuid.UUID
    bundle_sha256: str
    size: int
    exhibits: int
    received: int = Field(description="Received files the bundle carries: all of the case's, or "
                          "for chosen targets those answering legal requests about them.")
    received_left_out: int = Field(description="Received files of the case the bundle leaves "
                                   "out (listed in its bundle.json and report).")
    custody_entries: int
    checkpoint_size: int
    download: str


def _download(ref: str, export_id: uuid.UUID) -> str:
    return f"/api/cases/{quote_ref(ref)}/exports/{export_id}/bundle"


@router.post("", response_model=ExportDone, status_code=status.HTTP_201_CREATED,
             responses={403: {"description": "Needs the prosecutor role or manage access."},
                        409: {"description": "The custody log does not verify: no bundle "
                                             "is made (the message names the first entry "
                                             "that breaks)."},
                        422: {"description": "The case has no capture to export."}})
def create_export(ref: CaseRef, body: ExportCreate, session: DbSession, actor: CurrentUser,
                  runtime: AppRuntime) -> ExportDone:
    """Write the case's evidence bundle now and keep it for download. It runs in this request;
    a large case takes as long as reading its evidence once."""
    name = actor.name
    # The export opens its own transactions; on SQLite this request's would block them.
    session.commit()
    result = bundles.export_and_keep(runtime, name, reference=ref, target_ids=body.targets)
    return ExportDone(id=result.export_id, bundle_sha256=result.sha256, size=result.size,
                      exhibits=result.exhibits, received=result.received,
                      received_left_out=result.received_left_out,
                      custody_entries=result.entries,
                      checkpoint_size=result.checkpoint_size,
                      download=_download(ref, result.export_id))


@router.get("", response_model=PageRead[ExportRead])
def list_exports(ref: CaseRef, session: DbSession, actor: CurrentUser,
                 paging: PageParams) -> PageRead[ExportRead]:
    """The case's exports, newest first, with how each stands."""
    page = bundles.list_exports(session, actor, ref, limit=paging.limit, cursor=paging.cursor)
    listed = []
    for x in page.items:
        e = x.export
        listed.append(ExportRead(
            id=e.id, created_at=e.created_at, target_ids=e.target_ids, status=x.status,
            note=x.note, bundle_sha256=e.bundle_sha256, size=e.size,
            download=None if e.bundle_sha256 is None else _download(ref, e.id)))
    return PageRead[ExportRead](items=listed, next=paging.next_link(page.next_cursor))


@router.get("/{export_id}/bundle", response_class=StreamingResponse, responses={
    200: {"description": f"The bundle (a ZIP); its SHA-256 in `{SHA256_HEADER}`.",
          "content": {"application/zip": {}}},
    403: {"model": ErrorRead, "description": "Needs the prosecutor role or manage access."}})
def download_bundle(ref: CaseRef, export_id: uuid.UUID, session: DbSession, actor: CurrentUser,
                    runtime: AppRuntime) -> StreamingResponse:
    """Stream a kept bundle; the download is recorded in the case's custody log first."""
    case, export, reader = bundles.open_bundle(session, actor, ref, export_id, runtime.store)
    assert export.bundle_sha256 is not None
    return stream_stored(reader, sha256=export.bundle_sha256, size=export.size,
                         media_type="application/zip",
                         filename=f"{bundles.bundle_name(case.reference, export.created_at)}.zip")
