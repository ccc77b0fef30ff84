"""login failures: refused sign-ins, counted per name so password guessing is throttled

Rows in the database rather than counters in a process, so every API host behind the proxy
counts the same failures (evidence/sessions.py). The index serves the one query asked of the
table: how many failures this name had since a moment.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remote_address", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_name_attempted_at", "login_failures",
                    ["name", "attempted_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_failures_name_attempted_at", table_name="login_failures")
    op.drop_table("login_failures")
