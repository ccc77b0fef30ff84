"""The search page: captured text across the viewer's cases, as `GET /api/search` answers it.

The same service does the work, so the same rules hold: only the cases the viewer is a member
of, nothing for an auditor, and every search recorded in the custody log with what it found.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import DbSession, quote_ref
from api.ui.rendering import render, sentence
from api.ui.routes import Cursor, EvidenceViewer
from evidence import accounts, cases, search
from evidence.errors import AccessDenied, InvalidInput

router = APIRouter(include_in_schema=False)
HITS_PER_PAGE = 25


def marked(snippet: str, highlights: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The snippet cut into runs, each with whether it is a matched word."""
    runs: list[tuple[str, bool]] = []
    at = 0
    for start, end in sorted(highlights):
        start, end = max(start, at), min(end, len(snippet))
        if start >= end:
            continue
        if start > at:
            runs.append((snippet[at:start], False))
        runs.append((snippet[start:end], True))
        at = end
    if at < len(snippet):
        runs.append((snippet[at:], False))
    return runs


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request, session: DbSession, viewer: EvidenceViewer,
    q: Annotated[str, Query(max_length=search.MAX_QUERY_CHARS)] = "",
    case: Annotated[str, Query(max_length=100)] = "",
    cursor: Cursor = None,
) -> Response:
    context: dict[str, Any] = {"q": q, "case": case, "hits": None, "error": None,
                               "next_cursor": None,
                               # Only the references, to choose from: the search is recorded.
                               "cases": cases.list_cases(session, viewer, record=False)}
    if not q.strip():
        return render(request, "search.html", context, viewer=viewer)
    try:
        scope = cases.case_for(session, viewer, case) if case else None
        results = search.search_text(session, viewer, q, case=scope, limit=HITS_PER_PAGE,
                                     cursor=cursor)
    except (InvalidInput, AccessDenied) as exc:
        context["error"] = sentence(exc.message)
        return render(request, "search.html", context, viewer=viewer,
                      status_code=exc.status_code)
    # The visible cases' targets only: the search returns nothing of another case.
    names = accounts.names_of_targets(session, [h.target_id for h in results.items])
    context["hits"] = [{
        "capture_href": f"/captures/{h.capture_id}", "case": h.case_reference,
        "case_href": f"/cases/{quote_ref(h.case_reference)}", "url": h.url,
        "target_href": f"/targets/{h.target_id}", "target": names[h.target_id],
        "captured_at": h.captured_at, "runs": marked(h.snippet, h.highlights),
    } for h in results.items]
    context["next_cursor"] = results.next_cursor
    return render(request, "search.html", context, viewer=viewer)
