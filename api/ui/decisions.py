"""Pages for supervisors: a target with its captures and decisions (propose, approve, reject under
four eyes), and the case's deconfliction hits.

Thin like the API routes in `api/routes/decisions.py` and `api/routes/deconfliction.py`: each
calls the service function the API calls for the same thing, so access rules, refusals and
custody entries are the same. A refused form is raised as a `PageError`, so the request's
transaction rolls back; the page shown with it is built before the service call, as plain
values, and so shows the state the refusal left unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.deps import DbSession, case_reference, quote_ref
from api.schemas import TargetWatchUpdate
from api.schemas_decisions import DecisionApprove, DecisionCreate, DecisionReject, HitResolve
from api.ui.rendering import PageError, render, sentence
from api.ui.routes import (
    NOTES_PER_PAGE,
    CsrfField,
    Cursor,
    Viewer,
    check_session_form,
    note_list,
    see_other,
)
from evidence import (
    accounts,
    capture_reads,
    captures,
    case_reads,
    cases,
    decisions,
    deconfliction,
    notes,
    targets,
)
from evidence.errors import EvidenceError, InvalidInput
from evidence.models import (
    Access,
    Account,
    Case,
    CaseStatus,
    Decision,
    DecisionKind,
    DecisionState,
    Target,
    TargetState,
    User,
)
from evidence.pagination import MAX_CURSOR_LENGTH

router = APIRouter(include_in_schema=False)

# What each kind asks for, in the words of `evidence.decisions`.
KINDS = (
    (DecisionKind.PRESERVE, "Preserve: have the platform keep the data"),
    (DecisionKind.TAKEDOWN, "Take down: have the content removed"),
    (DecisionKind.PRESERVE_THEN_TAKEDOWN,
     "Preserve, then take down (approved in two steps)"),
    (DecisionKind.MONITOR, "Monitor: leave it up and keep watching"),
)
# Decision states drawn with the style sheet's existing badge colours.
STATE_TONES: dict[str, str] = {DecisionState.PROPOSED: "queued", DecisionState.APPROVED: "complete",
               DecisionState.REJECTED: "failed", DecisionState.SUPERSEDED: "closed"}
# The one-line notice after a form succeeded; only these values are ever shown.
DONE = {
    "proposed": "Decision proposed. A supervisor other than you approves or rejects it.",
    "approved": "Decision approved; recorded in the case's custody log.",
    "rejected": "Decision rejected; recorded in the case's custody log.",
    "queued": "A new capture is queued (or the one already waiting is kept); it is compared "
              "with the latest when it is done.",
    "agreed": "Your case's agreement is recorded. The hit is resolved once the other case "
              "has recorded its agreement too.",
    "resolved": "Your case's agreement is recorded; the other case had agreed already, so the "
                "hit is resolved and no longer holds a takedown.",
    "watch_changed": "The watch interval is changed; recorded in the case's custody log.",
    "watch_stopped": "The target is no longer watched; re-captures it had queued and no worker "
                     "had started are cancelled.",
    "account_id": "The account's id is recorded, in the case's custody log and for "
                  "deconfliction.",
}
WRITE_ACCESS = (Access.WRITE, Access.MANAGE)

Done = Annotated[str | None, Query(max_length=20)]
LongText = Annotated[str, Form(max_length=6000)]


CursorField = Annotated[str | None, Form(max_length=MAX_CURSOR_LENGTH)]


@dataclass(frozen=True)
class Place:
    """The page of captures and the page of notes a target page showed: its forms carry them,
    so the page comes back where it was after one is sent, or shown again refused."""

    captures_cursor: str | None = None
    notes_cursor: str | None = None

    def query(self) -> dict[str, str]:
        return {name: value for name, value in asdict(self).items() if value}


def _posted_place(captures_cursor: CursorField = None, notes_cursor: CursorField = None) -> Place:
    return Place(captures_cursor or None, notes_cursor or None)


PostedPlace = Annotated[Place, Depends(_posted_place)]


def _back_to_target(target: Target, done: str, place: Place) -> Response:
    return see_other(f"/targets/{target.id}?{urlencode({'done': done, **place.query()})}")


def _target_label(session: Session, target: Target) -> dict[str, Any]:
    """The target as plain values: its URL, or the account it names."""
    account = None if target.account_id is None else session.get(Account, target.account_id)
    return {
        "id": str(target.id), "url": target.url, "reason": target.reason,
        "name": targets.target_name(target, account),
        "state": target.state, "flagged_at": target.flagged_at,
        "account": None if account is None else {
            "id": str(account.id),
            "platform": account.platform, "platform_account_id": account.platform_account_id,
            "handle": account.handle, "display_name": account.display_name,
            "profile_url": account.profile_url},
    }


# --- a target and its decisions ----------------------------------------------------------------


def _decision_view(decision: Decision, names: dict[uuid.UUID, str]) -> dict[str, Any]:
    def name(user_id: uuid.UUID | None) -> str | None:
        return None if user_id is None else names.get(user_id, "unknown")

    return {
        "id": str(decision.id), "kind": decision.kind, "state": decision.state,
        "tone": STATE_TONES.get(decision.state, ""),
        "stage": decisions.stage(decision), "rationale": decision.rationale,
        "preservation_waiver": decision.preservation_waiver,
        "proposed_by_id": decision.proposed_by_id,
        "proposed_by": name(decision.proposed_by_id), "proposed_at": decision.proposed_at,
        "decided_by": name(decision.decided_by_id), "decided_at": decision.decided_at,
        "decision_note": decision.decision_note,
        "takedown_approved_by": name(decision.takedown_approved_by_id),
        "takedown_approved_at": decision.takedown_approved_at,
        "superseded": decision.state == DecisionState.SUPERSEDED,
    }


CAPTURES_PER_PAGE = 25


def _target_view(session: Session, viewer: User, case: Case, target: Target,
                 place: Place) -> dict[str, Any]:
    """Everything the target page shows, as plain values (kept valid after a rollback).

    A page of its captures, newest first: a watched target gathers one an hour."""
    history = decisions.history(session, target)
    found = capture_reads.page_captures(session, case, target_id=target.id,
                                        limit=CAPTURES_PER_PAGE, cursor=place.captures_cursor,
                                        newest_first=True)
    total = capture_reads.count_captures(session, case, target.id)
    since = captures.since_previous(session, found.items)
    jobs = targets.jobs_of(session, target, unfinished_only=True)
    watch_history = targets.watch_history(session, case, target)
    names = case_reads.user_names(session, [target.flagged_by_id] + [
        i for d in history
        for i in (d.proposed_by_id, d.decided_by_id, d.takedown_approved_by_id)]
        + [w.actor_id for w in watch_history])
    items = [_decision_view(d, names) for d in history]
    current_rows = [d for d in history if d.state in decisions.CURRENT_STATES]
    current = items[history.index(current_rows[-1])] if current_rows else None
    is_open = case.status == CaseStatus.OPEN
    access = cases.access_of(session, viewer, case)
    target_notes = notes.page_notes(session, case, target_id=target.id, on_case_only=False,
                                    limit=NOTES_PER_PAGE, cursor=place.notes_cursor)

    pending = current is not None and (
        current["state"] == DecisionState.PROPOSED
        or (current["state"] == DecisionState.APPROVED and current["stage"] == "preserve"))
    decider = viewer.role in decisions.APPROVER_ROLES
    conditions = None
    refusal = None
    if current_rows and pending and current_rows[-1].kind in decisions.TAKEDOWN_KINDS:
        # Looked up once: the checklist, and the approval it would refuse now (the approval
        # looks them up again in its own transaction).
        check = decisions.takedown_conditions(session, case, target, current_rows[-1])
        conditions = {
            "capture": check.complete_capture,
            "hits": check.unresolved_hits,
            "requests": [{"kind": r.kind, "status": r.status}
                         for r in check.preservation_requests],
            "waiver": check.preservation_waiver,
        }
        if decisions.approval_step(current_rows[-1]) == "takedown" and check.refusal:
            refusal = check.refusal.message
        unresolved = check.unresolved_hits
    else:
        unresolved = len(deconfliction.unresolved_hits(session, target))
    return {
        "case": {"reference": case.reference, "title": case.title, "status": case.status},
        "target": {**_target_label(session, target),
                   "flagged_by": names.get(target.flagged_by_id, "unknown"),
                   "watch_interval_seconds": target.watch_interval_seconds,
                   "removed_first_seen_at": target.removed_first_seen_at},
        "captures": [{"id": str(c.id), "status": c.status, "started_at": c.started_at,
                      "finished_at": c.finished_at, "http_status": c.http_status,
                      "title": c.title, "final_url": c.final_url,
                      "since": since[c.id]}
                     for c in found.items],
        "captures_total": total, "captures_next": found.next_cursor,
        "captures_cursor": place.captures_cursor, "notes_cursor": place.notes_cursor,
        "jobs": [{"state": j.state, "created_at": j.created_at, "error": j.error}
                 for j in jobs],
        "history": items, "current": current, "conditions": conditions,
        "unresolved_hits": unresolved,
        "notes": note_list(session, target_notes), "notes_next": target_notes.next_cursor,
        "may_note": access in WRITE_ACCESS,
        "may_propose": access in WRITE_ACCESS and is_open,
        "may_decide": pending and decider and is_open
                      and current is not None and current["proposed_by_id"] != viewer.id,
        # The approval the checklist shows would be refused: said, not offered.
        "approve_refused": None if refusal is None else sentence(
            refusal.removeprefix("takedown refused: ")),
        "approve_refusal": refusal,
        "own_proposal": pending and decider and current is not None
                        and current["proposed_by_id"] == viewer.id,
        "kinds": KINDS, "is_open": is_open,
        # An account flagged by its handle: its id, once learnt, is recorded here.
        "may_record_id": access in WRITE_ACCESS and is_open and target.account_id is not None,
        "watch": {
            "every": None if target.watch_interval_seconds is None
            else targets.format_interval(target.watch_interval_seconds),
            "forms": targets.INTERVAL_FORMS,
            "history": [{"at": w.at, "by": names.get(w.actor_id, "unknown")
                         if w.actor_id is not None else "the system",
                         "action": w.action, "reason": w.reason,
                         "old": _interval(w.old_interval_seconds),
                         "new": _interval(w.new_interval_seconds)} for w in watch_history],
            # Stopping is open to writers whatever the state; a new interval needs an open
            # case and a target not resolved.
            "may_stop": access in WRITE_ACCESS and target.watch_interval_seconds is not None,
            "may_change": access in WRITE_ACCESS and is_open
                          and target.state != TargetState.RESOLVED,
        },
        # What a refused form had typed; "decision": the one an approval or rejection was for.
        "form": {"kind": "", "rationale": "", "preservation_waiver": "", "note": "",
                 "reason": "", "decision": "", "every": "", "watch_reason": "",
                 "platform_account_id": ""},
        "error": None, "error_at": None, "done": None,
        # A refused approval or rejection: the decision its refusal speaks about when that is
        # not the one it was for (the newer decision that superseded it), and whether the
        # refusal is the reason the page gives anyway for not offering the approval.
        "refused_about": None, "refusal_said": False,
    }


def _interval(seconds: int | None) -> str | None:
    return None if seconds is None else targets.format_interval(seconds)


def _refused(message: str, status_code: int, view: dict[str, Any], *, at: str,
             form: dict[str, str], viewer: User, template: str = "target.html",
             **also: Any) -> PageError:
    """The page shown again with the refusal next to the form at `at`, and what was typed
    (`also`: more of the page's values, set by the refusal)."""
    context = {**view, **also, "error_at": at, "form": {**view["form"], **form}}
    return PageError(sentence(message), status_code, template=template, context=context,
                     viewer=viewer)


def _invalid(exc: ValidationError, labels: dict[str, str], fallback: str) -> str:
    named = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
    wanted = [label for field, label in labels.items() if field in named]
    return " ".join(wanted) or fallback


@router.get("/targets/{target_id}", response_class=HTMLResponse)
def target_page(request: Request, target_id: uuid.UUID, session: DbSession, viewer: Viewer,
                done: Done = None, captures_cursor: Cursor = None,
                notes_cursor: Cursor = None) -> Response:
    case, target = decisions.target_for(session, viewer, target_id)
    view = _target_view(session, viewer, case, target, Place(captures_cursor, notes_cursor))
    view["done"] = DONE.get(done or "")
    return render(request, "target.html", view, viewer=viewer)


@router.post("/targets/{target_id}/decisions", response_class=HTMLResponse)
def propose(
    request: Request, target_id: uuid.UUID, session: DbSession, viewer: Viewer,
    place: PostedPlace, csrf_token: CsrfField = None,
    kind: Annotated[str, Form(max_length=100)] = "",
    rationale: LongText = "",
    preservation_waiver: LongText = "",
) -> Response:
    check_session_form(request, csrf_token)
    case, target = decisions.target_for(session, viewer, target_id)
    view = _target_view(session, viewer, case, target, place)
    typed = {"kind": kind, "rationale": rationale, "preservation_waiver": preservation_waiver}
    try:
        body = DecisionCreate.model_validate({
            "kind": kind, "rationale": rationale,
            "preservation_waiver": preservation_waiver.strip() or None})
        decisions.target_for(session, viewer, target_id, need=Access.WRITE)
        decisions.propose(session, viewer, case, target, kind=body.kind,
                          rationale=body.rationale,
                          preservation_waiver=body.preservation_waiver)
    except ValidationError as exc:
        message = _invalid(exc, {
            "kind": "Choose what to do with the target.",
            "rationale": "Give a rationale (at most 5,000 characters).",
            "preservation_waiver": "A preservation waiver may hold at most 5,000 characters.",
        }, "Choose a kind and give a rationale.")
        raise _refused(message, 422, view, at="propose", form=typed, viewer=viewer) from exc
    except EvidenceError as exc:
        if exc.status_code == 404:
            raise
        raise _refused(exc.message, exc.status_code, view, at="propose", form=typed,
                       viewer=viewer) from exc
    return _back_to_target(target, "proposed", place)


@router.post("/targets/{target_id}/captures", response_class=HTMLResponse)
def capture_again(
    request: Request, target_id: uuid.UUID, session: DbSession, viewer: Viewer,
    place: PostedPlace, csrf_token: CsrfField = None,
) -> Response:
    check_session_form(request, csrf_token)
    case, target = decisions.target_for(session, viewer, target_id)
    view = _target_view(session, viewer, case, target, place)
    try:
        decisions.target_for(session, viewer, target_id, need=Access.WRITE)
        targets.request_capture(session, viewer, case, target,
                                reason="asked again from the target page")
    except EvidenceError as exc:
        if exc.status_code == 404:
            raise
        raise _refused(exc.message, exc.status_code, view, at="capture", form={},
                       viewer=viewer) from exc
    return _back_to_target(target, "queued", place)


@router.post("/targets/{target_id}/watch", response_class=HTMLResponse)
def change_watch(
    request: Request, target_id: uuid.UUID, session: DbSession, viewer: Viewer,
    place: PostedPlace, csrf_token: CsrfField = None,
    action: Annotated[Literal["change", "stop"], Form()] = "change",
    every: Annotated[str, Form(max_length=100)] = "",
    reason: LongText = "",
) -> Response:
    check_session_form(request, csrf_token)
    case, target = decisions.target_for(session, viewer, target_id)
    view = _target_view(session, viewer, case, target, place)
    typed = {"every": every, "watch_reason": reason}
    try:
        body = TargetWatchUpdate.model_validate({
            "watch_interval_seconds": None if action == "stop" else targets.parse_interval(every),
            "reason": reason})
        decisions.target_for(session, viewer, target_id, need=Access.WRITE)
        targets.change_watch(session, viewer, case, target,
                             every_seconds=body.watch_interval_seconds, reason=body.reason)
    except ValidationError as exc:
        raise _refused("Say why the watch is changed or stopped (at most 2,000 characters).",
                       422, view, at="watch", form=typed, viewer=viewer) from exc
    except EvidenceError as exc:
        if exc.status_code == 404:
            raise
        raise _refused(exc.message, exc.status_code, view, at="watch", form=typed,
                       viewer=viewer) from exc
    return _back_to_target(target, "watch_stopped" if action == "stop" else "watch_changed",
                           place)


@router.post("/targets/{target_id}/account-id", response_class=HTMLResponse)
def record_account_id(
    request: Request, target_id: uuid.UUID, session: DbSession, viewer: Viewer,
    place: PostedPlace, csrf_token: CsrfField = None,
    platform_account_id: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """The account target's platform id, learnt after it was flagged by its handle
    (`accounts.record_account_id`)."""
    check_session_form(request, csrf_token)
    case, target = decisions.target_for(session, viewer, target_id)
    view = _target_view(session, viewer, case, target, place)
    try:
        decisions.target_for(session, viewer, target_id, need=Access.WRITE)
        if target.account_id is None:
            raise InvalidInput("the target is a URL, not an account: it has no account id")
        accounts.record_account_id(session, viewer, case, target.account_id,
                                   platform_account_id=platform_account_id)
    except EvidenceError as exc:
        if exc.status_code == 404:
            raise
        raise _refused(exc.message, exc.status_code, view, at="account_id",
                       form={"platform_account_id": platform_account_id},
                       viewer=viewer) from exc
    return _back_to_target(target, "account_id", place)


@router.post("/decisions/{decision_id}/approve", response_class=HTMLResponse)
def approve(
    request: Request, decision_id: uuid.UUID, session: DbSession, viewer: Viewer,
    place: PostedPlace, csrf_token: CsrfField = None,
    note: Annotated[str, Form(max_length=3000)] = "",
) -> Response:
    check_session_form(request, csrf_token)
    case, target, decision = decisions.decision_for(session, viewer, decision_id)
    view = _target_view(session, viewer, case, target, place)
    typed = {"note": note, "decision": str(decision.id)}
    try:
        body = DecisionApprove(note=note.strip() or None)
        decisions.approve(session, viewer, case, target, decision, note=body.note)
    except ValidationError as exc:
        raise _refused("A note may hold at most 2,000 characters.", 422, view, at="decide",
                       form=typed, viewer=viewer) from exc
    except EvidenceError as exc:
        if exc.status_code == 404:
            raise
        raise _refused(exc.message, exc.status_code, view, at="decide", form=typed,
                       viewer=viewer, refused_about=_refused_about(view, decision),
                       refusal_said=exc.message == view["approve_refusal"]) from exc
    return _back_to_target(target, "approved", place)


@router.post("/decisions/{decision_id}/reject", response_class=HTMLResponse)
def reject(
    request: Request, decision_id: uuid.UUID, session: DbSession, viewer: Viewer,
    place: PostedPlace, csrf_token: CsrfField = None,
    reason: LongText = "",
) -> Response:
    check_session_form(request, csrf_token)
    case, target, decision = decisions.decision_for(session, viewer, decision_id)
    view = _target_view(session, viewer, case, target, place)
    typed = {"reason": reason, "decision": str(decision.id)}
    try:
        body = DecisionReject(reason=reason)
        decisions.reject(session, viewer, case, target, decision, reason=body.reason)
    except ValidationError as exc:
        raise _refused("Say why the decision is rejected (at most 5,000 characters).", 422,
                       view, at="decide", form=typed, viewer=viewer) from exc
    except EvidenceError as exc:
        if exc.status_code == 404:
            raise
        raise _refused(exc.message, exc.status_code, view, at="decide", form=typed,
                       viewer=viewer, refused_about=_refused_about(view, decision)) from exc
    return _back_to_target(target, "rejected", place)


def _refused_about(view: dict[str, Any], decision: Decision) -> str | None:
    """The decision a refusal to decide `decision` sends the supervisor to read: the newest,
    which superseded it."""
    if decision.state != DecisionState.SUPERSEDED or not view["history"]:
        return None
    return str(view["history"][-1]["id"])


# --- a case's deconfliction hits ---------------------------------------------------------------


HITS_PER_PAGE = 25
Show = Annotated[Literal["unresolved", "all"] | None, Query()]


def _hits_view(session: Session, viewer: User, case: Case, *, show: str | None,
               cursor: str | None) -> dict[str, Any]:
    """The hits page as plain values: of the other case, only what the API shows.

    One page of hits, oldest first: the unresolved ones while there are any (unless `show`
    asks for all of them), so a hit that needs a call is never pages behind settled ones.
    """
    may_write = cases.access_of(session, viewer, case) in WRITE_ACCESS
    counts = deconfliction.count_hits(session, case)
    shown = show or ("unresolved" if counts.unresolved else "all")
    page = deconfliction.page_hits(session, case, limit=HITS_PER_PAGE, cursor=cursor,
                                   unresolved_only=shown == "unresolved")
    hits = []
    for view in page.items:
        target = None if view.target_id is None else session.get(Target, view.target_id)
        we_agreed = any(a.this_case for a in view.agreements)
        hits.append({
            "id": str(view.hit.id), "kind": view.hit.kind,
            "target": None if target is None else _target_label(session, target),
            "created_at": view.hit.created_at, "resolved": view.resolved,
            "resolved_at": view.hit.resolved_at,
            "other_unit": view.other_unit, "other_contact": view.other_contact,
            "agreements": [{"this_case": a.this_case, "user": a.user, "unit": a.unit,
                            "agreed_at": a.agreed_at, "note": a.note}
                           for a in view.agreements],
            "we_agreed": we_agreed,
            "may_resolve": may_write and not view.resolved and not we_agreed,
        })
    return {"case": {"reference": case.reference, "title": case.title, "status": case.status},
            "hits": hits, "total": counts.total, "unresolved": counts.unresolved,
            "show": shown, "cursor": cursor or "", "next_cursor": page.next_cursor,
            "form": {"note": "", "hit": ""}, "error": None, "error_at": None, "done": None}


@router.get("/cases/{ref}/hits", response_class=HTMLResponse)
def hits_page(request: Request, ref: str, session: DbSession, viewer: Viewer,
              done: Done = None, show: Show = None, cursor: Cursor = None) -> Response:
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    view = _hits_view(session, viewer, case, show=show, cursor=cursor)
    view["done"] = DONE.get(done or "")
    return render(request, "hits.html", view, viewer=viewer)


@router.post("/cases/{ref}/hits/{hit_id}/resolve", response_class=HTMLResponse)
def resolve_hit(
    request: Request, ref: str, hit_id: uuid.UUID, session: DbSession, viewer: Viewer,
    csrf_token: CsrfField = None,
    note: LongText = "",
    show: Annotated[Literal["unresolved", "all"] | None, Form()] = None,
    cursor: Annotated[str | None, Form(max_length=MAX_CURSOR_LENGTH)] = None,
) -> Response:
    check_session_form(request, csrf_token)
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    view = _hits_view(session, viewer, case, show=show, cursor=cursor or None)
    typed = {"note": note, "hit": str(hit_id)}
    try:
        body = HitResolve(note=note)
        cases.case_for(session, viewer, case.reference, need=Access.WRITE)
        agreed = deconfliction.agree(session, viewer, case, hit_id, note=body.note)
    except ValidationError as exc:
        raise _refused("Say what was agreed with the other unit (at most 5,000 characters).",
                       422, view, at=str(hit_id), form=typed, viewer=viewer,
                       template="hits.html") from exc
    except EvidenceError as exc:
        if exc.status_code == 404:
            raise
        raise _refused(exc.message, exc.status_code, view, at=str(hit_id), form=typed,
                       viewer=viewer, template="hits.html") from exc
    done = "resolved" if agreed.resolved else "agreed"
    # Back to the page the form was on (while it has unresolved hits, the default page).
    query = {"done": done, **({"show": show} if show else {}),
             **({"cursor": cursor} if cursor else {})}
    return see_other(f"/cases/{quote_ref(case.reference)}/hits?{urlencode(query)}"
                     f"#hit-{agreed.hit.id}")
