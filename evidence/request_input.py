"""The typed input of a legal request: what the request service builds from the database.

The instruments (`legal_forms`) read it and never touch the database; the service
(`evidence.requests`) fills it and, being core, imports no `legal_forms` (ARCHITECTURE.md). So
the input lives here and `legal_forms.instruments.base` re-exports it under the same names.

One type differs by side: the platform. The instruments read every fact of a registry entry
(`eu_entity`, `non_eu_entities`, `channel` ...), the service only what `PlatformInfo` names. So
`RequestInput` is generic in its platform: `legal_forms` works with
`RequestInput[legal_forms.platforms.Platform]` (which `base.RequestInput` names), the service
with `RequestInput[PlatformInfo]`. Both are the same class at run time, and the platform in it is
always the registry entry that `LegalInstruments.platforms()` gave the service, so the
implementation of `evidence.legal_instruments.LegalInstruments` takes any `RequestInput`.

A request that cannot be generated is refused with every `RequestProblem` at once
(`evidence.errors.RequestIncomplete`), each saying which part of this input it is about
(`About`), so that an interface places it at the input it concerns without reading its words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from evidence.platforms import PlatformInfo

P = TypeVar("P", bound=PlatformInfo)


class AuthorityRole(StrEnum):
    """What an issuing or validating authority is; Art. 4 of Reg. (EU) 2023/1543 turns on it."""

    JUDGE = "judge"
    COURT = "court"
    INVESTIGATING_JUDGE = "investigating_judge"
    PROSECUTOR = "prosecutor"
    POLICE = "police"
    OTHER = "other"


class DataCategory(StrEnum):
    """The four categories of Art. 3(9)-(12) of Reg. (EU) 2023/1543."""

    SUBSCRIBER = "subscriber"
    USER_IDENTIFICATION = "user_identification"
    TRAFFIC = "traffic"
    CONTENT = "content"


@dataclass(frozen=True)
class CaseInfo:
    reference: str
    title: str
    offence: str
    offence_provision: str
    max_penalty_years: float | None
    facts: str
    jurisdiction: str  # ISO 3166-1 alpha-2 of the issuing state, e.g. "DE"


@dataclass(frozen=True)
class Authority:
    """An issuing or validating authority, from standing settings."""

    name: str
    role: AuthorityRole
    country: str  # ISO 3166-1 alpha-2
    address: str
    phone: str
    email: str
    time_zone: str  # IANA name, e.g. "Europe/Berlin"
    person: str = ""  # the official in charge / signatory
    position: str = ""
    file_number: str = ""
    office_hours: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class TargetIdentifier:
    """One identifier of an account or item, with the capture it was taken from."""

    kind: str  # a registry identifier kind (username, user_id, phone, email, url ...)
    value: str
    source_url: str
    capture_id: str
    manifest_sha256: str
    captured_at: datetime  # UTC, aware
    relevant_date: date | None = None  # the date the identifier was in use (Instagram needs it)
    service: str = ""


@dataclass(frozen=True)
class DateRange:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class RequestInput(Generic[P]):
    kind: str
    reference: str
    case: CaseInfo
    issuing: Authority
    platform: P
    identifiers: tuple[TargetIdentifier, ...]
    categories: frozenset[DataCategory] = frozenset()
    date_range: DateRange | None = None
    validating: Authority | None = None
    do_not_notify: bool = True
    emergency: bool = False
    issued_at: datetime | None = None
    previous_reference: str | None = None
    previous_issued_at: datetime | None = None
    # An extension or renewal: when the preservation it extends ends without it (the end of the
    # current period, UTC). The new period runs on from there, not from sending.
    previous_ends_at: datetime | None = None
    user_fields: Mapping[str, str] = field(default_factory=dict)

    def user(self, name: str) -> str:
        return self.user_fields.get(name, "").strip()


# --- what a problem is about -----------------------------------------------------------------


@dataclass(frozen=True)
class About:
    """The part of a request's input a problem is about, named as every interface names it
    (the API's `fields` NAME=VALUE, `--field` on the command line, the form's inputs).

    part          name
    "field"       an instrument field ("issuing_state"); where its value comes from when no one
                  typed it is the field's `Fill.source` (an `About` of one of the parts below)
    "authority"   an authority detail as a NAME: "issuing.name", "validating.email"
    "case"        a case value as a NAME: "offence", "max_penalty_years"
    "period"      "" (the period as a whole), "start" or "end"
    "targets", "categories"   ""
    "fields"      a NAME=VALUE given that names nothing known: the NAME ("" for the values as
                  they were given, such as a line that is not NAME=VALUE)
    """

    part: Literal["field", "authority", "case", "period", "targets", "categories", "fields"]
    name: str = ""


PERIOD = About("period")
TARGETS = About("targets")
CATEGORIES = About("categories")


def issuing(attr: str) -> About:
    return About("authority", f"issuing.{attr}")


def validating(attr: str) -> About:
    return About("authority", f"validating.{attr}")


def case_value(attr: str) -> About:
    return About("case", attr)


@dataclass(frozen=True)
class RequestProblem:
    """One reason a legal request cannot be generated."""

    message: str  # as the API and the command line say it, naming what it is about
    about: About | None = None  # None: nothing one part of the input holds
    # The same said of the value itself, for beside the input that holds it ("role 'x' is not
    # one of ..." next to the issuing authority's role); empty: the message.
    detail: str = ""
    missing: bool = False  # the value (or a part of it) is not there at all

    def __str__(self) -> str:
        return self.message

    @property
    def beside(self) -> str:
        return self.detail or self.message
