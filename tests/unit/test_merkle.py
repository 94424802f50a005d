"""RFC 9162 Merkle trees: published vectors, an independent verifier, stored subtrees, tiles.

The ``ref_*`` functions are written here from RFC 9162's text (sections 2.1.1 to 2.1.4.2)
and share no code with ``auditline.integrity.merkle``: the module's proofs must satisfy
them, and the module's verifiers must agree with them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditline.integrity.merkle import (
    EMPTY_ROOT,
    InvalidProof,
    MemoryTreeHashes,
    Node,
    consistency_proof,
    consistency_proof_from,
    consistency_proof_nodes,
    hash_leaf,
    inclusion_proof,
    inclusion_proof_from,
    inclusion_proof_nodes,
    integrate,
    node_hash,
    range_nodes,
    root,
    root_from,
    root_nodes,
    verify_consistency,
    verify_inclusion,
)
from auditline.integrity.tiles import (
    Tile,
    TiledHashes,
    tile_for_node,
    tile_updates,
    tile_width,
    tiles_for_nodes,
    tiles_for_size,
)

# -- the reference, from the RFC's text ----------------------------------------------------


def ref_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH over leaf *hashes* (section 2.1.1, with the leaf hashing already applied)."""
    n = len(d)
    if n == 0:
        return ref_hash(b"")
    if n == 1:
        return d[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return ref_hash(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (section 2.1.3.1)."""
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (section 2.1.4.1)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (section 2.1.4.1), defined for m > 0; from
    the empty tree the proof is empty (every tree extends it)."""
    return ref_subproof(m, d, True) if m else []


def ref_verify_inclusion(
    leaf_hash: bytes, leaf_index: int, tree_size: int, path: Sequence[bytes], root_hash: bytes
) -> bool:
    """Section 2.1.3.2, step by step."""
    # 1.
    if leaf_index >= tree_size:
        return False
    # 2.
    fn, sn = leaf_index, tree_size - 1
    # 3.
    r = leaf_hash
    # 4.
    for p in path:
        # a.
        if sn == 0:
            return False
        # b.
        if fn % 2 == 1 or fn == sn:
            r = ref_hash(b"\x01" + p + r)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            r = ref_hash(b"\x01" + r + p)
        # c.
        fn //= 2
        sn //= 2
    # 5.
    return sn == 0 and r == root_hash


def ref_verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: Sequence[bytes]
) -> bool:
    """Section 2.1.4.2, step by step (defined for 0 < first < second)."""
    assert 0 < first < second
    # 1.
    if not path:
        return False
    # 2.
    path = list(path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # 3.
    fn, sn = first - 1, second - 1
    # 4.
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        # a.
        if sn == 0:
            return False
        # b.
        if fn % 2 == 1 or fn == sn:
            fr = ref_hash(b"\x01" + c + fr)
            sr = ref_hash(b"\x01" + c + sr)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            sr = ref_hash(b"\x01" + sr + c)
        # c.
        fn //= 2
        sn //= 2
    # 7.
    return fr == first_hash and sr == second_hash and sn == 0


# -- published vectors ---------------------------------------------------------------------
# The certificate-transparency reference test data (leaves, roots of sizes 1..8, and proofs),
# as re-typed in github.com/transparency-dev/merkle proof/verify_test.go; there the
# inclusion vectors count leaves from 1, here from 0.

CT_ENTRIES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
CT_INCLUSION = [  # (leaf index, tree size, path)
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [  # (first size, second size, path)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

CT_LEAVES = [hash_leaf(entry) for entry in CT_ENTRIES]


def hexes(path: Sequence[bytes]) -> list[str]:
    return [p.hex() for p in path]


def test_leaf_and_node_hashes_are_the_rfcs() -> None:
    assert hash_leaf(b"").hex() == CT_ROOTS[1]
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    left, right = CT_LEAVES[0], CT_LEAVES[1]
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right).hex() == CT_ROOTS[2]


@pytest.mark.parametrize("size", sorted(CT_ROOTS))
def test_roots_of_the_reference_tree_are_the_published_ones(size: int) -> None:
    assert root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
    assert ref_mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]  # the reference is right too


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_inclusion_proofs_are_the_published_ones(index: int, size: int, path: list[str]) -> None:
    assert hexes(inclusion_proof(CT_LEAVES[:size], index)) == path
    proof = [bytes.fromhex(p) for p in path]
    tree_root = bytes.fromhex(CT_ROOTS[size])
    verify_inclusion(CT_LEAVES[index], index, size, proof, tree_root)
    assert ref_verify_inclusion(CT_LEAVES[index], index, size, proof, tree_root)


@pytest.mark.parametrize(("m", "n", "path"), CT_CONSISTENCY)
def test_consistency_proofs_are_the_published_ones(m: int, n: int, path: list[str]) -> None:
    assert hexes(consistency_proof(CT_LEAVES[:n], m)) == path
    proof = [bytes.fromhex(p) for p in path]
    first, second = bytes.fromhex(CT_ROOTS[m]), bytes.fromhex(CT_ROOTS[n])
    verify_consistency(m, n, first, second, proof)
    if m < n:
        assert ref_verify_consistency(m, n, first, second, proof)


# -- every size up to a few hundred ----------------------------------------------------------

MAX_SIZE = 300
LEAVES = [hash_leaf(b"event %d" % i) for i in range(MAX_SIZE + 1)]


@cache
def ref_root(size: int) -> bytes:
    return ref_mth(LEAVES[:size])


def flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8 % len(value)] ^= 1 << (bit % 8)
    return bytes(changed)


def inclusion_ok(leaf: bytes, index: int, size: int, path: list[bytes], tree_root: bytes) -> bool:
    """The module's verdict, as a bool (it raises with a reason)."""
    try:
        verify_inclusion(leaf, index, size, path, tree_root)
    except InvalidProof:
        return False
    return True


def consistency_ok(m: int, n: int, first: bytes, second: bytes, path: list[bytes]) -> bool:
    try:
        verify_consistency(m, n, first, second, path)
    except InvalidProof:
        return False
    return True


def test_every_proof_of_every_small_tree_verifies_with_both_verifiers() -> None:
    for size in range(1, 49):
        tree_root = ref_root(size)
        assert root(LEAVES[:size]) == tree_root
        for index in range(size):
            path = inclusion_proof(LEAVES[:size], index)
            assert path == ref_path(index, LEAVES[:size])
            assert ref_verify_inclusion(LEAVES[index], index, size, path, tree_root)
            assert inclusion_ok(LEAVES[index], index, size, path, tree_root)
        for m in range(1, size):
            path = consistency_proof(LEAVES[:size], m)
            assert path == ref_proof(m, LEAVES[:size])
            assert ref_verify_consistency(m, size, ref_root(m), tree_root, path)
            assert consistency_ok(m, size, ref_root(m), tree_root, path)


sizes = st.integers(1, MAX_SIZE)
bits = st.integers(0, 255)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_inclusion_proofs_verify_and_every_tampering_is_rejected(data: st.DataObject) -> None:
    size = data.draw(sizes, label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf, tree_root = LEAVES[index], ref_root(size)
    path = inclusion_proof(LEAVES[:size], index)

    assert path == ref_path(index, LEAVES[:size])
    assert ref_verify_inclusion(leaf, index, size, path, tree_root)
    assert inclusion_ok(leaf, index, size, path, tree_root)

    tampered: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (flip(leaf, data.draw(bits)), index, size, path, tree_root),
        (leaf, index, size, path, flip(tree_root, data.draw(bits))),
    ]
    if path:
        element = data.draw(st.integers(0, len(path) - 1), label="element")
        flipped = [*path]
        flipped[element] = flip(path[element], data.draw(bits, label="bit"))
        tampered += [
            (leaf, index, size, flipped, tree_root),
            (leaf, index, size, path[:-1], tree_root),
            (leaf, index, size, [*path, path[-1]], tree_root),
        ]
    other_index = data.draw(st.integers(0, size).filter(lambda i: i != index), label="index'")
    tampered.append((leaf, other_index, size, path, tree_root))
    # Another checkpoint (size and its root) presented with this proof.
    other_size = data.draw(sizes.filter(lambda s: s != size), label="size'")
    tampered.append((leaf, index, other_size, path, ref_root(other_size)))

    for case in tampered:
        assert not ref_verify_inclusion(*case)
        assert not inclusion_ok(*case)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_consistency_proofs_verify_and_every_tampering_is_rejected(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, MAX_SIZE), label="n")
    m = data.draw(st.integers(1, n - 1), label="m")
    first, second = ref_root(m), ref_root(n)
    path = consistency_proof(LEAVES[:n], m)

    assert path == ref_proof(m, LEAVES[:n])
    assert ref_verify_consistency(m, n, first, second, path)
    assert consistency_ok(m, n, first, second, path)

    element = data.draw(st.integers(0, len(path) - 1), label="element")
    flipped = [*path]
    flipped[element] = flip(path[element], data.draw(bits, label="bit"))
    tampered = [
        (m, n, first, second, flipped),
        (m, n, flip(first, data.draw(bits)), second, path),
        (m, n, first, flip(second, data.draw(bits)), path),
        (m, n, second, first, path),
        (m, n, first, second, path[:-1]),
        (m, n, first, second, [*path, path[-1]]),
        (m, n, first, second, [path[0], *path]),
    ]
    # Other checkpoints (sizes with their true roots) presented with this proof.
    other_n = data.draw(st.integers(2, MAX_SIZE), label="n'")
    other_m = data.draw(st.integers(1, other_n - 1), label="m'")
    if (other_m, other_n) != (m, n):
        tampered.append((other_m, other_n, ref_root(other_m), ref_root(other_n), path))
    other_m = data.draw(st.integers(1, n - 1).filter(lambda s: s != m), label="m''") if n > 2 else 0
    if other_m:
        tampered.append((other_m, n, ref_root(other_m), second, path))

    for case in tampered:
        assert not ref_verify_consistency(*case)
        assert not consistency_ok(*case)


