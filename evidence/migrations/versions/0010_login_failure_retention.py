"""login failure retention: an index on when, so failures past the retention are pruned cheaply

Each recorded failure deletes the failures older than `sessions.LOGIN_FAILURE_RETENTION`; the
index keeps that a range scan of the few rows that just aged out, even under a guessing attack
that fills the table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_login_failures_attempted_at", "login_failures", ["attempted_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_failures_attempted_at", table_name="login_failures")
