"""case offence details: the statutory provision, the maximum penalty and a summary of the facts

Legal requests are filled from the case (evidence/requests.py); until now these three came only
from `--field NAME=VALUE` on each request. All three are nullable: existing cases have none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("offence_provision", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("max_penalty_years", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("facts", sa.Text(), nullable=True))


def downgrade() -> None:
    # Not in batch mode: on SQLite that would copy `cases` into a new table and drop the old one,
    # which every table referring to a case forbids. SQLite drops a column itself since 3.35.
    for column in ("facts", "max_penalty_years", "offence_provision"):
        op.drop_column("cases", column)
