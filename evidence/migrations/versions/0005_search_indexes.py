"""search indexes: captured text (full-text) and image pHashes (multi-index hashing)

`search_documents` holds each capture's visible text and its normalised form (`terms`);
SQLite indexes `terms` with an FTS5 table over it (external content, kept in step by triggers),
PostgreSQL with a GIN index over `to_tsvector('simple', terms)`. `image_hashes` holds each image
artifact's pHash and its four 16-bit bands, each indexed, on both backends.

Existing captures are not indexed by this migration (their text is in the blob store, which a
migration does not open): run `evidence search reindex` once after upgrading.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 21:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The FTS5 table and its shadow tables are not models: tests/evidence/test_migrations.py skips
# exactly these names when it compares the schema with the models.
FTS_TABLE = "search_fts"

SQLITE_FTS = [
    # `terms` is already normalised (evidence/search.py); unicode61 only splits it into words.
    """CREATE VIRTUAL TABLE search_fts USING fts5(
        terms, content='search_documents', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN
        INSERT INTO search_fts(rowid, terms) VALUES (new.id, new.terms);
    END""",
    """CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN
        INSERT INTO search_fts(search_fts, rowid, terms) VALUES ('delete', old.id, old.terms);
    END""",
    """CREATE TRIGGER search_documents_au AFTER UPDATE ON search_documents BEGIN
        INSERT INTO search_fts(search_fts, rowid, terms) VALUES ('delete', old.id, old.terms);
        INSERT INTO search_fts(rowid, terms) VALUES (new.id, new.terms);
    END""",
]
POSTGRESQL_FTS = [
    "CREATE INDEX ix_search_documents_terms_fts ON search_documents "
    "USING gin (to_tsvector('simple'::regconfig, terms))",
]


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("capture_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["capture_id"], ["captures.id"], name=op.f("fk_search_documents_capture_id_captures")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_search_documents_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_documents")),
        sa.UniqueConstraint("capture_id", name=op.f("uq_search_documents_capture_id")),
    )
    with op.batch_alter_table("search_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_search_documents_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_search_documents_host"), ["host"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_search_documents_captured_at"), ["captured_at"], unique=False
        )

    op.create_table(
        "image_hashes",
        sa.Column("artifact_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("capture_id", sa.Uuid(), nullable=True),
        sa.Column("phash", sa.BigInteger(), nullable=False),
        sa.Column("band0", sa.Integer(), nullable=False),
        sa.Column("band1", sa.Integer(), nullable=False),
        sa.Column("band2", sa.Integer(), nullable=False),
        sa.Column("band3", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"], ["artifacts.id"], name=op.f("fk_image_hashes_artifact_id_artifacts")
        ),
        sa.ForeignKeyConstraint(
            ["capture_id"], ["captures.id"], name=op.f("fk_image_hashes_capture_id_captures")
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_image_hashes_case_id_cases")),
        sa.PrimaryKeyConstraint("artifact_id", name=op.f("pk_image_hashes")),
    )
    with op.batch_alter_table("image_hashes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_hashes_case_id"), ["case_id"], unique=False)
        for band in range(4):
            batch_op.create_index(
                batch_op.f(f"ix_image_hashes_band{band}"), [f"band{band}"], unique=False
            )

    statements = SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRESQL_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("search_documents_au", "search_documents_ad", "search_documents_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_documents_terms_fts")
    with op.batch_alter_table("image_hashes", schema=None) as batch_op:
        for band in reversed(range(4)):
            batch_op.drop_index(batch_op.f(f"ix_image_hashes_band{band}"))
        batch_op.drop_index(batch_op.f("ix_image_hashes_case_id"))
    op.drop_table("image_hashes")
    with op.batch_alter_table("search_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_search_documents_captured_at"))
        batch_op.drop_index(batch_op.f("ix_search_documents_host"))
        batch_op.drop_index(batch_op.f("ix_search_documents_case_id"))
    op.drop_table("search_documents")
