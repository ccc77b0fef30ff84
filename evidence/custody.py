"""The tamper-evident custody log: append in the caller's transaction, checkpoint, verify.

Every change to evidence appends one entry in the same transaction as the change. An entry is
canonical JSON carrying a global gapless `seq` and, for entries about a case, that case's own
`case_seq` and the leaf hash of the case's previous entry (`prev_case_hash`). All entries form
one RFC 9162 Merkle tree; checkpoints sign its size and root with the system's Ed25519 key.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, SessionTransaction

from evidence.canonical import JsonValue, canonical_json
from evidence.errors import CustodyError, NotFound
from evidence.merkle import MerkleTree, ProofError, leaf_hash, verify_inclusion
from evidence.models import Case, Checkpoint, CustodyEntry, User, utcnow
from evidence.signing import SignatureInvalid, Signer, Verifier

ENTRY_VERSION = 1
# Any constant will do: it names the one lock that serialises appends on PostgreSQL.
APPEND_LOCK_KEY = 0x45564C4F47  # "EVLOG"
READ_BATCH = 10_000


def format_time(moment: datetime) -> str:
    """UTC with microseconds and a Z, the one spelling of a time inside an entry."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lock_log(session: Session) -> None:
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
        _lock_log(session)
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


def describe(entry: CustodyEntry) -> dict[str, Any]:
    """The entry as its canonical JSON says it, for display."""
    return dict(orjson.loads(entry.entry))


# --- checkpoints -----------------------------------------------------------------------------


def checkpoint_body(origin: str, tree_size: int, root: bytes) -> bytes:
    """The signed text, in the C2SP tlog-checkpoint layout: origin, size, base64 root."""
    return f"{origin}\n{tree_size}\n{base64.b64encode(root).decode()}\n".encode()


def _leaf_hashes(session: Session, upto: int | None = None) -> list[bytes]:
    query = select(CustodyEntry.leaf_hash).order_by(CustodyEntry.seq)
    if upto is not None:
        query = query.where(CustodyEntry.seq <= upto)
    return [bytes(h) for h in session.scalars(query.execution_options(yield_per=READ_BATCH))]


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

    `timestamp`, given the SHA-256 of the signed body, returns an RFC 3161 token for it (or
    None when no authority answered); the row is append-only, so it is asked before the insert.
    """
    _lock_log(session)
    leaves = _leaf_hashes(session)
    latest = latest_checkpoint(session)
    if latest is not None and latest.tree_size == len(leaves):
        return latest
    root = MerkleTree(leaves).root() if leaves else hashlib.sha256(b"").digest()
    body = checkpoint_body(origin, len(leaves), root)
    checkpoint = Checkpoint(
        origin=origin,
        tree_size=len(leaves),
        root_hash=root,
        key_id=signer.key_id,
        signature=signer.sign(body),
        timestamp_token=None if timestamp is None else timestamp(hashlib.sha256(body).digest()),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


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
    """Proofs that each entry is in the tree the checkpoint signed."""
    tree = MerkleTree(_leaf_hashes(session, upto=checkpoint.tree_size))
    if tree.size != checkpoint.tree_size:
        raise CustodyError(f"log holds {tree.size} entries, checkpoint says {checkpoint.tree_size}")
    return [InclusionProof(s, tree.size, tree.inclusion_proof(s - 1)) for s in seqs]


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    tree = MerkleTree(_leaf_hashes(session, upto=new_size))
    try:
        return tree.consistency_proof(old_size, new_size)
    except ProofError as exc:
        raise NotFound(str(exc)) from exc


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
            return (
                f"custody log verified: {scope}{self.entries} entries, {self.cases} case chains, "
                f"{self.checkpoints} signed checkpoints (latest covers {self.sealed}){tail}"
            )
        first = self.first_problem
        assert first is not None
        where = f"entry seq {first.seq}: " if first.seq is not None and first.exact else ""
        more = f" ({len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        return f"custody log BROKEN: {scope}{where}{first.message}{more}"


def _uuid_text(value: object) -> str:
    """A case id column as the entry writes it: SQLite stores 32 hex digits, PostgreSQL a uuid."""
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        return f"<not a uuid: {value!r}>"


def _as_bytes(value: object) -> bytes | None:
    """Column bytes as stored; an insider's edit may have left text in a binary column."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()




def read_rows(session: Session) -> Iterator[Any]:
    """The raw rows `check_entries` needs, in seq order, streamed in batches.

    Read as the driver returns them, without the ORM's per-row type conversion: the verifier
    checks the raw values anyway, and at a million entries the conversion is most of the time.
    """
    result = session.connection().exec_driver_sql(
        "SELECT seq, case_id, case_seq, prev_case_hash, entry, leaf_hash "
        "FROM custody_entries ORDER BY seq",
        execution_options={"stream_results": True},
    )
    for batch in result.partitions(READ_BATCH):
        yield from batch


def read_checkpoints(session: Session) -> list[Checkpoint]:
    return list(session.scalars(select(Checkpoint).order_by(Checkpoint.id)))


def verify_log(
    session: Session, verifier: Verifier, *, case_reference: str | None = None
) -> VerifyReport:
    """Verify the whole log as stored in the database (see `check_entries`)."""
    case_id: str | None = None
    if case_reference is not None:
        case = session.scalars(select(Case).where(Case.reference == case_reference)).first()
        if case is None:
            raise NotFound(f"no case {case_reference!r}")
        case_id = str(case.id)
    return check_entries(
        read_rows(session), read_checkpoints(session), verifier,
        case_id=case_id, case_reference=case_reference,
    )


