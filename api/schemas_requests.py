"""Bodies of the legal-request routes (`api/routes/requests.py`), with examples."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import InputModel, Text64NonEmpty, Text255, Text255NonEmpty, Text10000

Category = Literal["subscriber", "user_identification", "traffic", "content"]
NextStatus = Literal["approved", "sent", "acknowledged", "fulfilled", "refused", "expired",
                     "withdrawn"]


class RequestCreate(InputModel):
    kind: Text64NonEmpty = Field(description="e.g. eu-epoc-pr, provider-preservation; see "
                                 "`evidence request route`.")
    platform: Text64NonEmpty = Field(description="Registry name or alias, e.g. x, facebook.")
    targets: list[uuid.UUID] | None = Field(
        default=None, max_length=200,
        description="Only these targets (default: every target of the case on the platform).")
    fields: dict[Text255NonEmpty, Text10000] = Field(
        default_factory=dict, max_length=200,
        description="Values for this request: fields of the kind, issuing.ATTR, "
        "validating.ATTR; offence, offence_provision, max_penalty_years and facts override "
        "the case's.")
    categories: list[Category] | None = Field(
        default=None, description="Default for preservation kinds: all four.")
    date_from: datetime | None = None
    date_to: datetime | None = None
    do_not_notify: bool = True
    emergency: bool = False

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "provider-preservation", "platform": "x",
         "date_from": "2025-09-01T00:00:00Z", "date_to": "2026-03-01T23:59:59Z",
         "fields": {"issuing.file_number": "BPOL-2026-114"}}]})


class RequestStatusChange(InputModel):
    status: NextStatus
    platform_reference: Text255 | None = Field(default=None,
                                               description="The platform's reference.")
    answer: Text10000 | None = None
    refusal: list[Text64NonEmpty] = Field(
        default_factory=list, max_length=20,
        description="Refusal reason codes (Annex III style), with status refused.")
    at: datetime | None = Field(default=None, description="When it happened; default now.")
    reason: Text10000 | None = Field(
        default=None, description="Why it is withdrawn, with status withdrawn only (needed).")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"status": "acknowledged", "platform_reference": "LE-2026-778"},
        {"status": "withdrawn", "reason": "Drafted for the wrong account; redrafted."}]})


class RefusalRead(BaseModel):
    code: str
    label: str


class SentLateRead(BaseModel):
    preservation_ended_at: datetime = Field(description="When the preservation the extension "
                                            "extends had ended.")
    sent_at: datetime
    extends: bool = Field(description="False where the instrument's law allows an extension "
                          "only while the period it extends runs (an EPOC-PR's, Art. 11(1)): "
                          "then it extended nothing, and the preservation ended at "
                          "preservation_ended_at.")
    note: str = Field(description="The gap in words: from that end until the extension was "
                      "sent (or, where it extends nothing, since that end) the platform was not "
                      "bound to keep the data.")


class WithdrawnRead(BaseModel):
    at: datetime = Field(description="When it was withdrawn.")
    reason: str


class RequestRead(BaseModel):
    id: uuid.UUID
    case: str
    reference: str | None
    kind: str
    platform: str
    status: str
    addressee: str | None
    identifiers: list[dict[str, Any]]
    data_categories: list[str]
    date_from: datetime | None
    date_to: datetime | None
    non_disclosure: bool
    emergency: bool
    issued_at: datetime | None
    approved_at: datetime | None
    sent_at: datetime | None
    acknowledged_at: datetime | None
    answered_at: datetime | None
    due_at: datetime | None
    deadlines: list[dict[str, Any]]
    deadlines_provisional: bool = Field(description="True until the request is sent: the "
                                        "deadlines assume it is sent when generated.")
    platform_reference: str | None
    answer: dict[str, Any] | None
    refusal_reasons: list[RefusalRead]
    pdf_sha256: str | None
    json_sha256: str | None
    previous_request_id: uuid.UUID | None
    warnings: list[str]
    fields: dict[str, str]
    sent_late: SentLateRead | None = Field(
        description="Set for an extension or renewal sent after the preservation it extends "
        "had ended: recorded as sent, with the gap it leaves.")
    withdrawn: WithdrawnRead | None = Field(
        default=None, description="Set for a request withdrawn before it was sent: it is not "
        "to be sent and has no deadline.")
    created_at: datetime
    updated_at: datetime
    document: str = Field(description="URL that streams the PDF (`?format=json`: the JSON).")


class DueRead(BaseModel):
    id: uuid.UUID
    reference: str | None
    case: str
    kind: str
    platform: str
    status: str
    deadline: str
    due: datetime
    basis: str
    overdue: bool
    action: str
    gap: str | None = Field(description="For an extension sent after the preservation it "
                            "extends had ended: the time the data went unkept.")


class PlatformStatsRead(BaseModel):
    platform: str
    total: int
    by_status: dict[str, int]
    answered: int
    median_response_hours: float | None
    median_fulfilment_hours: float | None


class ReceivedRead(BaseModel):
    """A file the unit received (a platform's answer, or material from another source)."""

    id: uuid.UUID
    request_id: uuid.UUID | None
    request: str | None = Field(description="The reference number of the request it answers.")
    source: str | None = Field(description="Where it came from, when no request.")
    filename: str = Field(description="As given (at most 255 characters); never a path.")
    sha256: str
    size: int
    media_type: str = Field(description="As sniffed from its first bytes, else as declared.")
    received_at: datetime
    via: Literal["portal", "email", "medium", "other"]
    via_detail: str | None
    platform_reference: str | None
    registered_by: str | None
    registered_at: datetime
    content: str = Field(description="Where to download its bytes (recorded in custody).")
