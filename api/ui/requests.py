"""Pages for liaison officers: a case's legal requests (generate, read, download, record status,
answers and extensions) and the requests due across cases.

Thin like the other pages: each parses the form, calls the service function the JSON API under
`/api/cases/{ref}/requests` calls (`evidence.requests`: same access rules, same custody entries)
and renders a template. Generating is two steps because the pages have no script: first the kind
and platform (a GET form, or a suggestion of `legal_forms`' routing), then the targets, period
and the values that kind needs which neither the case nor the standing settings hold.

A refused form is raised as `PageError`, so the transaction rolls back; its page is therefore
built from plain values (`describe()`-style dicts), never from rows of the closed session.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.deps import AppRuntime, DbSession, case_reference, quote_ref
from api.routes.received import Posted as Upload
from api.schemas_requests import RequestCreate, RequestStatusChange
from api.ui import request_problems
from api.ui.labels import (
    AUTHORITY_HEADINGS,
    AUTHORITY_LABELS,
    REQUEST_CASE_FIELDS,
    REQUEST_FIELD_PREFIX,
)
from api.ui.material import keep_posted
from api.ui.received import received_views
from api.ui.rendering import PageError, render, sentence
from api.ui.routes import (
    CsrfField,
    Cursor,
    EvidenceViewer,
    Posted,
    Viewer,
    check_session_form,
    see_other,
)
from evidence import cases, custody, received, requests, targets
from evidence.errors import (
    AccessDenied,
    Conflict,
    EvidenceError,
    InvalidInput,
    NotFound,
    RequestIncomplete,
)
from evidence.models import (
    Access,
    Case,
    CaseStatus,
    LegalRequest,
    RequestStatus,
    User,
    utcnow,
)
from evidence.request_input import (
    CATEGORIES,
    TARGETS,
    About,
    Authority,
    AuthorityRole,
    CaseInfo,
    RequestInput,
    RequestProblem,
)
from evidence.settings import Settings
from legal_forms.instruments import INSTRUMENTS, route
from legal_forms.instruments.base import EU_LABELS, DataCategory, Instrument
from legal_forms.platforms import Platform, Registry, load_registry

router = APIRouter(include_in_schema=False)

# What "due soon" means on a case's list, as the API's `due` defaults to.
DUE_SOON = timedelta(days=14)
REQUESTS_PER_PAGE = 25  # the case's requests page, newest first
DUE_PERIODS = ("3d", "7d", "14d", "30d", "90d")
# Made from the page of the sent EPOC-PR it extends, not from scratch.
EXTENSION_KINDS = frozenset({"eu-epoc-pr-extension"})
OFFERED_KINDS = tuple(k for k in INSTRUMENTS if k not in EXTENSION_KINDS)
LIFECYCLE = ("approved", "sent", "acknowledged", "fulfilled", "refused", "expired", "withdrawn")
STEP_LABELS = {
    "approved": "approved (supervisor, prosecutor or admin)",
    "sent": "sent to the platform",
    "acknowledged": "acknowledged by the platform",
    "fulfilled": "fulfilled (data preserved or produced)",
    "refused": "refused by the platform (give the reasons)",
    "expired": "expired (lapsed)",
    "withdrawn": "withdrawn: not to be sent (say why)",
}
APPROVAL_BY_ROLE = "Next: approval by a supervisor, prosecutor or admin of the case."
APPROVAL_BY_ANOTHER = ("Next: approval by another supervisor, prosecutor or admin of the case. "
                       "You drafted this request, and four eyes means its drafter does not "
                       "approve it.")
# Colours from the style sheet's badges, by what the state means to the officer.
STATUS_TONES = {"draft": "", "approved": "queued", "sent": "running", "acknowledged": "running",
                "fulfilled": "complete", "refused": "failed", "expired": "closed",
                "withdrawn": ""}  # greyed by its own class, .badge.withdrawn
# Kinds whose checks refuse them without the emergency flag: their form starts with it ticked.
EMERGENCY_KINDS = frozenset({"emergency-disclosure"})
UNSENT = frozenset({RequestStatus.DRAFT, RequestStatus.APPROVED})
CATEGORY_LABELS = {c.value: EU_LABELS[c] for c in DataCategory}
MAX_EXTRA = 20_000
MAX_LISTED = 1000  # targets the form lists to tick; ticking none asks for every one


# --- plain views of rows ---------------------------------------------------------------------

def _utc(value: str | datetime | None) -> str:
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _title(kind: str) -> str:
    instrument = INSTRUMENTS.get(kind)
    return instrument.title if instrument is not None else kind


def _platform_name(registry: Registry, name: str) -> str:
    try:
        return registry.get(name).display_name
    except NotFound:
        return name


def _case_view(case: Case) -> dict[str, Any]:
    return {"reference": case.reference, "title": case.title, "status": case.status,
            "jurisdiction": case.jurisdiction}


def _deadline_state(row: LegalRequest, due: Sequence[requests.DueItem],
                    extended_by: LegalRequest | None) -> tuple[str, str]:
    """(what the request's deadlines say now, the badge tone to show it in)."""
    if row.status == RequestStatus.WITHDRAWN:
        return "withdrawn: no deadline", ""
    mine = [i for i in due if i.request.id == row.id]
    if any(i.overdue for i in mine):
        return "overdue", "failed"
    if mine:
        return "due soon", "partial"
    if extended_by is not None and extended_by.status in UNSENT:
        # An extension extends nothing until the platform has it: this one still runs out.
        return (f"not extended yet: {extended_by.reference_number} is {extended_by.status}, "
                "not sent"), "partial"
    if extended_by is not None:
        late = requests.sent_late(extended_by)
        if late is not None and not late["extends"]:  # the law makes it extend nothing
            return f"ended: {extended_by.reference_number} was sent too late", "failed"
        return f"extended by {extended_by.reference_number}", "active"
    running = row.status in requests.RUNNING or (
        row.status == RequestStatus.FULFILLED and row.kind in requests.PRESERVATION_KINDS
        and row.due_at is not None and row.due_at > utcnow())
    if running:
        return "running", "active"
    if row.status in UNSENT:
        return "not sent", ""
    return "ended", "closed"


def _live_extension(session: DbSession, rows: Sequence[LegalRequest]
                    ) -> dict[uuid.UUID, LegalRequest]:
    """Of each of `rows` that has one, the extension that carries its deadline now."""
    live = requests.extensions_of(session, [r.id for r in rows], live_only=True)
    return {parent: kids[0] for parent, kids in live.items()}


def _row_view(row: LegalRequest, reference: str, registry: Registry,
              due: Sequence[requests.DueItem], extended_by: LegalRequest | None
              ) -> dict[str, Any]:
    state, tone = _deadline_state(row, due, extended_by)
    return {
        "id": str(row.id), "reference": row.reference_number, "kind": row.kind,
        "title": _title(row.kind), "platform": row.platform,
        "platform_name": _platform_name(registry, row.platform), "status": row.status,
        "tone": STATUS_TONES.get(row.status, ""), "created": _utc(row.created_at),
        "sent": _utc(row.sent_at), "due": _utc(row.due_at), "state": state,
        "state_tone": tone, "href": f"/cases/{quote_ref(reference)}/requests/{row.id}",
        "withdrawn": (row.fields or {}).get("withdrawn"),
    }


# --- the case's list and the form to generate one ---------------------------------------------

def _country(case: Case, standing: Mapping[str, Mapping[str, str]]) -> str:
    return (case.jurisdiction or standing["issuing"].get("country") or "").split("-")[0]


def _standing(settings: Settings) -> tuple[dict[str, dict[str, str]], str | None]:
    try:
        return requests.standing_authorities(settings), None
    except InvalidInput as exc:
        return {"issuing": {}, "validating": {}}, exc.message


def _choices(session: DbSession, viewer: User, case: Case, registry: Registry,
             country: str) -> dict[str, Any]:
    """The first step: `legal_forms`' routing for each platform of the case's targets (as
    `evidence request route --case` gives it), and every kind and platform to choose from."""
    suggestions = []
    for name in requests.case_platforms(session, viewer, case, registry):
        platform = registry.get(name)
        fitting = [{"timing": str(s.timing), "kind": s.kind, "title": _title(s.kind),
                    "reason": s.reason}
                   for s in route(platform, country or None) if s.kind in OFFERED_KINDS]
        if fitting:
            suggestions.append({"platform": platform.name,
                                "platform_name": platform.display_name, "kinds": fitting})
    return {"kinds": [(k, INSTRUMENTS[k].title) for k in OFFERED_KINDS],
            "platforms": [(p.name, p.display_name) for p in registry],
            "suggestions": suggestions, "country": country}


def _target_views(session: DbSession, viewer: User, case: Case, registry: Registry,
                  platform: Platform) -> tuple[list[dict[str, Any]], int, int]:
    """The case's targets on `platform`, at most `MAX_LISTED` of them (with the capture a
    request would cite), how many more there are, and how many targets are on other
    platforms."""
    found, elsewhere = requests.targets_on(session, viewer, case, platform.name, registry)
    out: list[dict[str, Any]] = []
    for target, account in found[:MAX_LISTED]:
        cited = requests.latest_capture(session, target.id)
        out.append({"id": str(target.id), "name": targets.target_name(target, account),
                    "reason": target.reason, "state": target.state,
                    "capture": None if cited is None else {
                        "id": str(cited.id), "status": cited.status,
                        "http_status": cited.http_status, "at": _utc(cited.started_at)}})
    return out, len(found) - len(out), elsewhere


def _registry_gaps(instrument: Instrument, platform: Platform) -> set[str]:
    """The required fields the platform registry fills that it leaves empty for `platform`
    (the generic provider's addressee, an Art. 29 custodian, a DSA order's language): the form
    asks for them as it asks for the kind's own fields. Found by filling the kind's fields over
    an input in which only the registry's entry is real."""
    now = utcnow()
    someone = Authority(name="-", role=AuthorityRole.POLICE, country="DE", address="-",
                        phone="-", email="-", time_zone="UTC")
    probe = RequestInput(
        kind=instrument.kind, reference="-", case=CaseInfo("-", "-", "-", "-", None, "-", "DE"),
        issuing=someone, validating=someone, platform=platform, identifiers=(),
        issued_at=now, previous_reference="-", previous_issued_at=now, previous_ends_at=now)
    return {f.name for f in instrument.fields if f.required and f.fill.get is not None
            and f.fill.source is None and not f.value(probe)}


def _generate_form(session: DbSession, viewer: User, case: Case, registry: Registry,
                   settings: Settings, kind: str, platform_name: str) -> dict[str, Any]:
    """What the second step of generating shows for `kind` on `platform_name`; raises
    InvalidInput for a kind or platform it cannot offer."""
    kind = kind.strip().lower()
    if kind in EXTENSION_KINDS:
        raise InvalidInput("an extension is generated from the page of the sent request it "
                           "extends")
    instrument: Instrument | None = INSTRUMENTS.get(kind)
    if instrument is None:
        raise InvalidInput(f"unknown request kind {kind!r}; choose one of the list")
    try:
        platform = registry.get(platform_name)
    except NotFound as exc:
        raise InvalidInput(exc.message) from exc
    standing, standing_error = _standing(settings)
    gaps = _registry_gaps(instrument, platform)
    found, unlisted, elsewhere = _target_views(session, viewer, case, registry, platform)
    held = {"offence": case.offence, "offence_provision": case.offence_provision,
            "max_penalty_years": None if case.max_penalty_years is None
            else f"{case.max_penalty_years:g}", "facts": case.facts}

    # Details every authority needs, and those this kind prints in a required field (an
    # EPOC-PR's file number of the issuing authority).
    needed = {f.fill.source.name for f in instrument.fields
              if f.required and f.fill.source is not None and f.fill.source.part == "authority"}

    def authority(which: str) -> list[dict[str, Any]]:
        return [{"name": f"{which}.{attr}", "label": AUTHORITY_LABELS[attr],
                 "standing": standing[which].get(attr, ""),
                 "required": attr in requests.AUTHORITY_REQUIRED or f"{which}.{attr}" in needed}
                for attr in requests.AUTHORITY_ATTRS]

    issuing = authority("issuing")
    validating = authority("validating") if instrument.has_validating_authority else None

    def summary(which: str) -> str:
        held = standing[which]
        return " · ".join(held[a] for a in ("name", "role", "country", "email") if held.get(a))

    def missing(items: list[dict[str, Any]] | None) -> list[str]:
        return [a["label"].split(" (")[0] for a in items or []
                if a["required"] and not a["standing"]]

    return {
        "kind": kind, "title": instrument.title, "legal_basis": instrument.legal_basis,
        "platform": platform.name, "platform_name": platform.display_name,
        "preservation_rule": platform.preservation.summary
        if platform.preservation.days is not None else None,
        "targets": found, "unlisted": unlisted, "elsewhere": elsewhere,
        "user_fields": [{"name": f.name, "label": f.label, "required": f.required,
                         "unregistered": f.name in gaps}
                        for f in instrument.ordered_fields()
                        if f.fill.get is None or f.name in gaps],
        "case_fields": [{"name": n, "label": label, "held": held[n] or ""}
                        for n, label in REQUEST_CASE_FIELDS.items()],
        "authorities": [
            {"which": which, "heading": AUTHORITY_HEADINGS[which], "items": items,
             "summary": summary(which), "missing": missing(items), "in_error": False}
            for which, items in (("issuing", issuing), ("validating", validating))
            if items is not None],
        "standing_error": standing_error,
        "categories": list(CATEGORY_LABELS.items()),
        "preservation": kind in requests.PRESERVATION_KINDS,
    }


def _blank_typed(kind: str = "", platform: str = "") -> dict[str, Any]:
    return {"kind": kind, "platform": platform, "targets": [], "categories": [],
            "date_from": "", "date_to": "", "notify_user": False,
            "emergency": kind.strip().lower() in EMERGENCY_KINDS,
            "fields": {}, "extra": ""}


def _list_context(session: DbSession, viewer: User, case: Case, registry: Registry,
                  settings: Settings, cursor: str | None = None) -> dict[str, Any]:
    page = requests.page_requests(session, viewer, case, limit=REQUESTS_PER_PAGE, cursor=cursor,
                                  newest_first=True)
    rows = page.items
    live = _live_extension(session, rows)
    due = requests.due(session, viewer, within=DUE_SOON, case=case)
    access = cases.access_of(session, viewer, case)
    may_create = access in (Access.WRITE, Access.MANAGE) and case.status == CaseStatus.OPEN
    standing, _error = _standing(settings)
    choose = (_choices(session, viewer, case, registry, _country(case, standing))
              if may_create else None)
    # The first step starts on what the routing puts first for the case's first platform.
    first = choose["suggestions"][0] if choose and choose["suggestions"] else None
    return {
        "case": _case_view(case),
        "rows": [_row_view(r, case.reference, registry, due, live.get(r.id)) for r in rows],
        "rows_next": page.next_cursor, "rows_cursor": cursor,
        "rows_total": requests.count_requests(session, case) if cursor or page.next_cursor
        else len(rows),
        "may_create": may_create, "choose": choose, "form": None,
        "typed": _blank_typed(first["kinds"][0]["kind"], first["platform"]) if first
        else _blank_typed(),
        "error": None, "problems": [], "beside": {}, "invalid": {},
        "error_above": None,  # the top of the page's shorter word for a long refusal
    }


@router.get("/cases/{ref}/requests", response_class=HTMLResponse)
def request_list(
    request: Request, ref: str, session: DbSession, viewer: Viewer, runtime: AppRuntime,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    platform: Annotated[str | None, Query(max_length=64)] = None, cursor: Cursor = None,
) -> Response:
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    registry = load_registry()
    context = _list_context(session, viewer, case, registry, runtime.settings, cursor)
    status_code = 200
    if context["may_create"] and (kind or platform):
        context["typed"] = _blank_typed(kind or "", platform or "")
        try:
            context["form"] = _generate_form(session, viewer, case, registry,
                                             runtime.settings, kind or "", platform or "")
        except InvalidInput as exc:
            # A GET writes nothing: the first step is shown again, saying what is wrong.
            context["error"] = sentence(exc.message)
            status_code = 422
    return render(request, "requests.html", context, viewer=viewer, status_code=status_code)


def _moment(text: str, label: str, problems: list[RequestProblem], about: About | None = None,
            *, end_of_day: bool = False) -> datetime | None:
    """A date (taken in UTC, the whole day for an end) or a date and time, UTC unless it names
    its offset; a problem for anything else."""
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end_of_day else time.min,
                                    UTC).replace(microsecond=0)
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        wrong = (f"{text!r} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DD HH:MM, "
                 "UTC)")
        problems.append(RequestProblem(f"{label}: {wrong}", about, wrong))
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _named_fields(posted: FormData, extra: str,
                  problems: list[RequestProblem]) -> dict[str, str]:
    """The API's `fields`: NAME=VALUE lines of the free box, then the named inputs (which win);
    an empty input means "what the case or the settings hold" and is left out."""
    values: dict[str, str] = {}
    for number, line in enumerate(extra.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            wrong = f"line {number}: {line.strip()[:80]!r} is not NAME=VALUE"
            problems.append(RequestProblem(f"other values, {wrong}", About("fields"), wrong))
            continue
        values[name.strip()] = value.strip()
    for key, typed in posted.multi_items():
        if key.startswith(REQUEST_FIELD_PREFIX) and isinstance(typed, str) and typed.strip():
            values[key[len(REQUEST_FIELD_PREFIX):]] = typed.strip()
    return values


def _validation_problems(exc: ValidationError) -> list[RequestProblem]:
    out = []
    for error in exc.errors():
        loc = error.get("loc", ())
        where = ".".join(str(part) for part in loc)
        wrong = str(error.get("msg", "not valid"))
        # The lists the form posts (a forged target or category); the rest it checks itself.
        about = {"targets": TARGETS, "categories": CATEGORIES}.get(str(loc[0])) if loc else None
        out.append(RequestProblem(f"{where}: {wrong}" if where else wrong, about, wrong))
    return out


def _input_ids(form: Mapping[str, Any]) -> list[str]:
    """The ids of the generate form's inputs, in the template's order."""
    named = [f"field.{f['name']}" for f in (*form["user_fields"], *form["case_fields"])]
    named += [f"field.{f['name']}" for a in form["authorities"] for f in a["items"]]
    return [request_problems.TARGETS, *request_problems.PERIOD, request_problems.CATEGORIES,
            *(request_problems.input_id(n) for n in named), request_problems.EXTRA]


@router.post("/cases/{ref}/requests", response_class=HTMLResponse)
def generate_request(
    request: Request, ref: str, session: DbSession, viewer: Viewer, runtime: AppRuntime,
    posted: Posted,
    csrf_token: CsrfField = None,
    kind: Annotated[str, Form(max_length=64)] = "",
    platform: Annotated[str, Form(max_length=64)] = "",
    date_from: Annotated[str, Form(max_length=40)] = "",
    date_to: Annotated[str, Form(max_length=40)] = "",
    notify_user: Annotated[str | None, Form(max_length=10)] = None,
    emergency: Annotated[str | None, Form(max_length=10)] = None,
    extra: Annotated[str, Form(max_length=MAX_EXTRA)] = "",
) -> Response:
    check_session_form(request, csrf_token)
    case = cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)
    chosen = [str(v) for v in posted.getlist("target") if isinstance(v, str)]
    categories = [str(v) for v in posted.getlist("category") if isinstance(v, str)]
    problems: list[RequestProblem] = []
    fields = _named_fields(posted, extra, problems)
    typed = {"kind": kind, "platform": platform, "targets": chosen, "categories": categories,
             "date_from": date_from, "date_to": date_to, "notify_user": notify_user is not None,
             "emergency": emergency is not None,
             "fields": {k[len(REQUEST_FIELD_PREFIX):]: v for k, v in posted.multi_items()
                        if k.startswith(REQUEST_FIELD_PREFIX) and isinstance(v, str)},
             "extra": extra}
    start = _moment(date_from, "records from", problems, About("period", "start"))
    end = _moment(date_to, "records to", problems, About("period", "end"), end_of_day=True)
    target_ids: list[uuid.UUID] = []
    for value in chosen:
        try:
            target_ids.append(uuid.UUID(value))
        except ValueError:
            wrong = f"{value[:40]!r} is not a target of this case"
            problems.append(RequestProblem(f"targets: {wrong}", TARGETS, wrong))
    status_code = 422
    try:
        if problems:
            raise RequestIncomplete(kind, problems)
        body = RequestCreate(
            kind=kind, platform=platform, targets=target_ids or None, fields=fields,
            categories=categories or None,  # type: ignore[arg-type]  # checked by the model
            date_from=start, date_to=end, do_not_notify=notify_user is None,
            emergency=emergency is not None)
        made = requests.generate(
            session, viewer, case, store=runtime.store, settings=runtime.settings,
            kind=body.kind, platform=body.platform, target_ids=body.targets,
            fields=body.fields, categories=body.categories, date_from=body.date_from,
            date_to=body.date_to, do_not_notify=body.do_not_notify, emergency=body.emergency)
    except ValidationError as exc:
        problems = _validation_problems(exc)
        message = "The request cannot be generated; fix what is listed below."
    except RequestIncomplete as exc:
        problems = list(exc.found)
        message = "The request cannot be generated; fix what is listed below."
    except AccessDenied:
        raise
    except EvidenceError as exc:
        problems, message, status_code = [], sentence(exc.message), exc.status_code
    else:
        return see_other(f"/cases/{quote_ref(case.reference)}/requests/{made.request.id}")
    registry = load_registry()
    context = _list_context(session, viewer, case, registry, runtime.settings)
    context.update(typed=typed)
    try:
        form = _generate_form(session, viewer, case, registry, runtime.settings, kind, platform)
    except InvalidInput as exc:
        # No kind or platform to build the second step on: the first one, with why.
        message = sentence(exc.message)
    else:
        found = request_problems.shown(kind, problems, typed, _input_ids(form))
        for authority in form["authorities"]:  # folded away unless it holds a problem
            authority["in_error"] = any(
                request_problems.input_id(f"field.{f['name']}") in found.invalid
                for f in authority["items"])
        context.update(form=form, **found.context())
        if found.listed:
            count = len(found.listed)
            above = (f"The request cannot be generated: {count} problem"
                     f"{'' if count == 1 else 's'} to fix")
            message = f"{above}, listed here and at the fields."
            context.update(error_above=f"{above}.")
    # Raised, so the transaction (and any reference number taken) rolls back.
    raise PageError(message, status_code, template="requests.html", context=context,
                    viewer=viewer)


