"""received_files: what a platform (or another source) sends back, kept as evidence

A platform answers a production order with files (subscriber records, IP logs, content) as
CSV, JSON, PDF or ZIP; each is kept in the blob store and named here with the request it
answers (or, for material from elsewhere, its source), when and how it was received and who
registered it (evidence/received.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 14:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "received_files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_via", sa.String(length=16), nullable=False),
        sa.Column("via_detail", sa.Text(), nullable=True),
        sa.Column("platform_reference", sa.String(length=255), nullable=True),
        sa.Column("registered_by_id", sa.Uuid(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"],
                                name=op.f("fk_received_files_case_id_cases")),
        sa.ForeignKeyConstraint(["request_id"], ["legal_requests.id"],
                                name=op.f("fk_received_files_request_id_legal_requests")),
        sa.ForeignKeyConstraint(["registered_by_id"], ["users.id"],
                                name=op.f("fk_received_files_registered_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_files")),
        sa.UniqueConstraint("request_id", "sha256",
                            name=op.f("uq_received_files_request_id_sha256")),
    )
    op.create_index(op.f("ix_received_files_case_id"), "received_files", ["case_id"])
    op.create_index(op.f("ix_received_files_request_id"), "received_files", ["request_id"])
    op.create_index(op.f("ix_received_files_sha256"), "received_files", ["sha256"])


def downgrade() -> None:
    op.drop_index(op.f("ix_received_files_sha256"), table_name="received_files")
    op.drop_index(op.f("ix_received_files_request_id"), table_name="received_files")
    op.drop_index(op.f("ix_received_files_case_id"), table_name="received_files")
    op.drop_table("received_files")
