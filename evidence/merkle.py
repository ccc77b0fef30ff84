"""Merkle tree hashing and proofs as RFC 9162 (Certificate Transparency 2.0) defines them.

Leaves are hashed as SHA-256(0x00 || entry) and inner nodes as SHA-256(0x01 || left || right);
a tree of n leaves splits at the largest power of two below n. Proof generation follows the
RFC's recursive definitions (PATH and SUBPROOF); verification follows its iterative algorithms
(sections 2.1.3.2 and 2.1.4.2), so the two halves check each other. The verifying half is the
one in `evidence.bundle_verifier` (shipped in every bundle, so it may import nothing of ours);
it is re-exported here, so the log and the bundles are checked by the same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from evidence.bundle_verifier import ProofInvalid as ProofError
from evidence.bundle_verifier import verify_consistency, verify_inclusion

__all__ = ["EMPTY_ROOT", "MerkleTree", "ProofError", "StreamedProofs", "block_root",
           "consistency_path", "frontier_extend", "frontier_root", "inclusion_path",
           "leaf_hash", "node_hash", "prefix_roots", "streamed_proofs", "subtree_levels",
           "verify_consistency", "verify_inclusion"]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
T = TypeVar("T")


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """A tree over a fixed list of leaf hashes, with every full subtree's hash computed once.

    levels[k][i] is the hash of the full subtree of 2**k leaves starting at leaf i * 2**k. That
    is all the RFC's recursion ever needs, so roots of any prefix and all proofs come from it.
    """

    def __init__(self, leaves: Sequence[bytes], *, lower: Sequence[list[bytes]] = ()) -> None:
        """`lower`, when given, holds levels 1.. already computed (see `subtree_levels`)."""
        self.levels: list[list[bytes]] = [list(leaves), *lower]
        level = self.levels[-1]
        while len(level) > 1:
            level = _pair_up(level)
            self.levels.append(level)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def _hash(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi); lo is always aligned as the RFC's recursion makes it."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self.levels[n.bit_length() - 1][lo // n]
        k = _split(n)
        return node_hash(self._hash(lo, lo + k), self._hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree has {self.size} leaves, not {size}")
        return self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]), leaf to root."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ProofError(f"no leaf {index} in a tree of {size}")
        return inclusion_path(index, size, self._hash)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 section 2.1.4.1."""
        new_size = self.size if new_size is None else new_size
        if not 0 < old_size <= new_size <= self.size:
            raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
        return consistency_path(old_size, new_size, self._hash)


# --- proofs over any source of subtree hashes -------------------------------------------------
#
# The RFC's recursions only ever ask for MTH(D[lo:hi]) of two kinds of range: a full subtree
# (hi - lo a power of two, lo a multiple of it) or a range that ends where the tree ends. The
# functions below name the ranges through `hash_range`, so the same code gives proofs from a
# tree held in memory (`MerkleTree`) and from leaves streamed once (`streamed_proofs`).

def inclusion_path(index: int, size: int, hash_range: Callable[[int, int], T]) -> list[T]:
    """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1, leaf to root (0 <= index < size)."""
    proof: list[T] = []
    lo, hi = 0, size
    # Walk down from the root, collecting the sibling at each split; reverse at the end.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(hash_range(lo + k, hi))
            hi = lo + k
        else:
            proof.append(hash_range(lo, lo + k))
            lo = lo + k
    proof.reverse()
    return proof


def consistency_path(old_size: int, new_size: int, hash_range: Callable[[int, int], T]) -> list[T]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 section 2.1.4.1 (0 < old_size <= new_size)."""

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[T]:
        n = hi - lo
        if m == n:
            return [] if complete else [hash_range(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, lo, lo + k, complete), hash_range(lo + k, hi)]
        return [*subproof(m - k, lo + k, hi, False), hash_range(lo, lo + k)]

    return subproof(old_size, 0, new_size, True)


@dataclass(frozen=True)
class StreamedProofs:
    """What `streamed_proofs` found: the tree's root and the proofs asked for, in order."""

    size: int
    root: bytes
    inclusion: list[list[bytes]]
    consistency: list[list[bytes]]


def streamed_proofs(
    leaves: Iterable[bytes],
    size: int,
    *,
    inclusion: Sequence[int] = (),
    consistency: Sequence[int] = (),
) -> StreamedProofs:
    """Root, inclusion proofs (of leaf indices) and consistency proofs (from older sizes) of
    the tree of exactly `size` leaves, read once from `leaves`.

    Memory holds the frontier (one hash per bit of the size) and the subtree hashes the proofs
    need, never the leaves: a proof over a log of millions of entries costs a pass, not a copy.
    """
    for index in inclusion:
        if not 0 <= index < size:
            raise ProofError(f"no leaf {index} in a tree of {size}")
    for old in consistency:
        if not 0 < old <= size:
            raise ProofError(f"no consistency proof from size {old} to {size}")
    # First name every range the proofs need, then hash them all in one pass.
    wanted: list[list[tuple[int, int]]] = [
        *(inclusion_path(i, size, _range_key) for i in inclusion),
        *(consistency_path(m, size, _range_key) for m in consistency),
    ]
    needed = {key for path in wanted for key in path}
    found: dict[tuple[int, int], bytes] = {}
    # The frontier as (first leaf, leaves, hash), largest subtree first.
    stack: list[tuple[int, int, bytes]] = []
    sha = hashlib.sha256
    count = 0
    for leaf in leaves:
        if count == size:
            raise ProofError(f"more than {size} leaves given for a tree of {size}")
        start, width, node = count, 1, leaf
        if needed and (start, start + 1) in needed:
            found[start, start + 1] = node
        carry = count
        while carry & 1:  # adding a leaf carries like binary addition, as in frontier_extend
            start, left_width, left = stack.pop()
            node = sha(NODE_PREFIX + left + node).digest()
            width += left_width
            if needed and (start, start + width) in needed:
                found[start, start + width] = node
            carry >>= 1
        stack.append((start, width, node))
        count += 1
    if count != size:
        raise ProofError(f"only {count} leaves given for a tree of {size}")
    for lo, hi in needed - found.keys():
        if hi != size:
            raise AssertionError(f"range [{lo}, {hi}) is not one the RFC's proofs ask for")
        found[lo, hi] = _edge_hash(stack, lo)
    proofs = [[found[key] for key in path] for path in wanted]
    return StreamedProofs(
        size=size,
        root=frontier_root([subtree for _start, _width, subtree in stack]),
        inclusion=proofs[:len(inclusion)],
        consistency=proofs[len(inclusion):],
    )


