"""accounts: an account may be flagged before the platform's stable id is known

Instagram, TikTok and Telegram profile URLs show only the handle. platform_account_id becomes
nullable; (platform, platform_account_id) stays unique where the id is known (both databases
let NULLs differ), a unique index over (platform, lower(handle)) for rows without an id keeps
one such row per handle (handles compare without case, as deconfliction compares them), and a
check asks for the id or the handle.

SQLite cannot drop a NOT NULL in place; the table is made again. Alembic's batch mode would
drop the old table under the rows of case_accounts and targets that refer to it, which
SQLite's foreign keys refuse (PRAGMA foreign_keys cannot be turned off inside the migration's
transaction). So the rows wait in a temporary table, the foreign keys are deferred to the
commit, and they are put back into the new table under the same name before it: the commit
then finds every reference whole again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.errors import UpgradeRefused

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_accounts_platform_handle_without_id"
CHECK = "ck_accounts_id_or_handle"


def _accounts_table(*, id_needed: bool) -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("platform_account_id", sa.String(length=255), nullable=not id_needed),
        sa.Column("handle", sa.String(length=255), nullable=True),
        sa.Column("display_name", sa.String(length=500), nullable=True),
        sa.Column("profile_url", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint(
            "platform", "platform_account_id", name=op.f("uq_accounts_platform_platform_account_id")
        ),
        *([] if id_needed else [sa.CheckConstraint(
            "platform_account_id IS NOT NULL OR handle IS NOT NULL", name=op.f(CHECK))]),
    )


def _remake_on_sqlite(bind: sa.Connection, *, id_needed: bool) -> None:
    bind.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # until this transaction commits
    bind.exec_driver_sql(
        "CREATE TEMP TABLE accounts_0017 AS SELECT id, platform, platform_account_id, handle, "
        "display_name, profile_url, first_seen_at, last_seen_at FROM accounts")
    op.drop_table("accounts")
    _accounts_table(id_needed=id_needed)
    bind.exec_driver_sql(
        "INSERT INTO accounts (id, platform, platform_account_id, handle, display_name, "
        "profile_url, first_seen_at, last_seen_at) SELECT id, platform, platform_account_id, "
        "handle, display_name, profile_url, first_seen_at, last_seen_at FROM accounts_0017")
    bind.exec_driver_sql("DROP TABLE accounts_0017")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _remake_on_sqlite(bind, id_needed=False)
    else:
        op.alter_column("accounts", "platform_account_id", existing_type=sa.String(length=255),
                        nullable=True)
        op.create_check_constraint(op.f(CHECK), "accounts",
                                   "platform_account_id IS NOT NULL OR handle IS NOT NULL")
    op.create_index(INDEX, "accounts", ["platform", sa.text("lower(handle)")], unique=True,
                    sqlite_where=sa.text("platform_account_id IS NULL"),
                    postgresql_where=sa.text("platform_account_id IS NULL"))


def downgrade() -> None:
    bind = op.get_bind()
    without = bind.execute(sa.text(
        "SELECT count(*) FROM accounts WHERE platform_account_id IS NULL")).scalar_one()
    if without:
        raise UpgradeRefused(
            f"not downgraded below 0017 (nothing was changed): {without} accounts have no "
            "platform id yet, which the older schema cannot hold; record their ids first")
    op.drop_index(INDEX, table_name="accounts")
    if bind.dialect.name == "sqlite":
        _remake_on_sqlite(bind, id_needed=True)
    else:
        op.drop_constraint(op.f(CHECK), "accounts", type_="check")
        op.alter_column("accounts", "platform_account_id", existing_type=sa.String(length=255),
                        nullable=False)