# --- one request ------------------------------------------------------------------------------

def _sections(instrument: Instrument | None, values: Mapping[str, str]) -> list[dict[str, Any]]:
    if instrument is None:
        return [{"title": "Fields", "verified": True, "fields": [
            {"label": name, "value": value, "required": False, "verified": True}
            for name, value in values.items()]}]
    out = []
    for section in instrument.sections:
        fields = [{"label": f.label, "value": values.get(f.name, ""), "required": f.required,
                   "verified": f.verified}
                  for f in instrument.fields if f.section == section.key]
        if fields:
            out.append({"title": section.title, "verified": section.verified,
                        "fields": fields})
    return out


def _history(session: DbSession, case: Case, row: LegalRequest) -> list[dict[str, Any]]:
    """The request's generation and status changes, as the custody log recorded them."""
    out = []
    for entry in custody.entries_for_object(session, case, "legal_request", row.id):
        shown = custody.describe(entry)
        details = shown.get("details") or {}
        out.append({"seq": shown.get("case_seq"), "at": shown["at"],
                    "actor": (shown.get("actor") or {}).get("name") or "system",
                    "action": shown["action"], "from": details.get("from"),
                    "to": details.get("to"), "when": _utc(details.get("at")),
                    "platform_reference": details.get("platform_reference"),
                    "answer": details.get("answer"),
                    "note": details.get("note"), "reason": details.get("reason"),
                    "refusal": [r.get("label", r.get("code")) for r in
                                details.get("refusal") or [] if isinstance(r, dict)]})
    return out


