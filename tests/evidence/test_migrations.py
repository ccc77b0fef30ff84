"""The migrations are the only way the schema is made: they must build exactly the models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from evidence import migrate
from evidence.db import make_engine, make_session_factory, session_scope
from evidence.models import Base, Case
from tests.factories import make_case, make_user

# Not models: SQLite's FTS5 search table (migration 0005) and the shadow tables FTS5 keeps for it.
FTS5_TABLES = frozenset({"search_fts", "search_fts_data", "search_fts_idx", "search_fts_docsize",
                         "search_fts_config", "search_fts_content"})


def _not_fts5(name: str | None, type_: str, _parent_names: object) -> bool:
    return not (type_ == "table" and name in FTS5_TABLES)


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                               "include_name": _not_fts5})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_upgrade_twice_changes_nothing(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        before, after = migrate.upgrade(engine)
        assert before == after == migrate.head_revision()
    finally:
        engine.dispose()


def test_the_case_offence_details_go_down_and_up_again_with_cases_in_place(
        database_url: str) -> None:
    """0007's columns drop and return while cases (and the rows that refer to them) exist."""
    engine = make_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            make_case(s, make_user(s), reference="M-1", facts="kept until the downgrade",
                      max_penalty_years=5)
        config = migrate.alembic_config(engine)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0006")
        columns = {c["name"] for c in inspect(engine).get_columns("cases")}
        assert "reference" in columns and not columns & {"facts", "max_penalty_years",
                                                           "offence_provision"}
        migrate.upgrade(engine)
        with session_scope(make_session_factory(engine)) as s:
            case = s.scalars(select(Case).where(Case.reference == "M-1")).one()
            assert (case.facts, case.max_penalty_years) == (None, None)
    finally:
        engine.dispose()
