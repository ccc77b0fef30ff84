"""Legal requests of a case: filled from its targets and captures, rendered, stored and tracked.

`generate` builds a `RequestInput` (`evidence.request_input`) from the database (the case, its
targets, each target's latest sealed capture, the issuing authority's standing details from
settings and the user's `NAME=VALUE` fields), checks it with the instrument and lists every
problem at once (`RequestIncomplete`), renders the PDF and the JSON, keeps both in the blob store
as artifacts of the case and records one `request.generated` custody entry naming the PDF's
SHA-256.

After that a request moves draft -> approved -> sent -> acknowledged -> fulfilled | refused |
expired (`change_status`), each move one custody entry; one not sent yet may be withdrawn instead,
for a reason given, and then has no deadline. Deadlines come from the instrument (and
through it the platform registry); they are computed provisionally at generation and again from
the time the request was sent. `due` lists what expires or needs an extension, `extend` makes the
extension (EPOC-PR, Annex VI) or renewal (provider preservation) from the original, `stats`
counts requests per platform with their median response times.

This is the seam between the database and the instruments, which themselves never touch the
database. It reaches them and the platform registry only through the core's interface
(`evidence.legal_instruments`), which `legal_forms` implements: the core imports no outer package.

Access: reading needs read access to the case, anything that writes needs write access;
approving needs the supervisor, prosecutor or admin role, and someone other than the user who
drafted the request (four eyes: `FourEyesViolation`). A case (or request) the caller may not see
is reported as not found.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import statistics
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence import accounts, cases, custody, targets, users
from evidence.blobstore import BlobStore, VerifyingReader
from evidence.canonical import JsonValue
from evidence.errors import (
    AccessDenied,
    BlobMissing,
    Conflict,
    FourEyesViolation,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PreservationEnded,
    RequestIncomplete,
)
from evidence.legal_instruments import ProblemInfo, legal_instruments
from evidence.models import (
    Access,
    Account,
    Artifact,
    Capture,
    CaptureStatus,
    Case,
    CaseMember,
    LegalRequest,
    RequestStatus,
    Role,
    Target,
    User,
    utcnow,
)
from evidence.pagination import DEFAULT_LIMIT, Page, paginate
from evidence.platforms import GENERIC, PlatformInfo, PlatformRegistry
from evidence.request_input import (
    CATEGORIES,
    PERIOD,
    TARGETS,
    About,
    Authority,
    AuthorityRole,
    CaseInfo,
    DataCategory,
    DateRange,
    RequestInput,
    RequestProblem,
    TargetIdentifier,
    case_value,
)
from evidence.settings import Settings

# The input as the service builds it: over the registry's platforms as the core sees them.
Input = RequestInput[PlatformInfo]

PDF_KIND = "request-pdf"
JSON_KIND = "request-json"
PDF_MEDIA_TYPE = "application/pdf"
JSON_MEDIA_TYPE = "application/json"

# Short forms for reference numbers: <CASE>-<ABBR>-<n>.
ABBREVIATIONS: Mapping[str, str] = {
    "eu-epoc-pr": "EPOCPR",
    "eu-epoc-pr-extension": "EPOCPRX",
    "eu-epoc": "EPOC",
    "coe-art29-preservation": "ART29",
    "coe-art31-mla": "MLA",
    "dsa-art9-order": "DSA9",
    "dsa-art16-notice": "DSA16",
    "provider-preservation": "PRES",
    "provider-voluntary-disclosure": "VD",
    "emergency-disclosure": "EDR",
}
PRESERVATION_KINDS = frozenset(
    {"eu-epoc-pr", "eu-epoc-pr-extension", "provider-preservation", "coe-art29-preservation"})
# What `extend` makes of each kind it follows up: an EPOC-PR's extension (Annex VI); a provider
# preservation's renewal (the same kind again). How often is the original instrument's to say
# (`max_renewals`).
EXTENSION_KIND: Mapping[str, str] = {"eu-epoc-pr": "eu-epoc-pr-extension",
                                     "provider-preservation": "provider-preservation"}
EXTENDABLE = frozenset(EXTENSION_KIND)

# Reasons a provider gives for not executing (Annex III to Regulation (EU) 2023/1543 style).
# The list follows /work/shared/legal-instruments.md, a secondary source: the Annex's own
# wording and numbering were not checked against the official text.
REFUSAL_REASONS: Mapping[str, str] = {
    "incomplete": "The certificate is incomplete",
    "manifest-errors": "The certificate contains manifest errors",
    "not-stored": "The data requested are not stored by the provider",
    "no-longer-held": "The data are no longer held (deleted or not retained)",
    "impossible": "De facto impossible to execute, for reasons not attributable to the provider",
    "not-competent-authority": "Not issued or validated by a competent authority",
    "offence-not-covered": "The offence is not one for which the order may be issued",
    "service-not-covered": "The service is not covered by the instrument",
    "immunities": "Immunities or privileges, or rules on freedom of the press or expression",
    "third-country-law": "Compliance would conflict with the law of a third country",
    "other": "Another reason, stated in the answer",
}

S = RequestStatus
TRANSITIONS: Mapping[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.APPROVED, S.WITHDRAWN}),
    S.APPROVED: frozenset({S.SENT, S.WITHDRAWN}),
    S.SENT: frozenset({S.ACKNOWLEDGED, S.FULFILLED, S.REFUSED, S.EXPIRED}),
    S.ACKNOWLEDGED: frozenset({S.FULFILLED, S.REFUSED, S.EXPIRED}),
    # A preservation that was carried out still lapses at the end of its period.
    S.FULFILLED: frozenset({S.EXPIRED}),
    S.REFUSED: frozenset(),
    S.EXPIRED: frozenset(),
    S.WITHDRAWN: frozenset(),
}
# What each step records beside when it happened: the platform's reference and what it
# answered once the request has reached the platform (at sending, a portal's case number and
# receipt), the reasons of a refusal, why one not sent is withdrawn. Nothing else is taken with
# it (`change_status`), and the request's page offers each step these inputs only.
TO_PLATFORM = frozenset({"platform_reference", "answer"})
STEP_TAKES: Mapping[str, frozenset[str]] = {
    S.APPROVED: frozenset(),
    S.SENT: TO_PLATFORM,
    S.ACKNOWLEDGED: TO_PLATFORM,
    S.FULFILLED: TO_PLATFORM,
    S.REFUSED: TO_PLATFORM | {"refusal"},
    S.EXPIRED: frozenset(),
    S.WITHDRAWN: frozenset({"reason"}),
}
TAKEN_WORDS = {"platform_reference": "the platform's reference",
               "answer": "what the platform answered"}
APPROVERS = frozenset({Role.SUPERVISOR, Role.PROSECUTOR, Role.ADMIN})
# Statuses in which a request's deadlines still run.
RUNNING = frozenset({S.SENT, S.ACKNOWLEDGED})
# An extension in one of these extends nothing: the original may be extended again.
CLOSED_CHILD = frozenset({S.REFUSED, S.EXPIRED, S.WITHDRAWN})

AUTHORITY_ATTRS = ("name", "role", "country", "address", "phone", "email", "time_zone",
                   "person", "position", "file_number", "office_hours")
AUTHORITY_REQUIRED = ("name", "role", "country", "address", "phone", "email", "time_zone")
# Values about the case that the case record does not hold; given as --field NAME=VALUE.
CASE_FIELDS = ("offence", "offence_provision", "max_penalty_years", "facts")

_WITHIN = re.compile(r"^\s*(\d+)\s*([hdw]?)\s*$")
MAX_WITHIN = timedelta(days=3660)  # ten years: deadlines further out are not "due"


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    """A stored request and the exact bytes of its two documents, as kept in the blob store."""

    request: LegalRequest
    case_reference: str
    pdf: bytes
    json: bytes
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class DueItem:
    request: LegalRequest
    case_reference: str
    deadline: str
    due: datetime
    basis: str
    overdue: bool
    action: str
    # An extension sent after the preservation it extends had ended: what that left unkept.
    gap: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": str(self.request.id), "reference": self.request.reference_number,
                "case": self.case_reference, "kind": self.request.kind,
                "platform": self.request.platform, "status": self.request.status,
                "deadline": self.deadline, "due": iso(self.due), "basis": self.basis,
                "overdue": self.overdue, "action": self.action, "gap": self.gap}


@dataclass(frozen=True)
class PlatformStats:
    platform: str
    total: int
    by_status: dict[str, int]
    answered: int
    median_response_hours: float | None
    median_fulfilment_hours: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def parse_within(text: str) -> timedelta:
    """'14d', '36h', '2w' or a bare number of days."""
    match = _WITHIN.match(text or "")
    if match is None:
        raise InvalidInput(f"{text!r} is not a period such as 14d, 36h or 2w")
    digits, unit = match.group(1), match.group(2) or "d"
    hours = int(digits) * {"h": 1, "d": 24, "w": 24 * 7}[unit] if len(digits) <= 9 else None
    if hours is None or hours > MAX_WITHIN / timedelta(hours=1):
        raise InvalidInput(f"{text.strip()!r} is longer than ten years; give a period such "
                           "as 14d, 36h or 2w")
    return timedelta(hours=hours)


# --- the issuing authority's standing details -------------------------------------------------


def standing_authorities(settings: Settings) -> dict[str, dict[str, str]]:
    """{"issuing": {...}, "validating": {...}} from EVIDENCE_AUTHORITY_FILE, then the
    EVIDENCE_AUTHORITY_* variables (which win) for the issuing authority."""
    out: dict[str, dict[str, str]] = {"issuing": {}, "validating": {}}
    if settings.authority_file is not None:
        path = Path(settings.authority_file).expanduser()
        try:
            document = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"EVIDENCE_AUTHORITY_FILE {path}: not a readable JSON file: "
                               f"{exc}") from exc
        if not isinstance(document, dict):
            raise InvalidInput(f"EVIDENCE_AUTHORITY_FILE {path}: expected a JSON object")
        for which in out:
            part = document.get(which) or {}
            if not isinstance(part, dict):
                raise InvalidInput(f"EVIDENCE_AUTHORITY_FILE {path}: {which!r} must be an object")
            for key, value in part.items():
                if key not in AUTHORITY_ATTRS:
                    raise InvalidInput(f"EVIDENCE_AUTHORITY_FILE {path}: unknown key "
                                       f"{which}.{key}; known: {', '.join(AUTHORITY_ATTRS)}")
                out[which][key] = str(value)
    for attr in AUTHORITY_ATTRS:
        value = getattr(settings, f"authority_{attr}", None)
        if value:
            out["issuing"][attr] = str(value)
    return out


def _authority(values: Mapping[str, str], which: str,
               problems: list[RequestProblem]) -> Authority:
    # The field's name is what every interface takes (`--field issuing.name=...` on the command
    # line, `fields` in the API, the form's inputs); the settings only hold standing details.
    hint = ("this request's issuing.{attr}, or the unit's standing details in the settings"
            if which == "issuing" else "this request's validating.{attr}")
    for attr in AUTHORITY_REQUIRED:
        if not values.get(attr, "").strip():
            problems.append(RequestProblem(
                f"{which} authority: {attr} is not set ({hint.format(attr=attr)})",
                About("authority", f"{which}.{attr}"), "not set", missing=True))
    role_text = values.get("role", "").strip().lower()
    try:
        role = AuthorityRole(role_text) if role_text else AuthorityRole.OTHER
    except ValueError:
        roles = f"{role_text!r} is not one of {', '.join(r.value for r in AuthorityRole)}"
        problems.append(RequestProblem(f"{which} authority: role {roles}",
                                       About("authority", f"{which}.role"), roles))
        role = AuthorityRole.OTHER
    zone = values.get("time_zone", "").strip()
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            unknown = f"unknown time zone {zone!r} (an IANA name such as Europe/Berlin)"
            problems.append(RequestProblem(f"{which} authority: {unknown}",
                                           About("authority", f"{which}.time_zone"), unknown))
            zone = ""
    return Authority(
        name=values.get("name", "").strip(), role=role,
        country=values.get("country", "").strip().upper(),
        address=values.get("address", "").strip(), phone=values.get("phone", "").strip(),
        email=values.get("email", "").strip(), time_zone=zone or "UTC",
        person=values.get("person", "").strip(), position=values.get("position", "").strip(),
        file_number=values.get("file_number", "").strip(),
        office_hours=values.get("office_hours", "").strip(),
    )


# --- identifiers from targets and captures ----------------------------------------------------


def latest_capture(session: Session, target_id: uuid.UUID) -> Capture | None:
    """The newest sealed capture of a target that holds evidence (complete or partial)."""
    return session.scalars(
        select(Capture)
        .where(Capture.target_id == target_id,
               Capture.status.in_([CaptureStatus.COMPLETE, CaptureStatus.PARTIAL]),
               Capture.manifest_sha256.is_not(None))
        .order_by(Capture.started_at.desc(), Capture.id)
        .limit(1)
    ).first()


def _platform_of(registry: PlatformRegistry, target: Target, account: Account | None) -> str | None:
    """The registry name of the platform a request about `target` goes to; what the registry
    does not know goes to its generic provider, when it has one."""
    unknown = GENERIC if GENERIC in registry.names else None
    if account is not None:
        try:
            return registry.get(account.platform).name
        except NotFound:
            return unknown or account.platform
    if target.url:
        found = registry.recognise(target.url)
        return unknown if found is None else found.platform
    return None


def _provider_of(target: Target, account: Account | None) -> str:
    """Who runs what `target` is on, as far as the case knows it: the account's platform, or
    the URL's host (without a leading www.)."""
    if account is not None:
        return account.platform.strip().lower()
    host = (urlsplit(target.url or "").hostname or "").lower()
    return host.removeprefix("www.")


