"""login_sessions.remote_address: the address a login came from

Login throttling counts failures per name and address since that name's last login from the
same address (evidence/sessions.py); the session a login opens keeps the address for that, and
as a record of where each sign-in came from. Sessions opened before this revision have none.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_sessions") as batch:
        batch.add_column(sa.Column("remote_address", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("login_sessions") as batch:
        batch.drop_column("remote_address")
