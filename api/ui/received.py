"""Received material as the pages show it (a request's page, a case's page): plain values, each
with the link that downloads its bytes (and records that in the custody log)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from api.routes.received import content_link
from evidence import received
from evidence.models import Case, ReceivedFile


def received_views(session: Session, case: Case, *,
                   request_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """The case's received material (of one request), oldest first."""
    return views_of(session, case, received.received_of(session, case, request_id=request_id))


def views_of(session: Session, case: Case, rows: Sequence[ReceivedFile]) -> list[dict[str, Any]]:
    """The rows as the pages' tables show them, in the order given."""
    rows = list(rows)
    return [{**info, "received": r.received_at, "href": content_link(case.reference, r.id)}
            for r, info in zip(rows, received.described(session, rows), strict=True)]