def _service(platform: PlatformInfo, kind: str) -> str:
    return next((i.service for i in platform.identifiers if i.kind == kind),
                platform.display_name)


def _identifiers_of(registry: PlatformRegistry, platform: PlatformInfo, target: Target,
                    account: Account | None, capture: Capture) -> list[TargetIdentifier]:
    accepted = {i.kind for i in platform.identifiers}
    found: list[tuple[str, str]] = []
    if account is not None:
        # An account flagged by its handle alone is named by it and its profile URL (the
        # source below) until its id is recorded: no empty user id.
        if account.platform_account_id:
            found.append(("user_id", account.platform_account_id))
        if account.handle:
            found.append(("username", account.handle.lstrip("@")))
    elif target.url:
        rec = registry.recognise(target.url)
        if rec is not None and rec.identifier_kind and rec.identifier:
            found.append((rec.identifier_kind, rec.identifier))
        if rec is not None and rec.content_id and f"{rec.content_kind}_id" in accepted:
            found.append((f"{rec.content_kind}_id", rec.content_id))
        if not found:
            found.append(("url", target.url))
    source = target.url or (account.profile_url if account else None) or capture.requested_url
    captured = capture.started_at.astimezone(UTC)
    return [
        TargetIdentifier(kind=kind, value=value, source_url=source, capture_id=str(capture.id),
                         manifest_sha256=capture.manifest_sha256 or "", captured_at=captured,
                         relevant_date=captured.date(), service=_service(platform, kind))
        for kind, value in found
    ]