def _next_steps(row: LegalRequest, viewer: User) -> tuple[list[dict[str, Any]], str | None]:
    """The steps the viewer may record now, each with what it takes beside its time
    (`requests.STEP_TAKES`: its form has those inputs only) and, when approval is next but not
    theirs to give, why: it needs another role, or (four eyes) someone other than the
    request's drafter."""
    allowed = requests.TRANSITIONS[RequestStatus(row.status)]
    steps = [s for s in LIFECYCLE if s in allowed]
    waits = None
    if "approved" in steps:
        if viewer.role not in requests.APPROVERS:
            waits = APPROVAL_BY_ROLE
        elif requests.drafted_by(row, viewer):
            waits = APPROVAL_BY_ANOTHER
    return [{"value": s, "label": STEP_LABELS[s], "takes": requests.STEP_TAKES[s]}
            for s in steps if s != "approved" or waits is None], waits


def _blank_step() -> dict[str, Any]:
    return {"status": "", "at": "", "platform_reference": "", "answer": "", "refusal": [],
            "reason": ""}


def _request_context(session: DbSession, viewer: User, case: Case,
                     row: LegalRequest) -> dict[str, Any]:
    registry = load_registry()
    info = requests.describe(row, case.reference)
    previous = (session.get(LegalRequest, row.previous_request_id)
                if row.previous_request_id else None)
    if previous is not None and previous.case_id != case.id:
        previous = None  # extensions are made in their original's case; never another's
    children = requests.extensions_of(session, [row.id]).get(row.id, [])
    active_child = next((c for c in children if c.status not in requests.CLOSED_CHILD), None)
    access = cases.access_of(session, viewer, case)
    may_write = access in (Access.WRITE, Access.MANAGE)
    steps, waits = _next_steps(row, viewer)
    extendable = row.kind in requests.EXTENDABLE | EXTENSION_KINDS
    refusal = (requests.extension_refusal(session, row, now=utcnow())
               if may_write and extendable else None)
    if case.status != CaseStatus.OPEN:
        why_not_extend = "Only a preservation in an open case can be extended."
    else:
        why_not_extend = "" if refusal is None else sentence(refusal.message)
    may_extend = may_write and extendable and not why_not_extend
    due = requests.due(session, viewer, within=DUE_SOON, case=case)
    state, state_tone = _deadline_state(row, due, active_child)
    instrument = INSTRUMENTS.get(row.kind)
    base = f"/cases/{quote_ref(case.reference)}/requests"
    document = f"/api/cases/{quote_ref(case.reference)}/requests/{row.id}/document"
    return {
        "case": _case_view(case),
        "r": {
            **info, "title": _title(row.kind),
            "legal_basis": instrument.legal_basis if instrument else "",
            "platform_name": _platform_name(registry, row.platform),
            "tone": STATUS_TONES.get(row.status, ""), "state": state, "state_tone": state_tone,
            "times": {key: _utc(info[key]) for key in (
                "created_at", "issued_at", "approved_at", "sent_at", "acknowledged_at",
                "answered_at", "due_at", "date_from", "date_to")},
            "withdrawn": None if not info["withdrawn"] else {
                "at": _utc(info["withdrawn"].get("at")),
                "reason": info["withdrawn"].get("reason", "")},
            "categories": [CATEGORY_LABELS.get(c, c) for c in info["data_categories"]],
            "deadlines": [{**d, "due_text": _utc(str(d.get("due") or ""))}
                          for d in sorted(info["deadlines"], key=lambda d: str(d["due"]))],
            "identifiers": [{**i, "captured": _utc(i.get("captured_at"))}
                            for i in info["identifiers"]],
            "answers": sorted((info["answer"] or {}).items()),
        },
        "previous": None if previous is None else {
            "reference": previous.reference_number, "href": f"{base}/{previous.id}"},
        "children": [{"reference": c.reference_number, "status": c.status,
                      "tone": STATUS_TONES.get(c.status, ""), "href": f"{base}/{c.id}"}
                     for c in children],
        "sections": _sections(instrument, info["fields"]),
        "unverified": list(instrument.unverified) if instrument else [],
        "unverified_fields": sum(1 for f in instrument.fields if not f.verified)
        if instrument else 0,
        "documents": [
            {"label": "PDF", "href": document, "sha256": row.pdf_sha256},
            {"label": "JSON", "href": f"{document}?format=json", "sha256": row.json_sha256},
        ] if row.pdf_sha256 else [],
        "history": _history(session, case, row),
        "may_write": may_write, "steps": steps if may_write else [],
        "approval_waits": waits if may_write else None,
        "refusals": list(requests.REFUSAL_REASONS.items()),
        "may_extend": may_extend, "why_not_extend": why_not_extend,
        "extendable": extendable,
        "step": _blank_step(), "blank_step": _blank_step(), "step_error": None,
        "extension_error": None,
        "received": received_views(session, case, request_id=row.id),
        "receive": _blank_receipt(row), "receive_error": None,
        "may_receive": may_write and case.status == CaseStatus.OPEN and row.sent_at is not None,
        "may_fulfil": row.status in received.FULFILLABLE,
    }