def test_verifiers_refuse_malformed_input_with_a_reason() -> None:
    leaf, path, tree_root = LEAVES[2], inclusion_proof(LEAVES[:5], 2), ref_root(5)
    with pytest.raises(InvalidProof, match="leaf hash is 31 bytes"):
        verify_inclusion(leaf[:31], 2, 5, path, tree_root)
    with pytest.raises(InvalidProof, match="inclusion path element 1 is 33 bytes"):
        verify_inclusion(leaf, 2, 5, [path[0], path[1] + b"x", *path[2:]], tree_root)
    with pytest.raises(InvalidProof, match="not in a tree of size 5"):
        verify_inclusion(leaf, 5, 5, path, tree_root)
    with pytest.raises(InvalidProof, match="not in a tree of size 0"):
        verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(InvalidProof, match="not in a tree of size 5"):
        verify_inclusion(leaf, -1, 5, path, tree_root)
    with pytest.raises(InvalidProof, match="longer than a tree of size 5 needs"):
        verify_inclusion(leaf, 2, 5, [*path, path[0]], tree_root)
    with pytest.raises(InvalidProof, match="shorter than a tree of size 5 needs"):
        verify_inclusion(leaf, 2, 5, path[:-1], tree_root)
    with pytest.raises(InvalidProof, match="another root"):
        verify_inclusion(LEAVES[3], 2, 5, path, tree_root)


