"""The custody log: appends ride the caller's transaction, the database refuses edits, the
verifier finds tampering by someone with direct database access, and concurrent appends on
PostgreSQL keep the log gapless and every case chain linear."""

from __future__ import annotations

import contextlib
import itertools
import random
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from evidence import cases, custody
from evidence.canonical import canonical_json
from evidence.db import make_engine, make_session_factory, session_scope
from evidence.errors import CustodyError, LogBroken, NotFound
from evidence.merkle import (
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from evidence.models import Case, Checkpoint, CustodyEntry, Role, User
from evidence.signing import Signer
from tests.conftest import Databases
from tests.evidence.test_merkle import ref_frontier
from tests.factories import drop_append_only, make_case, make_user

ORIGIN = "evidence-locker/test"


def _entries(session: Session) -> list[CustodyEntry]:
    return list(session.scalars(select(CustodyEntry).order_by(CustodyEntry.seq)))


def test_change_and_its_entry_commit_or_vanish_together(database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as s:
            user = make_user(s, name="ana")
        with pytest.raises(RuntimeError), session_scope(factory) as s:
            cases.create_case(s, user, reference="LOST-1", title="never committed")
            raise RuntimeError("crash after the change, before commit")
        with session_scope(factory) as s:
            assert s.scalars(select(Case).where(Case.reference == "LOST-1")).first() is None
            assert [e.action for e in _entries(s)] == ["user.created"]
    finally:
        engine.dispose()


def test_entries_are_canonical_gapless_and_chained_per_case(session: Session) -> None:
    alice = make_user(session, name="alice")
    one = make_case(session, alice, reference="ONE")
    two = make_case(session, alice, reference="TWO")
    cases.view_case(session, alice, "ONE")
    entries = _entries(session)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    for entry in entries:
        doc = custody.describe(entry)
        assert canonical_json(doc) == entry.entry
        assert leaf_hash(entry.entry) == entry.leaf_hash
    for case in (one, two):
        chain = [e for e in entries if e.case_id == case.id]
        assert [e.case_seq for e in chain] == list(range(1, len(chain) + 1))
        assert chain[0].prev_case_hash is None
        for before, after in itertools.pairwise(chain):
            assert after.prev_case_hash == before.leaf_hash
    viewed = custody.describe(entries[-1])
    assert viewed["action"] == "case.viewed"
    assert viewed["actor"]["name"] == "alice"
    assert viewed["case"]["ref"] == "ONE"
    assert viewed["at"].endswith("Z")


@pytest.mark.parametrize("statement", [
    "UPDATE custody_entries SET action = 'case.deleted' WHERE seq = 1",
    "DELETE FROM custody_entries WHERE seq = 1",
    "UPDATE checkpoints SET tree_size = 0",
    "DELETE FROM checkpoints",
])
def test_database_refuses_to_change_the_log(session: Session, statement: str) -> None:
    make_case(session)
    custody.cut_checkpoint(session, Signer.generate(), origin=ORIGIN)
    session.flush()
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text(statement))
    assert _entries(session)[0].action == "user.created"


def test_checkpoint_proofs_verify(session: Session) -> None:
    signer = Signer.generate()
    actor = make_user(session, role=Role.SUPERVISOR)
    make_case(session, actor)
    old = custody.cut_checkpoint(session, signer, origin=ORIGIN)
    for _ in range(5):
        make_case(session, actor)
    new = custody.cut_checkpoint(session, signer, origin=ORIGIN)
    assert new.tree_size > old.tree_size
    custody.verify_checkpoint_signature(new, signer.verifier)
    entries = _entries(session)
    proofs = custody.inclusion_proofs(session, [e.seq for e in entries], new)
    for entry, proof in zip(entries, proofs, strict=True):
        verify_inclusion(entry.leaf_hash, entry.seq - 1, new.tree_size, proof.proof,
                         new.root_hash)
    path = custody.consistency_proof(session, old.tree_size, new.tree_size)
    verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, path)
    assert custody.cut_checkpoint(session, signer, origin=ORIGIN).id == new.id


# --- tampering by someone with direct database access ------------------------------------