def _targets_with_accounts(
    session: Session, case: Case, target_ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[Target, Account | None]]:
    """The case's targets (all, or those named), first flagged first, each with its account."""
    query = select(Target).where(Target.case_id == case.id).order_by(Target.flagged_at, Target.id)
    if target_ids:
        query = query.where(Target.id.in_(list(target_ids)))
    found = list(session.scalars(query))
    linked = accounts.accounts_by_id(session, [t.account_id for t in found if t.account_id])
    return [(t, linked.get(t.account_id) if t.account_id else None) for t in found]


def targets_on(session: Session, actor: User, case: Case, platform: str,
               registry: PlatformRegistry | None = None) -> tuple[
    list[tuple[Target, Account | None]], int
]:
    """The case's targets on `platform` (a registry name), first flagged first, each with its
    account, and how many of the case's targets are on other platforms (or none known)."""
    cases.require_access(session, actor, case, Access.READ)
    registry = registry or legal_instruments().platforms()
    on: list[tuple[Target, Account | None]] = []
    elsewhere = 0
    for target, account in _targets_with_accounts(session, case):
        if _platform_of(registry, target, account) == platform:
            on.append((target, account))
        else:
            elsewhere += 1
    return on, elsewhere


def _collect_identifiers(
    session: Session, registry: PlatformRegistry, case: Case, platform: PlatformInfo,
    target_ids: Sequence[uuid.UUID] | None, problems: list[RequestProblem],
) -> tuple[list[TargetIdentifier], list[uuid.UUID]]:
    def problem(detail: str) -> None:
        problems.append(RequestProblem(f"targets: {detail}", TARGETS, detail))

    found = _targets_with_accounts(session, case, target_ids)
    if target_ids:
        missing = set(target_ids) - {t.id for t, _ in found}
        for t in sorted(missing, key=str):
            problem(f"no target {t} in case {case.reference}")
    out: list[TargetIdentifier] = []
    used: list[uuid.UUID] = []
    seen: set[tuple[str, str]] = set()
    on_platform = 0
    providers: list[str] = []
    for target, account in found:
        on = _platform_of(registry, target, account)
        label = targets.target_name(target, account)
        if on != platform.name:
            if target_ids:
                problem(f"target {target.id} ({label}) is not on {platform.display_name} "
                        f"(it is on {on or 'no known platform'})")
            continue
        on_platform += 1
        provider = _provider_of(target, account)
        if provider not in providers:
            providers.append(provider)
        capture = latest_capture(session, target.id)
        if capture is None:
            problem(f"target {target.id} ({label}) has no complete or partial capture; capture "
                    "it first (the request cites the sealed capture)")
            continue
        used.append(target.id)
        for ident in _identifiers_of(registry, platform, target, account, capture):
            if (ident.kind, ident.value) not in seen:
                seen.add((ident.kind, ident.value))
                out.append(ident)
    if not target_ids and on_platform == 0:
        problem(f"case {case.reference} has no target on {platform.display_name}; flag the URL "
                "or account first")
    if platform.name == GENERIC and len(providers) > 1:
        # One request, one addressee: the registry knows none of these, so nothing says they
        # are run by the same provider.
        problem(f"the targets are on {len(providers)} providers the platform registry does not "
                f"know ({', '.join(providers)}); a request goes to one provider: choose the "
                "targets of the one you address")
    return out, used


def _cited_captures(row: LegalRequest) -> set[uuid.UUID]:
    """The captures the request's identifiers were drawn from (each names its sealed capture)."""
    out = set()
    for ident in row.identifiers or []:
        try:
            out.add(uuid.UUID(str(ident.get("capture_id"))))
        except (AttributeError, ValueError):
            continue  # an identifier without a capture names no target
    return out


def request_targets(session: Session, case: Case) -> dict[uuid.UUID, set[uuid.UUID]]:
    """The targets each of the case's requests concerns, by request id.

    A request names what it is about by identifiers, each drawn from a target's newest sealed
    capture and citing it (`capture_id`; an extension carries its original's). So a request
    concerns the targets whose captures it cites, and every other target of the same account
    (two targets of one account give the same identifiers, which a request lists once). The
    caller has checked access.
    """
    rows = list(session.scalars(select(LegalRequest).where(LegalRequest.case_id == case.id)))
    cited = {row.id: _cited_captures(row) for row in rows}
    capture_ids = set().union(*cited.values()) if cited else set()
    if not capture_ids:
        return {request_id: set() for request_id in cited}
    # The target (and its account) of every cited capture; captures of other cases name none.
    target_of: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID | None]] = {
        capture_id: (target_id, account_id) for capture_id, target_id, account_id in
        session.execute(select(Capture.id, Target.id, Target.account_id)
                        .join(Target, Target.id == Capture.target_id)
                        .where(Capture.case_id == case.id, Capture.id.in_(capture_ids)))}
    of_account: dict[uuid.UUID, set[uuid.UUID]] = {}
    for target_id, account_id in session.execute(select(Target.id, Target.account_id).where(
            Target.case_id == case.id, Target.account_id.is_not(None))):
        if account_id is not None:
            of_account.setdefault(account_id, set()).add(target_id)
    out: dict[uuid.UUID, set[uuid.UUID]] = {}
    for request_id, captures in cited.items():
        concerned: set[uuid.UUID] = set()
        for capture_id in captures:
            if capture_id not in target_of:
                continue
            target_id, account_id = target_of[capture_id]
            concerned.add(target_id)
            if account_id is not None:
                concerned |= of_account.get(account_id, set())
        out[request_id] = concerned
    return out


