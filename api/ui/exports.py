"""Pages for prosecutors: a case's evidence bundles (export, list, download).

The same services as `api/routes/exports.py`: `bundles.list_exports` for the list (anyone who may
read the case), `bundles.authorise_export` to decide whether the form and the download links are
shown, and `bundles.export_and_keep` to make a bundle, which decides again and writes the
custody entries. Bundles are downloaded through the API's route, which takes the login cookie.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from api.deps import AppRuntime, DbSession, case_reference, quote_ref
from api.ui.rendering import PageError, render
from api.ui.routes import CsrfField, Cursor, Viewer, check_session_form, see_other
from evidence import accounts, bundles, case_reads, cases, received, targets
from evidence.errors import AccessDenied, EvidenceError, InvalidInput, PermissionDenied
from evidence.home import Runtime
from evidence.models import Case, Target, User
from evidence.targets import TargetName

router = APIRouter(include_in_schema=False)

# As many targets as the API takes in one export; a case with more is exported whole.
MAX_CHOICES = 1000
_TARGETS_PER_QUERY = 200


@dataclass(frozen=True)
class TargetChoice:
    id: str
    name: TargetName  # the URL, or "@handle on Platform" for an account target
    reason: str
    # Its newest capture as plain values (status, http_status, started_at): a refused export
    # rolls back, and the page shown then cannot read an ORM row.
    capture: dict[str, Any] | None
    received: int  # received files answering requests about it, which its bundle carries


@dataclass(frozen=True)
class ExportView:
    id: str
    created_at: datetime
    by: str
    targets: list[TargetName] | None  # the chosen targets; None when all of the case's
    status: str  # complete | failed | running | interrupted (export_leases.status)
    note: str | None  # why it did not complete
    exhibits: int | None
    received: int | None  # received files carried; None for bundles made before it was said
    received_left_out: int | None
    size: int | None
    sha256: str | None
    kept: bool  # in the store, to download; not so when `evidence export` wrote it to a file
    download: str | None  # only for those who may download it


def _download(reference: str, export_id: uuid.UUID) -> str:
    return f"/api/cases/{quote_ref(reference)}/exports/{export_id}/bundle"


def _may_export(session: Session, viewer: User, case: Case) -> bool:
    try:
        bundles.authorise_export(session, viewer, case)
    except PermissionDenied:
        return False
    return True


def _choices(session: Session, case: Case,
             answers: received.AnswersByTarget) -> list[TargetChoice]:
    """The case's targets in the order flagged, as many as one export may name."""
    found: list[Target] = []
    cursor: str | None = None
    while len(found) < MAX_CHOICES:
        page = targets.page_targets(session, case, limit=_TARGETS_PER_QUERY, cursor=cursor)
        found += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    found = found[:MAX_CHOICES]
    latest = case_reads.latest_of(session, case, [t.id for t in found])
    named = accounts.target_names(session, found)
    choices = []
    for t in found:
        capture = latest[t.id].capture
        choices.append(TargetChoice(
            id=str(t.id), name=named[t.id], reason=t.reason,
            capture=None if capture is None else {
                "status": capture.status, "http_status": capture.http_status,
                "started_at": capture.started_at},
            received=answers.per_target.get(t.id, 0)))
    return choices


EXPORTS_PER_PAGE = 25


def _export_views(session: Session, runtime: Runtime, viewer: User, case: Case, *,
                  may_download: bool, named: dict[str, TargetName],
                  cursor: str | None) -> tuple[list[ExportView], str | None]:
    """A page of the case's exports as the page shows them, and the cursor of the next."""
    page = bundles.list_exports(session, viewer, case.reference, limit=EXPORTS_PER_PAGE,
                                cursor=cursor)
    names = case_reads.user_names(session, [x.export.requested_by_id for x in page.items])
    views = []
    for listed in page.items:
        e = listed.export
        details = listed.ending.get("details") or {}
        exhibits = details.get("exhibits")
        carried, left_out = details.get("received"), details.get("received_left_out")
        kept = e.bundle_sha256 is not None and runtime.store.exists(e.bundle_sha256)
        views.append(ExportView(
            id=str(e.id), created_at=e.created_at, by=names[e.requested_by_id],
            # A target past the first MAX_CHOICES, by its id as before.
            targets=None if not e.target_ids else [named.get(str(t)) or TargetName(url=str(t))
                                                   for t in e.target_ids],
            status=listed.status, note=listed.note,
            exhibits=exhibits if isinstance(exhibits, int) else None,
            received=carried if isinstance(carried, int) else None,
            received_left_out=left_out if isinstance(left_out, int) else None,
            size=e.size, sha256=e.bundle_sha256, kept=kept,
            download=_download(case.reference, e.id) if may_download and kept else None,
        ))
    return views, page.next_cursor