def _range_key(lo: int, hi: int) -> tuple[int, int]:
    return lo, hi


def _edge_hash(stack: Sequence[tuple[int, int, bytes]], lo: int) -> bytes:
    """MTH of the leaves from `lo` to the end of the tree whose frontier is `stack`: the
    frontier's subtrees from lo on, folded from the right."""
    node: bytes | None = None
    for start, _width, subtree in reversed(stack):
        node = subtree if node is None else node_hash(subtree, node)
        if start <= lo:
            if start == lo:
                return node
            break
    raise AssertionError(f"no run of the frontier's subtrees starts at leaf {lo}")


def _pair_up(level: Sequence[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    return [sha(NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)]


def subtree_levels(leaves: Sequence[bytes], depth: int) -> list[list[bytes]]:
    """Levels 1..depth of `MerkleTree.levels` for a run of leaves starting at a multiple of
    2**depth: runs computed apart (in other processes) join level by level into one tree, as
    long as every run but the last holds a multiple of 2**depth leaves."""
    levels: list[list[bytes]] = []
    level: Sequence[bytes] = leaves
    for _ in range(depth):
        level = _pair_up(level)
        levels.append(level)
    return levels


# --- the frontier: a tree grown one leaf at a time -------------------------------------------
#
# The frontier of a tree of n leaves is the list of roots of its full subtrees, one for each bit
# set in n, largest (leftmost) first: n = 13 = 8 + 4 + 1 keeps MTH(0..8), MTH(8..12), MTH(12..13).
# That is all it takes to give the root of the tree and to grow it by more leaves, so a new
# checkpoint costs the leaves added since the last one, not the whole log.


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The tree's root from its frontier: RFC 9162 splits at the largest power of two, so the
    subtrees fold together from the right."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


def frontier_extend(frontier: Sequence[bytes], size: int, leaves: Iterable[bytes]) -> list[bytes]:
    """The frontier of the tree of `size` leaves with `leaves` appended (hashes, in order; an
    iterator of them is read once, so a long log's leaves need not be held in memory)."""
    if len(frontier) != size.bit_count():
        raise ProofError(f"a frontier of a tree of {size} leaves holds {size.bit_count()} "
                         f"hashes, not {len(frontier)}")
    out = list(frontier)
    sha = hashlib.sha256
    for leaf in leaves:
        node = leaf
        # Adding one leaf carries like binary addition: each low bit already set merges.
        carry = size
        while carry & 1:
            node = sha(NODE_PREFIX + out.pop() + node).digest()
            carry >>= 1
        out.append(node)
        size += 1
    return out


# --- roots of a long log's prefixes, from blocks ----------------------------------------------
#
# A verifier reads a log once and needs its root at the size of every checkpoint. It folds each
# run of 2**depth leaves into the root of that block as it goes, and keeps, for a checkpoint that
# falls inside a block, the frontier of the block's leaves up to it: memory holds one hash per
# block, not the leaves. Blocks start at multiples of 2**depth, so they are full subtrees of the
# whole tree, whoever (which process) hashed them.


def block_root(leaves: Sequence[bytes], depth: int) -> bytes:
    """MTH of a full block of 2**depth leaves."""
    if len(leaves) != 1 << depth:
        raise ProofError(f"a block of depth {depth} holds {1 << depth} leaves, not {len(leaves)}")
    return leaves[0] if depth == 0 else subtree_levels(leaves, depth)[-1][0]


def prefix_roots(
    blocks: Sequence[bytes], depth: int, partials: Mapping[int, Sequence[bytes]],
    sizes: Iterable[int],
) -> dict[int, bytes]:
    """The root of the tree of each of `sizes` leaves.

    `blocks` are the roots of the tree's blocks of 2**depth leaves, in order; `partials[size]`,
    for a size that is not a multiple of 2**depth, is the frontier of the leaves of its block
    up to it (`frontier_extend([], 0, those leaves)`). The frontier of the tree of `size` leaves
    is the blocks' frontier followed by that partial one, largest subtree first.
    """
    roots: dict[int, bytes] = {}
    frontier: list[bytes] = []
    done = 0  # blocks folded into `frontier`
    for size in sorted(set(sizes)):
        whole, rest = divmod(size, 1 << depth)
        if whole > len(blocks) or (rest and size not in partials):
            raise ProofError(f"no blocks or partial frontier given for a tree of {size}")
        frontier = frontier_extend(frontier, done, blocks[done:whole])
        done = whole
        roots[size] = frontier_root([*frontier, *(partials[size] if rest else ())])
    return roots
