"""exports.kept: whether this system keeps the export's bundle in its blob store (the API's
exports) or only wrote it to a file (`evidence export --out`); the store check and the backup
look for kept bundles alone

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 01:30:00.000000
"""

import json
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Until now an export did not say whether it was kept. The API keeps its bundles, written first
# as "bundle.zip" in a work folder, and its custody entry names that file; `evidence export`
# names the file the user chose. (A command-line bundle its user named bundle.zip is taken for
# a kept one: the store check then reports it missing, as it did for every one before.)
KEPT_FILE = "bundle.zip"


def upgrade() -> None:
    with op.batch_alter_table("exports") as batch:
        batch.add_column(sa.Column("kept", sa.Boolean(), nullable=True))
    bind = op.get_bind()
    entries = sa.table("custody_entries", sa.column("object_id", sa.String),
                       sa.column("action", sa.String), sa.column("entry", sa.LargeBinary))
    exports = sa.table("exports", sa.column("id", sa.Uuid), sa.column("kept", sa.Boolean))
    completed = bind.execute(sa.select(entries.c.object_id, entries.c.entry).where(
        entries.c.action == "export.completed")).all()
    for object_id, entry in completed:
        details = json.loads(bytes(entry)).get("details") or {}
        kept = details.get("file") == KEPT_FILE
        bind.execute(sa.update(exports).where(exports.c.id == uuid.UUID(object_id))
                     .values(kept=kept))


def downgrade() -> None:
    with op.batch_alter_table("exports") as batch:
        batch.drop_column("kept")
