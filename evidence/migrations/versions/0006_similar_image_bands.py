"""similar images: posting lists of five 13/12-bit bands, kept by triggers

Migration 0005 cut each pHash into four 16-bit bands, one indexed column each. Finding every
image within distance 16 that way probes 4,608 band values and checks ~70,000 rows one at a time
over 1,000,000 hashes, too slow on both backends. This revision replaces the band columns with
posting lists (`image_hash_bands`): the 64 bits are cut into five bands (bits 0-12, 13-25,
26-38, 39-51: 13 bits; 52-63: 12 bits), and for each band value one row lists every distinct
pHash having it, as 16 hex digits and a space each; `key` is band * 8192 + value. A search
fetches one row per probed band value (1,019 at distance 16) and checks the listed hashes in
bulk (evidence/search.py).

The lists are maintained by the database, not by Python: triggers on `image_hashes` add a hash
to its five lists on insert (unless already listed) and take it out on delete or change once no
row has it any more, so raw inserts, deletes and bulk loads keep the index exact. Existing rows
are converted here: the lists are built from the stored `phash` of every row, and the band
columns and their indexes are dropped; `phash` gets an index (a matched hash is looked up to its
artifacts). Downgrade recomputes the four 16-bit band columns from `phash`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 21:30:00.000000
"""

# The SQL here is built from this file's constants only (no input reaches it).
# ruff: noqa: S608

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of evidence/search.py's layout as of this revision: (offset, bits) per band.
BANDS = ((0, 13), (13, 13), (26, 13), (39, 13), (52, 12))
KEY_STRIDE = 8192
SQLITE_TRIGGERS = ("image_hashes_bands_ai", "image_hashes_bands_ad",
                   "image_hashes_bands_au_old", "image_hashes_bands_au_new")


def _keys(value: str) -> list[str]:
    """SQL for the five posting keys of the signed 64-bit `value` (arithmetic shift, masked)."""
    return [f"{n * KEY_STRIDE} + (({value} >> {offset}) & {(1 << bits) - 1})"
            for n, (offset, bits) in enumerate(BANDS)]


def _sqlite_add(value: str) -> str:
    entry = f"printf('%016x ', {value})"
    return "\n".join(
        f"INSERT INTO image_hash_bands (key, hashes) VALUES ({key}, {entry}) "
        "ON CONFLICT (key) DO UPDATE SET hashes = hashes || excluded.hashes "
        "WHERE instr(hashes, excluded.hashes) = 0;"
        for key in _keys(value))


def _sqlite_remove(value: str) -> str:
    keys = ", ".join(_keys(value))
    return (f"UPDATE image_hash_bands SET hashes = replace(hashes, printf('%016x ', {value}), '') "
            f"WHERE key IN ({keys});\n"
            f"DELETE FROM image_hash_bands WHERE key IN ({keys}) AND hashes = '';")


def sqlite_statements() -> list[str]:
    # An entry is 16 hex digits and a space, and only entries hold spaces, so a 17-character
    # match always starts at an entry: instr and replace never see across two of them.
    return [
        f"""CREATE TRIGGER image_hashes_bands_ai AFTER INSERT ON image_hashes BEGIN
            {_sqlite_add("new.phash")}
        END""",
        f"""CREATE TRIGGER image_hashes_bands_ad AFTER DELETE ON image_hashes
        WHEN NOT EXISTS (SELECT 1 FROM image_hashes WHERE phash = old.phash) BEGIN
            {_sqlite_remove("old.phash")}
        END""",
        f"""CREATE TRIGGER image_hashes_bands_au_old AFTER UPDATE OF phash ON image_hashes
        WHEN old.phash <> new.phash
         AND NOT EXISTS (SELECT 1 FROM image_hashes WHERE phash = old.phash) BEGIN
            {_sqlite_remove("old.phash")}
        END""",
        f"""CREATE TRIGGER image_hashes_bands_au_new AFTER UPDATE OF phash ON image_hashes
        WHEN old.phash <> new.phash BEGIN
            {_sqlite_add("new.phash")}
        END""",
    ]


def postgresql_statements() -> list[str]:
    entry = "lpad(to_hex({v}), 16, '0') || ' '"
    old_keys = ", ".join(_keys("OLD.phash"))
    new_keys = ", ".join(_keys("NEW.phash"))
    # Row triggers run at the end of the statement on PostgreSQL: a multi-row delete sees none of
    # its rows, and a multi-row insert of one hash adds it once (the list is checked, not rows).
    return [
        f"""CREATE FUNCTION image_hash_bands_sync() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND NOT EXISTS (
                    SELECT 1 FROM image_hashes WHERE phash = OLD.phash) THEN
                UPDATE image_hash_bands
                   SET hashes = replace(hashes, {entry.format(v="OLD.phash")}, '')
                 WHERE key IN ({old_keys});
                DELETE FROM image_hash_bands WHERE key IN ({old_keys}) AND hashes = '';
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO image_hash_bands AS b (key, hashes)
                SELECT k, {entry.format(v="NEW.phash")} FROM unnest(ARRAY[{new_keys}]) AS k
                ORDER BY k
                ON CONFLICT (key) DO UPDATE SET hashes = b.hashes || EXCLUDED.hashes
                 WHERE strpos(b.hashes, EXCLUDED.hashes) = 0;
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER image_hashes_bands AFTER INSERT OR DELETE OR UPDATE OF phash
        ON image_hashes FOR EACH ROW EXECUTE FUNCTION image_hash_bands_sync()""",
    ]


def _backfill(sqlite: bool) -> None:
    entry = "printf('%016x ', phash)" if sqlite else "lpad(to_hex(phash), 16, '0') || ' '"
    concat = "group_concat({e}, '')" if sqlite else "string_agg({e}, '')"
    for key in _keys("phash"):
        op.execute(f"INSERT INTO image_hash_bands (key, hashes) "
                   f"SELECT {key} AS k, {concat.format(e=entry)} "
                   f"FROM (SELECT DISTINCT phash FROM image_hashes) AS d GROUP BY k")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("image_hashes", schema=None) as batch_op:
        for band in range(4):
            batch_op.drop_index(batch_op.f(f"ix_image_hashes_band{band}"))
        for band in range(4):
            batch_op.drop_column(f"band{band}")
        batch_op.create_index(batch_op.f("ix_image_hashes_phash"), ["phash"], unique=False)
    op.create_table(
        "image_hash_bands",
        sa.Column("key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_image_hash_bands")),
    )
    _backfill(sqlite)
    for statement in sqlite_statements() if sqlite else postgresql_statements():
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for trigger in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    else:
        op.execute("DROP TRIGGER IF EXISTS image_hashes_bands ON image_hashes")
        op.execute("DROP FUNCTION IF EXISTS image_hash_bands_sync()")
    op.drop_table("image_hash_bands")
    with op.batch_alter_table("image_hashes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_hashes_phash"))
        for band in range(4):
            batch_op.add_column(sa.Column(f"band{band}", sa.Integer(), nullable=True))
    op.execute("UPDATE image_hashes SET " + ", ".join(
        f"band{band} = (phash >> {16 * band}) & 65535" for band in range(4)))
    with op.batch_alter_table("image_hashes", schema=None) as batch_op:
        for band in range(4):
            batch_op.alter_column(f"band{band}", existing_type=sa.Integer(), nullable=False)
            batch_op.create_index(
                batch_op.f(f"ix_image_hashes_band{band}"), [f"band{band}"], unique=False
            )
