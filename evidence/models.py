"""SQLAlchemy 2 typed models of the first-cut data model (ARCHITECTURE.md, "Data model").

The schema itself is made only by the Alembic migrations; a test checks that they agree with
these classes. Times are stored as UTC and always read back timezone-aware.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    column,
    false,
    func,
    literal_column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that refuses naive input and always comes back in UTC, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: evidence times must carry a time zone")
        value = value.astimezone(UTC)
        # SQLite keeps the text it is given; store it without an offset so it sorts and compares.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")


class IndexedText(FunctionElement[str]):
    """A text column as a unique index holds it: the text itself on SQLite, its MD5 on
    PostgreSQL, whose B-tree entries stop at 2704 bytes (2000 Chinese characters are 6000).
    The index only guards against a second row; the look for an earlier one compares whole
    texts, so two texts made to share an MD5 would at worst see the second refused."""

    inherit_cache = True
    type = Text()


@compiles(IndexedText)
def _indexed_text(element: IndexedText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(IndexedText, "postgresql")
def _indexed_text_postgresql(element: IndexedText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"md5({compiler.process(element.clauses, **kw)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Role(StrEnum):
    INVESTIGATOR = "investigator"
    SUPERVISOR = "supervisor"
    LIAISON = "liaison"
    PROSECUTOR = "prosecutor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Access(StrEnum):
    READ = "read"
    WRITE = "write"
    MANAGE = "manage"


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class TargetKind(StrEnum):
    URL = "url"
    ACCOUNT = "account"


class TargetState(StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"
    RESOLVED = "resolved"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    # Never started, and now never will: its watch was stopped or its case closed.
    CANCELLED = "cancelled"


class CaptureStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"


class DecisionKind(StrEnum):
    PRESERVE = "preserve"
    TAKEDOWN = "takedown"
    PRESERVE_THEN_TAKEDOWN = "preserve-then-takedown"
    MONITOR = "monitor"


class DecisionState(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


class RequestStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    FULFILLED = "fulfilled"
    REFUSED = "refused"
    EXPIRED = "expired"
    # Not to be sent after all (a wrong draft, an approval overtaken): the column is a
    # String(16) without a CHECK, so a status needs no migration.
    WITHDRAWN = "withdrawn"


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, nullable=False)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # Only the SHA-256 of the token is kept; the token itself is shown once.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="raise")


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[uuid.UUID] = _uuid_pk()
    reference: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    offence: Mapped[str | None] = mapped_column(Text)
    # What a legal request says of the offence (migration 0007): the statutory provision, its
    # maximum custodial penalty in years (0 < years <= 100; evidence/cases.py) and the facts.
    offence_provision: Mapped[str | None] = mapped_column(Text)
    max_penalty_years: Mapped[float | None] = mapped_column(Float)
    facts: Mapped[str | None] = mapped_column(Text)
    jurisdiction: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.OPEN)
    handling_code: Mapped[str | None] = mapped_column(String(64))
    owning_unit: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _created()
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whom another unit calls about a deconfliction hit (migration 0003); default the creator.
    contact: Mapped[str | None] = mapped_column(String(500))

    members: Mapped[list[CaseMember]] = relationship(back_populates="case", lazy="raise")


class CaseMember(Base):
    __tablename__ = "case_members"
    __table_args__ = (UniqueConstraint("case_id", "user_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    access: Mapped[str] = mapped_column(String(16))
    added_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    added_at: Mapped[datetime] = _created()

    case: Mapped[Case] = relationship(back_populates="members", lazy="raise")
    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="raise")


def handle_key(handle: str) -> str:
    """The handle as accounts compare it: without case, on every database (`Account.handle_key`).

    Folded here, in Python, and stored, because the databases' lower() disagree: SQLite's folds
    only A-Z (ÉLODIE and élodie would be two accounts), PostgreSQL's follows the server's
    locale. str.casefold() rather than lower(): it is Unicode's folding for comparing without
    case, where lower() is for showing text (the capital of ß is SS, of the final ς Σ, and
    lower() gives straße and strasse, οδος and οδοσ, as two). NFC first, so that É typed as
    one character or as E and its accent is one handle, and again after, as folding may take
    a character apart; not NFKC, which would make a full-width ｆａｓｔ the handle fast: a
    handle that only looks like another is another.
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", handle).casefold())


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("platform", "platform_account_id"),
        # An account flagged before its stable id is known is named by its handle, which the
        # platforms compare without case: one such row per handle (migrations 0017, 0018).
        Index("uq_accounts_platform_handle_without_id", column("platform"),
              column("handle_key"), unique=True,
              sqlite_where=column("platform_account_id").is_(None),
              postgresql_where=column("platform_account_id").is_(None)),
        CheckConstraint("platform_account_id IS NOT NULL OR handle IS NOT NULL",
                        name="id_or_handle"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    platform: Mapped[str] = mapped_column(String(64))
    # The platform's stable id; None until it is learnt (migration 0017), the handle then names
    # the account.
    platform_account_id: Mapped[str | None] = mapped_column(String(255))
    handle: Mapped[str | None] = mapped_column(String(255))
    # handle_key(handle), set with the handle (migration 0018). Text: folding may lengthen it
    # (ß is ss), up to three characters for one.
    handle_key: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(String(500))
    profile_url: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = _created()
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @validates("handle")
    def _keyed(self, _name: str, handle: str | None) -> str | None:
        self.handle_key = None if handle is None else handle_key(handle)
        return handle


class CaseAccount(Base):
    __tablename__ = "case_accounts"
    __table_args__ = (UniqueConstraint("case_id", "account_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    added_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    added_at: Mapped[datetime] = _created()


class Target(Base):
    __tablename__ = "targets"

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"))
    reason: Mapped[str] = mapped_column(Text)
    flagged_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    flagged_at: Mapped[datetime] = _created()
    watch_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    next_capture_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), default=TargetState.ACTIVE)
    removed_first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CaptureJob(Base):
    __tablename__ = "capture_jobs"
    __table_args__ = (Index("ix_capture_jobs_state_run_after", "state", "run_after"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    target_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("targets.id"), index=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    run_after: Mapped[datetime] = _created()
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Capture(Base):
    __tablename__ = "captures"

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    target_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("targets.id"), index=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("capture_jobs.id"))
    requested_url: Mapped[str] = mapped_column(Text)
    final_url: Mapped[str | None] = mapped_column(Text)
    redirect_chain: Mapped[list[Any] | None] = mapped_column(Json)
    http_status: Mapped[int | None] = mapped_column(Integer)
    remote_ip: Mapped[str | None] = mapped_column(String(64))
    remote_port: Mapped[int | None] = mapped_column(Integer)
    tls_certificates: Mapped[list[Any] | None] = mapped_column(Json)
    title: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tool_version: Mapped[str | None] = mapped_column(String(64))
    browser_version: Mapped[str | None] = mapped_column(String(128))
    user_agent: Mapped[str | None] = mapped_column(Text)
    viewport: Mapped[str | None] = mapped_column(String(32))
    operator_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    worker_host: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    steps: Mapped[list[Any] | None] = mapped_column(Json)
    error: Mapped[str | None] = mapped_column(Text)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(64))
    timestamp_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    timestamp_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timestamp_authority: Mapped[str | None] = mapped_column(Text)
    comparison: Mapped[dict[str, Any] | None] = mapped_column(Json)


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[uuid.UUID] = _uuid_pk()
    capture_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("captures.id"), index=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    phash: Mapped[str | None] = mapped_column(String(16))
    dhash: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = _created()


class Decision(Base):
    __tablename__ = "decisions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    target_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("targets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=DecisionState.PROPOSED)
    rationale: Mapped[str] = mapped_column(Text)
    proposed_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[datetime] = _created()
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deconfliction: Mapped[dict[str, Any] | None] = mapped_column(Json)
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("decisions.id"))
    # Migration 0003: why no preservation request is needed, if the proposer says so; the
    # approver's or rejecter's note; and, for preserve-then-takedown, the second approval.
    preservation_waiver: Mapped[str | None] = mapped_column(Text)
    decision_note: Mapped[str | None] = mapped_column(Text)
    takedown_approved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    takedown_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Selector(Base):
    __tablename__ = "selectors"

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    target_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("targets.id"))
    kind: Mapped[str] = mapped_column(String(16))
    # A keyed hash (HMAC) of the normalised selector: a hit tells who to call, not what they hold.
    digest: Mapped[str] = mapped_column(String(64), index=True)
    owning_unit: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()