def requests_concerning(session: Session, case: Case,
                        target_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The case's requests that concern at least one of the targets (`request_targets`)."""
    chosen = set(target_ids)
    return {request_id for request_id, concerned in request_targets(session, case).items()
            if concerned & chosen}


def case_platforms(session: Session, actor: User, case: Case,
                   registry: PlatformRegistry | None = None) -> list[str]:
    """The registry names of the platforms the case's targets are on, first flagged first."""
    cases.require_access(session, actor, case, Access.READ)
    registry = registry or legal_instruments().platforms()
    out: list[str] = []
    for target, account in _targets_with_accounts(session, case):
        name = _platform_of(registry, target, account)
        if name and name in registry.names and name not in out:
            out.append(name)
    return out


# --- building the input -----------------------------------------------------------------------


def _parse_categories(kind: str, values: Sequence[str] | None,
                      problems: list[RequestProblem]) -> frozenset[DataCategory]:
    if values is None:
        # A preservation request asks to keep everything the provider holds; production and
        # other kinds must say what they want.
        return frozenset(DataCategory) if kind in PRESERVATION_KINDS else frozenset()
    out = set()
    for value in values:
        try:
            out.add(DataCategory(value.strip().lower().replace("-", "_")))
        except ValueError:
            detail = f"{value!r} is not one of {', '.join(c.value for c in DataCategory)}"
            problems.append(RequestProblem(f"categories: {detail}", CATEGORIES, detail))
    return frozenset(out)


def _date_range(date_from: datetime | None, date_to: datetime | None,
                problems: list[RequestProblem]) -> DateRange | None:
    if date_from is None and date_to is None:
        return None
    if date_from is None or date_to is None:
        both = "give both the start and the end of the period"
        problems.append(RequestProblem(f"date_range: {both}", PERIOD, both, missing=True))
        return None
    for moment in (date_from, date_to):
        if moment.tzinfo is None:
            zone = "times must carry a time zone"
            problems.append(RequestProblem(f"date_range: {zone}", PERIOD, zone))
            return None
    return DateRange(date_from.astimezone(UTC), date_to.astimezone(UTC))


def _split_fields(kind: str, fields: Mapping[str, str], problems: list[RequestProblem]) -> tuple[
        dict[str, str], dict[str, dict[str, str]], dict[str, str]]:
    """(instrument user fields, authority overrides, case values) from NAME=VALUE pairs."""
    known = {f.name for f in legal_instruments().instrument(kind).fields}
    user: dict[str, str] = {}
    authority: dict[str, dict[str, str]] = {"issuing": {}, "validating": {}}
    case_values: dict[str, str] = {}
    for raw_name, value in fields.items():
        name = raw_name.strip()
        prefix, _, attr = name.partition(".")
        if prefix in authority and attr:
            if attr not in AUTHORITY_ATTRS:
                detail = f"unknown authority detail; known: {', '.join(AUTHORITY_ATTRS)}"
                problems.append(RequestProblem(f"field {name!r}: {detail}",
                                               About("fields", name), f"{name!r}: {detail}"))
            else:
                authority[prefix][attr] = value
        elif name in CASE_FIELDS:
            case_values[name] = value
        elif name in known:
            user[name] = value
        else:
            # The hint in brackets names the command line's and the API's ways to see them.
            problems.append(RequestProblem(
                f"field {name!r}: {kind} has no such field (see `evidence request fields "
                f"{kind}`; also issuing.*, validating.*, {', '.join(CASE_FIELDS)})",
                About("fields", name), f"{name!r}: {kind} has no such field"))
    return user, authority, case_values


def _case_info(case: Case, values: Mapping[str, str], issuing: Authority,
               problems: list[RequestProblem]) -> CaseInfo:
    """What the case says of its offence; a non-empty `--field NAME=VALUE` overrides it."""
    def text_of(name: str, held: str | None) -> str:
        return values.get(name, "").strip() or (held or "").strip()

    years = case.max_penalty_years
    text = values.get("max_penalty_years", "").strip()
    if text:
        try:
            years = float(text)
        except ValueError:
            detail = f"{text!r} is not a number of years"
            problems.append(RequestProblem(f"max_penalty_years: {detail}",
                                           case_value("max_penalty_years"), detail))
    return CaseInfo(
        reference=case.reference, title=case.title,
        offence=text_of("offence", case.offence),
        offence_provision=text_of("offence_provision", case.offence_provision),
        max_penalty_years=years, facts=text_of("facts", case.facts),
        jurisdiction=(case.jurisdiction or issuing.country or "").split("-")[0],
    )


def _next_reference(session: Session, case: Case, kind: str) -> str:
    abbr = ABBREVIATIONS.get(kind, kind.upper())
    # Room for the suffix within the column's 100 characters.
    stem = f"{case.reference[:80]}-{abbr}"
    n = session.scalar(select(func.count()).select_from(LegalRequest)
                       .where(LegalRequest.case_id == case.id, LegalRequest.kind == kind)) or 0
    while True:
        n += 1
        reference = f"{stem}-{n}"
        taken = session.scalar(select(LegalRequest.id)
                               .where(LegalRequest.reference_number == reference))
        if taken is None:
            return reference


def _snapshot(r: Input) -> dict[str, JsonValue]:
    """What `_input_of` needs to rebuild the input (the rest lives in the row's columns)."""
    def authority(a: Authority | None) -> JsonValue:
        return None if a is None else {k: str(v) for k, v in dataclasses.asdict(a).items()}

    return {
        "case": {k: v for k, v in dataclasses.asdict(r.case).items()},
        "issuing": authority(r.issuing),
        "validating": authority(r.validating),
        "user_fields": dict(r.user_fields),
        "emergency": r.emergency,
        "issued_at": iso(r.issued_at),
        "previous_reference": r.previous_reference,
        "previous_issued_at": iso(r.previous_issued_at),
        "previous_ends_at": iso(r.previous_ends_at),
    }


def _identifier_json(i: TargetIdentifier) -> dict[str, JsonValue]:
    return {"kind": i.kind, "value": i.value, "source_url": i.source_url,
            "capture_id": i.capture_id, "manifest_sha256": i.manifest_sha256,
            "captured_at": iso(i.captured_at),
            "relevant_date": i.relevant_date.isoformat() if i.relevant_date else None,
            "service": i.service}


def _time(text: Any) -> datetime | None:
    return None if not text else datetime.fromisoformat(str(text))


def _input_of(row: LegalRequest, registry: PlatformRegistry) -> Input:
    """The request's input as it was generated, with `issued_at` the time it was sent."""
    snap = (row.fields or {})["input"]

    def authority(d: dict[str, str] | None) -> Authority | None:
        if d is None:
            return None
        rest = {k: v for k, v in d.items() if k != "role"}
        return Authority(role=AuthorityRole(d["role"]), **rest)

    issuing = authority(snap["issuing"])
    assert issuing is not None
    case = snap["case"]
    return RequestInput(
        kind=row.kind, reference=row.reference_number or "",
        case=CaseInfo(**case), issuing=issuing, platform=registry.get(row.platform),
        identifiers=tuple(
            TargetIdentifier(kind=i["kind"], value=i["value"], source_url=i["source_url"],
                             capture_id=i["capture_id"], manifest_sha256=i["manifest_sha256"],
                             captured_at=datetime.fromisoformat(i["captured_at"]),
                             relevant_date=date.fromisoformat(i["relevant_date"])
                             if i.get("relevant_date") else None,
                             service=i.get("service", ""))
            for i in row.identifiers or []),
        categories=frozenset(DataCategory(c) for c in row.data_categories or []),
        date_range=DateRange(row.date_from, row.date_to)
        if row.date_from is not None and row.date_to is not None else None,
        validating=authority(snap["validating"]),
        do_not_notify=row.non_disclosure, emergency=bool(snap["emergency"]),
        issued_at=row.sent_at or _time(snap["issued_at"]),
        previous_reference=snap["previous_reference"],
        previous_issued_at=_time(snap["previous_issued_at"]),
        previous_ends_at=_time(snap.get("previous_ends_at")),
        user_fields=dict(snap["user_fields"]),
    )


def build_input(
    session: Session, case: Case, *, settings: Settings, registry: PlatformRegistry, kind: str,
    platform: str, reference: str, issued_at: datetime,
    target_ids: Sequence[uuid.UUID] | None = None, fields: Mapping[str, str] | None = None,
    categories: Sequence[str] | None = None, date_from: datetime | None = None,
    date_to: datetime | None = None, do_not_notify: bool = True, emergency: bool = False,
) -> tuple[Input, list[RequestProblem]]:
    """The instrument's input filled from the case; problems found on the way (not yet the
    instrument's own checks)."""
    problems: list[RequestProblem] = []
    legal_instruments().instrument(kind)  # an unknown kind is InvalidInput
    try:
        target_platform = registry.get(platform)
    except NotFound as exc:
        raise InvalidInput(exc.message) from exc
    user, overrides, case_values = _split_fields(kind, fields or {}, problems)
    standing = standing_authorities(settings)
    issuing = _authority({**standing["issuing"], **overrides["issuing"]}, "issuing", problems)
    validating_values = {**standing["validating"], **overrides["validating"]}
    validating = (_authority(validating_values, "validating", problems)
                  if any(v.strip() for v in validating_values.values()) else None)
    identifiers, _used = _collect_identifiers(session, registry, case, target_platform,
                                              target_ids, problems)
    request = RequestInput(
        kind=kind, reference=reference,
        case=_case_info(case, case_values, issuing, problems), issuing=issuing,
        platform=target_platform, identifiers=tuple(identifiers),
        categories=_parse_categories(kind, categories, problems),
        date_range=_date_range(date_from, date_to, problems), validating=validating,
        do_not_notify=do_not_notify, emergency=emergency, issued_at=issued_at, user_fields=user,
    )
    return request, problems


# --- generating and storing -------------------------------------------------------------------


def _deadlines(r: Input, sent_at: datetime) -> list[dict[str, JsonValue]]:
    out: list[dict[str, JsonValue]] = []
    for d in legal_instruments().instrument(r.kind).deadlines(r, sent_at):
        # "... if extended ..." only applies once an extension exists; `due` skips it.
        out.append({**d.to_dict(), "conditional": "if extended" in d.name})
    return out


def _first_due(deadlines: list[dict[str, JsonValue]]) -> datetime | None:
    dues = [datetime.fromisoformat(str(d["due"])) for d in deadlines if not d["conditional"]]
    return min(dues) if dues else None


def _checked_problem(p: ProblemInfo) -> RequestProblem:
    """A finding of the instrument's checks, about the field it names (or what it says it is
    about instead)."""
    about = p.about or (None if p.field is None else About("field", p.field))
    return RequestProblem(str(p), about, p.message, missing=p.missing)


def _store_request(
    session: Session, actor: User, case: Case, r: Input, *, store: BlobStore,
    problems: list[RequestProblem], now: datetime, previous: LegalRequest | None = None,
) -> Generated:
    legal = legal_instruments()
    inst = legal.instrument(r.kind)
    checked = inst.validate(r)
    problems = problems + [_checked_problem(p) for p in checked if p.severity == "error"]
    if problems:
        raise RequestIncomplete(r.kind, problems)
    warnings = tuple(str(p) for p in checked if p.severity != "error")
    buffer = io.BytesIO()
    legal.render_pdf(r, buffer)
    pdf = buffer.getvalue()
    document = (json.dumps(legal.render_json(r), indent=2, ensure_ascii=False).encode("utf-8")
                + b"\n")
    artifacts = []
    for kind, media_type, data, suffix in ((PDF_KIND, PDF_MEDIA_TYPE, pdf, "pdf"),
                                           (JSON_KIND, JSON_MEDIA_TYPE, document, "json")):
        blob = store.put_bytes(data)
        artifact = Artifact(case_id=case.id, capture_id=None, kind=kind,
                            name=f"{r.reference}.{suffix}", media_type=media_type,
                            size=blob.size, sha256=blob.sha256)
        session.add(artifact)
        artifacts.append(artifact)
    session.flush()
    pdf_artifact, json_artifact = artifacts
    deadlines = _deadlines(r, now)
    addressee = inst.values(r).get("addressee", "")
    row = LegalRequest(
        case_id=case.id, kind=r.kind, platform=r.platform.name, reference_number=r.reference,
        addressee={"text": addressee}, identifiers=[_identifier_json(i) for i in r.identifiers],
        data_categories=[c.value for c in DataCategory if c in r.categories],
        date_from=r.date_range.start if r.date_range else None,
        date_to=r.date_range.end if r.date_range else None,
        non_disclosure=r.do_not_notify,
        fields={"values": inst.values(r), "warnings": list(warnings), "input": _snapshot(r),
                "deadlines_provisional": True},
        status=S.DRAFT, due_at=_first_due(deadlines), created_by_id=actor.id, created_at=now,
        updated_at=now, emergency=r.emergency, issued_at=r.issued_at, deadlines=deadlines,
        pdf_artifact_id=pdf_artifact.id, json_artifact_id=json_artifact.id,
        pdf_sha256=pdf_artifact.sha256, json_sha256=json_artifact.sha256,
        previous_request_id=None if previous is None else previous.id,
    )
    session.add(row)
    session.flush()
    custody.append(
        session, actor, action="request.generated", case=case, object_type="legal_request",
        object_id=row.id, sha256=pdf_artifact.sha256,
        details={
            "reference": r.reference, "kind": r.kind, "platform": r.platform.name,
            "pdf": {"artifact": str(pdf_artifact.id), "sha256": pdf_artifact.sha256,
                    "size": pdf_artifact.size},
            "json": {"artifact": str(json_artifact.id), "sha256": json_artifact.sha256,
                     "size": json_artifact.size},
            "identifiers": [f"{i.kind}:{i.value}" for i in r.identifiers],
            "captures": list(sorted({i.capture_id for i in r.identifiers})),
            "previous": None if previous is None else previous.reference_number,
            "warnings": [w for w in warnings],
        },
    )
    return Generated(row, case.reference, pdf, document, warnings)


def generate(
    session: Session, actor: User, case: Case, *, store: BlobStore, settings: Settings,
    kind: str, platform: str, target_ids: Sequence[uuid.UUID] | None = None,
    fields: Mapping[str, str] | None = None, categories: Sequence[str] | None = None,
    date_from: datetime | None = None, date_to: datetime | None = None,
    do_not_notify: bool = True, emergency: bool = False,
    registry: PlatformRegistry | None = None,
    now: datetime | None = None,
) -> Generated:
    """Fill, check, render and store a new draft request; every problem is listed at once."""
    cases.require_access(session, actor, case, Access.WRITE)
    cases.require_open(case)
    registry = registry or legal_instruments().platforms()
    now = now or utcnow()
    kind = kind.strip().lower()
    legal_instruments().instrument(kind)  # an unknown kind is InvalidInput
    reference = _next_reference(session, case, kind)
    request, problems = build_input(
        session, case, settings=settings, registry=registry, kind=kind, platform=platform,
        reference=reference, issued_at=now, target_ids=target_ids, fields=fields,
        categories=categories, date_from=date_from, date_to=date_to,
        do_not_notify=do_not_notify, emergency=emergency,
    )
    return _store_request(session, actor, case, request, store=store, problems=problems, now=now)


# --- reading ----------------------------------------------------------------------------------


def list_requests(session: Session, actor: User, case: Case) -> list[LegalRequest]:
    """Every request of the case, oldest first."""
    cases.require_access(session, actor, case, Access.READ)
    return list(session.scalars(
        select(LegalRequest).where(LegalRequest.case_id == case.id)
        .order_by(LegalRequest.created_at, LegalRequest.reference_number)))


def page_requests(session: Session, actor: User, case: Case, *, limit: int = DEFAULT_LIMIT,
                  cursor: str | None = None, newest_first: bool = False) -> Page[LegalRequest]:
    """A page of the case's requests, oldest first (or newest first)."""
    cases.require_access(session, actor, case, Access.READ)
    return paginate(session, select(LegalRequest).where(LegalRequest.case_id == case.id),
                    key=(LegalRequest.created_at, LegalRequest.id), limit=limit, cursor=cursor,
                    descending=newest_first)


def count_requests(session: Session, case: Case) -> int:
    return session.scalar(select(func.count()).select_from(LegalRequest)
                          .where(LegalRequest.case_id == case.id)) or 0


def extensions_of(session: Session, parents: Iterable[uuid.UUID], *,
                  live_only: bool = False) -> dict[uuid.UUID, list[LegalRequest]]:
    """The requests made as extensions of each of `parents`, oldest first, in one query; with
    `live_only`, only those not refused or expired (the one that carries the deadline now)."""
    ids = list(parents)
    if not ids:
        return {}
    query = select(LegalRequest).where(LegalRequest.previous_request_id.in_(ids))
    if live_only:
        query = query.where(LegalRequest.status.not_in(list(CLOSED_CHILD)))
    out: dict[uuid.UUID, list[LegalRequest]] = {}
    for row in session.scalars(query.order_by(LegalRequest.created_at,
                                              LegalRequest.reference_number)):
        assert row.previous_request_id is not None
        out.setdefault(row.previous_request_id, []).append(row)
    return out


def get_request(session: Session, actor: User, case: Case, request_id: uuid.UUID, *,
                need: Access = Access.READ) -> LegalRequest:
    cases.require_access(session, actor, case, need)
    row = session.scalars(select(LegalRequest).where(LegalRequest.id == request_id,
                                                     LegalRequest.case_id == case.id)).first()
    if row is None:
        raise AccessDenied(f"no request {request_id} in case {case.reference!r}")
    return row


def request_for(session: Session, actor: User, request_id: uuid.UUID | str, *,
                need: Access = Access.READ) -> tuple[LegalRequest, Case]:
    """A request by id or reference number, with its case, for someone who may see it."""
    row: LegalRequest | None
    try:
        row = session.get(LegalRequest, uuid.UUID(str(request_id)))
    except ValueError:
        row = session.scalars(select(LegalRequest).where(
            LegalRequest.reference_number == str(request_id))).first()
    if row is None or actor.role == Role.AUDITOR:
        raise AccessDenied(f"no request {request_id}")
    case = session.get(Case, row.case_id)
    assert case is not None
    if cases.access_of(session, actor, case) is None:
        raise AccessDenied(f"no request {request_id}")
    cases.require_access(session, actor, case, need)
    return row, case


def open_document(session: Session, actor: User, case: Case, request_id: uuid.UUID, *,
                  store: BlobStore, kind: str = PDF_KIND) -> tuple[Artifact, BinaryIO |
                                                                   VerifyingReader]:
    """Record the download in the case's custody log, then open the stored bytes."""
    row = get_request(session, actor, case, request_id)
    artifact_id = row.pdf_artifact_id if kind == PDF_KIND else row.json_artifact_id
    artifact = None if artifact_id is None else session.get(Artifact, artifact_id)
    if artifact is None:
        raise AccessDenied(f"request {row.reference_number} has no {kind} document")
    if not store.exists(artifact.sha256):
        raise BlobMissing(f"the bytes of {artifact.name} ({artifact.sha256}) are missing from "
                          "the blob store")
    custody.append(session, actor, action="request.document_downloaded", case=case,
                   object_type="artifact", object_id=artifact.id, sha256=artifact.sha256,
                   details={"request": str(row.id), "reference": row.reference_number,
                            "kind": artifact.kind, "size": artifact.size})
    return artifact, store.open(artifact.sha256, verify=True)


def describe(row: LegalRequest, case_reference: str) -> dict[str, Any]:
    """A request as JSON-ready data for the CLI and the API."""
    return {
        "id": str(row.id), "case": case_reference, "reference": row.reference_number,
        "kind": row.kind, "platform": row.platform, "status": row.status,
        "addressee": (row.addressee or {}).get("text"), "identifiers": row.identifiers or [],
        "data_categories": row.data_categories or [],
        "date_from": iso(row.date_from), "date_to": iso(row.date_to),
        "non_disclosure": row.non_disclosure, "emergency": row.emergency,
        "issued_at": iso(row.issued_at), "approved_at": iso(row.approved_at),
        "sent_at": iso(row.sent_at), "acknowledged_at": iso(row.acknowledged_at),
        "answered_at": iso(row.answered_at), "due_at": iso(row.due_at),
        "deadlines": row.deadlines or [],
        "deadlines_provisional": bool((row.fields or {}).get("deadlines_provisional")),
        "platform_reference": row.platform_reference, "answer": row.answer,
        "refusal_reasons": [{"code": c, "label": REFUSAL_REASONS.get(c, c)}
                            for c in row.refusal_reasons or []],
        "pdf_sha256": row.pdf_sha256, "json_sha256": row.json_sha256,
        "previous_request_id": None if row.previous_request_id is None
        else str(row.previous_request_id),
        "warnings": (row.fields or {}).get("warnings", []),
        "fields": (row.fields or {}).get("values", {}),
        "sent_late": sent_late(row),
        "withdrawn": (row.fields or {}).get("withdrawn"),
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
    }


def late_gap(row: LegalRequest) -> tuple[datetime, datetime] | None:
    """For an extension sent after the preservation it extends had ended: when that ended and
    when the extension was sent, the time in between being kept by no one's request."""
    ended = _time((row.fields or {}).get("sent_after_end"))
    if ended is None or row.sent_at is None:
        return None
    return ended, row.sent_at


def _late_void(kind: str) -> str:
    """Why an extension of `kind` sent late extends nothing; empty: it runs on, with a gap."""
    return legal_instruments().instrument(kind).late_extension_void


def _gap_text(kind: str, ended: datetime, sent: datetime) -> str:
    late = f"sent {_when(sent)}, after the preservation it extends ended on {_when(ended)}"
    void = _late_void(kind)
    if void:
        return (f"{late}: {void}; the platform has not been bound to keep the data since "
                f"{_when(ended)}")
    return (f"{late}: the platform was not bound to keep the data from {_when(ended)} until it "
            "was sent")


def sent_late(row: LegalRequest) -> dict[str, Any] | None:
    """`late_gap` as the API, the CLI and the request page show it; None: not sent late.
    `extends` is False where the instrument's law makes the late extension extend nothing."""
    gap = late_gap(row)
    if gap is None:
        return None
    ended, sent = gap
    return {"preservation_ended_at": iso(ended), "sent_at": iso(sent),
            "extends": not _late_void(row.kind), "note": _gap_text(row.kind, ended, sent)}


# --- lifecycle --------------------------------------------------------------------------------


def drafted_by(row: LegalRequest, actor: User) -> bool:
    """Whether `actor` drafted the request (generated it, or generated it as an extension):
    then someone else approves it."""
    return row.created_by_id == actor.id


def change_status(
    session: Session, actor: User, case: Case, request_id: uuid.UUID, status: str, *,
    platform_reference: str | None = None, answer: str | None = None,
    refusal: Sequence[str] = (), at: datetime | None = None, reason: str | None = None,
    registry: PlatformRegistry | None = None,
    now: datetime | None = None,
) -> LegalRequest:
    """Move a request one step along its lifecycle, recording the step in the custody log.
    Withdrawing one not sent yet needs the `reason`, which no other step takes."""
    row = get_request(session, actor, case, request_id, need=Access.WRITE)
    now = now or utcnow()
    try:
        new = RequestStatus(status.strip().lower())
    except ValueError:
        raise InvalidInput(f"unknown status {status!r}; one of "
                           f"{', '.join(s.value for s in RequestStatus)}") from None
    old = RequestStatus(row.status)
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none (final)"
        raise IllegalTransition(f"request {row.reference_number} is {old.value}; it cannot "
                                f"become {new.value} (next: {allowed})")
    if new == S.APPROVED and actor.role not in APPROVERS:
        raise PermissionDenied(f"approving a request needs the role "
                               f"{', '.join(sorted(APPROVERS))}; you are {actor.role}")
    if new == S.APPROVED and drafted_by(row, actor):
        raise FourEyesViolation(
            f"four eyes: you drafted request {row.reference_number}, so you may not approve it; "
            "another supervisor, prosecutor or admin of the case must")
    codes = [c.strip().lower() for c in refusal if c.strip()]
    unknown = [c for c in codes if c not in REFUSAL_REASONS]
    if unknown:
        raise InvalidInput(f"unknown refusal reason(s) {', '.join(unknown)}; known: "
                           f"{', '.join(REFUSAL_REASONS)}")
    if codes and new != S.REFUSED:
        raise InvalidInput("refusal reasons are recorded only with the status refused")
    if new == S.REFUSED and not codes:
        raise InvalidInput("a refusal needs at least one reason code: "
                           f"{', '.join(REFUSAL_REASONS)}")
    why = (reason or "").strip()
    if why and new != S.WITHDRAWN:
        raise InvalidInput("a reason is recorded only when a request is withdrawn")
    if new == S.WITHDRAWN and not why:
        raise InvalidInput(f"withdrawing request {row.reference_number} needs the reason why "
                           "it is not to be sent")
    for name, given in (("platform_reference", platform_reference), ("answer", answer)):
        if (given or "").strip() and name not in STEP_TAKES[new]:
            takers = [step.value for step in S if name in STEP_TAKES.get(step, ())]
            raise InvalidInput(f"{TAKEN_WORDS[name]} is recorded only with the steps "
                               f"{', '.join(takers)}")
    when = (at or now)
    if when.tzinfo is None:
        raise InvalidInput("the time of the change must carry a time zone")
    when = when.astimezone(UTC)
    if when > now + timedelta(minutes=5):
        raise InvalidInput("the time of the change is in the future")
    if when < row.created_at:
        raise InvalidInput("the time of the change is before the request was generated")
    late: datetime | None = None
    if new == S.APPROVED:
        row.approved_at, row.approved_by_id = when, actor.id
    elif new == S.SENT:
        row.sent_at = when
        # The real deadlines run from sending: recompute them over the stored input.
        r = _input_with_period(session, row, registry or legal_instruments().platforms())
        row.deadlines = _deadlines(r, when)
        row.due_at = _first_due(row.deadlines)
        # Sent once what it extends had ended (as `extension_refusal` counts an end): what
        # happened is recorded, and that the data went unkept from that end until now.
        if r.previous_ends_at is not None and when >= r.previous_ends_at:
            late = r.previous_ends_at
        row.fields = {**(row.fields or {}), "deadlines_provisional": False,
                      "sent_after_end": iso(late)}
    elif new == S.ACKNOWLEDGED:
        row.acknowledged_at = when
    elif new in (S.FULFILLED, S.REFUSED):
        row.answered_at = when
    elif new == S.WITHDRAWN:
        # Never sent, so nothing runs: its provisional deadlines go (the custody log keeps them).
        row.deadlines, row.due_at = [], None
        row.fields = {**(row.fields or {}), "deadlines_provisional": False,
                      "withdrawn": {"at": iso(when), "reason": why}}
    if platform_reference is not None and platform_reference.strip():
        row.platform_reference = platform_reference.strip()
    if answer is not None and answer.strip():
        row.answer = {**(row.answer or {}), new.value: answer.strip()}
    if codes:
        row.refusal_reasons = codes
    row.status = new
    row.updated_at = now
    session.flush()
    custody.append(
        session, actor, action=f"request.{new.value}", case=case, object_type="legal_request",
        object_id=row.id, sha256=row.pdf_sha256,
        details={"reference": row.reference_number, "from": old.value, "to": new.value,
                 "at": iso(when), "platform_reference": row.platform_reference,
                 "answer": answer.strip() if answer else None,
                 "refusal": [{"code": c, "label": REFUSAL_REASONS[c]} for c in codes],
                 **({"reason": why} if why else {}),
                 "due_at": iso(row.due_at),
                 **({} if late is None else {
                     "sent_after_preservation_ended": iso(late),
                     "note": _gap_text(row.kind, late, when)})},
    )
    return row


# --- deadlines, extensions --------------------------------------------------------------------


def _visible(actor: User) -> Any:
    return (select(LegalRequest, Case.reference)
            .join(Case, Case.id == LegalRequest.case_id)
            .join(CaseMember, CaseMember.case_id == Case.id)
            .where(CaseMember.user_id == actor.id))


def due(session: Session, actor: User, *, within: timedelta = timedelta(days=14),
        now: datetime | None = None, case: Case | None = None) -> list[DueItem]:
    """Deadlines of running requests (in cases the actor sees, or in `case` alone) that fall
    before now + within, overdue ones included, soonest first, each with what to do about it.

    Only running requests are read (sent or acknowledged, or a fulfilled preservation, which
    still runs until its period ends), with their live extensions: what has ended is not read.
    """
    now = now or utcnow()
    if not users.reads_evidence(actor.role):
        return []
    query = _visible(actor).where(
        LegalRequest.status.in_(list(RUNNING))
        | ((LegalRequest.status == S.FULFILLED)
           & LegalRequest.kind.in_(sorted(PRESERVATION_KINDS))))
    if case is not None:
        query = query.where(LegalRequest.case_id == case.id)
    rows = [(r[0], r[1]) for r in session.execute(query).all()]
    children = extensions_of(session, [row.id for row, _ref in rows], live_only=True)
    horizon = now + within
    out: list[DueItem] = []
    for row, ref in rows:
        kids = children.get(row.id, [])
        if any(k.status in RUNNING | {S.FULFILLED} for k in kids):
            continue  # the extension carries the deadline now
        gap = late_gap(row)
        # Sent too late to extend anything: the end it came after stays listed, overdue,
        # though it fell before the sending (what the request says it could not revive).
        void = gap is not None and bool(_late_void(row.kind))
        for d in row.deadlines or []:
            if d.get("conditional"):
                continue
            when = datetime.fromisoformat(str(d["due"]))
            if row.sent_at is not None and (str(d["name"]).startswith("send ")
                                            or (when <= row.sent_at and not void)):
                continue  # a deadline for sending, met by sending
            if when > horizon:
                continue
            if void:
                action = (f"not extended: make a new preservation request at once, then record "
                          f"this one: evidence request status {row.id} expired")
            elif kids:
                action = f"send the extension {kids[0].reference_number} ({kids[0].status})"
            elif row.kind in EXTENDABLE and when < now:
                action = f"lapsed? record it: evidence request status {row.id} expired"
            elif row.kind in EXTENDABLE:
                refusal = extension_refusal(session, row, now=now)
                action = (f"extend: evidence request extend {row.id}" if refusal is None else
                          f"follow up with the platform; no extension: {refusal.message}")
            else:
                action = "follow up with the platform"
            out.append(DueItem(row, ref, str(d["name"]), when, str(d.get("basis", "")),
                               when < now, action,
                               None if gap is None else _gap_text(row.kind, *gap)))
    out.sort(key=lambda i: (i.due, i.request.reference_number or ""))
    return out


def _original(session: Session, row: LegalRequest) -> tuple[LegalRequest, int]:
    """The request the chain of extensions ending at `row` started from, and how many
    extensions lead from it to `row`."""
    count, current = 0, row
    while current.previous_request_id is not None:
        parent = session.get(LegalRequest, current.previous_request_id)
        if parent is None:
            break
        count, current = count + 1, parent
    return current, count


def _input_with_period(session: Session, row: LegalRequest, registry: PlatformRegistry) -> Input:
    """The request's input, with the end of the period it extends where it extends one.

    Kept in the input since extensions run on from that end; for one generated before it was
    kept, it is worked out again from the request extended."""
    r = _input_of(row, registry)
    if r.previous_ends_at is None and row.previous_request_id is not None:
        parent = session.get(LegalRequest, row.previous_request_id)
        if parent is not None:
            r = dataclasses.replace(r, previous_ends_at=period_end(session, parent, registry))
    return r


def period_end(session: Session, row: LegalRequest,
               registry: PlatformRegistry | None = None) -> datetime | None:
    """When the preservation a sent request asks for ends unless extended: for an extension or
    renewal, counted on from the end of the period it extends. None: not sent, or no period."""
    if row.sent_at is None:
        return None
    r = _input_with_period(session, row, registry or legal_instruments().platforms())
    return legal_instruments().instrument(row.kind).preservation_end(r, row.sent_at)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def extension_refusal(session: Session, row: LegalRequest, *,
                      registry: PlatformRegistry | None = None,
                      now: datetime | None = None) -> Conflict | None:
    """Why the request cannot be extended now, or None when `extend` would make its extension.

    Only a sent preservation whose period is still running is extended, and only as often as
    the law of the instrument it started as allows (`max_renewals`: an EPOC-PR once, Art.
    11(1); a provider's preservation once, 18 U.S.C. 2703(f)(2)), counting the extensions that
    lead to it and one of its own that ran and lapsed, never one that was refused (it extended
    nothing). A provider's renewal is also held to what the platform registry says the platform
    honours; an EPOC-PR's extension binds the provider by law, whatever its own practice."""
    now = now or utcnow()
    ref = row.reference_number
    original, made_count = _original(session, row)
    if original.kind not in EXTENDABLE:
        return Conflict(f"a {row.kind} request has no extension here (only "
                        f"{', '.join(sorted(EXTENDABLE))})")
    if row.status == S.EXPIRED:
        return PreservationEnded(f"request {ref} is expired: an ended preservation cannot be "
                                 "extended; make a new preservation request")
    if row.status == S.REFUSED:
        return Conflict(f"request {ref} was refused: there is no preservation to extend")
    children = extensions_of(session, [row.id]).get(row.id, [])
    made_count += sum(1 for c in children if c.status == S.EXPIRED)
    registry = registry or legal_instruments().platforms()
    inst = legal_instruments().instrument(original.kind)
    limits = [(inst.max_renewals, inst.renewal_limit)]
    if EXTENSION_KIND[original.kind] == original.kind:
        # A renewal asks the platform to keep on under its own preservation practice.
        platform = registry.get(row.platform)
        limits.append((platform.preservation.max_extensions,
                       f"{platform.display_name} extends a preservation at most "
                       f"{platform.preservation.max_extensions} time(s) (platform registry)"))
    verb = "renewed" if EXTENSION_KIND[original.kind] == original.kind else "extended"
    live = [c for c in children if c.status not in CLOSED_CHILD]
    if live:
        # The one being made counts too: say when it is the last the law allows.
        last = [why for limit, why in limits if limit is not None and made_count + 1 >= limit]
        return Conflict(f"request {ref} is already extended by {live[0].reference_number} "
                        f"({live[0].status})" + (f": {'; '.join(last)}" if last else ""))
    reached = [why for limit, why in limits if limit is not None and made_count >= limit]
    if reached:
        return Conflict(f"request {ref} cannot be {verb} again: {'; '.join(reached)}; make a "
                        "new preservation request or serve legal process")
    if row.kind not in EXTENDABLE:
        return Conflict(f"request {ref} extends {original.reference_number}: only the original "
                        "is extended")
    if row.status not in (S.SENT, S.ACKNOWLEDGED, S.FULFILLED) or row.sent_at is None:
        return Conflict(f"request {ref} is {row.status}: only a sent preservation can be "
                        "extended")
    ends = period_end(session, row, registry)
    if ends is not None and ends <= now:
        return PreservationEnded(f"the preservation under request {ref} ended {_when(ends)}: an "
                                 "ended preservation cannot be extended; make a new "
                                 "preservation request")
    return None


def extend(
    session: Session, actor: User, request_id: uuid.UUID | str, *, store: BlobStore,
    registry: PlatformRegistry | None = None, now: datetime | None = None,
) -> Generated:
    """The extension of a sent preservation, generated from the original as a new draft; its
    period runs on from the end of the original's current one."""
    row, case = request_for(session, actor, request_id, need=Access.WRITE)
    cases.require_open(case)
    registry = registry or legal_instruments().platforms()
    now = now or utcnow()
    refusal = extension_refusal(session, row, registry=registry, now=now)
    if refusal is not None:
        raise refusal
    ends = period_end(session, row, registry)
    original = _input_with_period(session, row, registry)
    kind = EXTENSION_KIND[row.kind]
    reference = _next_reference(session, case, kind)
    if kind != row.kind:
        new = legal_instruments().extension_of(original, reference=reference, issued_at=now)
    else:
        new = dataclasses.replace(original, reference=reference, issued_at=now,
                                  previous_reference=row.reference_number,
                                  previous_issued_at=row.sent_at)
    new = dataclasses.replace(new, previous_ends_at=ends)
    return _store_request(session, actor, case, new, store=store, problems=[], now=now,
                          previous=row)


# --- statistics -------------------------------------------------------------------------------


def _hours(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 3600, 2)


def stats(session: Session, actor: User) -> list[PlatformStats]:
    """Per platform, over the cases the actor sees: counts by status and the median hours from
    sending to the first answer (acknowledgement or result) and to fulfilment."""
    if actor.role == Role.AUDITOR:
        return []
    by_platform: dict[str, list[LegalRequest]] = {}
    for row, _ref in session.execute(_visible(actor)).all():
        by_platform.setdefault(row.platform, []).append(row)
    out = []
    for platform in sorted(by_platform):
        rows = by_platform[platform]
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        response = []
        fulfilment = []
        for row in rows:
            if row.sent_at is None:
                continue
            answers = [t for t in (row.acknowledged_at, row.answered_at) if t is not None]
            if answers:
                response.append(_hours(row.sent_at, min(answers)))
            if row.status == S.FULFILLED and row.answered_at is not None:
                fulfilment.append(_hours(row.sent_at, row.answered_at))
        out.append(PlatformStats(
            platform=platform, total=len(rows), by_status=dict(sorted(counts.items())),
            answered=len(response),
            median_response_hours=statistics.median(response) if response else None,
            median_fulfilment_hours=statistics.median(fulfilment) if fulfilment else None,
        ))
    return out