@pytest.fixture
def populated(database_url: str) -> Iterator[tuple[Engine, Signer]]:
    """A committed log over three cases, sealed by a checkpoint, with the triggers dropped as an
    attacker with database access would do first."""
    yield from _populate(database_url)


@pytest.fixture
def populated_sqlite(tmp_path: Path) -> Iterator[tuple[Engine, Signer]]:
    """`populated`, on SQLite alone: for what only SQLite's storage allows."""
    yield from _populate(Databases("sqlite", tmp_path).new_url())


def _populate(url: str) -> Iterator[tuple[Engine, Signer]]:
    engine = make_engine(url)
    signer = Signer.generate()
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        alice = make_user(s, name="alice")
        for ref in ("A", "B", "C"):
            make_case(s, alice, reference=ref)
        for ref in ("A", "B", "A", "C", "A"):
            cases.view_case(s, alice, ref)
        custody.cut_checkpoint(s, signer, origin=ORIGIN)
    with engine.begin() as conn:
        drop_append_only(conn, "custody_entries", "checkpoints")
    yield engine, signer
    engine.dispose()


@contextlib.contextmanager
def _checker(compiled: bool) -> Iterator[None]:
    """Ranges checked side by side by the compiled checker (in threads) or, without it, by
    the Python checker (in processes)."""
    built = custody._custodycheck
    if not compiled:
        custody._custodycheck = None
    try:
        yield
    finally:
        custody._custodycheck = built


def _verify(engine: Engine, signer: Signer, case: str | None = None) -> custody.VerifyReport:
    """The report of one pass, after checking that three ranges checked side by side report
    exactly the same, in threads by the compiled checker and in processes by Python's."""
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        single = custody.verify_log(s, signer.verifier, case_reference=case, workers=1)
    for compiled in (True, False):
        with _checker(compiled), session_scope(factory) as s:
            split = custody.verify_log(s, signer.verifier, case_reference=case, workers=3,
                                       min_chunk=1)
        split.compiled = single.compiled  # which checker vouched: the rest must be the same
        assert split == single
    return single


@pytest.fixture(autouse=True)
def _small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ranges of seq start at multiples of 2 here, so the 12 entries of `populated` split
    # into 1..4, 5..8 and 9..12 across three processes.
    monkeypatch.setattr(custody, "PARALLEL_ALIGN_DEPTH", 1)


def _split_reports(engine: Engine, signer: Signer) -> list[custody.VerifyReport | None]:
    """The reports when three ranges checked side by side could vouch for the log (None
    when they could not): by the compiled checker in threads, by Python's in processes."""
    reports = []
    for compiled in (True, False):
        with _checker(compiled), session_scope(make_session_factory(engine)) as s:
            reports.append(custody._verify_fast(
                s, custody.read_checkpoints(s), signer.verifier, case_id=None,
                case_reference=None, workers=3, min_chunk=1))
    return reports


def _entry(engine: Engine, seq: int) -> bytes:
    with engine.connect() as conn:
        return bytes(conn.execute(text("SELECT entry FROM custody_entries WHERE seq = :s"),
                                  {"s": seq}).scalar_one())


def _rewrite(engine: Engine, seq: int, data: bytes, *, fix_hash: bool) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_entries SET entry = :e WHERE seq = :s"),
                     {"e": data, "s": seq})
        if fix_hash:
            conn.execute(text("UPDATE custody_entries SET leaf_hash = :h WHERE seq = :s"),
                         {"h": leaf_hash(data), "s": seq})


def test_untouched_log_verifies(populated: tuple[Engine, Signer]) -> None:
    report = _verify(*populated)
    assert report.ok, report.summary()
    assert report.entries == report.sealed == 12
    assert report.cases == 3
    assert _verify(*populated, case="A").ok