def test_consistency_at_the_edges_the_rfc_leaves_out() -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 7, EMPTY_ROOT, ref_root(7), [])
    verify_consistency(7, 7, ref_root(7), ref_root(7), [])
    with pytest.raises(InvalidProof, match="not the empty tree's"):
        verify_consistency(0, 7, ref_root(3), ref_root(7), [])
    with pytest.raises(InvalidProof, match="two different roots"):
        verify_consistency(7, 7, ref_root(7), ref_root(6), [])
    with pytest.raises(InvalidProof, match="takes an empty path"):
        verify_consistency(7, 7, ref_root(7), ref_root(7), [ref_root(7)])
    with pytest.raises(InvalidProof, match="cannot be a prefix"):
        verify_consistency(8, 7, ref_root(8), ref_root(7), consistency_proof(LEAVES[:8], 7))
    with pytest.raises(InvalidProof, match="needs a non-empty path"):
        verify_consistency(3, 7, ref_root(3), ref_root(7), [])
    assert consistency_proof(LEAVES[:7], 0) == []
    assert consistency_proof(LEAVES[:7], 7) == []


def test_verifying_a_power_of_two_first_tree_leaves_the_callers_path_alone() -> None:
    path = consistency_proof(LEAVES[:7], 4)
    before = list(path)
    verify_consistency(4, 7, ref_root(4), ref_root(7), path)
    assert path == before


