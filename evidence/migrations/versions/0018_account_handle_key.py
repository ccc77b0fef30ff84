"""accounts: a handle compared without case by one folding, on SQLite as on PostgreSQL

0017's unique index over (platform, lower(handle)) for accounts without a platform id leant on
the database's lower(), which on SQLite folds only A-Z: ÉLODIE and élodie, or two Cyrillic
handles differing in case, were two accounts there and one on PostgreSQL. This adds
accounts.handle_key, the handle folded in Python by `evidence.models.handle_key` (the one the
lookups use), fills it for every row with a handle, and puts the index on it.

A database that already holds two accounts without an id whose handles fold to one key (on
SQLite ÉLODIE and élodie; on either ΟΔΟΣ and οδος, or STRASSE and straße, which lower() told
apart) is not upgraded: each account has its own cases and custody entries, so this neither
deletes nor merges them; the refusal names them and what to do (README, "Upgrading").

The downgrade drops the column and puts 0017's index back, refused in the same way where the
database's lower() would now find two rows one handle.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 10:00:00.000000
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from evidence.errors import UpgradeRefused
from evidence.models import handle_key
from evidence.times import to_the_second

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_accounts_platform_handle_without_id"  # the same name as 0017's, on other columns
# The accounts named in a refusal; the count says how many more there are.
SHOWN = 20

Row = tuple[uuid.UUID, str, str, datetime]  # id, platform, handle, first seen


def _colliding(rows: list[tuple[Row, str]]) -> list[list[Row]]:
    """The accounts without an id grouped by (platform, key), where a group holds two or more."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row, key in rows:
        groups[(row[1], key)].append(row)
    return [sorted(g, key=lambda r: (r[3], r[0])) for _, g in sorted(groups.items())
            if len(g) > 1]


def _linked(references: list[str]) -> str:
    if not references:
        return "linked to no case"
    return ("in case " if len(references) == 1 else "in cases ") + ", ".join(references)


def _refuse(bind: sa.Connection, groups: list[list[Row]], *, refused: str,
            compared: str, todo: str) -> None:
    if not groups:
        return
    named = [row for group in groups for row in group]
    cases: dict[uuid.UUID, list[str]] = defaultdict(list)
    for account_id, reference in bind.execute(
            sa.text("SELECT ca.account_id, c.reference FROM case_accounts ca "
                    "JOIN cases c ON c.id = ca.case_id WHERE ca.account_id IN :ids "
                    "ORDER BY c.reference")
            .bindparams(sa.bindparam("ids", [r[0] for r in named[:SHOWN]], expanding=True,
                                     type_=sa.Uuid()))
            .columns(account_id=sa.Uuid())):
        cases[account_id].append(reference)
    lines = "\n".join(
        f"  {platform}: account {account_id}, handle {handle!r}, first seen "
        f"{to_the_second(seen)}, {_linked(cases[account_id])}"
        for account_id, platform, handle, seen in named[:SHOWN])
    more = f"\n  ... and {len(named) - SHOWN} more" if len(named) > SHOWN else ""
    raise UpgradeRefused(
        f"{refused} (nothing was changed): {len(named)} accounts without the platform's id "
        f"have handles that are one when {compared}, which the unique index refuses:\n"
        f"{lines}{more}\n"
        "Each is an account with its own cases and custody entries, so this neither deletes "
        f"nor merges them. {todo}")


def _handles(bind: sa.Connection) -> list[tuple[Row, str | None]]:
    """Each account with a handle, and its platform id (None if it has none yet)."""
    return [((account_id, platform, handle, seen), platform_account_id)
            for account_id, platform, handle, seen, platform_account_id in bind.execute(
                sa.text("SELECT id, platform, handle, first_seen_at, platform_account_id "
                        "FROM accounts WHERE handle IS NOT NULL")
                .columns(id=sa.Uuid(), first_seen_at=sa.DateTime(timezone=True)))]


def upgrade() -> None:
    bind = op.get_bind()
    keyed = [(row, handle_key(row[2]), held) for row, held in _handles(bind)]
    _refuse(bind, _colliding([(row, key) for row, key, held in keyed if held is None]),
            refused="not upgraded to 0018", compared="compared without case",
            todo="With the version that runs now, record the platform's id on all but one "
                 "of each group (\"Record the id\" on the account's target, in a case that "
                 "links it), then run `evidence db upgrade` again (README, \"Upgrading\").")
    op.add_column("accounts", sa.Column("handle_key", sa.Text(), nullable=True))
    if keyed:
        bind.execute(sa.text("UPDATE accounts SET handle_key = :key WHERE id = :id")
                     .bindparams(sa.bindparam("id", type_=sa.Uuid())),
                     [{"id": row[0], "key": key} for row, key, _held in keyed])
    op.drop_index(INDEX, table_name="accounts")
    op.create_index(INDEX, "accounts", ["platform", "handle_key"], unique=True,
                    sqlite_where=sa.text("platform_account_id IS NULL"),
                    postgresql_where=sa.text("platform_account_id IS NULL"))


def downgrade() -> None:
    bind = op.get_bind()
    # Grouped by the database's own lower(), as the index made again will compare them.
    lowered = bind.execute(sa.text(
        "SELECT id, lower(handle) FROM accounts WHERE platform_account_id IS NULL "
        "AND handle IS NOT NULL").columns(id=sa.Uuid())).all()
    rows = {row[0]: row for row, held in _handles(bind) if held is None}
    _refuse(bind, _colliding([(rows[account_id], key) for account_id, key in lowered]),
            refused="not downgraded below 0018", compared="lowered by this database",
            todo="Record the platform's id on all but one of each group, then downgrade again.")
    op.drop_index(INDEX, table_name="accounts")
    op.drop_column("accounts", "handle_key")
    op.create_index(INDEX, "accounts", ["platform", sa.text("lower(handle)")], unique=True,
                    sqlite_where=sa.text("platform_account_id IS NULL"),
                    postgresql_where=sa.text("platform_account_id IS NULL"))
