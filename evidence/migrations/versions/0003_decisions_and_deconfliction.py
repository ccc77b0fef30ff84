"""decisions and deconfliction: hits between cases, agreements, waivers, two-step approvals

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Who agreed that a hit is settled is a record, never rewritten.
APPEND_ONLY_TABLES = ("deconfliction_agreements",)


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact", sa.String(length=500), nullable=True))

    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preservation_waiver", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("decision_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("takedown_approved_by_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("takedown_approved_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_decisions_takedown_approved_by_id_users"),
            "users", ["takedown_approved_by_id"], ["id"],
        )

    op.create_table(
        "deconfliction_hits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("first_case_id", sa.Uuid(), nullable=False),
        sa.Column("first_selector_id", sa.Uuid(), nullable=False),
        sa.Column("first_target_id", sa.Uuid(), nullable=True),
        sa.Column("second_case_id", sa.Uuid(), nullable=False),
        sa.Column("second_selector_id", sa.Uuid(), nullable=False),
        sa.Column("second_target_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["first_case_id"], ["cases.id"], name=op.f("fk_deconfliction_hits_first_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["first_selector_id"], ["selectors.id"],
            name=op.f("fk_deconfliction_hits_first_selector_id_selectors"),
        ),
        sa.ForeignKeyConstraint(
            ["first_target_id"], ["targets.id"],
            name=op.f("fk_deconfliction_hits_first_target_id_targets"),
        ),
        sa.ForeignKeyConstraint(
            ["second_case_id"], ["cases.id"],
            name=op.f("fk_deconfliction_hits_second_case_id_cases"),
        ),
        sa.ForeignKeyConstraint(
            ["second_selector_id"], ["selectors.id"],
            name=op.f("fk_deconfliction_hits_second_selector_id_selectors"),
        ),
        sa.ForeignKeyConstraint(
            ["second_target_id"], ["targets.id"],
            name=op.f("fk_deconfliction_hits_second_target_id_targets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deconfliction_hits")),
        sa.UniqueConstraint(
            "first_selector_id", "second_selector_id",
            name=op.f("uq_deconfliction_hits_first_selector_id_second_selector_id"),
        ),
    )
    with op.batch_alter_table("deconfliction_hits", schema=None) as batch_op:
        for column in ("first_case_id", "first_target_id", "second_case_id", "second_target_id"):
            batch_op.create_index(
                batch_op.f(f"ix_deconfliction_hits_{column}"), [column], unique=False
            )

    op.create_table(
        "deconfliction_agreements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hit_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("agreed_by_id", sa.Uuid(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreed_by_id"], ["users.id"],
            name=op.f("fk_deconfliction_agreements_agreed_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_deconfliction_agreements_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["hit_id"], ["deconfliction_hits.id"],
            name=op.f("fk_deconfliction_agreements_hit_id_deconfliction_hits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deconfliction_agreements")),
        sa.UniqueConstraint(
            "hit_id", "case_id", name=op.f("uq_deconfliction_agreements_hit_id_case_id")
        ),
    )
    with op.batch_alter_table("deconfliction_agreements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deconfliction_agreements_hit_id"), ["hit_id"], unique=False
        )

    _append_only_triggers()


def _append_only_triggers() -> None:
    """As for notes (0002): the database refuses to change or remove an agreement."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
                )
    elif dialect == "postgresql":
        # evidence_refuse_change() was made by 0001.
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change()"
            )
    else:
        raise RuntimeError(f"no append-only triggers written for {dialect}")


def downgrade() -> None:
    # Decisions' waivers and approvals and the record of who agreed are evidence of process.
    raise RuntimeError(
        "refusing to downgrade below 0003: it would drop decision approvals, preservation "
        "waivers and deconfliction agreements"
    )