def check_entries(
    rows: Iterable[Any],
    checkpoints: Sequence[Checkpoint],
    verifier: Verifier,
    *,
    case_id: str | None = None,
    case_reference: str | None = None,
) -> VerifyReport:
    """Recompute every hash, chain link, tree root and checkpoint signature from the raw entries.

    `rows` are (seq, case_id, case_seq, prev_case_hash, entry, leaf_hash) in seq order. Only
    the canonical bytes of each entry are trusted; the columns beside them and the stored leaf
    hashes are checked against those bytes, never used in their place. With `case_id`, the
    report counts that case's entries and proves each one's inclusion in the latest checkpoint.
    """
    report = VerifyReport(case_reference=case_reference)
    problems = report.problems
    leaves: list[bytes] = []
    # case id -> (case_seq, leaf hash, seq) of the case's latest entry seen so far
    heads: dict[str, tuple[int, bytes, int]] = {}
    case_names: dict[Any, str] = {}
    sha = hashlib.sha256
    loads = orjson.loads
    expected = 1
    case_entries: list[int] = []
    for seq, col_case, col_case_seq, col_prev, raw, raw_leaf in rows:
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
        leaves.append(leaf)
        try:
            doc = loads(data)
        except orjson.JSONDecodeError:
            problems.append(Problem("entry is not valid JSON (altered)", seq))
            continue
        if type(doc) is not dict:
            problems.append(Problem("entry is not a JSON object (altered)", seq))
            continue
        if raw_leaf != leaf and _as_bytes(raw_leaf) != leaf:
            problems.append(Problem("entry bytes do not match its recorded hash (altered)", seq))
        get = doc.get
        if get("seq") != seq:
            problems.append(Problem(
                f"entry stored at position {seq} says it is seq {get('seq')} (reordered)", seq
            ))
        entry_case = get("case")
        doc_case_seq = get("case_seq")
        doc_prev = get("prev_case_hash")
        if col_case is None:
            col_case_name = None
        else:
            col_case_name = case_names.get(col_case)
            if col_case_name is None:
                col_case_name = case_names[col_case] = _uuid_text(col_case)
        if type(entry_case) is not dict:
            if col_case is not None or col_case_seq is not None or col_prev is not None:
                problems.append(Problem("case columns disagree with the entry (altered)", seq))
            elif entry_case is not None or doc_case_seq is not None or doc_prev is not None:
                problems.append(Problem("entry has a malformed case link (altered)", seq))
            continue
        doc_case_id = entry_case.get("id")
        case_ref = entry_case.get("ref")
        if type(doc_case_id) is not str:
            problems.append(Problem("entry's case has no id (altered)", seq))
            continue
        if doc_case_id != col_case_name:
            problems.append(Problem("case column disagrees with the entry (altered)", seq))
        try:
            prev = None if doc_prev is None else bytes.fromhex(doc_prev)
        except (TypeError, ValueError):
            problems.append(Problem("entry's prev_case_hash is not a hash (altered)", seq))
            continue
        if col_case_seq != doc_case_seq or _as_bytes(col_prev) != prev:
            problems.append(Problem("chain columns disagree with the entry (altered)", seq))
        head = heads.get(doc_case_id)
        if head is None:
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
            case_entries.append(seq)
    report.entries = len(leaves)
    report.cases = len(heads)
    _verify_checkpoints(checkpoints, verifier, leaves, report)
    if case_id is not None:
        report.cases = 1 if case_id in heads else 0
        report.entries = len(case_entries)
        report.sealed = sum(1 for s in case_entries if s <= report.sealed)
        # Problems elsewhere in the log stay reported: this case's proofs rest on all of it.
        _verify_case_inclusion(checkpoints, leaves, case_entries, report)
    return report


def _verify_checkpoints(
    checkpoints: Sequence[Checkpoint], verifier: Verifier, leaves: list[bytes],
    report: VerifyReport,
) -> None:
    report.checkpoints = len(checkpoints)
    tree = MerkleTree(leaves)
    previous = 0
    for cp in checkpoints:
        label = f"checkpoint {cp.id} (size {cp.tree_size})"
        try:
            verify_checkpoint_signature(cp, verifier)
        except SignatureInvalid as exc:
            report.problems.append(Problem(f"{label}: signature invalid: {exc}"))
            continue
        if cp.tree_size > tree.size:
            report.problems.append(Problem(
                f"{label} covers more entries than the log holds ({tree.size}): entries "
                f"{tree.size + 1}..{cp.tree_size} were deleted",
                tree.size + 1,
            ))
            continue
        if tree.root(cp.tree_size) != bytes(cp.root_hash):
            first = _first_divergent(tree, checkpoints, cp)
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
    tree: MerkleTree, checkpoints: Sequence[Checkpoint], bad: Checkpoint
) -> int:
    """The first seq not vouched for by an earlier checkpoint that still matches."""
    good = [
        cp.tree_size
        for cp in checkpoints
        if cp.tree_size < bad.tree_size and tree.root(cp.tree_size) == bytes(cp.root_hash)
    ]
    return (max(good) if good else 0) + 1


def _verify_case_inclusion(
    checkpoints: Sequence[Checkpoint], leaves: list[bytes], seqs: list[int],
    report: VerifyReport,
) -> None:
    if not checkpoints:
        return
    latest = max(checkpoints, key=lambda cp: (cp.tree_size, cp.id))
    if latest.tree_size == 0 or latest.tree_size > len(leaves):
        return
    tree = MerkleTree(leaves[: latest.tree_size])
    root = bytes(latest.root_hash)
    for seq in seqs:
        if seq > latest.tree_size:
            continue
        try:
            verify_inclusion(leaves[seq - 1], seq - 1, tree.size,
                             tree.inclusion_proof(seq - 1), root)
        except ProofError as exc:
            report.problems.append(Problem(f"not included in checkpoint {latest.id}: {exc}", seq))

