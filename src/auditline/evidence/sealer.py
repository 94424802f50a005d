"""Sealing: integrate a tenant's new leaves into its Merkle tree and sign a checkpoint.

A round for one tenant is one transaction: take the tenant's sealing lock (a second sealer
skips the tenant instead of waiting), read the newest checkpoint's size ``m`` and the log's
size ``n``, read the leaves ``m <= seq < n`` (at most ``max_leaves`` of them), extend the
tree from the tiles of size ``m``, write the changed tiles and the signed checkpoint for
the new size. Every ``seq`` below the log head is committed (the head is advanced inside
the transaction that stores the events, under the head's row lock), so the leaves read are
exactly the next ones, in commit order; a missing one is an error, never skipped.

After the commit the checkpoint is appended to the witness, outside the database. A crash
in between, or a witness that cannot be reached, leaves that one checkpoint unwitnessed;
the next round's is witnessed, and a verifier needs only some witnessed checkpoint to catch
a rollback. So a witness failure is logged and counted (``auditline_witness_failures``),
never raised: the checkpoint is stored and valid, and proofs and exports go on. A witness
that holds a *different* checkpoint of the same size (a fork) is logged as CRITICAL.

Each checkpoint also records the sealing lag (``auditline_sealing_lag_seconds``): from the
arrival of the oldest event it newly covers (the first leaf of the round: the oldest
unsealed one) to its commit. ``received_at`` is set before the event's own commit, so this
is an upper bound on the time from commit to sealed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from auditline.domain.tenants import TenantId
from auditline.evidence.witness import Witness, WitnessConflict
from auditline.integrity.checkpoint import Checkpoint, sign_checkpoint
from auditline.integrity.merkle import EMPTY_ROOT, Integration, integrate, root_nodes
from auditline.integrity.note import Signer
from auditline.integrity.tiles import (
    TILE_HEIGHT,
    MemoryTiles,
    Tile,
    TiledHashes,
    tile_updates,
    tiles_for_nodes,
)
from auditline.metrics import Metrics, WitnessFailure
from auditline.storage import integrity as store
from auditline.storage.database import Connection, tenant_transaction
from auditline.tenancy.scope import for_system

log = logging.getLogger(__name__)


class MissingLeaves(RuntimeError):
    """Events below the log head are absent: the log cannot be sealed past them."""


@dataclass(frozen=True)
class Sealed:
    """A round that produced a checkpoint."""

    tenant: TenantId
    old_size: int
    tree_size: int
    root_hash: bytes
    note: str
    oldest_received_at: datetime | None = None
    """When the oldest event this checkpoint newly covers arrived (None: none new, or no
    metrics to record the lag in)."""


def origin_of(origin: str, tenant: str) -> str:
    """A tenant log's checkpoint origin line: ``<deployment origin>/<tenant id>``."""
    return f"{origin}/{tenant}"