def _blank_receipt(row: LegalRequest) -> dict[str, str]:
    return {"received_at": "", "via": "portal", "via_detail": "",
            "platform_reference": row.platform_reference or "", "fulfil": ""}


@router.get("/cases/{ref}/requests/{request_id}", response_class=HTMLResponse)
def request_page(request: Request, ref: str, request_id: uuid.UUID, session: DbSession,
                 viewer: Viewer) -> Response:
    case = cases.case_for(session, viewer, case_reference(ref, viewer))
    row = requests.get_request(session, viewer, case, request_id)
    return render(request, "request.html", _request_context(session, viewer, case, row),
                  viewer=viewer)


@router.post("/cases/{ref}/requests/{request_id}/status", response_class=HTMLResponse)
def record_status(
    request: Request, ref: str, request_id: uuid.UUID, session: DbSession, viewer: Viewer,
    posted: Posted,
    csrf_token: CsrfField = None,
    status: Annotated[str, Form(max_length=20)] = "",
    at: Annotated[str, Form(max_length=40)] = "",
    platform_reference: Annotated[str, Form(max_length=1000)] = "",
    answer: Annotated[str, Form(max_length=20_000)] = "",
    from_status: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    check_session_form(request, csrf_token)
    case = cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)
    row = requests.get_request(session, viewer, case, request_id, need=Access.WRITE)
    refusal = [str(v) for v in posted.getlist("refusal") if isinstance(v, str)]
    step = {"status": status, "at": at, "platform_reference": platform_reference,
            "answer": answer, "refusal": refusal, "reason": reason}
    problems: list[RequestProblem] = []
    when = _moment(at, "when", problems)
    status_code = 422
    stale = False
    try:
        if problems:
            raise InvalidInput(problems[0].message)
        if not status:
            raise InvalidInput("choose the step to record")
        stale = bool(from_status) and from_status != row.status
        if stale:
            # A page from before the last step (sent again with Back, or open in two tabs):
            # what its form says would be recorded on top of a step it never showed.
            raise Conflict(f"the request is {row.status} now, not {from_status} as on the page "
                           f"the form was sent from; choose the step again from the request "
                           f"as it stands")
        body = RequestStatusChange(
            status=status,  # type: ignore[arg-type]  # checked by the model
            platform_reference=platform_reference or None, answer=answer or None,
            refusal=refusal, at=when, reason=reason or None)
        requests.change_status(session, viewer, case, row.id, body.status,
                               platform_reference=body.platform_reference,
                               answer=body.answer, refusal=body.refusal, at=body.at,
                               reason=body.reason)
    except ValidationError as exc:
        message = "The step was not recorded: " + "; ".join(
            p.message for p in _validation_problems(exc)) + "."
    except AccessDenied:
        raise
    except EvidenceError as exc:
        message, status_code = "The step was not recorded: " + sentence(exc.message), (
            exc.status_code)
    else:
        return see_other(f"/cases/{quote_ref(case.reference)}/requests/{row.id}")
    context = _request_context(session, viewer, case, row)
    # What was typed is kept; a stale page's choice of step is not: it is to be made again.
    context.update(step={**step, "status": ""} if stale else step, step_error=message)
    raise PageError(message, status_code, template="request.html", context=context,
                    viewer=viewer)


