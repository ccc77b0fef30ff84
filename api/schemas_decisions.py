"""Bodies of the decision and deconfliction routes (kept apart from api/schemas.py, which
other areas grow at the same time); same conventions: `XCreate` in, `XRead` out, examples."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import InputModel, Model, Text2000, Text5000NonEmpty
from evidence.models import DecisionKind


class DecisionCreate(InputModel):
    kind: DecisionKind
    rationale: Text5000NonEmpty
    preservation_waiver: Text5000NonEmpty | None = Field(
        default=None, description="Why no preservation request is needed (takedowns only).")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "preserve-then-takedown",
         "rationale": "Advert offers crossings; preserve account data, then have it removed"}]})


class DecisionApprove(InputModel):
    note: Text2000 | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"note": "Capture checked; preservation order sent"}]})


class DecisionReject(InputModel):
    reason: Text5000NonEmpty

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "Keep monitoring: the account leads to the organisers"}]})


class DecisionRead(Model):
    id: uuid.UUID
    target_id: uuid.UUID
    kind: DecisionKind
    state: str = Field(description="proposed, approved, rejected or superseded.")
    stage: str | None = Field(default=None, description="For an approved preserve-then-takedown: "
                              "preserve (first approval) or takedown (second).")
    rationale: str
    preservation_waiver: str | None
    proposed_by_id: uuid.UUID
    proposed_at: datetime
    decided_by_id: uuid.UUID | None
    decided_at: datetime | None
    decision_note: str | None
    takedown_approved_by_id: uuid.UUID | None
    takedown_approved_at: datetime | None
    supersedes_id: uuid.UUID | None
    deconfliction: dict[str, Any] | None = Field(
        description="Unresolved hit ids when last proposed or approved.")


class DecisionList(BaseModel):
    items: list[DecisionRead] = Field(description="Every decision on the target, oldest first.")
    current: DecisionRead | None = Field(description="The one not superseded or rejected.")


class HitResolve(InputModel):
    note: Text5000NonEmpty = Field(description="What was agreed with the other unit.")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"note": "Spoke to their duty officer: no objection to a takedown after Friday"}]})


class AgreementRead(BaseModel):
    this_case: bool = Field(description="True for this case's agreement, false for the other's.")
    user: str
    unit: str | None
    agreed_at: datetime
    note: str | None = Field(description="This case's own note; the other case's stays with it.")


class HitRead(BaseModel):
    """A deconfliction hit as this case sees it: nothing of the other case but whom to call."""

    id: uuid.UUID
    kind: str = Field(description="url or account: which kind of selector matched.")
    target_id: uuid.UUID | None = Field(description="This case's target that matched.")
    created_at: datetime
    resolved: bool
    resolved_at: datetime | None
    other_unit: str | None = Field(description="The other case's owning unit.")
    other_contact: str = Field(description="Whom to call in the other unit.")
    agreements: list[AgreementRead]