class Sealer:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        signer: Signer,
        origin: str,
        witness: Witness,
        *,
        max_leaves: int = 100_000,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.signer = signer
        self.origin = origin
        self.witness = witness
        self.max_leaves = max_leaves
        self.metrics = metrics

    async def seal(self, tenant: TenantId, *, wait: bool = False) -> Sealed | None:
        """One round for *tenant*; None when there was nothing new, or another sealer has
        it and *wait* is false (with *wait*, this round follows that one's).

        Also seals an empty log once (size 0), so every tenant has a checkpoint to start
        from.
        """
        async with tenant_transaction(self.pool, tenant) as conn:
            if wait:
                await store.lock_sealing(conn, tenant)
            elif not await store.try_lock_sealing(conn, tenant):
                return None
            sealed = await self._extend(conn, tenant)
        if sealed is not None:
            if self.metrics is not None and sealed.oldest_received_at is not None:
                lag = time.time() - sealed.oldest_received_at.timestamp()
                self.metrics.sealing_lag_seconds.observe(max(0.0, lag))
            await self._witness(sealed)
        return sealed

    async def _witness(self, sealed: Sealed) -> None:
        try:
            await self.witness.append(sealed.tenant, sealed.tree_size, sealed.note)
        except WitnessConflict:
            self._witness_failed("conflict")  # the witness has logged it, loudly
        except Exception:
            log.exception(
                "tenant %s: checkpoint %d is stored but could not be witnessed; the next "
                "one will be", sealed.tenant, sealed.tree_size,
            )  # fmt: skip
            self._witness_failed("error")

    def _witness_failed(self, reason: WitnessFailure) -> None:
        if self.metrics is not None:
            self.metrics.witness_failures.labels(reason).inc()

    async def seal_until_current(self, tenant: TenantId, *, wait: bool = False) -> Sealed | None:
        """Rounds until the checkpoint covers the log as it was when this began (with
        *wait*, also when another process is sealing it right now: an export needs that)."""
        last = None
        while (sealed := await self.seal(tenant, wait=wait)) is not None:
            last = sealed
            if sealed.tree_size - sealed.old_size < self.max_leaves:
                break
        return last

    async def _extend(self, conn: Connection, tenant: TenantId) -> Sealed | None:
        latest = await store.latest_checkpoint(conn, tenant)
        old = latest.tree_size if latest else 0
        head = await store.log_size(conn, tenant)
        if latest is not None and head <= old:
            return None
        end = min(head, old + self.max_leaves)
        new = await store.leaves(conn, tenant, old, end)
        if [leaf.seq for leaf in new] != list(range(old, end)):
            present = {leaf.seq for leaf in new}
            missing = [seq for seq in range(old, end) if seq not in present][:10]
            raise MissingLeaves(
                f"tenant {tenant}: events with seq {missing} are below the log head "
                f"({head}) but not stored; the log cannot be sealed past seq {missing[0]}"
            )
        # The old tree's frontier tiles are everything integrate() and the tile updates read.
        frontier = tiles_for_nodes(root_nodes(old), old)
        rightmost = _rightmost_tiles(old)
        reader = MemoryTiles(
            await store.read_tiles(
                conn, tenant, [(t.level, t.index) for t in [*frontier, *rightmost]]
            )
        )
        # Hashing a round's nodes is CPU work for the whole round (a 100 k-leaf round takes
        # a while): in a thread, the event loop it would hold up serves requests meanwhile.
        grown, updates = await asyncio.to_thread(_grow, reader, old, end, new)
        await store.write_tiles(conn, tenant, [(t.level, t.index, data) for t, data in updates])
        root = grown.root if end else EMPTY_ROOT
        note = sign_checkpoint(Checkpoint(origin_of(self.origin, tenant), end, root), self.signer)
        await store.add_checkpoint(conn, tenant, end, root, note)
        # The first leaf taken was the oldest unsealed one: its lag is the round's.
        arrived = (
            await store.received_at(conn, tenant, old) if self.metrics is not None and new else None
        )
        return Sealed(tenant, old, end, root, note, arrived)


def _grow(
    reader: MemoryTiles, old: int, end: int, new: list[store.Leaf]
) -> tuple[Integration, list[tuple[Tile, bytes]]]:
    grown = integrate(TiledHashes(reader, old), old, [leaf.leaf_hash for leaf in new])
    return grown, tile_updates(reader, old, end, grown.nodes)


def _rightmost_tiles(size: int) -> list[Tile]:
    """The partial tile of each tile level of a tree of *size* leaves: the ones that grow."""
    tiles, level = [], 0
    while count := size >> (level * TILE_HEIGHT):
        if width := count % (1 << TILE_HEIGHT):
            tiles.append(Tile(level, count >> TILE_HEIGHT, width))
        level += 1
    return tiles


async def seal_all(sealer: Sealer) -> list[Sealed]:
    """One round for every tenant (the periodic task). A tenant that fails is logged and
    left for the next round; the others are sealed all the same."""
    async with sealer.pool.connection() as conn:
        ids = await store.tenant_ids(conn)
    done = []
    for tenant_id in ids:
        tenant = for_system(tenant_id, reason="sealing every tenant's log")
        try:
            sealed = await sealer.seal_until_current(tenant)
        except Exception:
            log.exception("sealing tenant %s failed; retrying next round", tenant_id)
            if sealer.metrics is not None:
                sealer.metrics.sealing_failures.labels(sealer.metrics.tenant_label(tenant_id)).inc()
            continue
        if sealed is not None:
            done.append(sealed)
    return done


async def keep_sealing(sealer: Sealer, interval: float) -> None:
    """:func:`seal_all` every *interval* seconds until cancelled (run by every worker;
    the per-tenant lock makes concurrent sealers skip each other's tenants)."""
    while True:
        try:
            await seal_all(sealer)
        except Exception:
            log.exception("sealing round failed; retrying next round")
        await asyncio.sleep(interval)