def _page_context(session: Session, runtime: Runtime, viewer: User, case: Case, *,
                  made: uuid.UUID | None = None, ticked: Sequence[str] = (),
                  cursor: str | None = None) -> dict[str, Any]:
    """What the exports page shows, as plain values (a refused form is shown after rollback)."""
    may_export = _may_export(session, viewer, case)
    answers = received.answers_by_target(session, case)
    choices = _choices(session, case, answers)
    named = {c.id: c.name for c in choices}
    exports, next_cursor = _export_views(session, runtime, viewer, case,
                                         may_download=may_export, named=named, cursor=cursor)
    return {
        "case": {"reference": case.reference, "title": case.title, "status": case.status},
        "may_export": may_export,
        "exports": exports, "exports_next": next_cursor, "exports_cursor": cursor,
        "choices": choices if may_export else [],
        "more_targets": may_export and len(choices) >= MAX_CHOICES,
        "received_total": answers.total, "received_elsewhere": answers.elsewhere,
        "ticked": set(ticked),
        "made": None if made is None else str(made),
        "key_id": runtime.signer.key_id,
        "error": None,
    }


@router.get("/cases/{ref}/exports", response_class=HTMLResponse)
def exports_page(request: Request, ref: str, session: DbSession, viewer: Viewer,
                 runtime: AppRuntime,
                 made: Annotated[uuid.UUID | None, Query()] = None,
                 cursor: Cursor = None) -> Response:
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    return render(request, "exports.html",
                  _page_context(session, runtime, viewer, case, made=made, cursor=cursor),
                  viewer=viewer)


def _chosen_targets(scope: str, ticked: Sequence[str]) -> list[uuid.UUID] | None:
    """The targets the form names: None for all of the case's."""
    if scope == "all":
        return None
    if scope != "chosen":
        raise InvalidInput("choose whether to export all targets or the ticked ones")
    if not ticked:
        raise InvalidInput("tick at least one target, or export all targets")
    if len(ticked) > MAX_CHOICES:
        raise InvalidInput(f"tick at most {MAX_CHOICES:,} targets, or export all targets")
    try:
        return list(dict.fromkeys(uuid.UUID(t) for t in ticked))
    except ValueError:
        raise InvalidInput("a ticked target is not one of this case's; reload the page") from None


@router.post("/cases/{ref}/exports", response_class=HTMLResponse)
def make_export(
    request: Request, ref: str, session: DbSession, viewer: Viewer, runtime: AppRuntime,
    csrf_token: CsrfField = None,
    scope: Annotated[str, Form(max_length=10)] = "",
    target: Annotated[list[str] | None, Form()] = None,
) -> Response:
    check_session_form(request, csrf_token)
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    ticked = target or []
    name = viewer.name
    try:
        chosen = _chosen_targets(scope, ticked)
        # The export opens its own transactions; on SQLite this request's would block them.
        session.commit()
        result = bundles.export_and_keep(runtime, name, reference=case.reference,
                                         target_ids=chosen)
    except AccessDenied as exc:
        if exc.status_code == 404:
            raise  # the same page as for a case that does not exist
        message, status = exc.message, exc.status_code
    except EvidenceError as exc:
        # Nothing ticked, "no capture to export", "needs the prosecutor role", a blob that no
        # longer hashes ...
        message, status = exc.message, exc.status_code
    else:
        return see_other(f"/cases/{quote_ref(case.reference)}/exports?made={result.export_id}"
                          f"#export-{result.export_id}")
    # Raised, so this request's transaction rolls back; the page shows what the export left.
    again = _page_context(session, runtime, viewer, case, ticked=ticked)
    raise PageError(f"No bundle was made: {message.rstrip('.')}.", status, template="exports.html",
                    context=again, viewer=viewer)
