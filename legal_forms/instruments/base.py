"""The shared framework of the legal instruments: typed input, field tables, problems, deadlines.

A service builds one `RequestInput` from the database (case, targets, captures, settings, the
platform registry entry, the user's `--field NAME=VALUE` values) and hands it to an `Instrument`.
The instrument never reads anything else: it lists its fields in the official order
(`Instrument.fields`), checks the input (`validate`, every problem at once), computes due dates
(`deadlines`) and is rendered by `legal_forms.instruments.render`.

The typed input itself (`RequestInput`, `CaseInfo`, `Authority` ...) lives in the core
(`evidence.request_input`), because the service that builds it may not import this package; it is
re-exported here under its old names. Here `RequestInput` is the input over this package's
`Platform`, so the instruments read every fact of the registry entry.

Sources: every `Section` and `FieldSpec` carries the text it comes from and whether that was
checked against an official text (`verified`). An unverified section is printed without a
section letter: a letter is never guessed.

Time: every instant is a timezone-aware `datetime`; stored and compared in UTC. Periods in days
are counted on the calendar of the issuing authority's time zone (same wall-clock time N days
later, so a daylight-saving change does not move the hour); periods in hours are elapsed time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from evidence.errors import InvalidInput

# What a problem is about (`Fill.source`), re-exported for the instruments.
from evidence.request_input import CATEGORIES as CATEGORIES
from evidence.request_input import PERIOD as PERIOD
from evidence.request_input import TARGETS as TARGETS
from evidence.request_input import About as About

# Re-exported: the instruments import the typed input from here.
from evidence.request_input import Authority as Authority
from evidence.request_input import AuthorityRole as AuthorityRole
from evidence.request_input import CaseInfo as CaseInfo
from evidence.request_input import DataCategory as DataCategory
from evidence.request_input import DateRange as DateRange
from evidence.request_input import RequestInput as _RequestInput
from evidence.request_input import TargetIdentifier as TargetIdentifier
from evidence.request_input import case_value as case_value
from evidence.request_input import issuing as issuing
from evidence.request_input import validating as validating
from evidence.times import to_the_second
from legal_forms.platforms import UNKNOWN, LegalEntity, Platform

# --- errors -----------------------------------------------------------------------------------


class RequestInvalid(InvalidInput):
    """A request fails its instrument's checks; the message lists every problem."""

    def __init__(self, kind: str, problems: tuple[Problem, ...]) -> None:
        lines = "\n".join(f"- {p}" for p in problems)
        super().__init__(f"{kind}: {len(problems)} problem(s):\n{lines}")
        self.problems = problems


class UnknownKind(InvalidInput):
    """No instrument has this kind name."""


# --- the typed input ----------------------------------------------------------------------------


JUDICIAL = frozenset({AuthorityRole.JUDGE, AuthorityRole.COURT, AuthorityRole.INVESTIGATING_JUDGE})
JUDICIAL_OR_PROSECUTOR = JUDICIAL | {AuthorityRole.PROSECUTOR}


EU_LABELS: Mapping[DataCategory, str] = MappingProxyType(
    {
        DataCategory.SUBSCRIBER: "Subscriber data",
        DataCategory.USER_IDENTIFICATION: (
            "Data requested for the sole purpose of identifying the user"
        ),
        DataCategory.TRAFFIC: "Traffic data",
        DataCategory.CONTENT: "Content data",
    }
)

# How the EU split maps onto the categories of 18 U.S.C. 2703 that US providers use: both
# subscriber data and the data identifying the user are among a subscriber's records listed
# in 2703(c)(2), (A) to (F), which `category_lines` names once each.
US_LABELS: Mapping[DataCategory, str] = MappingProxyType(
    {
        DataCategory.TRAFFIC: "Other non-content records and logs (18 U.S.C. 2703(c)(1), (d))",
        DataCategory.CONTENT: "Contents of communications (18 U.S.C. 2703(a), (b))",
    }
)
US_SUBSCRIBER_RECORDS = "Basic subscriber information (18 U.S.C. 2703(c)(2)):"
# Each record of 2703(c)(2) as (its letter, its part that is subscriber data, its part that
# identifies the user): the sessions and the temporarily assigned network address (an IP
# address) identify the user (Art. 3(10) of Reg. (EU) 2023/1543), the rest is subscriber data.
_2703_C2: tuple[tuple[str, str, str], ...] = (
    ("A", "name", ""),
    ("B", "address", ""),
    ("C", "", "records of session times and durations"),
    ("D", "length of service (including start date) and types of service used", ""),
    ("E", "telephone or instrument number or other subscriber number or identity",
     "temporarily assigned network address (IP address)"),
    ("F", "means and source of payment for the service (including any credit card or bank "
          "account number)", ""),
)