class LegalRequest(Base):
    __tablename__ = "legal_requests"

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(64))
    reference_number: Mapped[str | None] = mapped_column(String(100), unique=True)
    addressee: Mapped[dict[str, Any] | None] = mapped_column(Json)
    identifiers: Mapped[list[Any] | None] = mapped_column(Json)
    data_categories: Mapped[list[Any] | None] = mapped_column(Json)
    date_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    date_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    non_disclosure: Mapped[bool] = mapped_column(Boolean, default=True)
    fields: Mapped[dict[str, Any] | None] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.DRAFT)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    platform_reference: Mapped[str | None] = mapped_column(String(255))
    answer: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    # Lifecycle (migration 0004): when each step happened, who approved, what came back.
    emergency: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Annex III style codes (evidence.requests.REFUSAL_REASONS) when the provider refuses.
    refusal_reasons: Mapped[list[Any] | None] = mapped_column(Json)
    # The instrument's deadlines as last computed: [{name, due, basis, note, conditional}].
    deadlines: Mapped[list[Any] | None] = mapped_column(Json)
    pdf_artifact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id"))
    json_artifact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id"))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    json_sha256: Mapped[str | None] = mapped_column(String(64))
    # An extension or renewal names the request it extends.
    previous_request_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("legal_requests.id"), index=True)


