"""The compiled checker (evidence/_custodycheck.c) certifies only a log the Python checker finds
whole, and finds in it exactly what the Python checker finds: the chains' heads, the Merkle
tree's blocks and leaves. Whatever else it meets, it gives up and the Python checker decides.

`test_custody.py` runs every tampering it knows through `verify_log`, which tries the compiled
checker first; here the two checkers are held to each other entry by entry, over entries
rewritten in ways JSON allows and ways it does not, and over columns an insider edited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sqlite3
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from evidence import cases, custody
from evidence.db import make_engine, make_session_factory, session_scope
from evidence.merkle import leaf_hash
from evidence.signing import Signer
from tests.conftest import Databases
from tests.factories import drop_append_only, make_case, make_user

ORIGIN = "evidence-locker/test"
ENTRIES = 16  # the log `log` makes


@pytest.fixture
def log(database_url: str) -> Iterator[tuple[Engine, Signer]]:
    """A committed log over three cases, one titled in Arabic and one named with an emoji,
    sealed by a checkpoint inside it, with the triggers dropped as an insider would."""
    yield from _log(database_url)


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Iterator[tuple[Engine, Signer]]:
    """`log` on SQLite alone: for what only SQLite's storage allows."""
    yield from _log(Databases("sqlite", tmp_path).new_url())


@pytest.fixture
def postgresql_log(postgresql_database_url: str) -> Iterator[tuple[Engine, Signer]]:
    """`log` on PostgreSQL alone: for what only its typed columns allow."""
    yield from _log(postgresql_database_url)


def _log(url: str) -> Iterator[tuple[Engine, Signer]]:
    engine = make_engine(url)
    signer = Signer.generate()
    with session_scope(make_session_factory(engine)) as s:
        alice = make_user(s, name="alice")
        make_case(s, alice, reference="A", title="تهريب عبر الحدود")
        make_case(s, alice, reference="B", title="Fälschung 🛂 \"quoted\" \\ back")
        make_case(s, alice, reference="C")
        for ref in ("A", "B", "A"):
            cases.view_case(s, alice, ref)
        custody.cut_checkpoint(s, signer, origin=ORIGIN)
        for ref in ("C", "A", "B", "A", "C", "A"):
            cases.view_case(s, alice, ref)
    with engine.begin() as conn:
        drop_append_only(conn, "custody_entries", "checkpoints")
        assert conn.execute(text("SELECT max(seq) FROM custody_entries")).scalar() == ENTRIES
    yield engine, signer
    engine.dispose()


def _both(engine: Engine, *, after: int = 0, upto: int | None = None,
          case_id: str | None = None) -> tuple[custody._Run, custody._Run | None]:
    """The Python checker's run and the compiled checker's (None: not certain) over one range."""
    with session_scope(make_session_factory(engine)) as s:
        marks = custody._marks(custody.read_checkpoints(s))
        source = custody._source_of(s)
        assert source is not None and source.compiled
        dbapi = s.connection().connection.dbapi_connection
        dialect = s.get_bind().dialect.name
        python = custody._check_run(
            custody._stream_rows(dbapi, dialect, after or None, upto), first_seq=after + 1,
            starts_log=after == 0, case_id=case_id, marks=marks)
        compiled = custody._check_range(lambda: [], dbapi, source, after, upto, case_id, marks,
                                        None)
    return python, compiled


def _held_to_python(engine: Engine, **kw: Any) -> custody._Run | None:
    """The compiled run, having checked that it certifies only what Python finds whole, and
    then finds the same."""
    python, compiled = _both(engine, **kw)
    if python.problems:
        assert compiled is None, f"compiled checker certified a log Python finds broken: " \
                                 f"{python.problems}"
    elif compiled is not None:
        assert compiled == python
    return compiled


def _set(engine: Engine, row: int, **columns: Any) -> None:
    """Columns of the entry at seq `row` set as an insider would (on SQLite with the sqlite3
    module, whose connections leave foreign keys unchecked)."""
    names = ", ".join(f"{name} = :{name}" for name in columns)
    sql = f"UPDATE custody_entries SET {names} WHERE seq = :row"
    if engine.dialect.name == "sqlite":
        with contextlib.closing(sqlite3.connect(str(engine.url.database))) as conn:
            conn.execute(sql, {**columns, "row": row})
            conn.commit()
        return
    with engine.begin() as conn:
        conn.execute(text(sql), {**columns, "row": row})


