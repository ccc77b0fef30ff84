"""received_files: the same file from the same source is one row, as for a request

0014 made a file (by SHA-256) one row per request with a unique constraint; material from
elsewhere (no request, a `source` instead) was refused only by a look for an earlier row, which
two registrations at once on PostgreSQL both pass. This adds the unique index over
(case_id, source, sha256) for rows without a request that evidence/received.py turns into the
same 409 refusal. On PostgreSQL it holds md5(source): its B-tree entries stop at 2704 bytes and
a source may be 2000 characters of 3 or 4 bytes each (models.IndexedText).

A database that already holds such a pair (PostgreSQL only, through that race) is not upgraded:
each row is evidence with its own custody entry, so this neither deletes nor merges them; the
refusal names them and what to do (README, "Upgrading").

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.errors import UpgradeRefused
from evidence.times import to_the_second

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_received_files_case_id_source_sha256"
# The duplicates named in the refusal; the count says how many more there are.
SHOWN = 20


def _refuse_duplicates(bind: sa.Connection) -> None:
    rows = bind.execute(sa.text(
        "SELECT c.reference, r.source, r.sha256, r.id, r.filename, r.registered_at "
        "FROM received_files r JOIN cases c ON c.id = r.case_id "
        "WHERE r.request_id IS NULL AND EXISTS (SELECT 1 FROM received_files o "
        "WHERE o.request_id IS NULL AND o.case_id = r.case_id AND o.source = r.source "
        "AND o.sha256 = r.sha256 AND o.id <> r.id) "
        "ORDER BY c.reference, r.source, r.sha256, r.registered_at, r.id"
    ).columns(registered_at=sa.DateTime(timezone=True), id=sa.Uuid())).all()
    if not rows:
        return
    named = "\n".join(
        f"  case {reference}, source {source[:80]!r}, SHA-256 {sha256}: id {row_id} "
        f"({filename!r}, registered {to_the_second(registered_at)})"
        for reference, source, sha256, row_id, filename, registered_at in rows[:SHOWN])
    more = f"\n  ... and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    raise UpgradeRefused(
        f"not upgraded to 0016 (nothing was changed): {len(rows)} received files are the same "
        "file registered more than once from the same source of a case, which the new unique "
        f"index refuses:\n{named}{more}\n"
        "Each is evidence with its own material.received custody entry, so the upgrade neither "
        "deletes nor merges them. Decide which registration stands, tell each other one apart "
        "by its source (say when and why it was registered again; its custody entry keeps the "
        "source as registered) and run `evidence db upgrade` again (README, \"Upgrading\").")


def upgrade() -> None:
    bind = op.get_bind()
    _refuse_duplicates(bind)
    source = sa.text("md5(source)") if bind.dialect.name == "postgresql" else "source"
    op.create_index(INDEX, "received_files", ["case_id", source, "sha256"], unique=True,
                    sqlite_where=sa.text("request_id IS NULL"),
                    postgresql_where=sa.text("request_id IS NULL"))


def downgrade() -> None:
    op.drop_index(INDEX, table_name="received_files")
