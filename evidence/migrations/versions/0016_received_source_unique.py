"""received_files: the same file from the same source is one row, as for a request

0014 made a file (by SHA-256) one row per request with a unique constraint; material from
elsewhere (no request, a `source` instead) was refused only by a look for an earlier row, which
two registrations at once on PostgreSQL both pass. This adds the unique index over
(case_id, source, sha256) for rows without a request that evidence/received.py turns into the
same 409 refusal. On PostgreSQL it holds md5(source): its B-tree entries stop at 2704 bytes and
a source may be 2000 characters of 3 or 4 bytes each (models.IndexedText).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_received_files_case_id_source_sha256"


def upgrade() -> None:
    bind = op.get_bind()
    source = sa.text("md5(source)") if bind.dialect.name == "postgresql" else "source"
    op.create_index(INDEX, "received_files", ["case_id", source, "sha256"], unique=True,
                    sqlite_where=sa.text("request_id IS NULL"),
                    postgresql_where=sa.text("request_id IS NULL"))


def downgrade() -> None:
    op.drop_index(INDEX, table_name="received_files")
