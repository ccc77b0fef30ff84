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
from collections.abc import Sequence

from evidence.bundle_verifier import ProofInvalid as ProofError
from evidence.bundle_verifier import verify_consistency, verify_inclusion

__all__ = ["EMPTY_ROOT", "MerkleTree", "ProofError", "frontier_extend", "frontier_root",
           "leaf_hash", "node_hash", "root_of", "subtree_levels",
           "verify_consistency", "verify_inclusion"]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


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
        proof: list[bytes] = []
        lo, hi = 0, size
        # Walk down from the root, collecting the sibling at each split; reverse at the end.
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self._hash(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._hash(lo, lo + k))
                lo = lo + k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 section 2.1.4.1."""
        new_size = self.size if new_size is None else new_size
        if not 0 < old_size <= new_size <= self.size:
            raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
        return self._subproof(old_size, 0, new_size, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self._hash(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete), self._hash(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._hash(lo, lo + k)]


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


def frontier_extend(frontier: Sequence[bytes], size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The frontier of the tree of `size` leaves with `leaves` appended (hashes, in order)."""
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


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Root of a whole tree without keeping its levels: one pass, bounded extra memory."""
    if not leaves:
        return EMPTY_ROOT
    sha = hashlib.sha256
    level = list(leaves)
    while len(level) > 1:
        nxt = [sha(NODE_PREFIX + level[i] + level[i + 1]).digest()
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