def test_a_long_verify_says_how_far_it_got(populated: tuple[Engine, Signer],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    engine, signer = populated
    monkeypatch.setattr(custody, "PROGRESS_EVERY_SECONDS", 0)
    monkeypatch.setattr(custody, "READ_BATCH", 5)
    factory = make_session_factory(engine)
    said: list[str] = []
    with session_scope(factory) as s:
        assert custody.verify_log(s, signer.verifier, workers=1, progress=said.append).ok
    assert said == [f"read {n} of 12 custody entries" for n in (5, 10, 12)]

    for compiled in (True, False):  # three threads or processes: this one says for all
        said.clear()
        with _checker(compiled), session_scope(factory) as s:
            assert custody.verify_log(s, signer.verifier, workers=3, min_chunk=1,
                                      progress=said.append).ok
        counts = [int(line.split()[1]) for line in said]
        assert all(re.fullmatch(r"read \d+ of 12 custody entries", line) for line in said)
        assert counts == sorted(counts) and counts[-1] == 12


def test_three_ranges_side_by_side_vouch_for_an_untouched_log(
        populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    single = _verify(engine, signer)
    for split in _split_reports(engine, signer):
        assert split is not None and split.ok
        split.compiled = single.compiled
        assert split == single


def test_entry_missing_at_a_range_border_is_named(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    with engine.begin() as conn:  # 8 ends the second range: no process sees a gap alone
        conn.execute(text("DELETE FROM custody_entries WHERE seq = 8"))
    assert _split_reports(engine, signer) == [None, None]
    report = _verify(engine, signer)
    assert report.first_problem is not None and report.first_problem.seq == 8
    assert "missing" in report.summary()


def test_chain_broken_across_a_range_border_is_named(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    # Seq 3 (case A, first range) is linked from seq 8, the next entry of A (second range).
    data = _entry(engine, 3).replace(b'"alice"', b'"mallory"')
    _rewrite(engine, 3, data, fix_hash=True)
    assert _split_reports(engine, signer) == [None, None]
    report = _verify(engine, signer)
    assert report.first_problem is not None and report.first_problem.seq == 3
    assert "seq 8" in report.summary()


def test_altered_entry_is_named(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    data = _entry(engine, 9).replace(b'"case.viewed"', b'"case.closed"')
    _rewrite(engine, 9, data, fix_hash=False)
    report = _verify(engine, signer)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.seq == 9
    assert "altered" in report.summary()


# Seq 9 is a view of case A by alice. Each statement alters one column beside the entry and
# leaves the entry's bytes, its hash and every chain intact; what reads the columns (lookups by
# object, the report's custody lines) would show the altered value.
@pytest.mark.parametrize(("statement", "named"), [
    ("UPDATE custody_entries SET recorded_at = '2020-01-01 00:00:00.000000' WHERE seq = 9",
     "column recorded_at disagrees"),
    ("UPDATE custody_entries SET actor_id = NULL WHERE seq = 9", "column actor_id disagrees"),
    ("UPDATE custody_entries SET action = 'case.closed' WHERE seq = 9", "column action"),
    ("UPDATE custody_entries SET object_type = 'capture', object_id = 'x' WHERE seq = 9",
     "columns object_type, object_id disagree"),
    (f"UPDATE custody_entries SET sha256 = '{'0' * 64}' WHERE seq = 9", "column sha256"),
    ("UPDATE custody_entries SET case_id = NULL WHERE seq = 9", "case column disagrees"),
    ("UPDATE custody_entries SET case_seq = case_seq + 10 WHERE seq = 9",
     "chain columns disagree"),
    ("UPDATE custody_entries SET prev_case_hash = leaf_hash WHERE seq = 9",
     "chain columns disagree"),
    ("UPDATE custody_entries SET leaf_hash = prev_case_hash WHERE seq = 9",
     "entry bytes do not match its recorded hash"),
])
def test_altered_column_is_named(populated: tuple[Engine, Signer], statement: str,
                                 named: str) -> None:
    engine, signer = populated
    with engine.begin() as conn:
        assert conn.execute(text(statement)).rowcount == 1
    report = _verify(engine, signer)
    assert [p.seq for p in report.problems] == [9], report.summary()
    assert named in report.summary() and "(altered)" in report.summary()


def test_an_id_stored_in_another_spelling_is_named(
    populated_sqlite: tuple[Engine, Signer],
) -> None:
    """SQLite keeps ids as 32 lowercase hex digits; the same id in capitals is still that
    uuid to Python, but a lookup of the case's entries no longer finds it. (PostgreSQL stores
    a uuid as a uuid: it has one spelling.)"""
    engine, signer = populated_sqlite
    # A plain connection, as an insider would open one: foreign keys are not enforced there.
    with contextlib.closing(sqlite3.connect(str(engine.url.database))) as raw:
        raw.execute("UPDATE custody_entries SET case_id = upper(case_id), "
                    "actor_id = upper(actor_id) WHERE seq = 9")
        raw.commit()
    report = _verify(engine, signer)
    assert [p.seq for p in report.problems] == [9, 9], report.summary()
    assert [p.message for p in report.problems] == [
        "column actor_id disagrees with the entry (altered)",
        "case column disagrees with the entry (altered)"]


def test_altered_entry_with_recomputed_hash_is_named(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    # Seq 10 views case A; seq 12 (the next view of A) recorded seq 10's original hash.
    data = _entry(engine, 10).replace(b'"alice"', b'"mallory"')
    _rewrite(engine, 10, data, fix_hash=True)
    report = _verify(engine, signer)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.seq == 10
    assert "seq 10" in report.summary()


def test_last_entry_of_a_case_altered_is_caught_by_the_checkpoint(
    populated: tuple[Engine, Signer],
) -> None:
    engine, signer = populated
    data = _entry(engine, 12).replace(b'"alice"', b'"mallory"')
    _rewrite(engine, 12, data, fix_hash=True)
    report = _verify(engine, signer)
    assert not report.ok
    assert "checkpoint" in report.summary()
    assert report.first_problem is not None and report.first_problem.seq is not None


def test_deleted_entry_is_named(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_entries WHERE seq = 6"))
    report = _verify(engine, signer)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.seq == 6
    assert "missing" in report.summary()
    case_report = _verify(engine, signer, case="B")
    assert not case_report.ok


def test_deleted_tail_is_caught_by_the_checkpoint(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_entries WHERE seq >= 11"))
    report = _verify(engine, signer)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.seq == 11


def test_reordered_entries_are_named(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    seven, eight = _entry(engine, 7), _entry(engine, 8)
    _rewrite(engine, 7, eight, fix_hash=True)
    _rewrite(engine, 8, seven, fix_hash=True)
    report = _verify(engine, signer)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.seq == 7
    assert "reordered" in report.summary()


def _view_and_cut(engine: Engine, signer: Signer, views: int) -> Checkpoint:
    with session_scope(make_session_factory(engine)) as s:
        alice = s.scalars(select(User).where(User.name == "alice")).one()
        for i in range(views):
            cases.view_case(s, alice, "ABC"[i % 3])
        return custody.cut_checkpoint(s, signer, origin=ORIGIN)


def _tree_of_entries(engine: Engine) -> MerkleTree:
    """The tree over the entries' own bytes, whatever the leaf-hash column says."""
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT entry FROM custody_entries ORDER BY seq")).scalars()
        return MerkleTree([leaf_hash(bytes(e)) for e in raw])


def test_a_checkpoint_grows_the_tree_the_one_before_signed(
    populated: tuple[Engine, Signer],
) -> None:
    engine, signer = populated
    for views in (1, 2, 5):
        checkpoint = _view_and_cut(engine, signer, views)
        tree = _tree_of_entries(engine)
        assert (checkpoint.tree_size, bytes(checkpoint.root_hash)) == (tree.size, tree.root())
        assert checkpoint.frontier == b"".join(ref_frontier(tree.levels[0]))
    # An insider rewrites the leaf-hash column of an entry the checkpoints already cover: the
    # next checkpoint extends the tree signed before, so the edit does not enter what it signs.
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_entries SET leaf_hash = :h WHERE seq = 2"),
                     {"h": b"\x00" * 32})
    checkpoint = _view_and_cut(engine, signer, 3)
    assert bytes(checkpoint.root_hash) == _tree_of_entries(engine).root()
    report = _verify(engine, signer)
    assert report.first_problem is not None and report.first_problem.seq == 2
    assert "recorded hash" in report.summary()


def test_proofs_refuse_leaf_hashes_that_do_not_give_the_signed_root(
    populated: tuple[Engine, Signer],
) -> None:
    """A proof from an edited leaf-hash column would fail only in the hands of whoever checks
    the bundle: the proofs an export puts in it are refused at once, naming the checkpoint, and
    so are proofs over a log shorter than the checkpoint."""
    engine, _signer = populated
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        checkpoint = custody.latest_checkpoint(s)
        assert checkpoint is not None
        good = custody.inclusion_proofs(s, [1, 12], checkpoint)
        assert [p.seq for p in good] == [1, 12]
        with pytest.raises(CustodyError, match="entry seq 13 is not in checkpoint"):
            custody.inclusion_proofs(s, [13], checkpoint)
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_entries SET leaf_hash = :h WHERE seq = 2"),
                     {"h": b"\x00" * 32})
    with session_scope(factory) as s:
        checkpoint = custody.latest_checkpoint(s)
        assert checkpoint is not None
        with pytest.raises(CustodyError, match=r"stored leaf hashes do not give the root "
                                               r"checkpoint \d+ \(size 12\) signed"):
            custody.inclusion_proofs(s, [5], checkpoint)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_entries WHERE seq >= 11"))
    with session_scope(factory) as s:
        checkpoint = custody.latest_checkpoint(s)
        assert checkpoint is not None
        with pytest.raises(CustodyError, match="does not hold the 12 entries"):
            custody.inclusion_proofs(s, [5], checkpoint)
        with pytest.raises(NotFound, match="no consistency proof from size 3 to 12: the log "
                                           "does not hold 12 entries"):
            custody.consistency_proof(s, 3, 12)
        with pytest.raises(NotFound, match=r"no consistency proof from size 9 to 5$"):
            custody.consistency_proof(s, 9, 5)


def test_a_forged_frontier_is_not_grown_from(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    with engine.begin() as conn:  # right length, wrong hashes: they do not fold into the root
        size = conn.execute(text("SELECT max(tree_size) FROM checkpoints")).scalar_one()
        conn.execute(text("UPDATE checkpoints SET frontier = :f"),
                     {"f": b"\x07" * 32 * int(size).bit_count()})
    checkpoint = _view_and_cut(engine, signer, 2)
    tree = _tree_of_entries(engine)
    assert (checkpoint.tree_size, bytes(checkpoint.root_hash)) == (tree.size, tree.root())
    assert _verify(engine, signer).ok


def _view(engine: Engine, views: int) -> None:
    """Views of A, B, C in turn, committed: entries 13.. of `populated`, not yet sealed."""
    with session_scope(make_session_factory(engine)) as s:
        alice = s.scalars(select(User).where(User.name == "alice")).one()
        for i in range(views):
            cases.view_case(s, alice, "ABC"[i % 3])


def _checkpoint_sizes(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT tree_size FROM checkpoints ORDER BY id")).scalars())


def _forge_frontier_and_rewrite_5(engine: Engine) -> None:
    """With no checkpoint to grow from, the cut checks the whole log."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE checkpoints SET frontier = :f"), {"f": b"\x07" * 32 * 2})
    _rewrite_column(engine, 5)


def _set_leaf_hash(engine: Engine, seq: int, value: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_entries SET leaf_hash = :h WHERE seq = :s"),
                     {"h": value, "s": seq})


def _rewrite_column(engine: Engine, seq: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_entries SET action = 'case.closed' WHERE seq = :s"),
                     {"s": seq})


def _delete(engine: Engine, seq: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_entries WHERE seq = :s"), {"s": seq})


# `populated` holds 12 sealed entries; six views add 13..18: A, B, C, A, B, C. Seq 12 is the last
# sealed entry of case A, which seq 13 links to; seq 16, the next view of A, links to seq 13.
@pytest.mark.parametrize(("tamper", "named"), [
    (lambda e: _rewrite(e, 14, _entry(e, 14).replace(b'"alice"', b'"mallory"'), fix_hash=False),
     "entry seq 14: entry bytes do not match its recorded hash (altered)"),
    (lambda e: _rewrite(e, 13, _entry(e, 13).replace(b'"alice"', b'"mallory"'), fix_hash=True),
     "entry seq 13: does not match the hash that seq 16, the next entry of case 'A', recorded "
     "for it: one of the two was altered"),
    (lambda e: _rewrite(e, 12, _entry(e, 12).replace(b'"alice"', b'"mallory"'), fix_hash=True),
     "entry seq 12: does not match the hash that seq 13, the next entry of case 'A', recorded "
     "for it"),
    (lambda e: _rewrite_column(e, 15),
     "entry seq 15: column action disagrees with the entry (altered)"),
    (lambda e: _delete(e, 13), "entry seq 13: missing: entries 13..13 are not in the log"),
    (lambda e: _delete(e, 17), "entry seq 17: missing: entries 17..17 are not in the log"),
    (lambda e: _set_leaf_hash(e, 18, b"\x00" * 32),
     "entry seq 18: entry bytes do not match its recorded hash (altered)"),
    (_forge_frontier_and_rewrite_5, "entry seq 5: column action disagrees with the entry "
     "(altered)"),
], ids=["bytes", "bytes-and-hash", "sealed-head", "column", "first-deleted", "deleted",
        "leaf-hash", "whole-log"])
def test_no_checkpoint_is_signed_over_a_broken_log(
    populated: tuple[Engine, Signer], tamper: Callable[[Engine], object], named: str,
) -> None:
    engine, signer = populated
    _view(engine, 6)
    tamper(engine)
    with pytest.raises(LogBroken) as refused, session_scope(make_session_factory(engine)) as s:
        custody.cut_checkpoint(s, signer, origin=ORIGIN)
    message = str(refused.value)
    assert message.startswith("checkpoint refused, nothing signed: the custody log is broken "
                              f"at {named}"), message
    assert "evidence custody verify" in message
    assert _checkpoint_sizes(engine) == [12]
    # `evidence custody verify` names the same entry.
    assert _verify(engine, signer).summary().startswith(f"custody log BROKEN: {named}")


def test_a_checkpoint_checks_only_what_it_adds(populated: tuple[Engine, Signer]) -> None:
    """An untouched log is signed as before, in checkpoints that each check their own entries,
    chains running across them; an edit of an entry already signed, that breaks no link of the
    new entries, is left to `evidence custody verify`, which names it."""
    engine, signer = populated
    for views in (1, 4, 2):
        _view(engine, views)
        with session_scope(make_session_factory(engine)) as s:
            custody.cut_checkpoint(s, signer, origin=ORIGIN)
    assert _checkpoint_sizes(engine) == [12, 13, 17, 19]
    assert _verify(engine, signer).ok
    _rewrite_column(engine, 14)
    _view(engine, 3)
    with session_scope(make_session_factory(engine)) as s:
        assert custody.cut_checkpoint(s, signer, origin=ORIGIN).tree_size == 22
    assert _verify(engine, signer).first_problem == custody.Problem(
        "column action disagrees with the entry (altered)", 14)


def test_forged_checkpoint_is_refused(populated: tuple[Engine, Signer]) -> None:
    engine, signer = populated
    with engine.begin() as conn:
        conn.execute(text("UPDATE checkpoints SET root_hash = :r"), {"r": b"\x00" * 32})
    report = _verify(engine, signer)
    assert not report.ok
    assert "signature invalid" in report.summary()
    assert not _verify(engine, Signer.generate()).ok


# --- concurrency --------------------------------------------------------------------------


def test_concurrent_appends_stay_gapless_and_linear(database_url: str, backend: str) -> None:
    threads_n, per_thread = (8, 25) if backend == "postgresql" else (4, 10)
    engine = make_engine(database_url, pool_size=threads_n + 2)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        actor = make_user(s, name="boss")
        refs = [make_case(s, actor, reference=f"C{i}").reference for i in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait()
            for _ in range(per_thread):
                with session_scope(factory) as s:
                    cases.view_case(s, s.merge(actor), rng.choice(refs))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    with session_scope(factory) as s:
        entries = _entries(s)
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        views = [e for e in entries if e.action == "case.viewed"]
        assert len(views) == threads_n * per_thread
        report = custody.verify_log(s, Signer.generate().verifier)
        assert report.ok, report.summary()
    engine.dispose()
