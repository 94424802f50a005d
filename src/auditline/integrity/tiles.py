"""Tiles: the proposed storage of a tree's subtree hashes, after C2SP tlog-tiles.

Storing every node of ``merkle.py``'s layout costs ``2n`` hashes and one row each. Tiles
keep only every ``height``-th level (8 by default, as tlog-tiles) and group it by
``width = 2**height`` hashes:

* tile ``(level t, index k)`` holds the nodes ``(t * height, k * width + j)`` for
  ``j = 0, 1, ...``: leaf hashes at tile level 0; at tile level ``t`` the roots of the full
  tiles of level ``t - 1``;
* a tree of ``n`` leaves has ``n >> (t * height)`` such nodes at tile level ``t``: that many
  full tiles, then one *partial* tile of the remaining width if it is not zero (tlog-tiles:
  a tree of 70,000 leaves has 273 full and one 112-wide tile at level 0, one full and one
  17-wide at level 1, one 1-wide at level 2). About ``n * 1.004`` hashes in all;
* a tile's content only grows: its first ``w`` hashes never change once written, so one row
  per ``(tenant, level, index)``, rewritten while partial, serves every older tree size
  (a reader for size ``m`` uses only the first ``width(m)`` hashes);
* a node between tile levels, ``(t * height + r, i)``, is the MTH of ``2**r`` consecutive
  hashes of one tile and is hashed on read (at most ``width / 2 - 1`` node hashes).

A root or proof reads nodes on at most about ``log2(n)`` levels that fall into
``ceil(log2(n) / height)`` tile levels, and the nodes of one tile level lie in a handful of
tiles, so a proof at ten million leaves reads a few 8 KiB tiles (:func:`tiles_for_nodes`
says which, for one round trip).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from auditline.integrity.merkle import HASH_SIZE, Node, node_exists, node_hash

TILE_HEIGHT = 8
"""tlog-tiles' tile height: 256 hashes (8 KiB) per full tile."""


@dataclass(frozen=True, order=True, slots=True)
class Tile:
    """Tile *index* of tile level *level*, as wide as a given tree size makes it."""

    level: int
    index: int
    width: int


def tile_width(level: int, index: int, size: int, height: int = TILE_HEIGHT) -> int:
    """How many hashes tile ``(level, index)`` holds in a tree of *size* leaves (0: none)."""
    count = size >> (level * height)
    return max(0, min(1 << height, count - (index << height)))


def tiles_for_size(size: int, height: int = TILE_HEIGHT) -> list[Tile]:
    """Every tile a tree of *size* leaves has, level by level."""
    tiles: list[Tile] = []
    level = 0
    while count := size >> (level * height):
        full, rest = divmod(count, 1 << height)
        tiles.extend(Tile(level, index, 1 << height) for index in range(full))
        if rest:
            tiles.append(Tile(level, full, rest))
        level += 1
    return tiles


def tile_for_node(node: Node, size: int, height: int = TILE_HEIGHT) -> Tile:
    """The tile whose hashes give *node* in a tree of *size* leaves, at that size's width."""
    if not node_exists(node, size):
        raise ValueError(f"{node} is not in a tree of size {size}")
    level = node.level // height
    first = node.index << (node.level - level * height)  # its first hash at the tile level
    index = first >> height
    return Tile(level, index, tile_width(level, index, size, height))


def tiles_for_nodes(nodes: Iterable[Node], size: int, height: int = TILE_HEIGHT) -> list[Tile]:
    """The distinct tiles to read for *nodes* (e.g. ``merkle.inclusion_proof_nodes``)."""
    return sorted({tile_for_node(node, size, height) for node in nodes})


class TileReader(Protocol):
    """Storage of tiles. ``read`` returns at least ``tile.width`` hashes of the tile
    (a longer, later version of a partial tile is fine); ``LookupError`` if it has none.
    """

    def read(self, tile: Tile) -> bytes: ...


class MemoryTiles:
    """A :class:`TileReader` over tiles already fetched (one round trip for a whole proof)."""

    def __init__(self, tiles: dict[tuple[int, int], bytes]) -> None:
        self.tiles = tiles

    def read(self, tile: Tile) -> bytes:
        try:
            return self.tiles[(tile.level, tile.index)]
        except KeyError:
            raise LookupError(f"tile {tile.level}/{tile.index} is not stored") from None


class TiledHashes:
    """``merkle.TreeHashes`` for the tree of *size* leaves over a :class:`TileReader`.

    Each tile is read once per instance: make one per request or per sealing round.
    """

    def __init__(self, reader: TileReader, size: int, height: int = TILE_HEIGHT) -> None:
        self.reader = reader
        self.size = size
        self.height = height
        self._tiles: dict[tuple[int, int], bytes] = {}

    def get(self, level: int, index: int) -> bytes:
        node = Node(level, index)
        tile = tile_for_node(node, self.size, self.height)
        data = self._tile(tile)
        span = node.level - tile.level * self.height  # levels hashed inside the tile
        first = (node.index << span) - (tile.index << self.height)
        hashes = [
            data[offset * HASH_SIZE : (offset + 1) * HASH_SIZE]
            for offset in range(first, first + (1 << span))
        ]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def _tile(self, tile: Tile) -> bytes:
        key = (tile.level, tile.index)
        if key not in self._tiles:
            data = self.reader.read(tile)
            if len(data) % HASH_SIZE or len(data) < tile.width * HASH_SIZE:
                raise LookupError(
                    f"tile {tile.level}/{tile.index} holds {len(data)} bytes; the tree of "
                    f"size {self.size} needs {tile.width} hashes of {HASH_SIZE} bytes"
                )
            self._tiles[key] = data[: tile.width * HASH_SIZE]
        return self._tiles[key]


def tile_updates(
    reader: TileReader,
    old_size: int,
    new_size: int,
    new_nodes: Sequence[tuple[Node, bytes]],
    height: int = TILE_HEIGHT,
) -> list[tuple[Tile, bytes]]:
    """The tiles that growing from *old_size* to *new_size* changes, with their contents.

    *new_nodes* is ``merkle.integrate(...).nodes`` for that growth. Each changed tile comes
    with all of its hashes at the new width (the old partial prefix, read from *reader*,
    then the new ones), ready to be written over the stored row.
    """
    appended: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
    for node, value in new_nodes:
        if node.level % height == 0:
            level, index = node.level // height, node.index >> height
            offset = node.index - (index << height)
            appended.setdefault((level, index), []).append((offset, value))
    updates = []
    for (level, index), entries in sorted(appended.items()):
        old_width = tile_width(level, index, old_size, height)
        new = Tile(level, index, tile_width(level, index, new_size, height))
        if [offset for offset, _ in entries] != list(range(old_width, new.width)):
            raise ValueError(
                f"tile {level}/{index} grows from {old_width} to {new.width} hashes, but the "
                "new nodes given do not fill exactly that: nodes and sizes disagree"
            )
        prefix = b""
        if old_width:
            prefix = reader.read(Tile(level, index, old_width))[: old_width * HASH_SIZE]
            if len(prefix) != old_width * HASH_SIZE:
                raise LookupError(f"tile {level}/{index} holds fewer than {old_width} hashes")
        updates.append((new, prefix + b"".join(value for _, value in entries)))
    return updates
