"""Reading captures and their artifacts as a member of their case.

Looking at a capture and taking a copy of its bytes are accesses to evidence, so each one
appends a custody entry (who read what, when) in the caller's transaction. A download's entry
is written before any byte leaves: no entry, no copy.
"""

from __future__ import annotations

import uuid
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import cases, custody
from evidence.blobstore import BlobStore, VerifyingReader
from evidence.errors import AccessDenied, BlobMissing
from evidence.models import Access, Artifact, Capture, Case, User
from evidence.pagination import Page, paginate


def page_captures(
    session: Session,
    case: Case,
    *,
    target_id: uuid.UUID | None = None,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> Page[Capture]:
    """One page of the case's captures (of one target), oldest first unless `newest_first`:
    a watched page captured every hour has thousands."""
    query = select(Capture).where(Capture.case_id == case.id)
    if target_id is not None:
        query = query.where(Capture.target_id == target_id)
    return paginate(session, query, key=(Capture.started_at, Capture.id), limit=limit,
                    cursor=cursor, descending=newest_first)


def count_captures(session: Session, case: Case, target_id: uuid.UUID) -> int:
    """How many captures the target has."""
    return session.scalar(
        select(func.count())
        .where(Capture.case_id == case.id, Capture.target_id == target_id)) or 0


def get_case_capture(session: Session, case: Case, capture_id: uuid.UUID) -> Capture:
    """The case's capture; a capture of another case is not found."""
    capture = session.scalars(
        select(Capture).where(Capture.id == capture_id, Capture.case_id == case.id)
    ).first()
    if capture is None:
        raise AccessDenied(f"no capture {capture_id} in case {case.reference!r}")
    return capture


def view_capture(
    session: Session, actor: User, case: Case, capture_id: uuid.UUID
) -> tuple[Capture, list[Artifact]]:
    """The capture with its artifacts; the viewing is recorded in the case's custody log."""
    cases.require_access(session, actor, case, Access.READ)
    capture = get_case_capture(session, case, capture_id)
    artifacts = list(session.scalars(
        select(Artifact).where(Artifact.capture_id == capture.id)
        .order_by(Artifact.created_at, Artifact.id)
    ))
    custody.append(session, actor, action="capture.viewed", case=case, object_type="capture",
                   object_id=capture.id, sha256=capture.manifest_sha256)
    return capture, artifacts


def open_artifact(
    session: Session,
    actor: User,
    case: Case,
    *,
    capture_id: uuid.UUID,
    artifact_id: uuid.UUID,
    store: BlobStore,
) -> tuple[Artifact, BinaryIO | VerifyingReader]:
    """Record the download, then open the stored bytes; they are re-hashed as they stream."""
    cases.require_access(session, actor, case, Access.READ)
    capture = get_case_capture(session, case, capture_id)
    artifact = session.scalars(
        select(Artifact).where(Artifact.id == artifact_id, Artifact.capture_id == capture.id,
                               Artifact.case_id == case.id)
    ).first()
    if artifact is None:
        raise AccessDenied(f"no artifact {artifact_id} in capture {capture_id}")
    if not store.exists(artifact.sha256):
        raise BlobMissing(f"the bytes of artifact {artifact_id} ({artifact.sha256}) are missing "
                          "from the blob store")
    custody.append(
        session, actor, action="artifact.downloaded", case=case, object_type="artifact",
        object_id=artifact.id, sha256=artifact.sha256,
        details={"capture": str(capture.id), "kind": artifact.kind, "name": artifact.name,
                 "size": artifact.size},
    )
    return artifact, store.open(artifact.sha256, verify=True)
