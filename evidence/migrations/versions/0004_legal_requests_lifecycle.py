"""legal requests lifecycle: sending, answers, refusal reasons, deadlines, documents, extensions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 21:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("legal_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("emergency", sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("approved_by_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("refusal_reasons", _JSON, nullable=True))
        batch_op.add_column(sa.Column("deadlines", _JSON, nullable=True))
        batch_op.add_column(sa.Column("pdf_artifact_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("json_artifact_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("pdf_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("json_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("previous_request_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_legal_requests_approved_by_id_users"),
                                    "users", ["approved_by_id"], ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_legal_requests_pdf_artifact_id_artifacts"),
                                    "artifacts", ["pdf_artifact_id"], ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_legal_requests_json_artifact_id_artifacts"),
                                    "artifacts", ["json_artifact_id"], ["id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_legal_requests_previous_request_id_legal_requests"),
            "legal_requests", ["previous_request_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_legal_requests_previous_request_id"),
                              ["previous_request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("legal_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legal_requests_previous_request_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_legal_requests_previous_request_id_legal_requests"),
            type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_legal_requests_json_artifact_id_artifacts"),
                                 type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_legal_requests_pdf_artifact_id_artifacts"),
                                 type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_legal_requests_approved_by_id_users"),
                                 type_="foreignkey")
        for column in ("previous_request_id", "json_sha256", "pdf_sha256", "json_artifact_id",
                       "pdf_artifact_id", "deadlines", "refusal_reasons", "answered_at",
                       "acknowledged_at", "sent_at", "approved_at", "approved_by_id",
                       "issued_at", "emergency"):
            batch_op.drop_column(column)