class ReceivedVia(StrEnum):
    PORTAL = "portal"  # downloaded from the platform's law-enforcement portal
    EMAIL = "email"
    MEDIUM = "medium"  # a physical medium: a disc, a USB stick
    OTHER = "other"  # said in via_detail


class ReceivedFile(Base):
    """A file the unit received: a platform's answer to a legal request, or material from
    another source (a witness, another agency), kept in the blob store as it came.

    Migration 0014. `filename` is the name as given, only ever shown (escaped), never a path.
    The same file (sha256) is one row per request at most, and one per source of the case for
    material from elsewhere (migration 0016).
    """

    __tablename__ = "received_files"
    __table_args__ = (
        UniqueConstraint("request_id", "sha256"),
        Index("uq_received_files_case_id_source_sha256", column("case_id"),
              IndexedText(column("source")), column("sha256"), unique=True,
              sqlite_where=column("request_id").is_(None),
              postgresql_where=column("request_id").is_(None)),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    # The request it answers; None for material from elsewhere, then `source` says where.
    request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("legal_requests.id"),
                                                         index=True)
    source: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_via: Mapped[str] = mapped_column(String(16))
    via_detail: Mapped[str | None] = mapped_column(Text)
    platform_reference: Mapped[str | None] = mapped_column(String(255))
    registered_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    registered_at: Mapped[datetime] = _created()


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    target_ids: Mapped[list[Any] | None] = mapped_column(Json)
    requested_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _created()
    bundle_sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    # The process writing the bundle holds a lease it renews while it writes; an export whose
    # lease ran out without an ending was interrupted (`bundles.end_interrupted_exports`).
    # Both are cleared when the export ends.
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whether the bundle is kept in the blob store (the API's exports, to download) or was only
    # written to a file (`evidence export --out`); set when the export completes.
    kept: Mapped[bool | None] = mapped_column(Boolean)


class CustodyEntry(Base):
    """One append-only line of the custody log; `entry` holds the exact canonical bytes hashed.

    The other columns repeat fields of `entry` so the log can be queried; the verifier trusts
    only `entry` and checks that the columns agree with it.
    """

    __tablename__ = "custody_entries"
    __table_args__ = (
        UniqueConstraint("case_id", "case_seq"),
        Index("ix_custody_entries_object", "object_type", "object_id"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"))
    case_seq: Mapped[int | None] = mapped_column(Integer)
    prev_case_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Checkpoint(Base):
    """A signed statement of the custody log's size and Merkle root (C2SP checkpoint body)."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(255))
    tree_size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = _created()
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    timestamp_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The roots of the tree's full subtrees, 32 bytes each, largest first (the frontier of
    # `merkle.frontier_extend`): the next checkpoint grows the tree from here instead of hashing
    # the whole log again. Not signed; used only after it folds into this row's signed root.
    frontier: Mapped[bytes | None] = mapped_column(LargeBinary)


class LoginSession(Base):
    """A browser session made by logging in; like API tokens, only the token's hash is kept."""

    __tablename__ = "login_sessions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Where the login came from (the client address the API saw); None before revision 0013.
    remote_address: Mapped[str | None] = mapped_column(String(64))


class KeptForm(Base):
    """A page's form posted after its sign-in ended, kept for the session signed in since: shown
    to its user, sent at most once (`sent_at`; what was typed is dropped then) or discarded
    (evidence/kept_forms.py). Goes with its login session."""

    __tablename__ = "kept_forms"

    id: Mapped[uuid.UUID] = _uuid_pk()
    login_session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("login_sessions.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(2000))
    # [[name, value], ...] in the order posted; None once sent.
    fields: Mapped[list[list[str]] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = _created()
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """A sign-in refused for a wrong name or password; enough of them close a name for a while.

    Kept in the database, not in a process, so every API host counts the same failures
    (evidence/sessions.py). `name` is the name as typed, normalised, whether or not a user has it.
    Kept for `sessions.LOGIN_FAILURE_RETENTION`, as a record of guessing, then pruned.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_name_attempted_at", "name", "attempted_at"),
                      Index("ix_login_failures_attempted_at", "attempted_at"))

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime] = _created()
    remote_address: Mapped[str | None] = mapped_column(String(64))


class Note(Base):
    """A note on a case, or on one of its targets; its text lives in append-only revisions."""

    __tablename__ = "notes"

    id: Mapped[uuid.UUID] = _uuid_pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    target_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("targets.id"), index=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _created()


class NoteRevision(Base):
    """One version of a note's text; an edit adds a revision, none is ever changed or removed."""

    __tablename__ = "note_revisions"
    __table_args__ = (UniqueConstraint("note_id", "revision"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    note_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notes.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _created()


class DeconflictionHit(Base):
    """Two cases hold the same selector: each owner is told whom to call, nothing more.

    `first_*` is the selector registered earlier, `second_*` the one whose registration found
    it. The hit is resolved once someone from each case has recorded their agreement.
    """

    __tablename__ = "deconfliction_hits"
    __table_args__ = (UniqueConstraint("first_selector_id", "second_selector_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    kind: Mapped[str] = mapped_column(String(16))
    first_case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    first_selector_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("selectors.id"))
    first_target_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("targets.id"),
                                                              index=True)
    second_case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    second_selector_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("selectors.id"))
    second_target_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("targets.id"),
                                                               index=True)
    created_at: Mapped[datetime] = _created()
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeconflictionAgreement(Base):
    """One case's agreement that a hit is settled: who agreed, when, and what was agreed.

    Append-only; a hit is resolved when both of its cases have one.
    """

    __tablename__ = "deconfliction_agreements"
    __table_args__ = (UniqueConstraint("hit_id", "case_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    hit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deconfliction_hits.id"), index=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"))
    agreed_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class SearchDocument(Base):
    """A capture's visible text as the search index holds it (evidence/search.py).

    `body` is the text as captured (title first), for snippets; `terms` is its normalised form,
    the only thing either backend's full-text index reads (FTS5 on SQLite, a GIN expression index
    over `to_tsvector('simple', terms)` on PostgreSQL; both made by migration 0005, not here).
    """

    __tablename__ = "search_documents"
    __table_args__ = (
        # Made by migration 0005 on PostgreSQL only; SQLite has an FTS5 table over `terms`.
        Index("ix_search_documents_terms_fts",
              func.to_tsvector(literal_column("'simple'::regconfig"), column("terms")),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    capture_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("captures.id"), unique=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255), index=True)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    body: Mapped[str] = mapped_column(Text)
    terms: Mapped[str] = mapped_column(Text)
    indexed_at: Mapped[datetime] = _created()


class ImageHash(Base):
    """An image artifact's 64-bit pHash. Its posting lists (`ImageHashBand`) are kept in step by
    triggers (migration 0006), so any insert, delete or change of a row reaches the index."""

    __tablename__ = "image_hashes"

    artifact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("artifacts.id"), primary_key=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    capture_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("captures.id"))
    # The hash's 64 bits as a signed 64-bit integer (two's complement), so both backends hold it.
    phash: Mapped[int] = mapped_column(BigInteger, index=True)


class ImageHashBand(Base):
    """One posting list of the similar-image index: every distinct pHash whose band `band` (a
    13- or 12-bit slice of the hash, evidence/search.py) has the value `value`, written as 16 hex
    digits and a space each. `key` is band * 8192 + value: one integer primary key, so a lookup
    is a single B-tree probe (SQLite's rowid) on both backends."""

    __tablename__ = "image_hash_bands"

    key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hashes: Mapped[str] = mapped_column(Text)