def _writable_case(request: Request, ref: str, session: DbSession, viewer: Viewer) -> Case:
    return cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)


@router.post("/cases/{ref}/requests/{request_id}/received", response_class=HTMLResponse)
def receive_material(
    request: Request, request_id: uuid.UUID, session: DbSession, viewer: Viewer,
    runtime: AppRuntime,
    case: Annotated[Case, Depends(_writable_case)],
    upload: Upload,  # after the viewer and the case: nothing is read for a stranger
) -> Response:
    row = requests.get_request(session, viewer, case, request_id, need=Access.WRITE)
    return keep_posted(
        request, session, viewer, runtime, case, upload, request_id=str(row.id),
        blank=_blank_receipt(row), again="the request",
        page=lambda: ("request.html", _request_context(session, viewer, case, row)),
        done=f"/cases/{quote_ref(case.reference)}/requests/{row.id}#received")


@router.post("/cases/{ref}/requests/{request_id}/extension", response_class=HTMLResponse)
def extend_request(
    request: Request, ref: str, request_id: uuid.UUID, session: DbSession, viewer: Viewer,
    runtime: AppRuntime, csrf_token: CsrfField = None,
) -> Response:
    check_session_form(request, csrf_token)
    case = cases.case_for(session, viewer, case_reference(ref, viewer), need=Access.WRITE)
    row = requests.get_request(session, viewer, case, request_id, need=Access.WRITE)
    try:
        made = requests.extend(session, viewer, row.id, store=runtime.store)
    except AccessDenied:
        raise
    except EvidenceError as exc:
        message = "No extension was generated: " + sentence(exc.message)
        context = _request_context(session, viewer, case, row)
        context.update(extension_error=message)
        raise PageError(message, exc.status_code, template="request.html", context=context,
                        viewer=viewer) from exc
    return see_other(f"/cases/{quote_ref(case.reference)}/requests/{made.request.id}")


