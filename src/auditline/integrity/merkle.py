"""RFC 9162 Merkle trees over a tenant's leaf hashes: roots, proofs and their verifiers.

Hashing is RFC 9162 section 2.1 with SHA-256, nothing added::

    leaf hash   SHA-256(0x00 || entry)            (leaf.py computes it over an event's JCS)
    node hash   SHA-256(0x01 || left || right)
    MTH({})     SHA-256("")
    MTH(D[n])   node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two smaller than n

Everything here takes leaf *hashes*, never entries: the events table already stores them.

Two ways to the same answers:

* from the list of leaf hashes (:func:`root`, :func:`inclusion_proof`,
  :func:`consistency_proof`): the RFC's recursive definitions, for tests and for an offline
  verifier that holds every leaf;
* from stored complete-subtree hashes (:class:`TreeHashes`; :func:`root_from`,
  :func:`inclusion_proof_from`, :func:`consistency_proof_from`), which the service uses at
  millions of leaves: O(log n) stored hashes per root or proof, never a rehash of the tree.
  :func:`integrate` appends leaves and returns the new hashes to store.

Storage layout
--------------
Node ``(level L, index i)`` is the hash of the complete subtree over the leaves
``[i * 2**L, (i + 1) * 2**L)``: level 0 holds the leaf hashes, and
``(L + 1, i) = node_hash((L, 2i), (L, 2i + 1))``. A tree of size ``n`` has exactly the nodes
with ``(i + 1) * 2**L <= n`` (``2n - popcount(n)`` of them): at every level a prefix. A
node is written once, when the leaf that completes it is integrated, and never changes, so
the nodes stored for size ``n`` also serve every older size ``m <= n``: roots, inclusion
proofs and consistency proofs for old checkpoints come from the same rows.

Every hash a root or proof contains is the MTH of a range ``[lo, hi)`` of RFC 9162's
recursion; such a range is covered by at most one complete subtree per set bit of
``hi - lo`` (:func:`range_nodes`), whose right fold is its MTH. ``*_nodes`` functions list
the nodes a computation will read, so a storage layer can fetch them in one round trip
before calling the matching ``*_from`` function. ``tiles.py`` stores the nodes as C2SP
tlog-tiles do (tiles of 256 hashes every 8 levels) and serves the levels in between.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from auditline.integrity.leaf import LEAF_PREFIX

HASH_SIZE = 32
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree (RFC 9162 section 2.1.1)."""


class InvalidProof(ValueError):
    """A proof that does not prove what it claims; the message names the failed check."""