def _entry(engine: Engine, seq: int) -> bytes:
    with engine.connect() as conn:
        return bytes(conn.execute(text("SELECT entry FROM custody_entries WHERE seq = :s"),
                                  {"s": seq}).scalar_one())


def test_the_compiled_checker_is_built() -> None:
    # ./dev builds it (setup.py); without it `evidence custody verify` is several times slower
    assert custody._custodycheck is not None


def test_an_untouched_log_is_certified_by_the_compiled_checker(
        log: tuple[Engine, Signer], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, signer = log
    assert _held_to_python(engine) is not None
    with engine.connect() as conn:
        case_a = conn.execute(text("SELECT case_id FROM custody_entries WHERE case_seq = 1 "
                                   "ORDER BY seq LIMIT 1")).scalar_one()
    spelled = custody._Spelled()[case_a] if isinstance(case_a, str) else str(case_a)
    filtered = _held_to_python(engine, case_id=spelled)
    assert filtered is not None and filtered.case_entries
    for after, upto in ((0, 4), (4, 10), (10, None)):  # ranges as processes split the log
        assert _held_to_python(engine, after=after, upto=upto) is not None
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        compiled = custody.verify_log(s, signer.verifier, workers=1)
    monkeypatch.setattr(custody, "_custodycheck", None)
    with session_scope(factory) as s:
        python = custody.verify_log(s, signer.verifier, workers=1)
    assert compiled.ok and compiled.compiled and not python.compiled
    python.compiled = True
    assert compiled == python


# Rewritings of one entry, each with its leaf hash put right, so that only the entry's JSON and
# its columns can tell. Some are still the same entry as JSON (the Python checker passes them
# where no later link depends on the bytes); the compiled checker may give up on those, but
# must never pass one the Python checker refuses.
REWRITES = {
    "spaces": lambda e: e.replace(b'":', b'" : ').replace(b",", b" ,\n"),
    "seq as a fraction": lambda e: re.sub(rb'"seq":(\d+)', rb'"seq":\1.0', e),
    "seq as an exponent": lambda e: re.sub(rb'"seq":(\d+)', rb'"seq":\1e0', e),
    "seq negative": lambda e: re.sub(rb'"seq":(\d+)', rb'"seq":-\1', e),
    "escaped key": lambda e: e.replace(b'"action":', b'"\\u0061ction":', 1),
    "escaped value": lambda e: e.replace(b'"case.viewed"', b'"case\\u002eviewed"', 1),
    "duplicated key": lambda e: e[:-1] + b',"action":"case.closed"}',
    "duplicated case id": lambda e: e.replace(b'"case":{', b'"case":{"id":"x",', 1),
    "lone surrogate": lambda e: e[:-1] + b',"note":"\\ud800"}',
    "bad UTF-8 in an unread field": lambda e: e[:-1] + b',"note":"\xc3("}',
    "overlong UTF-8": lambda e: e[:-1] + b',"note":"\xc0\xaf"}',
    "control character": lambda e: e[:-1] + b',"note":"a\x01b"}',
    # past the first 16 bytes of a string, where they are scanned 16 at a time
    "control character far in": lambda e: e[:-1] + b',"note":"' + b"x" * 37 + b'\x1f"}',
    "bad UTF-8 far in": lambda e: e[:-1] + b',"note":"' + b"x" * 33 + b'\xff' + b"y" * 20 + b'"}',
    "escapes far in": lambda e: e[:-1] + b',"note":"' + b"x" * 40 + b'\\"\\\\' + b"y" * 17
                                + "é".encode() + b'"}',
    "unterminated far in": lambda e: e[:-1] + b',"note":"' + b"x" * 48,
    "byte order mark": lambda e: b"\xef\xbb\xbf" + e,
    "trailing garbage": lambda e: e + b"x",
    "trailing comma": lambda e: e[:-1] + b",}",
    "not an object": lambda e: b"[" + e + b"]",
    "deep nesting": lambda e: e[:-1] + b',"deep":' + b"[" * 200 + b"]" * 200 + b"}",
    "upper-case prev hash": lambda e: _upper_prev(e),
    "null case": lambda e: e.replace(b'"case":{', b'"case":null,"was":{', 1),
    "case as a string": lambda e: e.replace(b'"case":{', b'"case":"A","was":{', 1),
    "big number": lambda e: e[:-1] + b',"n":123456789012345678901234567890}',
    "nan": lambda e: e[:-1] + b',"n":NaN}',
    "leading zero": lambda e: e[:-1] + b',"n":01}',
    "unquoted key": lambda e: e[:-1] + b",n:1}",
    "nothing": lambda e: b"",
}


def _upper_prev(entry: bytes) -> bytes:
    start = entry.find(b'"prev_case_hash":"')
    if start < 0:
        return entry
    start += len(b'"prev_case_hash":"')
    return entry[:start] + entry[start:start + 64].upper() + entry[start + 64:]


@pytest.mark.parametrize("rewrite", list(REWRITES))
@pytest.mark.parametrize("seq", [8, ENTRIES])  # a link inside a chain; the log's last entry
def test_a_rewritten_entry_is_never_passed_where_python_refuses_it(
        log: tuple[Engine, Signer], rewrite: str, seq: int) -> None:
    engine, _ = log
    data = REWRITES[rewrite](_entry(engine, seq))
    _set(engine, seq, entry=data, leaf_hash=leaf_hash(data))
    _held_to_python(engine)
    _held_to_python(engine, after=4, upto=None)


# Columns an insider edited beside the entry, including values of another kind than the
# column's (SQLite keeps whatever it is given; PostgreSQL converts or refuses).
COLUMN_EDITS: list[tuple[str, Any]] = [
    ("action", "case.closed"), ("action", "case.viewed "),
    ("recorded_at", "2020-01-01 00:00:00.000000"),
    ("actor_id", None), ("object_type", "artifact"), ("object_id", "x"), ("sha256", "00"),
    ("case_seq", 70), ("case_seq", None), ("prev_case_hash", None),
    ("prev_case_hash", b"\0" * 32), ("leaf_hash", b"\0" * 32), ("seq", 99),
]
SQLITE_ONLY_EDITS: list[tuple[str, Any]] = [
    ("action", b"case.viewed"), ("case_seq", "3x"), ("leaf_hash", "text"), ("entry", "{}"),
    ("case_id", "?"), ("actor_id", 5), ("seq", 8.0),
]


@pytest.mark.parametrize(("column", "value"), COLUMN_EDITS)
def test_an_edited_column_is_never_passed(log: tuple[Engine, Signer], column: str,
                                          value: Any) -> None:
    engine, _ = log
    _set(engine, 8, **{column: value})
    python, compiled = _both(engine)
    assert python.problems and compiled is None


@pytest.mark.parametrize(("column", "value"), SQLITE_ONLY_EDITS)
def test_a_column_of_another_storage_class_is_never_passed(
        sqlite_log: tuple[Engine, Signer], column: str, value: Any) -> None:
    engine, _ = sqlite_log  # only SQLite keeps a value of another kind than its column's
    _set(engine, 8, **{column: value})
    _held_to_python(engine)


def test_a_changed_column_type_leaves_postgresql_to_the_python_checker(
        postgresql_log: tuple[Engine, Signer]) -> None:
    engine, signer = postgresql_log  # SQLite's columns have no type to change
    with engine.begin() as conn:  # same bytes, another type: the driver hands over bytes
        conn.execute(text("ALTER TABLE custody_entries ALTER COLUMN action TYPE bytea "
                          "USING convert_to(action, 'UTF8')"))
    with session_scope(make_session_factory(engine)) as s:
        source = custody._source_of(s)
        assert source is not None and not source.compiled
        report = custody.verify_log(s, signer.verifier, workers=1)
    assert not report.ok and not report.compiled
    assert "column action disagrees" in report.summary()


@pytest.mark.parametrize("moment", [
    "1999-12-31 23:59:59.999999", "2000-01-01 00:00:00.000000", "2024-02-29 12:00:00.000001",
    "1970-01-01 00:00:00.000000", "1000-03-01 00:00:00.500000", "9999-12-31 23:59:59.999999",
])
def test_a_time_is_spelled_as_entries_spell_it(log: tuple[Engine, Signer], moment: str) -> None:
    # The log's last entry, not yet sealed, with its time and its column both moved: the
    # compiled checker must spell the stored time exactly as the database does for Python.
    engine, _ = log
    entry = re.sub(rb'"at":"[^"]*"', b'"at":"' + moment.replace(" ", "T").encode() + b'Z"',
                   _entry(engine, ENTRIES))
    stored = moment if engine.dialect.name == "sqlite" else moment + "+00"
    _set(engine, ENTRIES, entry=entry, leaf_hash=leaf_hash(entry), recorded_at=stored)
    python, compiled = _both(engine)
    assert not python.problems, python.problems
    assert compiled == python


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.integers(1, ENTRIES), at=st.integers(0, 10_000), byte=st.integers(0, 255),
       how=st.sampled_from(["replace", "insert", "delete"]))