def test_proofs_of_positions_outside_the_tree_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree of size 3"):
        inclusion_proof(LEAVES[:3], 3)
    with pytest.raises(ValueError, match="from size 4 to size 3"):
        consistency_proof(LEAVES[:3], 4)
    with pytest.raises(ValueError, match="from size -1"):
        consistency_proof(LEAVES[:3], -1)
    with pytest.raises(ValueError, match="leaf hash 1 is 31 bytes"):
        root([LEAVES[0], LEAVES[1][:31]])
    with pytest.raises(ValueError, match="new leaf hash 0 is 0 bytes"):
        integrate(MemoryTreeHashes(), 0, [b""])


# -- stored subtrees: the layout and the incremental tree ----------------------------------


def ref_nodes_between(old: int, new: int) -> set[Node]:
    """Complete subtrees of a tree of size *new* that a tree of size *old* lacks."""
    return {
        Node(level, index)
        for level in range(new.bit_length())
        for index in range(new >> level)
        if old < (index + 1) << level
    }


def build(size: int) -> MemoryTreeHashes:
    store = MemoryTreeHashes()
    store.store(integrate(store, 0, LEAVES[:size]).nodes)
    return store


FULL = build(MAX_SIZE)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 70), max_size=10))
def test_integrating_in_batches_stores_each_complete_subtree_once(batches: list[int]) -> None:
    store, size = MemoryTreeHashes(), 0
    for batch in batches:
        batch = min(batch, MAX_SIZE - size)
        result = integrate(store, size, LEAVES[size : size + batch])
        created = [node for node, _ in result.nodes]
        assert len(created) == len(set(created))
        assert set(created) == ref_nodes_between(size, size + batch)
        assert not set(created) & set(store.nodes)
        store.store(result.nodes)
        size = result.size
        assert result.root == ref_root(size)
        assert [node for node, _ in result.frontier] == root_nodes(size)
        assert all(store.nodes[node] == value for node, value in result.frontier)
    assert set(store.nodes) == ref_nodes_between(0, size)
    for node, value in store.nodes.items():
        assert value == ref_mth(LEAVES[node.start : node.end])


def test_the_frontier_alone_is_enough_to_keep_integrating() -> None:
    size, frontier = 0, MemoryTreeHashes()
    for batch in (1, 2, 5, 0, 8, 31, 1, 100):
        result = integrate(frontier, size, LEAVES[size : size + batch])
        frontier, size = MemoryTreeHashes(dict(result.frontier)), result.size
        assert result.root == ref_root(size)
    assert len(frontier.nodes) == bin(size).count("1")


