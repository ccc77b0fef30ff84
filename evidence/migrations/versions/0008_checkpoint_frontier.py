"""checkpoint frontier: the roots of the full subtrees of the tree a checkpoint signs

A new checkpoint then hashes only the entries added since the latest one (evidence/custody.py
`cut_checkpoint`). Nullable: checkpoints cut before this revision have none, and the next cut
after it hashes the whole log once, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both backends: a batch copy of `checkpoints` would meet its
    # append-only triggers.
    op.add_column("checkpoints", sa.Column("frontier", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("checkpoints", "frontier")