def hash_leaf(entry: bytes) -> bytes:
    """RFC 9162 leaf hash of *entry*: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than *n* (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


# -- from the leaf hashes -----------------------------------------------------------------


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over *leaf_hashes*, the tree's leaves in order (``seq`` order for a tenant)."""
    _check_hashes(leaf_hashes, "leaf hash", ValueError)
    return _mth(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 ``PATH(index, D[n])``: the audit path of leaf *index*, leaf end first."""
    _check_hashes(leaf_hashes, "leaf hash", ValueError)
    return [_mth(leaf_hashes, lo, hi) for lo, hi in _inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(leaf_hashes: Sequence[bytes], m: int) -> list[bytes]:
    """RFC 9162 ``PROOF(m, D[n])`` from the first *m* leaves to all of them.

    Empty for ``m == 0`` and ``m == n``: every tree extends the empty one and itself.
    """
    _check_hashes(leaf_hashes, "leaf hash", ValueError)
    return [_mth(leaf_hashes, lo, hi) for lo, hi in _consistency_ranges(m, len(leaf_hashes))]


def _mth(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) by the RFC's recursion, over indexes rather than copies."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[lo]
    k = _split(n)
    return node_hash(_mth(leaf_hashes, lo, lo + k), _mth(leaf_hashes, lo + k, hi))


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make up ``PATH(index, D[size])``, in the proof's order.

    The RFC recursion ``PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])`` (and its mirror)
    walked from the root down, so the ranges come out top first and are reversed.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make up ``PROOF(m, D[n])``, in the proof's order.

    ``SUBPROOF(m, D[n], b)`` walked from the root down: ``m`` stays an absolute leaf count,
    and ``b`` turns false once the walk has moved right of the first tree's left edge.
    """
    if not 0 <= m <= n:
        raise ValueError(f"no consistency proof from size {m} to size {n}")
    if m in (0, n):
        return []
    ranges = []
    lo, hi, whole_first_tree = 0, n, True
    while m != hi:
        k = _split(hi - lo)
        if m <= lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            whole_first_tree = False
    if not whole_first_tree:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


# -- verifiers (RFC 9162 sections 2.1.3.2 and 2.1.4.2) -----------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """Check that *path* proves leaf *index* of the tree of *size* leaves with *root* is
    *leaf_hash*; raise :class:`InvalidProof` saying why not. RFC 9162 section 2.1.3.2.
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    _check_hashes(path, "inclusion path element")
    if not 0 <= index < size:
        raise InvalidProof(f"leaf index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            raise InvalidProof(f"inclusion path is longer than a tree of size {size} needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # A right edge with no sibling at these levels: climb to where it has one.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof(f"inclusion path is shorter than a tree of size {size} needs")
    if r != root:
        raise InvalidProof(f"inclusion path leads to another root than the tree of size {size}")


def verify_consistency(
    m: int, n: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> None:
    """Check that *path* proves the tree of size *m* with *first_root* is a prefix of the
    tree of size *n* with *second_root*; raise :class:`InvalidProof` saying why not.

    RFC 9162 section 2.1.4.2 for ``0 < m < n``. The two cases the RFC leaves out take an
    empty path: ``m == n`` (the roots must be equal) and ``m == 0`` (the first root must be
    the empty tree's).
    """
    _check_hash(first_root, "first root hash")
    _check_hash(second_root, "second root hash")
    _check_hashes(path, "consistency path element")
    if not 0 <= m <= n:
        raise InvalidProof(f"a tree of size {m} cannot be a prefix of a tree of size {n}")
    if m == n or m == 0:
        if path:
            raise InvalidProof(f"consistency from size {m} to size {n} takes an empty path")
        if m == n and first_root != second_root:
            raise InvalidProof(f"two different roots for the same tree size {n}")
        if m == 0 and first_root != EMPTY_ROOT:
            raise InvalidProof("the first root is not the empty tree's")
        return
    # 1. An empty path proves nothing.
    if not path:
        raise InvalidProof(f"consistency from size {m} to size {n} needs a non-empty path")
    # 2. A first tree that is a complete subtree is not in the path: its root is.
    steps = [first_root, *path] if m & (m - 1) == 0 else list(path)
    # 3, 4.
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = steps[0]
    # 6.
    for c in steps[1:]:
        if sn == 0:
            raise InvalidProof(f"consistency path is longer than sizes {m} and {n} need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise InvalidProof(f"consistency path is shorter than sizes {m} and {n} need")
    if fr != first_root:
        raise InvalidProof(f"consistency path does not lead to the first root (size {m})")
    if sr != second_root:
        raise InvalidProof(f"consistency path does not lead to the second root (size {n})")


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise InvalidProof(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def _check_hashes(
    values: Sequence[bytes], what: str, error: type[ValueError] = InvalidProof
) -> None:
    for position, value in enumerate(values):
        if len(value) != HASH_SIZE:
            raise error(f"{what} {position} is {len(value)} bytes, not {HASH_SIZE}")


# -- from stored complete subtrees ------------------------------------------------------


@dataclass(frozen=True, order=True, slots=True)
class Node:
    """The complete subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``."""

    level: int
    index: int

    @property
    def start(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


def node_exists(node: Node, size: int) -> bool:
    """Whether a tree of *size* leaves has (and a store for it holds) *node*."""
    return node.level >= 0 and node.index >= 0 and node.end <= size


class TreeHashes(Protocol):
    """Read access to a tree's stored complete-subtree hashes (see the module docstring).

    ``get`` is only asked for nodes that exist in the tree size being worked on; an
    implementation raises ``LookupError`` for a node it does not hold.
    """

    def get(self, level: int, index: int) -> bytes: ...


class MemoryTreeHashes:
    """Subtree hashes in a dict: for tests, and for a verifier rebuilding a tree in memory."""

    def __init__(self, nodes: Mapping[Node, bytes] | None = None) -> None:
        self.nodes: dict[Node, bytes] = dict(nodes or {})

    def get(self, level: int, index: int) -> bytes:
        return self.nodes[Node(level, index)]

    def store(self, nodes: Iterable[tuple[Node, bytes]]) -> None:
        self.nodes.update(nodes)


def range_nodes(lo: int, hi: int) -> list[Node]:
    """The complete subtrees, largest first, that make up the leaf range ``[lo, hi)``.

    Defined for the ranges of RFC 9162's recursion (``lo`` a multiple of the smallest power
    of two that is at least ``hi - lo``); MTH of the range is the right fold of their hashes.
    """
    size = hi - lo
    if size <= 0 or lo % (1 << (size - 1).bit_length()):
        raise ValueError(f"[{lo}, {hi}) is not a subtree range of RFC 9162's recursion")
    nodes = []
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append(Node(level, lo >> level))
            lo += 1 << level
    return nodes


def root_nodes(size: int) -> list[Node]:
    """The nodes :func:`root_from` reads: the tree's maximal complete subtrees, largest first.

    They are also everything :func:`integrate` needs to know about the tree it extends.
    """
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return range_nodes(0, size) if size else []


def inclusion_proof_nodes(index: int, size: int) -> list[Node]:
    """The nodes :func:`inclusion_proof_from` reads for this proof."""
    return [n for lo, hi in _inclusion_ranges(index, size) for n in range_nodes(lo, hi)]


def consistency_proof_nodes(m: int, n: int) -> list[Node]:
    """The nodes :func:`consistency_proof_from` reads for this proof."""
    return [node for lo, hi in _consistency_ranges(m, n) for node in range_nodes(lo, hi)]


def root_from(hashes: TreeHashes, size: int) -> bytes:
    """MTH of the tree of *size* leaves from its stored subtree hashes (popcount reads)."""
    return _fold([hashes.get(node.level, node.index) for node in root_nodes(size)])


def inclusion_proof_from(hashes: TreeHashes, index: int, size: int) -> list[bytes]:
    """``PATH(index, D[size])`` from stored subtree hashes, for any *size* stored so far."""
    return [_range_hash(hashes, lo, hi) for lo, hi in _inclusion_ranges(index, size)]


def consistency_proof_from(hashes: TreeHashes, m: int, n: int) -> list[bytes]:
    """``PROOF(m, D[n])`` from stored subtree hashes, for any sizes stored so far."""
    return [_range_hash(hashes, lo, hi) for lo, hi in _consistency_ranges(m, n)]


def _range_hash(hashes: TreeHashes, lo: int, hi: int) -> bytes:
    return _fold([hashes.get(node.level, node.index) for node in range_nodes(lo, hi)])


def _fold(subtree_hashes: Sequence[bytes]) -> bytes:
    """Right fold of complete-subtree hashes, largest first: MTH of their concatenation."""
    if not subtree_hashes:
        return EMPTY_ROOT
    acc = subtree_hashes[-1]
    for left in reversed(subtree_hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


@dataclass(frozen=True)
class Integration:
    """What appending leaves produced: the new tree and the hashes to store for it."""

    size: int
    root: bytes
    nodes: list[tuple[Node, bytes]]
    """Every node the new leaves completed, each exactly once, children before parents.
    Storing them (with what was stored before) gives the layout of the new size."""
    frontier: list[tuple[Node, bytes]]
    """The new tree's maximal complete subtrees (:func:`root_nodes`) with their hashes:
    enough, as a :class:`MemoryTreeHashes`, to integrate the next leaves."""


def integrate(existing: TreeHashes, size: int, new_leaf_hashes: Sequence[bytes]) -> Integration:
    """Append *new_leaf_hashes* to the tree of *size* leaves held by *existing*.

    Reads only the old tree's frontier (at most one node per level) and hashes each new
    interior node once: appending ``k`` leaves costs about ``k`` node hashes.
    """
    _check_hashes(new_leaf_hashes, "new leaf hash", ValueError)
    stack = [(node, existing.get(node.level, node.index)) for node in root_nodes(size)]
    created: list[tuple[Node, bytes]] = []
    for offset, leaf in enumerate(new_leaf_hashes):
        node, value = Node(0, size + offset), leaf
        created.append((node, value))
        # The stack holds complete subtrees of strictly decreasing size, left to right; a
        # node as high as the top one is its right sibling, and their parent is complete.
        while stack and stack[-1][0].level == node.level:
            left_node, left = stack.pop()
            node, value = Node(node.level + 1, left_node.index >> 1), node_hash(left, value)
            created.append((node, value))
        stack.append((node, value))
    new_size = size + len(new_leaf_hashes)
    return Integration(
        size=new_size, root=_fold([value for _, value in stack]), nodes=created, frontier=stack
    )
