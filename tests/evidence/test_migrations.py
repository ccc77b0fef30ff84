"""The migrations are the only way the schema is made: they must build exactly the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from evidence import migrate
from evidence.db import make_engine
from evidence.models import Base

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