def test_random_damage_to_an_entry_is_never_passed(
        log: tuple[Engine, Signer], seq: int, at: int, byte: int, how: str) -> None:
    engine, _ = log
    original = _entry(engine, seq)
    i = at % len(original)
    damaged = {
        "replace": original[:i] + bytes([byte]) + original[i + 1:],
        "insert": original[:i] + bytes([byte]) + original[i:],
        "delete": original[:i] + original[i + 1:],
    }[how]
    _set(engine, seq, entry=damaged, leaf_hash=leaf_hash(damaged))
    try:
        _held_to_python(engine)
    finally:
        _set(engine, seq, entry=original, leaf_hash=leaf_hash(original))


def test_postgresql_streams_the_log_in_seq_order_without_sorting_it(
        postgresql_log: tuple[Engine, Signer]) -> None:
    # A log never analysed (as one just written): left to itself the planner may sort the
    # whole range before the first row comes back, spilling a long log to temporary files.
    engine, _ = postgresql_log
    with session_scope(make_session_factory(engine)) as s:
        dbapi: Any = s.connection().connection.dbapi_connection
        with custody._unsorted(dbapi), dbapi.cursor() as cursor:
            cursor.execute(f"EXPLAIN {custody._PG_STORED_ROWS} WHERE seq > 0 ORDER BY seq")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Index Scan using pk_custody_entries" in plan and "Sort" not in plan, plan
        with dbapi.cursor() as cursor:  # the planner's setting is put back
            cursor.execute("SHOW enable_sort")
            assert cursor.fetchone() == ("on",)


