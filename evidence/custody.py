"""The tamper-evident custody log: append in the caller's transaction, checkpoint, verify.

Every change to evidence appends one entry in the same transaction as the change. An entry is
canonical JSON carrying a global gapless `seq` and, for entries about a case, that case's own
`case_seq` and the leaf hash of the case's previous entry (`prev_case_hash`). All entries form
one RFC 9162 Merkle tree; checkpoints sign its size and root with the system's Ed25519 key.
"""

from __future__ import annotations

import base64
import bisect
import concurrent.futures
import contextlib
import functools
import hashlib
import multiprocessing as mp
import os
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, SessionTransaction, aliased

from evidence import timestamping
from evidence.canonical import JsonValue, canonical_json
from evidence.db import reading_engine
from evidence.errors import CustodyError, InvalidInput, LogBroken, NotFound
from evidence.merkle import (
    EMPTY_ROOT,
    ProofError,
    block_root,
    frontier_extend,
    frontier_root,
    leaf_hash,
    prefix_roots,
    streamed_proofs,
)
from evidence.models import Case, Checkpoint, CustodyEntry, User, utcnow
from evidence.signing import SignatureInvalid, Signer, Verifier

_custodycheck: types.ModuleType | None
try:  # the checks in compiled code (evidence/_custodycheck.c); without it, Python does them all
    from evidence import _custodycheck
except ImportError:  # pragma: no cover - built by every install that has a C compiler
    _custodycheck = None

ENTRY_VERSION = 1
# Any constant will do: it names the one lock that serialises appends on PostgreSQL.
APPEND_LOCK_KEY = 0x45564C4F47  # "EVLOG"
# Rows fetched at a time. Larger batches read slower: 100,000 rows took 0.11 s (SQLite) and
# 0.16 s (PostgreSQL) in batches of 1,000, 0.15 s and 0.27 s in batches of 10,000.
READ_BATCH = 1_000
# Below this many entries per process, starting processes costs more than it saves.
PARALLEL_MIN_CHUNK = 25_000
PROGRESS_EVERY_SECONDS = 2.0  # how often a long verify says how far it got
PARALLEL_ALIGN_DEPTH = 12  # ranges start at multiples of 2**12 entries
HEADS_BATCH = 500  # cases whose chain heads one query looks up, well below bind limits


def format_time(moment: datetime) -> str:
    """UTC with microseconds and a Z, the one spelling of a time inside an entry."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hold_log(session: Session) -> None:
    """Wait for the appends in flight and hold the log to the end of the transaction: what the
    caller reads next includes everything whose entry comes before its own next one (an export
    lists the received material the entries it carries record)."""
    if session.get_bind().dialect.name == "postgresql":
        # Held to the end of the transaction, so `seq` is assigned and committed in order.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
    # SQLite: every transaction began with BEGIN IMMEDIATE and so already holds the write lock.


@dataclass
class _LogHead:
    """The log's head as this transaction, which holds the append lock, last wrote it."""

    seq: int
    cases: dict[uuid.UUID, tuple[int, bytes]] = field(default_factory=dict)


_HEAD_KEY = "evidence.custody.head"


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, transaction: SessionTransaction) -> None:
    # A commit, rollback or savepoint end may change what is written: read it afresh. The
    # internal subtransactions of every flush change nothing and keep the head.
    if transaction.parent is None or transaction.nested:
        session.info.pop(_HEAD_KEY, None)


def _head(session: Session) -> _LogHead:
    head: _LogHead | None = session.info.get(_HEAD_KEY)
    if head is None:
        hold_log(session)
        session.flush()
        head = _LogHead(session.scalar(select(func.max(CustodyEntry.seq))) or 0)
        session.info[_HEAD_KEY] = head
    else:
        session.flush()
    return head


def _case_head(session: Session, head: _LogHead, case_id: uuid.UUID) -> tuple[int, bytes | None]:
    cached = head.cases.get(case_id)
    if cached is not None:
        return cached
    row = session.execute(
        select(CustodyEntry.case_seq, CustodyEntry.leaf_hash)
        .where(CustodyEntry.case_id == case_id)
        .order_by(CustodyEntry.case_seq.desc())
        .limit(1)
    ).first()
    return (0, None) if row is None else (int(row[0] or 0), bytes(row[1]))


def append(
    session: Session,
    actor: User | None,
    *,
    action: str,
    case: Case | None = None,
    object_type: str | None = None,
    object_id: uuid.UUID | str | None = None,
    sha256: str | None = None,
    details: dict[str, JsonValue] | None = None,
) -> CustodyEntry:
    """Append one entry in the session's transaction; it commits or rolls back with the change."""
    head = _head(session)
    seq = head.seq + 1
    case_seq: int | None = None
    prev: bytes | None = None
    if case is not None:
        last_case_seq, prev = _case_head(session, head, case.id)
        case_seq = last_case_seq + 1
    now = utcnow()
    document: dict[str, JsonValue] = {
        "v": ENTRY_VERSION,
        "seq": seq,
        "at": format_time(now),
        "actor": None if actor is None else {"id": str(actor.id), "name": actor.name},
        "action": action,
        "case": None if case is None else {"id": str(case.id), "ref": case.reference},
        "case_seq": case_seq,
        "prev_case_hash": None if prev is None else prev.hex(),
        "object": None
        if object_type is None
        else {"type": object_type, "id": None if object_id is None else str(object_id)},
        "sha256": sha256,
        "details": details or {},
    }
    data = canonical_json(document)
    entry = CustodyEntry(
        seq=seq,
        case_id=None if case is None else case.id,
        case_seq=case_seq,
        prev_case_hash=prev,
        recorded_at=now,
        actor_id=None if actor is None else actor.id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        sha256=sha256,
        entry=data,
        leaf_hash=leaf_hash(data),
    )
    session.add(entry)
    session.flush()
    head.seq = seq
    if case is not None and case_seq is not None:
        head.cases[case.id] = (case_seq, entry.leaf_hash)
    return entry


def entries_for_case(session: Session, case: Case) -> list[CustodyEntry]:
    return list(
        session.scalars(
            select(CustodyEntry).where(CustodyEntry.case_id == case.id).order_by(CustodyEntry.seq)
        )
    )


def entries_for_object(session: Session, case: Case, object_type: str,
                       object_id: uuid.UUID | str) -> list[CustodyEntry]:
    """The case's entries about one object (a request, an export ...), oldest first."""
    return list(session.scalars(
        select(CustodyEntry).where(CustodyEntry.object_type == object_type,
                                   CustodyEntry.object_id == str(object_id),
                                   CustodyEntry.case_id == case.id)
        .order_by(CustodyEntry.seq)
    ))


def describe(entry: CustodyEntry) -> dict[str, Any]:
    """The entry as its canonical JSON says it, for display."""
    return dict(orjson.loads(entry.entry))


# --- checkpoints -----------------------------------------------------------------------------


def checkpoint_body(origin: str, tree_size: int, root: bytes) -> bytes:
    """The signed text, in the C2SP tlog-checkpoint layout: origin, size, base64 root."""
    return f"{origin}\n{tree_size}\n{base64.b64encode(root).decode()}\n".encode()