def _us_subscriber_records(subscriber: bool, identifying: bool) -> list[str]:
    lines = [US_SUBSCRIBER_RECORDS]
    for letter, of_subscriber, of_user in _2703_C2:
        of_subscriber = of_subscriber if subscriber else ""
        of_user = of_user if identifying else ""
        if of_subscriber and of_user:
            lines.append(f"({letter}) {of_subscriber}, including any {of_user}")
        elif of_subscriber or of_user:
            lines.append(f"({letter}) {of_subscriber or of_user}")
    return lines


# The input over this package's platforms; instruments build and read it under this name.
RequestInput = _RequestInput[Platform]


# --- field tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One section of the official form, in the official order."""

    key: str  # stable id used by fields; the official letter/number when verified
    heading: str
    source: str
    verified: bool
    letter: str | None = None  # printed only when verified

    @property
    def title(self) -> str:
        return f"{self.letter}: {self.heading}" if self.letter else self.heading


Getter = Callable[[RequestInput], str | None]


@dataclass(frozen=True)
class Fill:
    """Where a field's value comes from: a description for people and a getter for the code."""

    description: str
    get: Getter | None = None  # None: the user supplies it with --field NAME=VALUE
    # The part of the input the value is computed from (the settings' authority detail, the
    # case value, the period ...), which a problem with the field is then about; None: nothing
    # the user gives (the platform's entry, the request's own reference ...).
    source: About | None = None


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    section: str  # Section.key
    required: bool
    fill: Fill
    source: str
    verified: bool = True
    # How the value, computed or the user's own, is written in the document (a language's code
    # as its name); None: as it is.
    shown: Callable[[str], str] | None = None

    def value(self, request: RequestInput) -> str:
        if self.name in request.user_fields:  # the user may always override
            value = request.user(self.name)
        elif self.fill.get is None:
            return ""
        else:
            value = (self.fill.get(request) or "").strip()
        return self.shown(value) if self.shown is not None and value else value

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "label": self.label,
            "section": self.section,
            "required": self.required,
            "filled_from": self.fill.description,
            "source": self.source,
            "verified": self.verified,
        }


def user_field() -> Fill:
    return Fill("user (--field NAME=VALUE)")


def case_field(attr: str) -> Fill:
    def get(r: RequestInput) -> str | None:
        value = getattr(r.case, attr)
        if isinstance(value, float):
            return f"{value:g}"  # as a reader writes it: a penalty of "10" years, not "10.0"
        return None if value is None else str(value)

    return Fill(f"case.{attr} (--field {attr}=VALUE overrides)", get, case_value(attr))


def issuing_field(attr: str) -> Fill:
    return Fill(f"settings: issuing authority {attr}", lambda r: str(getattr(r.issuing, attr)),
                issuing(attr))


def validating_field(attr: str) -> Fill:
    def get(r: RequestInput) -> str | None:
        return None if r.validating is None else str(getattr(r.validating, attr))

    return Fill(f"settings: validating authority {attr}", get, validating(attr))


def computed(description: str, get: Getter, source: About | None = None) -> Fill:
    return Fill(description, get, source)


# --- common getters ------------------------------------------------------------------------------


def identifier_lines(r: RequestInput) -> str:
    lines = []
    for i in r.identifiers:
        extra = f" (in use on {i.relevant_date.isoformat()})" if i.relevant_date else ""
        service = f"{i.service} " if i.service else ""
        lines.append(f"{service}{i.kind}: {i.value}{extra} - {i.source_url}")
    return "\n".join(lines)


def category_lines(r: RequestInput, *, us: bool = False) -> str:
    if not us:
        return "\n".join(EU_LABELS[c] for c in DataCategory if c in r.categories)
    subscriber = DataCategory.SUBSCRIBER in r.categories
    identifying = DataCategory.USER_IDENTIFICATION in r.categories
    lines = _us_subscriber_records(subscriber, identifying) if subscriber or identifying else []
    lines += [US_LABELS[c] for c in DataCategory if c in r.categories and c in US_LABELS]
    return "\n".join(lines)


