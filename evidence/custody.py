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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

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
    _lock_log(session)
    session.flush()
    last_seq = session.scalar(select(func.max(CustodyEntry.seq))) or 0
    seq = last_seq + 1
    case_seq: int | None = None
    prev: bytes | None = None
    if case is not None:
        head = session.execute(
            select(CustodyEntry.case_seq, CustodyEntry.leaf_hash)
            .where(CustodyEntry.case_id == case.id)
            .order_by(CustodyEntry.case_seq.desc())
            .limit(1)
        ).first()
        case_seq = 1 if head is None else int(head[0] or 0) + 1
        prev = None if head is None else bytes(head[1])
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


def cut_checkpoint(session: Session, signer: Signer, *, origin: str) -> Checkpoint:
    """Sign the log as it stands; returns the latest checkpoint unchanged if nothing was added."""
    _lock_log(session)
    leaves = _leaf_hashes(session)
    latest = latest_checkpoint(session)
    if latest is not None and latest.tree_size == len(leaves):
        return latest
    root = MerkleTree(leaves).root() if leaves else hashlib.sha256(b"").digest()
    checkpoint = Checkpoint(
        origin=origin,
        tree_size=len(leaves),
        root_hash=root,
        key_id=signer.key_id,
        signature=signer.sign(checkpoint_body(origin, len(leaves), root)),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


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


@dataclass
class _CaseHead:
    case_seq: int
    leaf: bytes
    seq: int


def _rows(session: Session) -> Iterator[Any]:
    query = select(
        CustodyEntry.seq,
        CustodyEntry.case_id,
        CustodyEntry.case_seq,
        CustodyEntry.prev_case_hash,
        CustodyEntry.entry,
        CustodyEntry.leaf_hash,
    ).order_by(CustodyEntry.seq)
    yield from session.execute(query.execution_options(yield_per=READ_BATCH))


def verify_log(
    session: Session, verifier: Verifier, *, case_reference: str | None = None
) -> VerifyReport:
    """Recompute every hash, chain link, tree root and checkpoint signature from the raw entries.

    Only the canonical bytes of each entry are trusted; the columns beside them and the stored
    leaf hashes are checked against those bytes, never used in their place.
    """
    report = VerifyReport(case_reference=case_reference)
    case_id: str | None = None
    if case_reference is not None:
        case = session.scalars(select(Case).where(Case.reference == case_reference)).first()
        if case is None:
            raise NotFound(f"no case {case_reference!r}")
        case_id = str(case.id)
    problems = report.problems
    leaves: list[bytes] = []
    heads: dict[str | None, _CaseHead] = {}
    sha = hashlib.sha256
    expected = 1
    case_entries: list[int] = []
    for seq, col_case, col_case_seq, col_prev, data, stored_leaf in _rows(session):
        data = bytes(data)
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
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            problems.append(Problem("entry is not valid JSON (altered)", seq))
            continue
        if bytes(stored_leaf) != leaf:
            problems.append(Problem("entry bytes do not match its recorded hash (altered)", seq))
        if doc.get("seq") != seq:
            problems.append(Problem(
                f"entry stored at position {seq} says it is seq {doc.get('seq')} (reordered)", seq
            ))
        entry_case = doc.get("case")
        doc_case_id = entry_case.get("id") if isinstance(entry_case, dict) else None
        if doc_case_id != (None if col_case is None else str(col_case)):
            problems.append(Problem("case column disagrees with the entry (altered)", seq))
        if col_case_seq != doc.get("case_seq") or (
            (None if col_prev is None else bytes(col_prev).hex()) != doc.get("prev_case_hash")
        ):
            problems.append(Problem("chain columns disagree with the entry (altered)", seq))
        if doc_case_id is None:
            continue
        head = heads.get(doc_case_id)
        want_case_seq = 1 if head is None else head.case_seq + 1
        want_prev = None if head is None else head.leaf.hex()
        if doc.get("case_seq") != want_case_seq:
            problems.append(Problem(
                f"case chain {entry_case.get('ref')!r} jumps from #{want_case_seq - 1} to "
                f"#{doc.get('case_seq')} (an entry of this case is missing or moved)",
                seq if head is None else head.seq,
            ))
        elif doc.get("prev_case_hash") != want_prev:
            # The link was written when the previous entry was made: if it no longer matches,
            # the previous entry was altered after the fact (or this one was).
            problems.append(Problem(
                f"does not match the hash that seq {seq}, the next entry of case "
                f"{entry_case.get('ref')!r}, recorded for it: one of the two was altered",
                seq if head is None else head.seq,
            ))
        heads[doc_case_id] = _CaseHead(int(doc.get("case_seq") or 0), leaf, seq)
        if doc_case_id == case_id:
            case_entries.append(seq)
    report.entries = len(leaves)
    report.cases = len(heads)
    _verify_checkpoints(session, verifier, leaves, report)
    if case_id is not None:
        report.cases = 1 if case_id in heads else 0
        report.entries = len(case_entries)
        report.sealed = sum(1 for s in case_entries if s <= report.sealed)
        # Problems elsewhere in the log stay reported: this case's proofs rest on all of it.
        _verify_case_inclusion(session, leaves, case_entries, report)
    return report


def _verify_checkpoints(
    session: Session, verifier: Verifier, leaves: list[bytes], report: VerifyReport
) -> None:
    checkpoints = list(session.scalars(select(Checkpoint).order_by(Checkpoint.id)))
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


def _first_divergent(tree: MerkleTree, checkpoints: list[Checkpoint], bad: Checkpoint) -> int:
    """The first seq not vouched for by an earlier checkpoint that still matches."""
    good = [
        cp.tree_size
        for cp in checkpoints
        if cp.tree_size < bad.tree_size and tree.root(cp.tree_size) == bytes(cp.root_hash)
    ]
    return (max(good) if good else 0) + 1


def _verify_case_inclusion(
    session: Session, leaves: list[bytes], seqs: list[int], report: VerifyReport
) -> None:
    latest = latest_checkpoint(session)
    if latest is None or latest.tree_size == 0:
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

