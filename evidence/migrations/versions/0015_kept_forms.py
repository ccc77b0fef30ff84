"""kept_forms: a page's form posted after its sign-in ended, kept for the session signed in since

The page shown after signing in again lists what was typed and sends it on a click; it is kept
here, with the login session it is shown to, so reloading that page shows it again and it is
sent at most once (api/ui/kept.py, evidence/kept_forms.py).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kept_forms",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("login_session_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=2000), nullable=False),
        sa.Column("fields", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["login_session_id"], ["login_sessions.id"],
                                name=op.f("fk_kept_forms_login_session_id_login_sessions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kept_forms")),
    )
    op.create_index(op.f("ix_kept_forms_login_session_id"), "kept_forms", ["login_session_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_kept_forms_login_session_id"), table_name="kept_forms")
    op.drop_table("kept_forms")