def offence_text(r: RequestInput) -> str | None:
    """The offence with its provision in brackets; either alone when the case records only one,
    and nothing (the required field then says it is empty) when it records neither, rather than
    an empty "()" in a document sent to a platform."""
    offence, provision = r.case.offence.strip(), r.case.offence_provision.strip()
    if offence and provision:
        return f"{offence} ({provision})"
    return offence or provision or None


def date_range_text(r: RequestInput) -> str | None:
    if r.date_range is None:
        return None
    return f"{to_the_second(r.date_range.start)} to {to_the_second(r.date_range.end)}"


def utc_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else to_the_second(moment)


def entity_text(entity: LegalEntity) -> str | None:
    """An entity's name and address as a document prints them. What the registry does not know
    is left out, never printed as "unknown"; None when it knows neither, so that a required
    field says it is empty and the user supplies it (`--field NAME=VALUE`)."""
    return ", ".join(p for p in (entity.name, entity.address) if platform_known(p)) or None


def channel_text(name: str, url: str) -> str | None:
    """A request channel as "name <url>", with what the registry does not know left out."""
    if not platform_known(name):
        return url if platform_known(url) else None
    return f"{name} <{url}>" if platform_known(url) else name


def eu_addressee(r: RequestInput) -> str | None:
    return entity_text(r.platform.eu_entity)


def non_eu_addressee(r: RequestInput) -> str | None:
    return entity_text(r.platform.non_eu_entities[0])


def authority_block(a: Authority | None) -> str | None:
    if a is None:
        return None
    parts = [a.name, a.person and f"{a.person}, {a.position}".rstrip(", "), a.address,
             f"Tel. {a.phone}", f"Email {a.email}", f"Time zone {a.time_zone}"]
    return "\n".join(p for p in parts if p)


# --- problems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    message: str
    field: str | None = None
    severity: str = "error"  # "error" blocks sending; "warning" is shown and recorded
    missing: bool = False  # the field's value is not there at all
    # What of the input the problem is about when that is not the field itself: a check of
    # the period or the identifiers that every kind makes, whatever it calls their field.
    about: About | None = None

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        tag = "" if self.severity == "error" else f"[{self.severity}] "
        return f"{tag}{where}{self.message}"


def missing_required(fields: tuple[FieldSpec, ...], r: RequestInput) -> list[Problem]:
    return [
        Problem(f"required field '{f.label}' is empty", f.name, missing=True)
        for f in fields
        if f.required and not f.value(r)
    ]


# How far past the moment of issue a period may end: a day typed as a date in a time zone east
# of UTC ends up to this much later, and is still meant as "until today".
PERIOD_END_SLACK = timedelta(hours=24)


def period_problems(r: RequestInput) -> list[Problem]:
    """The period of the records asked for. Preservation and disclosure reach stored records:
    a period ending before it starts asks for none, and one ending after the request is issued
    asks for records that do not exist yet (only an interception order reaches those)."""
    period = r.date_range
    if period is None:
        return []
    if period.end < period.start:
        return [Problem(f"the date range ends ({to_the_second(period.end)}) before it starts "
                        f"({to_the_second(period.start)})", "date_range", about=PERIOD)]
    if r.issued_at is not None and period.end > r.issued_at + PERIOD_END_SLACK:
        return [Problem(
            f"the date range ends {to_the_second(period.end)}, after the request is issued "
            f"({to_the_second(r.issued_at)}): stored records can only be asked for up to then; "
            "records yet to come need an interception order", "date_range", about=PERIOD)]
    return []