# --- across cases -----------------------------------------------------------------------------

@router.get("/requests/due", response_class=HTMLResponse)
def due_page(request: Request, session: DbSession, viewer: EvidenceViewer,
             within: Annotated[str, Query(max_length=10)] = "14d") -> Response:
    registry = load_registry()
    context: dict[str, Any] = {"within": within, "periods": DUE_PERIODS, "items": [],
                               "error": None}
    try:
        period = requests.parse_within(within)
    except InvalidInput as exc:
        context["error"] = sentence(exc.message)
        return render(request, "requests_due.html", context, viewer=viewer, status_code=422)
    now = utcnow()
    for item in requests.due(session, viewer, within=period, now=now):
        row = item.request
        context["items"].append({
            "due": _utc(item.due), "overdue": item.overdue, "deadline": item.deadline,
            "basis": item.basis, "action": _action(item), "gap": item.gap,
            "reference": row.reference_number, "title": _title(row.kind),
            "case": item.case_reference,
            "case_href": f"/cases/{quote_ref(item.case_reference)}",
            "href": f"/cases/{quote_ref(item.case_reference)}/requests/{row.id}",
            "platform_name": _platform_name(registry, row.platform), "status": row.status,
            "tone": STATUS_TONES.get(row.status, ""),
            "left": _left(item.due - now),
        })
    return render(request, "requests_due.html", context, viewer=viewer)


def _action(item: requests.DueItem) -> str:
    """What to do, in the words of these pages (the service names the CLI command)."""
    if item.action.startswith("extend:"):
        return "Generate the extension from the request's page."
    if item.action.startswith("lapsed?"):
        return "Lapsed? Record it as expired on the request's page."
    return sentence(item.action)


def _left(delta: timedelta) -> str:
    hours = int(abs(delta).total_seconds() // 3600)
    span = f"{hours // 24} d {hours % 24} h" if hours >= 24 else f"{hours} h"
    return f"{span} ago" if delta < timedelta(0) else f"in {span}"
