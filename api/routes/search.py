"""Search across the caller's cases: captured text, and images that look like a given one.

These routes are not under one case: every answer holds only what the caller's memberships let
them see (an auditor sees nothing), and the search itself is recorded in the custody log.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from api.deps import CurrentUser, DbSession, PageParams, quote_ref
from api.schemas import (
    ERROR_RESPONSES,
    ErrorRead,
    PageRead,
    SearchHitRead,
    SimilarImageRead,
    SimilarImagesRead,
)
from capture.phash import hash_bytes
from evidence import cases, search
from evidence.errors import InvalidInput
from legal_forms.platforms import Registry, UnknownPlatform, load_registry

router = APIRouter(tags=["search"], responses=ERROR_RESPONSES)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# What a multipart upload adds to the image (boundaries, part headers, the other fields); the
# body limit in front (api/limits.py) refuses anything larger before it is spooled.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
READ_CHUNK = 1024 * 1024


@cache
def _registry() -> Registry:
    # The platform registry is data shipped with the code, read once per process.
    return load_registry()


def _hosts_of(platform: str) -> list[str]:
    try:
        found = _registry().get(platform)
    except UnknownPlatform as exc:
        raise InvalidInput(exc.message) from exc
    return list(found.hosts)


def _platform_of(host: str | None) -> str | None:
    if host is None:
        return None
    found = _registry().platform_for_host(host)
    return None if found is None else found.name


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _capture_link(reference: str, capture_id: uuid.UUID | None) -> str | None:
    if capture_id is None:
        return None
    return f"/api/cases/{quote_ref(reference)}/captures/{capture_id}"


@router.get("/api/search", response_model=PageRead[SearchHitRead])
def search_text(
    session: DbSession, actor: CurrentUser, paging: PageParams,
    q: Annotated[str, Query(min_length=1, max_length=search.MAX_QUERY_CHARS,
                            description='Words (all must match), "a phrase", a trailing * for '
                            "a prefix, OR between alternatives. Arabic, Persian and Latin "
                            "spelling variants and diacritics are matched alike.")],
    case: Annotated[str | None, Query(max_length=100, description="Only this case.")] = None,
    platform: Annotated[str | None, Query(max_length=64,
                                          description="Only captures of this platform's hosts "
                                          "(`evidence platforms list`).")] = None,
    since: Annotated[datetime | None, Query(alias="from",
                                            description="Captured at or after (UTC if no "
                                            "offset).")] = None,
    until: Annotated[datetime | None, Query(alias="to",
                                            description="Captured before (UTC if no "
                                            "offset).")] = None,
) -> PageRead[SearchHitRead]:
    """Captures whose text matches, newest first, from the cases you are a member of."""
    scope = None if case is None else cases.case_for(session, actor, case)
    hosts = None if platform is None else _hosts_of(platform)
    results = search.search_text(session, actor, q, case=scope, hosts=hosts, since=_utc(since),
                                 until=_utc(until), limit=paging.limit, cursor=paging.cursor)
    return PageRead[SearchHitRead](
        items=[SearchHitRead(capture_id=h.capture_id, case=h.case_reference, url=h.url,
                             host=h.host, platform=_platform_of(h.host),
                             captured_at=h.captured_at, snippet=h.snippet,
                             highlights=h.highlights,
                             capture=f"/api/cases/{quote_ref(h.case_reference)}/captures/"
                                     f"{h.capture_id}")
               for h in results.items],
        next=paging.next_link(results.next_cursor),
    )


def _images_read(results: search.ImageResults) -> SimilarImagesRead:
    return SimilarImagesRead(
        phash=results.phash, distance=results.distance, more=results.more,
        items=[SimilarImageRead(artifact_id=h.artifact_id, capture_id=h.capture_id,
                                case=h.case_reference, kind=h.kind, phash=h.phash,
                                distance=h.distance, url=h.url, captured_at=h.captured_at,
                                capture=_capture_link(h.case_reference, h.capture_id))
               for h in results.items],
    )


Distance = Annotated[int, Query(ge=0, le=search.MAX_DISTANCE,
                                description="Largest Hamming distance between pHashes.")]
Limit = Annotated[int, Query(ge=1, le=200, description="Most images to return.")]


@router.get("/api/images/similar", response_model=SimilarImagesRead)
def similar_to_artifact(
    session: DbSession, actor: CurrentUser,
    artifact: Annotated[uuid.UUID, Query(description="An image artifact you can see.")],
    distance: Distance = search.DEFAULT_DISTANCE,
    limit: Limit = 50,
) -> SimilarImagesRead:
    """Images in your cases that look like this artifact (the same advert posted again)."""
    return _images_read(search.similar_images(session, actor, artifact_id=artifact,
                                              distance=distance, limit=limit))


@router.post("/api/images/similar", response_model=SimilarImagesRead,
             responses={413: {"model": ErrorRead, "description": "The image is too large."}})
def similar_to_upload(
    session: DbSession, actor: CurrentUser,
    image: Annotated[UploadFile, File(description="An image (PNG, JPEG, WebP, GIF ...), at "
                                                  "most 20 MB.")],
    distance: Distance = search.DEFAULT_DISTANCE,
    limit: Limit = 50,
) -> SimilarImagesRead:
    """Images in your cases that look like the uploaded one. The upload is hashed and
    discarded, never stored."""
    data = image.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"the image is over {MAX_UPLOAD_BYTES} bytes", status_code=413)
    hashed = hash_bytes(data)
    if hashed.hashes is None:
        raise InvalidInput(f"not an image that can be hashed: {hashed.error}")
    return _images_read(search.similar_images(session, actor, phash=hashed.hashes.phash,
                                              distance=distance, limit=limit))