def _leaf_hashes(session: Session, upto: int | None = None) -> Iterator[bytes]:
    """The stored leaf hashes in seq order, streamed in batches."""
    query = select(CustodyEntry.leaf_hash).order_by(CustodyEntry.seq)
    if upto is not None:
        query = query.where(CustodyEntry.seq <= upto)
    for leaf in session.scalars(query.execution_options(yield_per=READ_BATCH)):
        yield bytes(leaf)


def latest_checkpoint(session: Session) -> Checkpoint | None:
    return session.scalars(
        select(Checkpoint).order_by(Checkpoint.tree_size.desc(), Checkpoint.id.desc()).limit(1)
    ).first()


def cut_checkpoint(
    session: Session,
    signer: Signer,
    *,
    origin: str,
    timestamp: Callable[[bytes], bytes | None] | None = None,
) -> Checkpoint:
    """Sign the log as it stands; returns the latest checkpoint unchanged if nothing was added.

    The entries the new checkpoint adds are checked first, as `evidence custody verify` checks
    them; where one does not hold (an insider altered or removed it), `LogBroken` names it and
    nothing is signed. `timestamp`, given the SHA-256 of the signed body, returns an RFC 3161
    token for it (or None when no authority answered); the row is append-only, so it is asked
    before the insert.
    """
    hold_log(session)
    session.flush()  # the entries are read below the ORM, which would not flush them
    latest = latest_checkpoint(session)
    frontier = None if latest is None else _trusted_frontier(latest, signer)
    # Without a checkpoint to grow from (the first, or one cut before frontiers were kept, or
    # one whose frontier does not hold), the whole log is checked and hashed.
    size = 0 if latest is None or frontier is None else latest.tree_size
    run = _check_growth(session, size, frontier or [])
    if run.problems:
        report = VerifyReport(problems=run.problems)
        first = report.first_problem
        assert first is not None
        where = f"entry seq {first.seq}: " if first.seq is not None else ""
        more = f" ({len(run.problems) - 1} more problems)" if len(run.problems) > 1 else ""
        raise LogBroken(f"checkpoint refused, nothing signed: the custody log is broken at "
                        f"{where}{first.message}{more}. Run `evidence custody verify` and have "
                        "the log examined.", first=f"{where}{first.message}")
    assert run.frontier is not None
    size += run.count
    if latest is not None and latest.tree_size == size:
        return latest
    root = frontier_root(run.frontier)
    body = checkpoint_body(origin, size, root)
    checkpoint = Checkpoint(
        origin=origin,
        tree_size=size,
        root_hash=root,
        key_id=signer.key_id,
        signature=signer.sign(body),
        timestamp_token=None if timestamp is None else timestamp(hashlib.sha256(body).digest()),
        frontier=b"".join(run.frontier),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def _trusted_frontier(latest: Checkpoint, signer: Signer) -> list[bytes] | None:
    """The frontier of the latest checkpoint's tree, or None when it cannot be trusted to grow
    from.

    Its frontier is used only when it folds into the root the checkpoint signs, under this
    system's key: an insider who edits the row cannot make the next checkpoint sign a tree that
    does not extend the one signed before.
    """
    stored = latest.frontier
    size = latest.tree_size
    if stored is None or len(stored) != 32 * size.bit_count():
        return None
    frontier = [bytes(stored[i:i + 32]) for i in range(0, len(stored), 32)]
    try:
        verify_checkpoint_signature(latest, signer.verifier)
    except SignatureInvalid:
        return None
    if frontier_root(frontier) != bytes(latest.root_hash):
        return None
    return frontier


def _check_growth(session: Session, size: int, frontier: Sequence[bytes]) -> _Run:
    """Check the entries after the first `size` ones, whose tree's frontier is `frontier`, as
    `check_entries` checks the whole log: each one's hash from its canonical bytes, its columns,
    gapless seq, and each case chain's links, starting from the chains' heads among the first
    `size` entries. Streamed: memory holds a block of leaves and the heads of the chains the
    entries continue. The returned run's `frontier` is that of the tree grown by them.
    """
    return _check_run(read_rows(session, after=size), first_seq=size + 1, case_id=None,
                      marks=(), heads_before=_heads_before(session, size), frontier=frontier)


def _heads_before(session: Session, size: int) -> dict[str, tuple[int, bytes, int]]:
    """(case_seq, leaf hash, seq) of the last of the first `size` entries of each case that
    entries after them continue, by the case's id as entries spell it.

    The leaf hash is recomputed from the entry's bytes, which the checkpoint over them vouches
    for; its case_seq is the entry's own where the entry reads as one.
    """
    if size == 0:
        return {}
    # The cases from the new rows, read in seq order: asked for distinct, SQLite would walk
    # the whole (case_id, case_seq) index instead, most of a cut's time on a long log.
    later = session.scalars(select(CustodyEntry.case_id).where(CustodyEntry.seq > size)
                            .execution_options(yield_per=READ_BATCH))
    touched = sorted({case for case in later if case is not None})
    before = aliased(CustodyEntry)
    last = (select(before.seq)
            .where(before.case_id == Case.id, before.seq <= size)
            .order_by(before.case_seq.desc()).limit(1)
            .correlate(Case).scalar_subquery())
    heads: dict[str, tuple[int, bytes, int]] = {}
    for i in range(0, len(touched), HEADS_BATCH):
        # The seqs first, then the rows by primary key: in one query PostgreSQL would rather
        # scan the log for them.
        seqs = [seq for seq in session.scalars(
            select(last).where(Case.id.in_(touched[i:i + HEADS_BATCH]))) if seq is not None]
        rows = session.execute(select(CustodyEntry.case_id, CustodyEntry.case_seq,
                                      CustodyEntry.seq, CustodyEntry.entry)
                               .where(CustodyEntry.seq.in_(seqs)))
        heads.update(_chain_head(*row) for row in rows)
    return heads


def _chain_head(case: Any, case_seq: Any, seq: Any,
                data: Any) -> tuple[str, tuple[int, bytes, int]]:
    # An entry that does not read is altered: its hash will not match the link to it.
    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
        case_seq = _decode_links(data).case_seq or case_seq
    return str(case), (int(case_seq or 0), leaf_hash(bytes(data)), int(seq))


def checkpoint_document(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint as JSON, the shape bundles carry and verifiers keep (no database needed)."""
    return {
        "origin": checkpoint.origin,
        "tree_size": checkpoint.tree_size,
        "root_hash": bytes(checkpoint.root_hash).hex(),
        "key_id": checkpoint.key_id,
        "signature": base64.b64encode(bytes(checkpoint.signature)).decode(),
        "created_at": format_time(checkpoint.created_at),
    }


def verify_checkpoint_signature(checkpoint: Checkpoint, verifier: Verifier) -> None:
    if checkpoint.key_id != verifier.key_id:
        raise SignatureInvalid(
            f"checkpoint {checkpoint.id} is signed by key {checkpoint.key_id[:16]}…, "
            f"not by this system's key {verifier.key_id[:16]}…"
        )
    body = checkpoint_body(checkpoint.origin, checkpoint.tree_size, bytes(checkpoint.root_hash))
    verifier.verify(bytes(checkpoint.signature), body)


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    proof: list[bytes]


def inclusion_proofs(session: Session, seqs: list[int], checkpoint: Checkpoint) -> list[
    InclusionProof
]:
    """Proofs that each entry is in the tree the checkpoint signed.

    One pass over the stored leaf hashes, holding only the hashes the proofs need (memory does
    not grow with the log). The leaves must give the root the checkpoint signed: a proof from
    an altered leaf-hash column would only fail later, in the hands of whoever checks it.
    """
    size = checkpoint.tree_size
    label = f"checkpoint {checkpoint.id} (size {size})"
    for seq in seqs:
        if not 1 <= seq <= size:
            raise CustodyError(f"entry seq {seq} is not in {label}")
    try:
        proved = streamed_proofs(_leaf_hashes(session, upto=size), size,
                                 inclusion=[seq - 1 for seq in seqs])
    except ProofError as exc:
        # Only a log shorter than the checkpoint gets here: the seqs were checked above.
        raise CustodyError(f"the log does not hold the {size} entries {label} signed ({exc}); "
                           "run `evidence custody verify`") from exc
    if proved.root != bytes(checkpoint.root_hash):
        raise CustodyError(f"the log's stored leaf hashes do not give the root {label} "
                           "signed; run `evidence custody verify`")
    return [InclusionProof(seq, size, proof)
            for seq, proof in zip(seqs, proved.inclusion, strict=True)]


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) from one pass over the stored leaf hashes."""
    if not 0 < old_size <= new_size:
        raise NotFound(f"no consistency proof from size {old_size} to {new_size}")
    try:
        proved = streamed_proofs(_leaf_hashes(session, upto=new_size), new_size,
                                 consistency=[old_size])
    except ProofError as exc:  # the log holds fewer than new_size entries
        raise NotFound(f"no consistency proof from size {old_size} to {new_size}: "
                       f"the log does not hold {new_size} entries ({exc})") from exc
    return proved.consistency[0]


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold; `seq` names the first entry it concerns, where there is one."""

    message: str
    seq: int | None = None
    # False when the problem only bounds a range (a checkpoint that no longer matches) whose
    # first entry is given in `seq`; an exact problem names the entry itself.
    exact: bool = True


@dataclass
class VerifyReport:
    entries: int = 0
    cases: int = 0
    checkpoints: int = 0
    sealed: int = 0
    problems: list[Problem] = field(default_factory=list)
    case_reference: str | None = None
    # Checkpoints whose RFC 3161 token was checked and holds; None when none was checked.
    timestamped: int | None = None
    # The entries were checked by the compiled checker (which only ever certifies a log that
    # holds), not by the Python one.
    compiled: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        for exact in (True, False):
            candidates = [p for p in self.problems if p.seq is not None and p.exact == exact]
            if candidates:
                return min(candidates, key=lambda p: p.seq or 0)
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        scope = f"case {self.case_reference}: " if self.case_reference else ""
        if self.ok:
            unsealed = self.entries - self.sealed
            tail = f"; {unsealed} newer entries not yet in a checkpoint" if unsealed else ""
            stamped = "" if self.timestamped is None else f"{self.timestamped} timestamped, "
            return (
                f"custody log verified: {scope}{self.entries} entries, {self.cases} case chains, "
                f"{self.checkpoints} signed checkpoints ({stamped}latest covers {self.sealed})"
                f"{tail}"
            )
        first = self.first_problem
        assert first is not None
        where = f"entry seq {first.seq}: " if first.seq is not None and first.exact else ""
        more = f" ({len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        return f"custody log BROKEN: {scope}{where}{first.message}{more}"


def _as_bytes(value: object) -> bytes | None:
    """Column bytes as stored; an insider's edit may have left text in a binary column."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


# Every column of an entry's row, each checked against the entry's own bytes. The time comes in
# the entry's spelling (`format_time`), made by the database from what it stores, so comparing
# it costs the verifier no parsing. Ids come as PostgreSQL spells a uuid, or as the 32 hex
# digits SQLite keeps (`_Spelled` puts the dashes in); SQLite hands over any other spelling as
# "?". Either way an id is compared exactly as stored: in capitals, or with dashes on SQLite,
# it no longer matches the entry, as the lookups by id would no longer find it.
def _only_32(column: str) -> str:
    return f"CASE WHEN {column} IS NULL OR length({column}) = 32 THEN {column} ELSE '?' END"


_COLUMN_SQL = {
    "sqlite": (_only_32("case_id"), "replace(recorded_at, ' ', 'T') || 'Z'",
               _only_32("actor_id")),
    "postgresql": ("case_id::text",
                   "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                   "actor_id::text"),
}
# The columns that repeat a field of the entry besides the chain's, named as the report names
# them, in the order `_fields_of` gives the entry's values.
ROW_FIELDS = ("recorded_at", "actor_id", "action", "object_type", "object_id", "sha256")


class _Spelled(dict[Any, Any]):
    """An id column's value -> the id as entries write it: SQLite's 32 digits with the dashes
    put in; anything else as it is (PostgreSQL's uuid text, None, "?"). Worked out once per id."""

    def __missing__(self, value: Any) -> Any:
        spelled = value
        if type(value) is str and len(value) == 32:
            spelled = f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        self[value] = spelled
        return spelled


def _rows_sql(dialect: str) -> str:
    case, at, actor = _COLUMN_SQL[dialect]  # constants of this module, never input
    return (f"SELECT seq, {case}, case_seq, prev_case_hash, entry, leaf_hash, "  # noqa: S608
            f"{at}, {actor}, action, object_type, object_id, sha256 FROM custody_entries")


def read_rows(
    session: Session, *, after: int | None = None, upto: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[Any]:
    """The raw rows `check_entries` needs, in seq order, streamed in batches.

    Read as the driver returns them, without the ORM's per-row type conversion: the verifier
    checks the raw values anyway, and at a million entries the conversion is most of the time.
    `after` and `upto` bound the seq range (after < seq <= upto); without them, every row.
    `on_batch` is told the size of each batch as it is read.
    """
    connection = session.connection()
    yield from _stream_rows(connection.connection.dbapi_connection, connection.dialect.name,
                            after, upto, on_batch)


def _stream_rows(
    dbapi: Any, dialect: str, after: int | None, upto: int | None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[Any]:
    # The driver's own cursor: SQLAlchemy's result layer costs more than the rows themselves.
    # On PostgreSQL a named (server-side) cursor keeps memory bounded, and binary results
    # spare decoding every entry from hex.
    mark = "?" if dialect == "sqlite" else "%s"
    bounds = [(f"seq > {mark}", after), (f"seq <= {mark}", upto)]
    given = [(condition, value) for condition, value in bounds if value is not None]
    where = " WHERE " + " AND ".join(c for c, _ in given) if given else ""
    params = tuple(v for _, v in given)
    if dialect == "postgresql":
        cursor = dbapi.cursor(name=f"custody_rows_{uuid.uuid4().hex}", binary=True)
    else:
        cursor = dbapi.cursor()
    with contextlib.ExitStack() as stack:
        stack.callback(cursor.close)
        if dialect == "postgresql":
            stack.enter_context(_unsorted(dbapi))
        cursor.execute(f"{_rows_sql(dialect)}{where} ORDER BY seq", params)
        while batch := cursor.fetchmany(READ_BATCH):
            if on_batch is not None:
                on_batch(len(batch))
            yield from batch


@contextlib.contextmanager
def _unsorted(dbapi: Any) -> Iterator[None]:
    """PostgreSQL reads the log in seq order through the primary key's index, each row as it
    comes, never by sorting it first: where the planner's statistics are stale (a log just
    written, not yet analysed) it would otherwise sort, reading the whole range before the
    first row reaches the checker, and spill a long log to temporary files. The planner's
    setting is put back after (it lasts only to the transaction's end anyway)."""
    with dbapi.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_sort'), "
                       "set_config('enable_sort', 'off', true)")
        row = cursor.fetchone()
    try:
        yield
    finally:
        # Not in a failed or interrupted transaction: its end puts the setting back.
        if dbapi.info.transaction_status.name == "INTRANS":
            with dbapi.cursor() as cursor:
                cursor.execute("SELECT set_config('enable_sort', %s, true)", (row[0],))


def read_checkpoints(session: Session) -> list[Checkpoint]:
    return list(session.scalars(select(Checkpoint).order_by(Checkpoint.id)))


class _Counter:
    """Entries read so far by every range of a verify, said now and then to `progress`.

    This process's threads add each batch they read to `mine`; checking processes (forked)
    add theirs to shared memory they inherit. This process says the total.
    """

    def __init__(self, session: Session, progress: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.shared: Any = mp.get_context("fork").Value("q", 0) if (
            progress is not None and "fork" in mp.get_all_start_methods()) else None
        self.total = 0
        if progress is not None:
            self.total = session.scalar(select(func.max(CustodyEntry.seq))) or 0
        self.mine = 0  # read by this process's threads
        self.lock = threading.Lock()
        self.said_at = time.monotonic()
        self.said: int | None = None  # the count last said

    def restart(self) -> None:
        self.mine = 0
        if self.shared is not None:
            self.shared.value = 0

    def add(self, count: int) -> None:
        """A batch this process read."""
        if self.progress is None:
            return
        with self.lock:
            self.mine += count
            now = time.monotonic()
            if now - self.said_at >= PROGRESS_EVERY_SECONDS:
                self.said_at = now
                self._say()

    def finish(self) -> None:
        """Every process is done: after progress was said at all, say the last count."""
        if self.progress is not None and self.said is not None:
            self._say()

    def _say(self) -> None:
        assert self.progress is not None
        read = min(self.mine + (self.shared.value if self.shared is not None else 0), self.total)
        if read != self.said:
            self.said = read
            self.progress(f"read {read:,} of {self.total:,} custody entries")


_shared_count: Any = None  # in a checking process: the verify's `_Counter.shared`


def _count_in_child(shared: Any) -> None:
    global _shared_count
    _shared_count = shared


def _child_read(count: int) -> None:
    with _shared_count.get_lock():
        _shared_count.value += count


def verify_log(
    session: Session,
    verifier: Verifier,
    *,
    case_reference: str | None = None,
    workers: int | None = None,
    min_chunk: int = PARALLEL_MIN_CHUNK,
    tsa_trust: Sequence[bytes] | None = None,
    progress: Callable[[str], None] | None = None,
    against: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Verify the whole log as stored in the database (see `check_entries`).

    `against` is a checkpoint kept outside the system (see `hold_to_checkpoint`): the log must
    still hold what it covered.

    A large log is read and checked in `workers` ranges of seq at once (default: the cores
    this process may use), each over its own connection: in threads by the compiled checker,
    in processes by the Python one; see `_verify_fast`. With
    `tsa_trust` (the roots of the authorities this system trusts), each checkpoint's RFC 3161
    token is checked too: it must be one of theirs, for that checkpoint's signed text. With
    `progress`, a long verify says every `PROGRESS_EVERY_SECONDS` how many entries it has read.
    """
    case_id: str | None = None
    if case_reference is not None:
        case = session.scalars(select(Case).where(Case.reference == case_reference)).first()
        if case is None:
            raise NotFound(f"no case {case_reference!r}")
        case_id = str(case.id)
    # Checkpoints first: every entry a checkpoint covers is then already in the log we read.
    checkpoints = read_checkpoints(session)
    counter = _Counter(session, progress)
    report = _verify_fast(session, checkpoints, verifier, case_id=case_id,
                          case_reference=case_reference, workers=workers,
                          min_chunk=min_chunk, counter=counter)
    if report is None:
        counter.restart()  # a broken log is checked again in one pass
        report = check_entries(read_rows(session, on_batch=counter.add), checkpoints, verifier,
                               case_id=case_id, case_reference=case_reference)
    counter.finish()
    if tsa_trust is not None:
        _verify_timestamps(checkpoints, tsa_trust, report)
    for reference in cases_without_entries(session):
        if case_reference is None or reference == case_reference:
            report.problems.append(Problem(
                f"case {reference!r} is in the database but has no entry in the log: its "
                "entries were deleted"))
    if against is not None:
        report.problems += hold_to_checkpoint(session, verifier, against)
    return report


def cases_without_entries(session: Session) -> list[str]:
    """References of cases the database holds whose chain has no entry at all in the log: a
    case cannot be made without its `case.created` entry, so its entries were deleted (a whole
    chain, or the whole log, removed leaves no gap for the chain checks to find)."""
    # One look into the (case_id, case_seq) index per case, not a pass over the whole log.
    logged = select(CustodyEntry.seq).where(CustodyEntry.case_id == Case.id).exists()
    return list(session.scalars(select(Case.reference).where(~logged)
                                .order_by(Case.reference).limit(20)))


def hold_to_checkpoint(session: Session, verifier: Verifier, kept: Mapping[str, Any]
                       ) -> list[Problem]:
    """Whether the log still holds what a checkpoint kept outside the system covered (the JSON
    `evidence custody checkpoint --json` prints): its signature is this system's, and the
    first `tree_size` entries still hash to its root. Nothing else can show that a log was cut
    back, with its newer checkpoints, to an earlier state."""
    try:
        size = int(kept["tree_size"])
        root = bytes.fromhex(str(kept["root_hash"]))
        origin = str(kept["origin"])
        signature = base64.b64decode(str(kept["signature"]), validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"not a checkpoint as `evidence custody checkpoint --json` prints "
                           f"it: {exc}") from exc
    if size < 0 or len(root) != 32:
        raise InvalidInput("not a checkpoint: tree_size or root_hash is malformed")
    try:
        verifier.verify(signature, checkpoint_body(origin, size, root))
    except SignatureInvalid:
        return [Problem("the kept checkpoint's signature does not verify with this system's key "
                        f"(it names key {kept.get('key_id')!r})", None, exact=False)]
    held = session.scalar(select(func.count()).select_from(CustodyEntry)
                          .where(CustodyEntry.seq <= size)) or 0
    if held < size:
        return [Problem(f"the log holds {held} of the {size} entries the kept checkpoint covers: "
                        "entries were removed since", held + 1, exact=False)]
    if frontier_root(frontier_extend([], 0, _leaf_hashes(session, upto=size))) != root:
        return [Problem(f"the log's first {size} entries no longer hash to the root of the kept "
                        "checkpoint: the log was rewritten since", 1, exact=False)]
    return []


def _verify_timestamps(checkpoints: Sequence[Checkpoint], tsa_trust: Sequence[bytes],
                       report: VerifyReport) -> None:
    """Each checkpoint's token must be a trusted authority's, over the text the key signed."""
    report.timestamped = 0
    for cp in checkpoints:
        if cp.timestamp_token is None:
            continue
        body = checkpoint_body(cp.origin, cp.tree_size, bytes(cp.root_hash))
        try:
            timestamping.verify_token(bytes(cp.timestamp_token),
                                      digest=hashlib.sha256(body).digest(),
                                      trusted_certs=tsa_trust)
        except timestamping.TimestampError as exc:
            report.problems.append(Problem(
                f"checkpoint {cp.id} (size {cp.tree_size}): its timestamp does not hold: {exc}"))
            continue
        report.timestamped += 1


# --- reading one entry -----------------------------------------------------------------------


class _Ref(msgspec.Struct, gc=False):
    """An entry's case or actor: the id the columns repeat (and the case's reference)."""

    id: str
    ref: str | None = None


class _Object(msgspec.Struct, gc=False):
    type: str
    id: str | None = None


class _Links(msgspec.Struct, gc=False):
    """The fields of an entry that the chains rest on or a column repeats; every other field is
    checked as JSON only."""

    seq: int
    at: str
    action: str
    actor: _Ref | None = None
    case: _Ref | None = None
    case_seq: int | None = None
    prev_case_hash: str | None = None
    object: _Object | None = None
    sha256: str | None = None


_decode_links = msgspec.json.Decoder(_Links).decode
# Stand-ins for what `_links_slowly` could not read: a case (or actor, object) that is there but
# is no object, or a case object without a string id.
_MALFORMED = object()
_NO_ID = object()

_Fields = tuple[Any, Any, Any, Any, Any, Any]


def _fields_of(links: _Links) -> _Fields:
    """The entry's values of the `ROW_FIELDS` columns, in that order."""
    actor, obj = links.actor, links.object
    return (links.at, None if actor is None else actor.id, links.action,
            None if obj is None else obj.type, None if obj is None else obj.id, links.sha256)


def _links_slowly(data: bytes) -> tuple[Any, Any, Any, Any, Any, _Fields] | str:
    """What the typed decoder refused, read as plain JSON: the links as they are, or why not.

    Returns (seq, case id, case ref, case_seq, prev_case_hash, the `ROW_FIELDS` values) as the
    entry holds them, with the case id None for an entry without a case, `_MALFORMED` for a case
    that is no object and `_NO_ID` for a case without a string id; an actor or object that is
    no object gives `_MALFORMED` for the fields read from it, which no column equals.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "entry is not valid JSON (altered)"
    if type(doc) is not dict:
        return "entry is not a JSON object (altered)"
    get = doc.get
    entry_case = get("case")
    if entry_case is None:
        case_id, case_ref = None, None
    elif type(entry_case) is dict:
        case_id, case_ref = entry_case.get("id"), entry_case.get("ref")
        if type(case_id) is not str:
            case_id = _NO_ID
    else:
        case_id, case_ref = _MALFORMED, None

    def part(name: str, key: str) -> Any:
        value = get(name)
        if value is None:
            return None
        return value.get(key) if type(value) is dict else _MALFORMED

    fields = (get("at"), part("actor", "id"), get("action"), part("object", "type"),
              part("object", "id"), get("sha256"))
    return get("seq"), case_id, case_ref, get("case_seq"), get("prev_case_hash"), fields


# --- checking a run of entries ----------------------------------------------------------------


@dataclass
class _Run:
    """What checking one contiguous run of entries found, ready to be joined to its neighbours.

    A run that does not start the log cannot know the head of a case chain that began before
    it: the first entry of each such case is kept in `opens` and checked when the runs are
    joined in order (`_join`). `heads` holds each case's last entry in the run.
    """

    problems: list[Problem] = field(default_factory=list)
    # case id -> (case_seq, leaf hash, seq) of the case's latest entry in the run
    heads: dict[str, tuple[int, bytes, int]] = field(default_factory=dict)
    # case id -> (case_seq, prev_case_hash) of the case's first entry, when the run is not first
    opens: dict[str, tuple[int, bytes | None]] = field(default_factory=dict)
    case_entries: list[int] = field(default_factory=list)
    next_seq: int = 1  # the seq the entry after the run must have
    # The Merkle tree over the run's leaves, in memory that does not grow with it (see
    # `merkle.prefix_roots`): the roots of its full blocks of 2**PARALLEL_ALIGN_DEPTH leaves,
    # the leaves after the last full block, and for each checkpoint size that falls inside a
    # block, the frontier of that block's leaves up to it.
    count: int = 0
    blocks: list[bytes] = field(default_factory=list)
    tail: list[bytes] = field(default_factory=list)
    partials: dict[int, list[bytes]] = field(default_factory=dict)
    # Instead of blocks, when the run was given the frontier of the tree before it (a checkpoint
    # being cut): that frontier grown by the run's leaves.
    frontier: list[bytes] | None = None


def _check_run(
    rows: Iterable[Any], *, first_seq: int, starts_log: bool = False, case_id: str | None,
    marks: Sequence[int], heads_before: Mapping[str, tuple[int, bytes, int]] | None = None,
    frontier: Sequence[bytes] | None = None,
) -> _Run:
    """Check entries in seq order from `first_seq` on; see `check_entries` for what is checked.

    `marks` are the sizes (sorted) at which the tree's root will be asked for: the checkpoints'.
    The run's first entry is leaf `first_seq - 1` of the tree, a multiple of the block size.

    A run that checks what a new checkpoint adds starts anywhere and is given what came before
    it: `heads_before`, the last entry before the run of each case chain the run continues (as
    `_Run.heads` holds them), so a case absent from it starts in the run; and `frontier`, that
    of the tree before the run, which the run grows into `run.frontier` instead of blocks.
    `starts_log`: the run begins the log, so a case's first entry in it must start its chain;
    otherwise a chain met mid-way is left for `_join` to link. Given `heads_before`, the run
    knows every chain that began before it, so it checks as one that begins the log.
    """
    run = _Run()
    problems = run.problems
    depth = PARALLEL_ALIGN_DEPTH
    block = 1 << depth
    leaves = run.tail  # the leaves of the block being filled
    append_leaf = leaves.append
    start = first_seq - 1  # leaves before the run
    heads = run.heads
    if heads_before is not None:
        heads.update(heads_before)
        starts_log = True  # every chain that began before the run has its head here
    if frontier is not None:
        run.frontier = list(frontier)
    sha = hashlib.sha256
    decode = _decode_links
    fields_of = _fields_of
    fromhex = bytes.fromhex
    spelled = _Spelled()
    expected = first_seq
    for (seq, raw_case, col_case_seq, col_prev, raw, raw_leaf, col_at, raw_actor, col_action,
         col_object_type, col_object_id, col_sha256) in rows:
        col_case, col_actor = spelled[raw_case], spelled[raw_actor]
        data = raw if type(raw) is bytes else (_as_bytes(raw) or b"")
        if seq != expected:
            if seq > expected:
                problems.append(Problem(
                    f"missing: entries {expected}..{seq - 1} are not in the log (deleted?)",
                    expected,
                ))
            else:
                problems.append(Problem("duplicate or out-of-order sequence number", seq))
            expected = seq
        expected += 1
        leaf = sha(b"\x00" + data).digest()
        append_leaf(leaf)
        if len(leaves) == block:
            if run.frontier is None:
                _fold_block(run, start + len(run.blocks) * block, marks, depth)
            else:
                _grow_frontier(run, start)
        try:
            links = decode(data)
            # The typed decoder checks the JSON's syntax but not the UTF-8 of fields it skips.
            if not data.isascii():
                data.decode("utf-8")
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            slow = _links_slowly(data)
            if isinstance(slow, str):
                problems.append(Problem(slow, seq))
                continue
            doc_seq, doc_case_id, case_ref, doc_case_seq, doc_prev, doc_fields = slow
        else:
            doc_seq, entry_case, doc_case_seq, doc_prev = (
                links.seq, links.case, links.case_seq, links.prev_case_hash)
            if entry_case is None:
                doc_case_id = case_ref = None
            else:
                doc_case_id, case_ref = entry_case.id, entry_case.ref
            doc_fields = fields_of(links)
        if raw_leaf != leaf and _as_bytes(raw_leaf) != leaf:
            problems.append(Problem("entry bytes do not match its recorded hash (altered)", seq))
        if doc_seq != seq:
            problems.append(Problem(
                f"entry stored at position {seq} says it is seq {doc_seq} (reordered)", seq
            ))
        columns = (col_at, col_actor, col_action, col_object_type, col_object_id, col_sha256)
        if columns != doc_fields:
            differ = [name for name, col, doc in zip(ROW_FIELDS, columns, doc_fields,
                                                     strict=True) if col != doc]
            problems.append(Problem(
                f"{'columns' if len(differ) > 1 else 'column'} {', '.join(differ)} "
                f"{'disagree' if len(differ) > 1 else 'disagrees'} with the entry (altered)", seq))
        if doc_case_id is None or doc_case_id is _MALFORMED:
            if col_case is not None or col_case_seq is not None or col_prev is not None:
                problems.append(Problem("case columns disagree with the entry (altered)", seq))
            elif doc_case_id is not None or doc_case_seq is not None or doc_prev is not None:
                problems.append(Problem("entry has a malformed case link (altered)", seq))
            continue
        if doc_case_id is _NO_ID:
            problems.append(Problem("entry's case has no id (altered)", seq))
            continue
        if doc_case_id != col_case:
            problems.append(Problem("case column disagrees with the entry (altered)", seq))
        try:
            prev = None if doc_prev is None else fromhex(doc_prev)
        except (TypeError, ValueError):
            problems.append(Problem("entry's prev_case_hash is not a hash (altered)", seq))
            continue
        if col_case_seq != doc_case_seq or (
            col_prev != prev and _as_bytes(col_prev) != prev
        ):
            problems.append(Problem("chain columns disagree with the entry (altered)", seq))
        head = heads.get(doc_case_id)
        if head is None:
            if not starts_log:
                # The case's chain began before this run: `_join` checks this link.
                if type(doc_case_seq) is not int:
                    problems.append(Problem("entry's case_seq is not a number (altered)", seq))
                    continue
                run.opens[doc_case_id] = (doc_case_seq, prev)
                heads[doc_case_id] = (doc_case_seq, leaf, seq)
                if doc_case_id == case_id:
                    run.case_entries.append(seq)
                continue
            want_case_seq, want_prev, blame = 1, None, seq
        else:
            want_case_seq, want_prev, blame = head[0] + 1, head[1], head[2]
        if doc_case_seq != want_case_seq:
            problems.append(Problem(
                f"case chain {case_ref!r} jumps from #{want_case_seq - 1} to "
                f"#{doc_case_seq} (an entry of this case is missing or moved)",
                seq,
            ))
        elif prev != want_prev:
            # The link was written when the previous entry was made: if it no longer matches,
            # the previous entry was altered after the fact (or this one was).
            problems.append(Problem(
                f"does not match the hash that seq {seq}, the next entry of case "
                f"{case_ref!r}, recorded for it: one of the two was altered",
                blame,
            ))
        heads[doc_case_id] = (
            doc_case_seq if type(doc_case_seq) is int else want_case_seq, leaf, seq
        )
        if doc_case_id == case_id:
            run.case_entries.append(seq)
    run.next_seq = expected
    if run.frontier is not None:
        _grow_frontier(run, start)
        return run
    _keep_partials(run, start + len(run.blocks) * block, marks)
    run.count = len(run.blocks) * block + len(run.tail)
    return run


def _grow_frontier(run: _Run, start: int) -> None:
    """Fold the leaves in `run.tail` into `run.frontier`, the tree's after `start + run.count`
    leaves, and drop them."""
    assert run.frontier is not None
    run.frontier = frontier_extend(run.frontier, start + run.count, run.tail)
    run.count += len(run.tail)
    run.tail.clear()


def _keep_partials(run: _Run, block_start: int, marks: Sequence[int]) -> None:
    """Keep the frontier of the leaves in `run.tail` up to each mark that falls among them."""
    leaves = run.tail
    first = bisect.bisect_right(marks, block_start)
    last = bisect.bisect_right(marks, block_start + len(leaves))
    for mark in marks[first:last]:
        run.partials[mark] = frontier_extend([], 0, leaves[:mark - block_start])


def _fold_block(run: _Run, block_start: int, marks: Sequence[int], depth: int) -> None:
    """`run.tail` holds a full block: keep its root (and the partials inside it), drop it."""
    _keep_partials(run, block_start, marks)
    run.partials.pop(block_start + len(run.tail), None)  # a mark on the border needs none
    run.blocks.append(block_root(run.tail, depth))
    run.tail.clear()


def check_entries(
    rows: Iterable[Any],
    checkpoints: Sequence[Checkpoint],
    verifier: Verifier,
    *,
    case_id: str | None = None,
    case_reference: str | None = None,
) -> VerifyReport:
    """Recompute every hash, chain link, tree root and checkpoint signature from the raw entries.

    `rows` are (seq, case_id, case_seq, prev_case_hash, entry, leaf_hash, then the `ROW_FIELDS`
    columns) in seq order, as `read_rows` gives them. Only the canonical bytes of each entry are
    trusted; every column beside them, the stored leaf hash included, is checked against those
    bytes, never used in their place. With `case_id`, the
    report counts that case's entries, and how many of them the latest checkpoint that holds
    seals: their leaves are among those that fold into the root it signed.
    """
    run = _check_run(rows, first_seq=1, starts_log=True, case_id=case_id,
                     marks=_marks(checkpoints))
    return _finish(run, checkpoints, verifier, case_id=case_id, case_reference=case_reference)


def _marks(checkpoints: Sequence[Checkpoint]) -> list[int]:
    return sorted({cp.tree_size for cp in checkpoints if cp.tree_size > 0})


def _finish(
    run: _Run, checkpoints: Sequence[Checkpoint], verifier: Verifier, *,
    case_id: str | None, case_reference: str | None,
) -> VerifyReport:
    report = VerifyReport(case_reference=case_reference, problems=run.problems)
    report.entries = run.count
    report.cases = len(run.heads)
    partials = dict(run.partials)
    partials[run.count] = frontier_extend([], 0, run.tail)
    sizes = [size for size in _marks(checkpoints) if size <= run.count]
    roots = prefix_roots(run.blocks, PARALLEL_ALIGN_DEPTH, partials, sizes)
    roots[0] = EMPTY_ROOT
    _verify_checkpoints(checkpoints, verifier, run.count, roots, report)
    if case_id is not None:
        report.cases = 1 if case_id in run.heads else 0
        report.entries = len(run.case_entries)
        # Problems elsewhere in the log stay reported: this case's entries rest on all of it.
        report.sealed = sum(1 for s in run.case_entries if s <= report.sealed)
    return report


# --- checking in several processes ------------------------------------------------------------


def _join(runs: Sequence[_Run | None]) -> _Run | None:
    """One run from consecutive runs, or None when a link between them does not hold.

    Only a log in which every run holds is joined: where anything breaks, the caller checks
    the whole log again in one pass, so a broken log is reported exactly as `check_entries`
    reports it, whatever the number of processes.
    """
    whole = _Run()
    for run in runs:
        if run is None or run.problems or run.next_seq - run.count != whole.next_seq or whole.tail:
            # A run that broke, entries missing at the border before it, or a run before it
            # that ended inside a block.
            return None
        for case, (case_seq, prev) in run.opens.items():
            head = whole.heads.get(case)
            want = (1, None) if head is None else (head[0] + 1, head[1])
            if (case_seq, prev) != want:
                return None
        whole.heads.update(run.heads)
        whole.case_entries.extend(run.case_entries)
        whole.next_seq = run.next_seq
        whole.count += run.count
        whole.blocks.extend(run.blocks)
        whole.tail = run.tail
        whole.partials.update(run.partials)
    return whole


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# The column types the compiled checker reads PostgreSQL's binary COPY of: where an insider
# changed one, the Python checker reads the log (the driver then hands over other values).
_PG_COLUMN_TYPES = {
    "seq": "bigint", "case_id": "uuid", "case_seq": "integer", "prev_case_hash": "bytea",
    "recorded_at": "timestamp with time zone", "actor_id": "uuid",
    "action": "character varying", "object_type": "character varying",
    "object_id": "character varying", "sha256": "character varying", "entry": "bytea",
    "leaf_hash": "bytea",
}
# What it reads: the columns as stored, which it spells as `_rows_sql` has PostgreSQL spell
# them (spelling them costs the server more than reading them).
_PG_STORED_ROWS = ("SELECT seq, case_id, case_seq, prev_case_hash, entry, leaf_hash, recorded_at, "
                   "actor_id, action, object_type, object_id, sha256 FROM custody_entries")
_LOWEST, _HIGHEST = -(2**63), 2**63 - 1  # seq bounds for a range open at either end


@dataclass(frozen=True)
class _Source:
    """Where a checking process reads the log: the database's URL, and how the compiled
    checker reads it (the SQLite file's path; None for PostgreSQL, read by COPY; no compiled
    checker at all when `compiled` is False)."""

    url: str
    compiled: bool
    sqlite_path: str | None


def _source_of(session: Session) -> _Source | None:
    """How other processes (and the compiled checker) can read the log this session sees;
    None when they cannot: an in-memory database, or entries this transaction appended."""
    engine = session.get_bind().engine
    if _HEAD_KEY in session.info:
        return None  # this transaction appended entries that other connections cannot see
    url = engine.url.render_as_string(hide_password=False)
    dialect = engine.dialect.name
    if dialect == "sqlite":
        path = engine.url.database
        if path in (None, "", ":memory:") or str(path).startswith("file:"):
            return None
        return _Source(url, _custodycheck is not None, os.path.abspath(path))
    compiled = False
    if _custodycheck is not None and dialect == "postgresql":
        columns = session.execute(text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'custody_entries' AND table_schema = current_schema()")).all()
        compiled = {str(name): str(kind) for name, kind in columns} == _PG_COLUMN_TYPES
    return _Source(url, compiled, None)


def _check_range(read: Callable[[], Iterable[Any]], dbapi: Any, source: _Source, after: int,
                 upto: int | None, case_id: str | None, marks: Sequence[int],
                 on_batch: Callable[[int], None] | None) -> _Run | None:
    """The entries after < seq <= upto (every seq up to `upto` for the range that starts the
    log), checked by the compiled checker when there is one, else by `_check_run` over `read()`.

    None when the compiled checker is not certain that every entry holds: the caller then
    checks the whole log in Python, which says what does not.
    """
    if not source.compiled:
        return _check_run(read(), first_seq=after + 1, starts_log=after == 0, case_id=case_id,
                          marks=marks)
    assert _custodycheck is not None
    checker = _custodycheck.Checker(after + 1, after == 0, case_id, marks, PARALLEL_ALIGN_DEPTH,
                                    READ_BATCH)
    low = _LOWEST if after == 0 else after  # as `read_rows`: seq below 1 is read, and fails
    high = _HIGHEST if upto is None else upto
    if source.sqlite_path is not None:
        checker.sqlite(source.sqlite_path, low, high, on_batch)
    else:
        sql = (f"COPY ({_PG_STORED_ROWS} WHERE seq > {int(low)} AND seq <= {int(high)} "
               "ORDER BY seq) TO STDOUT (FORMAT BINARY)")
        libpq = _libpq_path()
        with _unsorted(dbapi), dbapi.cursor() as cursor, cursor.copy(sql) as copy:
            if libpq is not None:  # the rows read in C, up to the stream's trailer
                if checker.libpq(dbapi.pgconn.pgconn_ptr, libpq, on_batch):
                    while copy.read():  # the COPY's end and its result, read by psycopg
                        pass
                else:  # the COPY ended without its trailer: its result waits in libpq
                    while dbapi.pgconn.get_result() is not None:
                        pass
            else:
                holds = True
                for chunk in copy:  # read to the end even when it no longer holds: the
                    if holds:       # connection takes no other command before
                        holds = checker.copy(chunk, on_batch)
    result = checker.result()
    if result is None:
        return None
    run = _Run(next_seq=result["next_seq"], blocks=result["blocks"], heads=result["heads"],
               opens=result["opens"], case_entries=result["case_entries"])
    block = 1 << PARALLEL_ALIGN_DEPTH
    for block_start, leaves in result["marked"]:  # the blocks a checkpoint falls inside
        run.tail = _hashes(leaves)
        _keep_partials(run, block_start, marks)
    run.tail = _hashes(result["tail"])
    _keep_partials(run, after + len(run.blocks) * block, marks)
    run.count = result["count"]
    return run


@functools.cache  # what a process has loaded stays loaded
def _libpq_path() -> str | None:
    """The file of the one libpq this process has loaded (psycopg's: its binary build brings its
    own), whose functions the compiled checker may call on psycopg's connection; None when
    that is not one file (then psycopg hands over the rows, one Python call each)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            found = {line.split(maxsplit=5)[-1].strip() for line in maps if "/libpq" in line}
    except OSError:  # not Linux
        return None
    files = [path for path in found if os.path.basename(path).startswith("libpq")]
    return files[0] if len(files) == 1 else None


def _hashes(joined: bytes) -> list[bytes]:
    return [joined[i:i + 32] for i in range(0, len(joined), 32)]


def _run_in_child(source: _Source, after: int, upto: int | None, case_id: str | None,
                  marks: Sequence[int]) -> _Run | None:
    """One process's share: its own connection, its own range of seq."""
    return _check_apart(source, after, upto, case_id, marks,
                        None if _shared_count is None else _child_read)


class _Stopped(Exception):
    """The verify stopped (Ctrl-C, or another range's error): a thread's range stops too."""


def _check_apart(source: _Source, after: int, upto: int | None, case_id: str | None,
                 marks: Sequence[int], on_batch: Callable[[int], None] | None) -> _Run | None:
    """A range checked over a connection of its own (a checking process's or thread's)."""
    if source.compiled and source.sqlite_path is not None:  # it opens the file itself
        return _check_range(list, None, source, after, upto, case_id, marks, on_batch)
    engine = reading_engine(source.url)
    try:
        with engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            return _check_range(
                lambda: _stream_rows(dbapi, conn.dialect.name, after, upto, on_batch),
                dbapi, source, after, upto, case_id, marks, on_batch)
    finally:
        engine.dispose()


def _verify_fast(
    session: Session, checkpoints: Sequence[Checkpoint], verifier: Verifier, *,
    case_id: str | None, case_reference: str | None, workers: int | None, min_chunk: int,
    counter: _Counter | None = None,
) -> VerifyReport | None:
    """The log checked in ranges of seq side by side, by the compiled checker or in Python;
    None where neither applies (one range, no compiled checker), or where anything did not
    hold.

    Each range is read over its own connection and checked as `check_entries` does; the runs
    are then joined in order (`_join`), which checks the case-chain links and the seq
    continuity across range borders. The compiled checker checks the ranges in threads of
    this process (it lets go of Python's lock); the Python checker in processes, which need
    `fork` (the children share this process's loaded code instead of importing it again).
    Both need a database other connections can open.
    """
    counter = counter or _Counter(session, None)
    source = _source_of(session)
    if source is None:
        return None
    workers = workers or _usable_cores()
    if "fork" not in mp.get_all_start_methods() and not source.compiled:
        workers = 1
    top = session.scalar(select(func.max(CustodyEntry.seq))) or 0
    workers = max(1, min(workers, top // max(min_chunk, 1)))
    # Run i holds borders[i] < seq <= borders[i+1]; borders fall on block borders, so each
    # process also folds the blocks of the tree over its own range.
    align = 1 << PARALLEL_ALIGN_DEPTH
    borders = [(i * top // workers) // align * align for i in range(workers)]
    if len(set(borders)) < workers:
        workers, borders = 1, [0]
    if workers == 1 and not source.compiled:
        return None  # that is the Python pass itself
    marks = _marks(checkpoints)
    dbapi = session.connection().connection.dbapi_connection
    dialect = session.get_bind().dialect.name

    def first() -> _Run | None:
        upto = borders[1] if workers > 1 else None
        return _check_range(
            lambda: _stream_rows(dbapi, dialect, None, upto, counter.add), dbapi, source, 0,
            upto, case_id, marks, counter.add)

    if workers == 1:
        runs = [first()]
    elif source.compiled:
        runs = _in_threads(first, source, borders, case_id, marks, counter)
    else:
        context = mp.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(
            workers - 1, mp_context=context, initializer=_count_in_child,
            initargs=(counter.shared,)
        ) as pool:
            # The last range is open-ended and the first starts below 1, as the single pass
            # reads them: an entry with a seq outside 1..top is still seen.
            futures = [
                pool.submit(_run_in_child, source, borders[i], borders[i + 1] if i + 1 < workers
                            else None, case_id, marks)
                for i in range(1, workers)
            ]
            runs = [first(), *(f.result() for f in futures)]
    whole = _join(runs)
    if whole is None:
        return None
    report = _finish(whole, checkpoints, verifier, case_id=case_id,
                     case_reference=case_reference)
    report.compiled = source.compiled
    return report


def _in_threads(first: Callable[[], _Run | None], source: _Source, borders: Sequence[int],
                case_id: str | None, marks: Sequence[int], counter: _Counter) -> list[_Run | None]:
    """The ranges after the first checked by threads of this process, the first by this
    thread: the compiled checker lets go of Python's lock while it reads and checks, so the
    threads run side by side, with no process to start. When one range fails or this thread
    is interrupted, the others stop at their next batch."""
    stop = threading.Event()

    def on_batch(count: int) -> None:
        if stop.is_set():
            raise _Stopped
        counter.add(count)

    with concurrent.futures.ThreadPoolExecutor(len(borders) - 1) as pool:
        futures = [
            pool.submit(_check_apart, source, borders[i],
                        borders[i + 1] if i + 1 < len(borders) else None, case_id, marks,
                        on_batch)
            for i in range(1, len(borders))
        ]
        try:
            return [first(), *(f.result() for f in futures)]
        except BaseException:
            stop.set()
            raise


def _verify_checkpoints(
    checkpoints: Sequence[Checkpoint], verifier: Verifier, size: int, roots: dict[int, bytes],
    report: VerifyReport,
) -> None:
    """Check each checkpoint against the log of `size` entries, whose root at every checkpoint
    size not above it is in `roots`."""
    report.checkpoints = len(checkpoints)
    previous = 0
    for cp in checkpoints:
        label = f"checkpoint {cp.id} (size {cp.tree_size})"
        try:
            verify_checkpoint_signature(cp, verifier)
        except SignatureInvalid as exc:
            report.problems.append(Problem(f"{label}: signature invalid: {exc}"))
            continue
        if cp.tree_size > size:
            report.problems.append(Problem(
                f"{label} covers more entries than the log holds ({size}): entries "
                f"{size + 1}..{cp.tree_size} were deleted",
                size + 1,
            ))
            continue
        if roots[cp.tree_size] != bytes(cp.root_hash):
            first = _first_divergent(roots, checkpoints, cp)
            report.problems.append(Problem(
                f"{label} signed a different log: an entry in seq {first}..{cp.tree_size} was "
                "rewritten after the checkpoint",
                first,
                exact=False,
            ))
            continue
        previous = max(previous, cp.tree_size)
    report.sealed = previous


def _first_divergent(
    roots: dict[int, bytes], checkpoints: Sequence[Checkpoint], bad: Checkpoint
) -> int:
    """The first seq not vouched for by an earlier checkpoint that still matches."""
    good = [
        cp.tree_size
        for cp in checkpoints
        if cp.tree_size < bad.tree_size and roots[cp.tree_size] == bytes(cp.root_hash)
    ]
    return (max(good) if good else 0) + 1