def _threads_source(engine: Engine) -> custody._Source:
    with session_scope(make_session_factory(engine)) as s:
        source = custody._source_of(s)
    assert source is not None and source.compiled
    return source


def test_a_stopped_verify_stops_its_other_threads(log: tuple[Engine, Signer],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C lands in the thread that started the verify, which checks the first range; the
    threads checking the others stop at their next batch, not at the end of their range."""
    engine, _ = log
    monkeypatch.setattr(custody, "READ_BATCH", 1)
    stops: list[threading.Event] = []

    class Stop(threading.Event):
        def __init__(self) -> None:
            super().__init__()
            stops.append(self)

    monkeypatch.setattr(custody, "threading", types.SimpleNamespace(
        Event=Stop, Lock=threading.Lock))
    reading = threading.Event()
    read_by_thread: list[int] = []
    stopped: list[bool] = []

    class Held(custody._Counter):
        def add(self, count: int) -> None:
            super().add(count)
            read_by_thread.append(count)
            reading.set()  # the other range is being read ...
            stopped.append(stops[0].wait(5))  # ... and goes on once the verify stopped

    def first() -> custody._Run | None:
        assert reading.wait(10)
        raise KeyboardInterrupt

    with session_scope(make_session_factory(engine)) as s:
        counter = Held(s, None)
    with pytest.raises(KeyboardInterrupt):
        custody._in_threads(first, _threads_source(engine), [0, 8], None, [], counter)
    assert stopped == [True] and read_by_thread == [1]  # of the 8 entries after seq 8, one


def test_a_range_that_cannot_be_read_fails_the_verify(
        log: tuple[Engine, Signer], tmp_path: Path) -> None:
    engine, _ = log
    source = _threads_source(engine)
    if source.sqlite_path is not None:
        source = dataclasses.replace(source, sqlite_path=str(tmp_path / "gone.db"))
    else:
        source = dataclasses.replace(source, url=source.url.rsplit("/", 1)[0] + "/gone_db")
    with session_scope(make_session_factory(engine)) as s:
        counter = custody._Counter(s, None)
    with pytest.raises(Exception, match="gone"):
        custody._in_threads(lambda: None, source, [0, 8], None, [], counter)
