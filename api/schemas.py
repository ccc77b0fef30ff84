"""Request and response bodies of the HTTP API (`XCreate`, `XUpdate`, `XRead`), with examples.

Every text field refuses NUL characters and text that is not valid Unicode and is bounded to
what its column holds, so malformed input is a 422 here and never a database error later.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from evidence.captures import SincePrevious, http_answer, outcome_of
from evidence.cases import checked_values
from evidence.errors import InvalidInput
from evidence.models import Access, TargetState
from evidence.targets import MAX_WATCH_SECONDS, MIN_WATCH_SECONDS

T = TypeVar("T")


def _clean(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return value


Text100NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(_clean)
]
Text100000NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=100_000), AfterValidator(_clean)
]
Text1024NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_clean)
]
Text100000 = Annotated[
    str, StringConstraints(min_length=0, max_length=100_000), AfterValidator(_clean)
]
Text10000 = Annotated[
    str, StringConstraints(min_length=0, max_length=10_000), AfterValidator(_clean)
]
Text2000 = Annotated[
    str, StringConstraints(min_length=0, max_length=2000), AfterValidator(_clean)
]
Text2000NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_clean)
]
Text255 = Annotated[
    str, StringConstraints(min_length=0, max_length=255), AfterValidator(_clean)
]
Text255NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(_clean)
]
Text4096 = Annotated[
    str, StringConstraints(min_length=0, max_length=4096), AfterValidator(_clean)
]
Text4096NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_clean)
]
Text500 = Annotated[
    str, StringConstraints(min_length=0, max_length=500), AfterValidator(_clean)
]
Text500NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=500), AfterValidator(_clean)
]
Text5000NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=5000), AfterValidator(_clean)
]
Text64 = Annotated[
    str, StringConstraints(min_length=0, max_length=64), AfterValidator(_clean)
]
Text64NonEmpty = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(_clean)
]
Text8 = Annotated[
    str, StringConstraints(min_length=0, max_length=8), AfterValidator(_clean)
]


class Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors and pages --------------------------------------------------------------------------

class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorRead(BaseModel):
    error: str = Field(description="The kind of error, e.g. NotFound, CaseClosed, InvalidInput.")
    message: str
    details: list[ErrorDetail] | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "NotFound", "message": "no case 'OP-2026-014'"}]})


class PageRead(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(description="URL of the next page; null on the last one.")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorRead, "description": "No valid credentials."},
    404: {"model": ErrorRead, "description": "Not found, or not yours to see."},
    422: {"model": ErrorRead, "description": "The request is malformed."},
}


# --- users and login ---------------------------------------------------------------------------

class UserRead(Model):
    id: uuid.UUID
    name: str
    display_name: str | None
    unit: str | None
    role: str


class UserStateRead(UserRead):
    active: bool = Field(validation_alias=AliasChoices("active", "is_active"),
                         description="False once disabled: the user's tokens and password are "
                                     "refused.")


class UserDisabledRead(UserStateRead):
    tokens_revoked: int = Field(description="How many live API tokens of the user were revoked.")
    sessions_ended: int = Field(description="How many open web sessions of the user ended.")


class UserStatusChange(InputModel):
    reason: Text2000NonEmpty

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "Left the unit"}]})


class LoginCreate(InputModel):
    name: Text64NonEmpty
    password: Text1024NonEmpty

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "nadia", "password": "correct horse battery staple"}]})


class LoginRead(BaseModel):
    user: UserRead
    expires_at: datetime


# --- cases -------------------------------------------------------------------------------------

FACTS = "Summary of the facts, as legal requests state them."
PROVISION = "The statutory provision, e.g. § 96 AufenthG."
CONTACT = ("Whom another unit should call when deconfliction finds that this case holds the "
           "same account or page (a name, desk or phone); none: whoever opened the case.")
MAX_PENALTY = ("Maximum custodial penalty in years: more than 0, at most 100 (a life sentence "
               "is named in the provision instead).")


def _by_the_case_rules(value: Any, info: ValidationInfo) -> Any:
    """A case's value checked by the service's own rule for its field, so that a body is
    refused for all its problems at once, not for those the schema saw first; the service
    cleans it."""
    if value is not None and info.field_name is not None:
        try:
            checked_values({info.field_name: value})
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
    return value


CASE_RULED = ("title", "max_penalty_years", "jurisdiction", "contact")


class CaseCreate(InputModel):
    reference: Text100NonEmpty = Field(description="Unique; letters, digits and . _ / -")
    title: Text500NonEmpty
    offence: Text10000 | None = None
    offence_provision: Text10000 | None = Field(default=None, description=PROVISION)
    max_penalty_years: float | None = Field(default=None, description=MAX_PENALTY)
    facts: Text100000 | None = Field(default=None, description=FACTS)
    jurisdiction: Text8 | None = Field(default=None, description="ISO 3166 code, e.g. DE.")
    handling_code: Text64 | None = None
    contact: Text500 | None = Field(default=None, description=CONTACT)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reference": "OP-2026-014", "title": "Crossing adverts, Evros",
         "offence": "Migrant smuggling (Directive 2002/90/EC)",
         "offence_provision": "Art. 29 Law 4251/2014", "max_penalty_years": 10,
         "facts": "Adverts offer crossings of the Evros river for payment.",
         "jurisdiction": "GR"}]})

    _ruled = field_validator("reference", *CASE_RULED)(_by_the_case_rules)


class CaseUpdate(InputModel):
    """Only the fields sent change; null clears one (the title cannot be cleared)."""

    title: Text500NonEmpty | None = None
    offence: Text10000 | None = None
    offence_provision: Text10000 | None = Field(default=None, description=PROVISION)
    max_penalty_years: float | None = Field(default=None, description=MAX_PENALTY)
    facts: Text100000 | None = Field(default=None, description=FACTS)
    jurisdiction: Text8 | None = None
    handling_code: Text64 | None = None
    contact: Text500 | None = Field(default=None, description=CONTACT)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"title": "Crossing adverts, Evros and Thrace", "max_penalty_years": 10}]})

    _ruled = field_validator(*CASE_RULED)(_by_the_case_rules)


class CaseStatusChange(InputModel):
    reason: Text2000 | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "Referred to the prosecutor"}]})


class CaseRead(Model):
    id: uuid.UUID
    reference: str
    title: str
    offence: str | None
    offence_provision: str | None
    max_penalty_years: float | None
    facts: str | None
    jurisdiction: str | None
    status: str
    handling_code: str | None
    contact: str | None = Field(description=CONTACT)
    owning_unit: str | None
    created_at: datetime
    closed_at: datetime | None
    access: Access | None = Field(default=None, description="The caller's access, on show.")

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [
        {"id": "0b6f8f4e-2b8e-4f0e-9a53-6f0a3c0f9d11", "reference": "OP-2026-014",
         "title": "Crossing adverts, Evros", "offence": None, "offence_provision": None,
         "max_penalty_years": None, "facts": None, "jurisdiction": "GR",
         "status": "open", "handling_code": None, "contact": None,
         "owning_unit": "Border Unit",
         "created_at": "2026-11-22T10:00:00Z", "closed_at": None, "access": "manage"}]})


class AuditCaseRead(Model):
    id: uuid.UUID
    reference: str
    status: str
    created_at: datetime


class MemberCreate(InputModel):
    user: Text64NonEmpty = Field(description="The user's name.")
    access: Access = Access.READ

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"user": "petros", "access": "write"}]})


class MemberRead(BaseModel):
    user: str
    display_name: str | None
    role: str
    unit: str | None
    access: Access
    added_at: datetime


# --- custody timeline --------------------------------------------------------------------------

class ActorRead(BaseModel):
    id: str
    name: str


class ObjectRef(BaseModel):
    type: str
    id: str | None


class TimelineEntryRead(BaseModel):
    seq: int
    case_seq: int | None
    at: str
    actor: ActorRead | None
    action: str
    object: ObjectRef | None
    sha256: str | None
    details: dict[str, Any]
    leaf_hash: str = Field(description="SHA-256(0x00 || entry), hex: the Merkle leaf.")


# --- accounts ----------------------------------------------------------------------------------

class AccountCreate(InputModel):
    platform: Text64NonEmpty
    platform_account_id: Text255 | None = Field(
        default=None, description="The platform's stable account id. Without it (a profile URL "
        "that shows only the handle) the account is the one of this handle on the platform, "
        "and its id is recorded later (PUT .../platform-account-id).")
    handle: Text255 | None = None
    display_name: Text500 | None = None
    profile_url: Text4096 | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"platform": "facebook", "platform_account_id": "100089123456789",
         "handle": "fast.trips.eu", "display_name": "Fast Trips",
         "profile_url": "https://www.facebook.com/fast.trips.eu"},
        {"platform": "instagram", "handle": "fast.trips",
         "profile_url": "https://www.instagram.com/fast.trips"}]})


class AccountIdUpdate(InputModel):
    platform_account_id: Text255NonEmpty = Field(
        description="The platform's stable account id, learnt after the account was flagged "
                    "by its handle.")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"platform_account_id": "17841400000000001"}]})


class AccountRead(Model):
    id: uuid.UUID
    platform: str
    platform_account_id: str | None = Field(
        description="The platform's stable id; null while the account is known by its handle.")
    handle: str | None
    display_name: str | None
    profile_url: str | None
    first_seen_at: datetime
    last_seen_at: datetime | None


# --- targets, jobs, captures, artifacts --------------------------------------------------------

class TargetCreate(InputModel):
    url: Text4096NonEmpty | None = None
    account_id: uuid.UUID | None = Field(default=None,
                                         description="An account linked to this case.")
    reason: Text5000NonEmpty
    watch_interval_seconds: int | None = Field(default=None, ge=MIN_WATCH_SECONDS,
                                               le=MAX_WATCH_SECONDS)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "https://www.facebook.com/fast.trips.eu/posts/123", "reason":
         "Advert offering crossings to Italy", "watch_interval_seconds": 3600}]})

    @model_validator(mode="after")
    def _one_of(self) -> TargetCreate:
        if (self.url is None) == (self.account_id is None):
            raise ValueError("give either url or account_id")
        return self


class TargetWatchUpdate(InputModel):
    watch_interval_seconds: int | None = Field(
        ge=MIN_WATCH_SECONDS, le=MAX_WATCH_SECONDS,
        description="Re-capture this often from now on; null stops watching the target.")
    reason: Text2000NonEmpty

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"watch_interval_seconds": 43200, "reason": "The advert changes twice a day at most"},
        {"watch_interval_seconds": None, "reason": "Taken down for good on 3 May"}]})


class CaptureRequestCreate(InputModel):
    reason: Text2000NonEmpty

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "The advert was edited"}]})


class TargetRead(Model):
    id: uuid.UUID
    kind: str
    url: str | None
    account_id: uuid.UUID | None
    reason: str
    flagged_by_id: uuid.UUID
    flagged_at: datetime
    watch_interval_seconds: int | None
    state: TargetState
    removed_first_seen_at: datetime | None


class JobRead(Model):
    id: uuid.UUID
    target_id: uuid.UUID
    state: str
    attempts: int
    max_attempts: int
    run_after: datetime
    error: str | None
    created_at: datetime


class TargetWatchChanged(BaseModel):
    target: TargetRead
    jobs_cancelled: list[uuid.UUID] = Field(
        description="Re-captures the watch had queued, cancelled before a worker started them.")


class TargetFlagged(BaseModel):
    target: TargetRead
    job: JobRead


_HTTP_ANSWER = "The HTTP status with its standard phrase, e.g. 'HTTP 404 Not Found'."
_ERROR_ANSWER = ("Set when the page answered with an error status (4xx, 5xx): the capture keeps "
                 "that answer, not the page; it says what the status may mean (one 404 is no "
                 "proof of a removal).")


class SincePreviousRead(Model):
    state: Literal["changed", "unchanged", "first", "not compared"] | None = Field(
        description="`changed` or `unchanged` since the capture before it that loaded the "
        "page; `first`: no capture before it loaded the page; `not compared`: made before "
        "comparisons were kept; null: this capture did not load the page, so it has nothing "
        "to compare.")
    summary: str | None = Field(description="What the comparison found, e.g. 'price changed; "
                                "1 new image'; null when nothing was compared.")


_SINCE_PREVIOUS = ("What changed since the capture of the page before it, as found when this "
                   "capture was made and stored with it (the web UI's 'Since the capture "
                   "before'); the changes themselves are in the capture's `comparison`.")


class CaptureSummary(Model):
    id: uuid.UUID
    target_id: uuid.UUID
    requested_url: str
    final_url: str | None
    title: str | None
    http_status: int | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    manifest_sha256: str | None
    since_previous: SincePreviousRead = Field(description=_SINCE_PREVIOUS)

    @classmethod
    def of(cls, capture: Any, since: SincePrevious) -> CaptureSummary:
        """The capture's summary, with what changed since the capture before it (from
        `evidence.captures.since_previous`)."""
        return CaptureSummary(
            **{name: getattr(capture, name) for name in CaptureSummary.model_fields
               if name != "since_previous"},
            since_previous=SincePreviousRead.model_validate(since))

    @computed_field(description=_HTTP_ANSWER)  # type: ignore[prop-decorator]
    @property
    def http_answer(self) -> str | None:
        return http_answer(self.http_status)

    @computed_field(description=_ERROR_ANSWER)  # type: ignore[prop-decorator]
    @property
    def error_answer(self) -> str | None:
        return outcome_of(self.status, self.http_status).said


class TargetDetail(TargetRead):
    captures: list[CaptureSummary] = Field(description="The latest 50, newest first.")
    captures_total: int = Field(description="How many captures the target has.")
    all_captures: str = Field(description="URL of every capture of the target, a page at a "
                              "time (add `newest_first=true` for the newest first).")
    jobs: list[JobRead] = Field(description="The latest 20 capture jobs, newest first.")


class AccountDetail(AccountRead):
    targets: list[TargetRead]


class ArtifactRead(Model):
    id: uuid.UUID
    kind: str
    name: str | None
    media_type: str
    size: int
    sha256: str
    phash: str | None
    dhash: str | None
    created_at: datetime
    download: str = Field(description="URL that streams the bytes.")


class CaptureDetail(CaptureSummary):
    redirect_chain: list[Any] | None
    remote_ip: str | None
    remote_port: int | None
    tls_certificates: list[Any] | None
    tool_version: str | None
    browser_version: str | None
    user_agent: str | None
    viewport: str | None
    worker_host: str | None
    steps: list[Any] | None
    error: str | None
    key_id: str | None
    signature: str | None = Field(description="Ed25519 signature of the manifest, base64.")
    timestamp_time: datetime | None
    timestamp_authority: str | None
    comparison: dict[str, Any] | None = Field(description="Changes since the previous capture.")
    artifacts: list[ArtifactRead]


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(bytes(data)).decode()


# --- notes -------------------------------------------------------------------------------------

class NoteCreate(InputModel):
    body: Text100000NonEmpty

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"body": "Same phone number as in OP-2025-101's adverts."}]})


class NoteRevisionRead(Model):
    revision: int
    body: str
    body_sha256: str
    author_id: uuid.UUID
    created_at: datetime


class NoteRead(BaseModel):
    id: uuid.UUID
    target_id: uuid.UUID | None
    created_by_id: uuid.UUID
    created_at: datetime
    revision: int = Field(description="The current revision's number.")
    body: str = Field(description="The current revision's text.")
    revised_at: datetime


class NoteDetail(NoteRead):
    revisions: list[NoteRevisionRead] = Field(description="Every revision, oldest first.")



# --- search ------------------------------------------------------------------------------------

class SearchHitRead(BaseModel):
    capture_id: uuid.UUID
    case: str = Field(description="The reference of the capture's case.")
    url: str
    host: str | None
    platform: str | None = Field(description="The platform the URL's host belongs to, if known.")
    captured_at: datetime
    snippet: str = Field(description="Captured text around the first match, as captured.")
    highlights: list[tuple[int, int]] = Field(
        description="[start, end) offsets of the matched words in `snippet`, in characters.")
    capture: str = Field(description="URL of the capture in the API.")


class SimilarImageRead(BaseModel):
    artifact_id: uuid.UUID
    capture_id: uuid.UUID | None
    case: str
    kind: str
    phash: str
    distance: int = Field(description="Hamming distance between the pHashes, 0-64.")
    url: str | None
    captured_at: datetime | None
    capture: str | None = Field(description="URL of the capture in the API.")


class SimilarImagesRead(BaseModel):
    phash: str = Field(description="The pHash searched for, 16 hex digits.")
    distance: int
    items: list[SimilarImageRead]
    more: bool = Field(description="True when more images matched than `limit`.")
