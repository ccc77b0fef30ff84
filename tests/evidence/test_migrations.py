"""The migrations are the only way the schema is made: they must build exactly the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, delete, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence import accounts, migrate
from evidence.cli import main_group
from evidence.db import make_engine, make_session_factory, session_scope
from evidence.errors import UpgradeRefused
from evidence.models import Account, Base, Case, CaseAccount, ReceivedFile, Target, User
from tests.factories import make_case, make_user

# Not models: SQLite's FTS5 search table (migration 0005) and the shadow tables FTS5 keeps for it.
FTS5_TABLES = frozenset({"search_fts", "search_fts_data", "search_fts_idx", "search_fts_docsize",
                         "search_fts_config", "search_fts_content"})


def _not_fts5(name: str | None, type_: str, _parent_names: object) -> bool:
    return not (type_ == "table" and name in FTS5_TABLES)


def _downgrade(engine: Engine, revision: str) -> None:
    """The schema taken down to `revision`, as `evidence db` would (one transaction)."""
    config = migrate.alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


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
        _downgrade(engine, "0006")
        columns = {c["name"] for c in inspect(engine).get_columns("cases")}
        assert "reference" in columns and not columns & {"facts", "max_penalty_years",
                                                           "offence_provision"}
        migrate.upgrade(engine)
        with session_scope(make_session_factory(engine)) as s:
            case = s.scalars(select(Case).where(Case.reference == "M-1")).one()
            assert (case.facts, case.max_penalty_years) == (None, None)
    finally:
        engine.dispose()


def test_0016_names_one_file_kept_twice_from_one_source_and_changes_nothing(
        database_url: str, tmp_path: Path) -> None:
    """Rows only the race 0016 closes could make (on PostgreSQL): evidence, each with its custody
    entry, so the upgrade names them and stops rather than delete or merge one; once the later
    one is told apart by its source, it goes on and keeps every row."""
    engine = make_engine(database_url)
    try:
        _downgrade(engine, "0015")
        at = datetime(2026, 3, 11, 9, 30, tzinfo=UTC)
        witness, sha256 = "USB stick from witness W-3", "ab" * 32
        with session_scope(make_session_factory(engine)) as s:
            user = make_user(s)
            case = make_case(s, user, reference="D-1")
            rows = [ReceivedFile(case_id=case.id, source=source, sha256=sha256, size=3,
                                 filename=name, media_type="text/csv", received_at=at,
                                 received_via="medium", registered_by_id=user.id,
                                 registered_at=at + timedelta(seconds=n))
                    for n, (source, name) in enumerate([(witness, "first.csv"),
                                                        (witness, "second.csv"),
                                                        ("agency B", "other.csv")])]
            s.add_all(rows)
        first, second, other = (r.id for r in rows)

        with pytest.raises(UpgradeRefused) as refused:
            migrate.upgrade(engine)
        message = refused.value.message
        assert message.startswith("not upgraded to 0016 (nothing was changed): 2 received files")
        assert (f"case D-1, source {witness!r}, SHA-256 {sha256}: id {first} ('first.csv', "
                "registered 2026-03-11 09:30:00 UTC)") in message
        assert f"id {second} ('second.csv', registered 2026-03-11 09:30:01 UTC)" in message
        assert str(other) not in message
        assert "neither deletes nor merges them" in message
        assert migrate.current_revision(engine) == "0015"
        # As a person runs it: the message, no traceback.
        env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": database_url}
        cli = CliRunner().invoke(main_group, ["db", "upgrade"], env=env)
        assert cli.exit_code == 1 and isinstance(cli.exception, SystemExit), cli.output
        assert f"Error: {message}" in cli.output and "Traceback" not in cli.output

        with session_scope(make_session_factory(engine)) as s:
            kept = {r.id: r.source for r in s.scalars(select(ReceivedFile))}
            assert kept == {first: witness, second: witness, other: "agency B"}
            s.execute(update(ReceivedFile).where(ReceivedFile.id == second).values(
                source=f"{witness} (registered twice at once with {first})"))
        assert migrate.upgrade(engine)[1] == migrate.head_revision()
        with session_scope(make_session_factory(engine)) as s:
            assert {r.id for r in s.scalars(select(ReceivedFile))} == {first, second, other}
    finally:
        engine.dispose()


def _older_account(session: Session, **values: object) -> uuid.UUID:
    """An account row as a schema before 0018 holds it (no handle_key); its id."""
    account_id = uuid.uuid4()
    session.execute(insert(Account).values(id=account_id, **values))
    return account_id


def test_0017_lets_an_account_wait_for_its_id_and_keeps_the_accounts_cases_refer_to(
        database_url: str) -> None:
    """Made again on SQLite under the case_accounts and targets rows that refer to it, the
    accounts table keeps every row; an account without an id is then one per handle, whatever
    its case; and the schema goes back down only once no account lacks its id."""
    engine = make_engine(database_url)
    try:
        _downgrade(engine, "0016")
        at = datetime(2026, 3, 11, 9, 30, tzinfo=UTC)
        with session_scope(make_session_factory(engine)) as s:
            user = make_user(s)
            case = make_case(s, user, reference="A-1")
            known = _older_account(s, platform="x", platform_account_id="4242",
                                   handle="fast_trips", profile_url="https://x.com/fast_trips",
                                   first_seen_at=at)
            s.add(CaseAccount(case_id=case.id, account_id=known, added_by_id=user.id))
            s.add(Target(case_id=case.id, kind="account", url="https://x.com/fast_trips",
                         account_id=known, reason="r", flagged_by_id=user.id))
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with session_scope(make_session_factory(engine)) as s:
            kept = s.scalars(select(Account)).one()
            assert (kept.id, kept.platform_account_id, kept.handle, kept.first_seen_at) == (
                known, "4242", "fast_trips", at)
            assert s.scalars(select(CaseAccount.account_id)).one() == known
            assert s.scalars(select(Target.account_id)).one() == known
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []

        def add(**values: str | None) -> None:
            with session_scope(make_session_factory(engine)) as s:
                s.add(Account(first_seen_at=at, **values))

        add(platform="instagram", handle="Fast.Trips")
        add(platform="tiktok", handle="fast.trips")  # another platform
        add(platform="instagram", handle="fast_trips", platform_account_id="7")
        add(platform="instagram", handle="fast.trips", platform_account_id="8")  # has its id
        for refused in ({"platform": "instagram", "handle": "fast.TRIPS"},  # the same handle
                        {"platform": "x", "handle": "x", "platform_account_id": "4242"},
                        {"platform": "instagram", "handle": None}):  # neither
            with pytest.raises(IntegrityError):
                add(**refused)

        with pytest.raises(UpgradeRefused) as refused_down:
            _downgrade(engine, "0016")
        assert refused_down.value.message == (
            "not downgraded below 0017 (nothing was changed): 2 accounts have no platform id "
            "yet, which the older schema cannot hold; record their ids first")
        with session_scope(make_session_factory(engine)) as s:
            s.execute(update(Account).where(Account.platform_account_id.is_(None))
                      .values(platform_account_id=Account.platform))
        _downgrade(engine, "0016")
        columns = {c["name"]: c for c in inspect(engine).get_columns("accounts")}
        assert columns["platform_account_id"]["nullable"] is False
        assert migrate.upgrade(engine)[1] == migrate.head_revision()
        with session_scope(make_session_factory(engine)) as s:
            assert len(s.scalars(select(Account)).all()) == 5
            # Gone again: the session's other tests flag accounts of their own.
            s.execute(delete(Target).where(Target.case_id == case.id))
            s.execute(delete(CaseAccount).where(CaseAccount.case_id == case.id))
            s.execute(delete(Account).where(Account.first_seen_at == at))
    finally:
        engine.dispose()


def test_0018_keys_every_handle_as_the_code_folds_it_and_names_accounts_that_become_one(
        database_url: str) -> None:
    """0017's index compared handles by the database's lower(): SQLite's folds only A-Z, so
    ÉLODIE and élodie could both wait for their ids there, and on either ΟΔΟΣ and οδος (lower()
    keeps a final ς). The upgrade names such accounts and changes nothing; once all but one of
    them have their id, it keys every handle as the code does, and it goes back down."""
    engine = make_engine(database_url)
    try:
        _downgrade(engine, "0017")
        at = datetime(2026, 3, 11, 9, 30, tzinfo=UTC)
        with session_scope(make_session_factory(engine)) as s:
            user = make_user(s)
            case, other_case = (make_case(s, user, reference=r) for r in ("A-1", "B-2"))

            def older(platform: str, handle: str, seconds: int = 0, **more: str) -> uuid.UUID:
                return _older_account(s, platform=platform, handle=handle,
                                      first_seen_at=at + timedelta(seconds=seconds), **more)

            waiting = older("generic", "ÉLODIE")
            fast = older("instagram", "Fast.Trips")
            held = older("generic", "οδος", platform_account_id="5")  # has its id
            first = older("generic", "ΟΔΟΣ", seconds=1)
            second = older("generic", "οδος", seconds=2)
            s.add_all([CaseAccount(case_id=case.id, account_id=first),
                       CaseAccount(case_id=other_case.id, account_id=second),
                       CaseAccount(case_id=case.id, account_id=second)])

        with pytest.raises(UpgradeRefused) as refused:
            migrate.upgrade(engine)
        assert refused.value.message == (
            "not upgraded to 0018 (nothing was changed): 2 accounts without the platform's id "
            "have handles that are one when compared without case, which the unique index "
            "refuses:\n"
            f"  generic: account {first}, handle 'ΟΔΟΣ', first seen 2026-03-11 09:30:01 UTC, "
            "in case A-1\n"
            f"  generic: account {second}, handle 'οδος', first seen 2026-03-11 09:30:02 UTC, "
            "in cases A-1, B-2\n"
            "Each is an account with its own cases and custody entries, so this neither deletes "
            "nor merges them. With the version that runs now, record the platform's id on all "
            "but one of each group (\"Record the id\" on the account's target, in a case that "
            "links it), then run `evidence db upgrade` again (README, \"Upgrading\").")
        assert migrate.current_revision(engine) == "0017"
        assert "handle_key" not in {c["name"] for c in inspect(engine).get_columns("accounts")}

        with session_scope(make_session_factory(engine)) as s:
            s.execute(update(Account).where(Account.id == second).values(
                platform_account_id="6"))
        assert migrate.upgrade(engine)[1] == migrate.head_revision()
        with session_scope(make_session_factory(engine)) as s:
            assert {i: k for i, k in s.execute(select(Account.id, Account.handle_key))} == {
                waiting: "élodie", fast: "fast.trips", held: "οδοσ", first: "οδοσ",
                second: "οδοσ"}
            # Linked by the handle in other letters, the accounts that waited are found.
            case = s.scalars(select(Case).where(Case.reference == "A-1")).one()
            user = s.get_one(User, case.created_by_id)
            for handle, found in (("élodie", waiting), ("Οδος", first), ("FAST.TRIPS", fast)):
                platform = "instagram" if found == fast else "generic"
                account, _ = accounts.link_account(s, user, case, platform=platform,
                                                   handle=handle)
                assert account.id == found
            assert len(s.scalars(select(Account)).all()) == 5

        if engine.dialect.name == "postgresql":
            # PostgreSQL's lower() makes İ an i, where folding keeps its dot (i̇): two accounts
            # at 0018, one handle for 0017's index, so the downgrade names them.
            with session_scope(make_session_factory(engine)) as s:
                for handle in ("İSTANBUL_BOATS", "istanbul_boats"):
                    s.add(Account(platform="generic", handle=handle, first_seen_at=at))
                    s.flush()
            with pytest.raises(UpgradeRefused) as refused:
                _downgrade(engine, "0017")
            assert refused.value.message.startswith(
                "not downgraded below 0018 (nothing was changed): 2 accounts without the "
                "platform's id have handles that are one when lowered by this database")
            assert "'İSTANBUL_BOATS'" in refused.value.message
            assert refused.value.message.endswith(
                "Record the platform's id on all but one of each group, then downgrade again.")
            with session_scope(make_session_factory(engine)) as s:
                s.execute(delete(Account).where(Account.handle == "istanbul_boats"))
        _downgrade(engine, "0017")
        assert "handle_key" not in {c["name"] for c in inspect(engine).get_columns("accounts")}
        with session_scope(make_session_factory(engine)) as s:
            assert len(s.scalars(select(Account.id)).all()) == (
                6 if engine.dialect.name == "postgresql" else 5)
            with pytest.raises(IntegrityError), s.begin_nested():  # 0017's index is back
                _older_account(s, platform="instagram", handle="fast.trips", first_seen_at=at)
        assert migrate.upgrade(engine)[1] == migrate.head_revision()
    finally:
        engine.dispose()