def test_roots_and_proofs_of_every_older_size_come_from_the_stored_subtrees() -> None:
    for size in range(MAX_SIZE + 1):
        assert root_from(FULL, size) == ref_root(size)
    for size in range(1, 65):
        for index in range(size):
            assert inclusion_proof_from(FULL, index, size) == ref_path(index, LEAVES[:size])
        for m in range(size + 1):
            assert consistency_proof_from(FULL, m, size) == ref_proof(m, LEAVES[:size])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_stored_subtree_proofs_equal_the_recursive_definition(data: st.DataObject) -> None:
    size = data.draw(sizes, label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    m = data.draw(st.integers(0, size), label="m")
    assert inclusion_proof_from(FULL, index, size) == ref_path(index, LEAVES[:size])
    assert consistency_proof_from(FULL, m, size) == ref_proof(m, LEAVES[:size])


class CountingHashes:
    """Answers any node with a made-up hash and counts the reads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.reads: list[Node] = []

    def get(self, level: int, index: int) -> bytes:
        node = Node(level, index)
        assert node.end <= self.size, f"{node} read, but it is not in a tree of {self.size}"
        self.reads.append(node)
        return ref_hash(b"%d/%d" % (level, index))


@given(st.integers(1, 2**48), st.data())
def test_a_proof_at_any_size_reads_a_logarithmic_number_of_stored_hashes(
    size: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, size - 1))
    m = data.draw(st.integers(0, size))
    bound = 2 * max(1, math.ceil(math.log2(size)))
    for nodes, compute in (
        (inclusion_proof_nodes(index, size), lambda h: inclusion_proof_from(h, index, size)),
        (consistency_proof_nodes(m, size), lambda h: consistency_proof_from(h, m, size)),
        (root_nodes(size), lambda h: root_from(h, size)),
    ):
        hashes = CountingHashes(size)
        compute(hashes)
        assert hashes.reads == nodes
        assert len(nodes) <= bound


def test_range_nodes_cover_a_subtree_range_largest_first() -> None:
    assert range_nodes(0, 7) == [Node(2, 0), Node(1, 2), Node(0, 6)]
    assert range_nodes(8, 13) == [Node(2, 2), Node(0, 12)]
    assert root_nodes(0) == []
    with pytest.raises(ValueError, match="not a subtree range"):
        range_nodes(1, 4)


# -- tiles -----------------------------------------------------------------------------------


def test_tile_counts_are_the_ones_tlog_tiles_gives() -> None:
    # c2sp.org/tlog-tiles: "a tree of size 70,000 will be represented by 273 full level 0
    # tiles, one partial level 0 tile of width 112, one full level 1 tile, one partial level
    # 1 tile of width 17, and one partial level 2 tile of width 1" ...
    tiles = tiles_for_size(70_000)
    assert [t for t in tiles if t.level == 0] == [
        *(Tile(0, i, 256) for i in range(273)),
        Tile(0, 273, 112),
    ]
    assert [t for t in tiles if t.level > 0] == [Tile(1, 0, 256), Tile(1, 1, 17), Tile(2, 0, 1)]
    # ... "a tree of size 256 will be represented by a full level 0 tile and a partial
    # level 1 tile of width 1."
    assert tiles_for_size(256) == [Tile(0, 0, 256), Tile(1, 0, 1)]
    assert tiles_for_size(0) == []


class TileStore:
    """One entry per tile, overwritten while it grows, as a table row would be."""

    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def read(self, tile: Tile) -> bytes:
        self.reads += 1
        return self.tiles[(tile.level, tile.index)]

    def grow(self, old: int, batch: Sequence[bytes], height: int) -> int:
        result = integrate(TiledHashes(self, old, height), old, batch)
        for tile, content in tile_updates(self, old, result.size, result.nodes, height):
            assert len(content) == 32 * tile.width
            self.tiles[(tile.level, tile.index)] = content
        assert result.root == ref_root(result.size)
        return result.size


@pytest.mark.parametrize("height", [1, 2, 3, 8])
def test_tiles_grown_in_batches_hold_the_tlog_tiles_hashes_and_serve_old_sizes(
    height: int,
) -> None:
    store, size = TileStore(), 0
    for batch in (1, 3, 0, 17, 64, 2, 100, 113):
        size = store.grow(size, LEAVES[size : size + batch], height)
    assert size == MAX_SIZE
    width = 1 << height
    assert sorted(store.tiles) == [(t.level, t.index) for t in tiles_for_size(size, height)]
    for (level, index), content in store.tiles.items():
        span = 1 << (level * height)  # leaves under each hash of this tile level
        expected = [
            ref_mth(LEAVES[(index * width + j) * span : (index * width + j + 1) * span])
            for j in range(tile_width(level, index, size, height))
        ]
        assert [content[i : i + 32] for i in range(0, len(content), 32)] == expected
    for old in range(MAX_SIZE + 1):
        hashes = TiledHashes(store, old, height)
        assert root_from(hashes, old) == ref_root(old)
        assert all(hashes.get(n.level, n.index) == FULL.nodes[n] for n in root_nodes(old))
    for old in (1, 5, 64, 255, 256, 257, 299):
        hashes = TiledHashes(store, old, height)
        for index in range(0, old, 7):
            assert inclusion_proof_from(hashes, index, old) == ref_path(index, LEAVES[:old])
        for m in range(0, old + 1, 5):
            assert consistency_proof_from(hashes, m, old) == ref_proof(m, LEAVES[:old])


def test_a_proof_at_ten_million_leaves_reads_a_few_tiles() -> None:
    size = 10_000_000
    for index in (0, 1234567, size // 2, size - 1):
        nodes = inclusion_proof_nodes(index, size)
        tiles = tiles_for_nodes(nodes, size)
        assert len(tiles) <= 2 * math.ceil(math.log2(size) / 8)  # 2 per tile level
        assert tile_for_node(Node(0, index), size) in tiles  # the leaf's own tile, and
        assert tile_for_node(Node(0, index), size).index == index // 256  # where it is
    assert len(tiles_for_nodes(consistency_proof_nodes(9_999_000, size), size)) <= 6


def test_a_short_tile_is_reported_not_misread() -> None:
    store = TileStore()
    store.grow(0, LEAVES[:10], 8)
    with pytest.raises(LookupError, match="needs 20 hashes"):
        TiledHashes(store, 20, 8).get(0, 15)