def identifier_problems(r: RequestInput) -> list[Problem]:
    """Identifiers against the registry's accepted kinds and the timestamps' zones."""
    problems: list[str] = []
    if not r.identifiers:
        problems.append("no identifiers: name at least one account or item")
    accepted = {i.kind for i in r.platform.identifiers}
    for ident in r.identifiers:
        if ident.captured_at.tzinfo is None:
            problems.append(f"capture time of {ident.value!r} has no time zone")
        if "url" not in accepted and ident.kind not in accepted:
            problems.append(
                f"{r.platform.display_name} does not list {ident.kind!r} among the identifiers "
                f"it accepts ({', '.join(sorted(accepted))}): {ident.value!r}")
        if r.platform.name == "instagram" and ident.kind == "username" and not ident.relevant_date:
            problems.append(
                f"Instagram username {ident.value!r} needs the date it was in use: Instagram "
                "does not process a username without the relevant date")
        if len(ident.manifest_sha256) != 64:
            problems.append(f"identifier {ident.value!r} lacks the SHA-256 of its "
                            "capture manifest")
    # The identifiers are drawn from the targets, whatever field of the kind lists them.
    return [Problem(message, "identifiers", about=TARGETS) for message in problems]


def platform_known(name: str) -> bool:
    return bool(name) and name != UNKNOWN


# --- deadlines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    name: str
    due: datetime  # UTC
    basis: str
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "due": self.due.isoformat(), "basis": self.basis,
                "note": self.note}


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput("deadline arithmetic needs a timezone-aware datetime")
    return moment


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}") from exc


def add_days(moment: datetime, days: int, zone: ZoneInfo) -> datetime:
    """`days` calendar days later on the wall clock of `zone`, returned in UTC."""
    local = _aware(moment).astimezone(zone)
    later = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=zone)
    return later.astimezone(UTC)


def add_hours(moment: datetime, hours: int) -> datetime:
    """`hours` hours of elapsed time later, in UTC (a DST change does not stretch it)."""
    return _aware(moment).astimezone(UTC) + timedelta(hours=hours)


# --- the instrument ------------------------------------------------------------------------------


class Timing(StrEnum):
    NOW = "now"
    NEXT = "next"
    ALTERNATIVE = "alternative"
    TAKEDOWN = "takedown"


@dataclass(frozen=True)
class Suggestion:
    kind: str
    timing: Timing
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "timing": str(self.timing), "reason": self.reason}


@dataclass(frozen=True)
class SourceRef:
    title: str
    url: str
    verified: bool
    note: str = ""


class Instrument:
    """One kind of legal instrument. Subclasses fill the class attributes and the three hooks."""

    kind: str = ""
    title: str = ""
    legal_basis: str = ""
    preamble: str = ""
    sections: tuple[Section, ...] = ()
    fields: tuple[FieldSpec, ...] = ()
    sources: tuple[SourceRef, ...] = ()
    unverified: tuple[str, ...] = ()  # facts kept from secondary sources, stated in the output
    has_validating_authority: bool = False
    # Whether the document ends with signature blocks (the issuing authority's and, where the
    # kind has one, the validating authority's); False for one typed into the provider's own
    # form, which names its sender in its fields.
    signed: bool = True
    # How often the instrument's own law lets a request of this kind be renewed (extended),
    # whatever a platform would honour, and the provision saying so; None: it sets no limit.
    max_renewals: int | None = None
    renewal_limit: str = ""
    # Where the instrument's law lets an extension be made only while the period it extends
    # runs: the provision saying so, with what follows for one sent after that end (it extends
    # nothing). Empty: one sent late still runs on from that end, with a gap.
    late_extension_void: str = ""

    def validate(self, r: RequestInput) -> tuple[Problem, ...]:
        problems = missing_required(self.fields, r)
        if r.kind != self.kind:
            problems.append(Problem(f"request kind {r.kind!r} is not {self.kind!r}", "kind"))
        problems += self.check(r)
        return tuple(problems)

    def check(self, r: RequestInput) -> list[Problem]:
        """Rules beyond required fields; every problem found, not the first."""
        return []

    def deadlines(self, r: RequestInput, sent_at: datetime) -> tuple[Deadline, ...]:
        return ()

    def preservation_end(self, r: RequestInput, sent_at: datetime) -> datetime | None:
        """When the preserving this request asks for ends unless extended; None: no period."""
        return None

    def ensure_valid(self, r: RequestInput) -> None:
        errors = tuple(p for p in self.validate(r) if p.severity == "error")
        if errors:
            raise RequestInvalid(self.kind, errors)

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def ordered_fields(self) -> list[FieldSpec]:
        order = {s.key: i for i, s in enumerate(self.sections)}
        return sorted(self.fields, key=lambda f: order[f.section])

    def values(self, r: RequestInput) -> dict[str, str]:
        return {f.name: f.value(r) for f in self.fields}
