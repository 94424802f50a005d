"""Answers a verifier needs: the newest checkpoint, inclusion proofs, consistency proofs.

Every answer is read from the tiles and checkpoints the sealer stored, in one tenant
transaction (a couple of round trips: a proof at ten million leaves reads a few 8 KiB
tiles). Nothing here is trusted by the verifier: a proof only convinces together with a
checkpoint whose signature it checks. Each call is recorded in the tenant's log, like any
other read of it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from auditline.domain.access import ACCESS_RESOURCE, AccessLog, Actor
from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.evidence.sealer import Sealer
from auditline.integrity.merkle import (
    consistency_proof_from,
    consistency_proof_nodes,
    inclusion_proof_from,
    inclusion_proof_nodes,
)
from auditline.integrity.note import encode_base64
from auditline.integrity.tiles import MemoryTiles, Tile, TiledHashes, tiles_for_nodes
from auditline.storage import integrity as store
from auditline.storage.database import Connection, read_transaction
from auditline.storage.integrity import StoredCheckpoint


class NotSealed(LookupError):
    """The tenant's log has no checkpoint yet, or none covering what was asked."""


class UnknownEvent(LookupError):
    """No event with that id in the tenant's log."""


class InvalidRange(ValueError):
    """A consistency proof between sizes that are not ``0 <= from <= to <= checkpointed``."""


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    leaf_hash: bytes
    path: list[bytes]
    checkpoint: StoredCheckpoint


async def _hashes(conn: Connection, tenant: TenantId, tiles: list[Tile], size: int) -> TiledHashes:
    stored = await store.read_tiles(conn, tenant, [(t.level, t.index) for t in tiles])
    return TiledHashes(MemoryTiles(stored), size)


class ExportProofs:
    """``search.export.Attachments`` for ``include_proofs``: the checkpoint at the head of
    the file, and each event's inclusion proof in it (``proof: null`` for an event stored
    after the checkpoint was taken). Tiles are read once per export batch."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        tenant: TenantId,
        checkpoint: StoredCheckpoint,
        timeout_ms: int,
    ) -> None:
        self.pool, self.tenant, self.checkpoint = pool, tenant, checkpoint
        self.timeout_ms = timeout_ms

    @property
    def head(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint.note,
            "tree_size": self.checkpoint.tree_size,
            "root_hash": encode_base64(self.checkpoint.root_hash),
        }

    async def for_batch(self, batch: list[StoredEvent]) -> list[dict[str, Any]]:
        size = self.checkpoint.tree_size
        covered = [s.seq for s in batch if s.seq < size]
        paths: dict[int, list[bytes]] = {}
        if covered:
            nodes = [n for seq in covered for n in inclusion_proof_nodes(seq, size)]
            async with read_transaction(self.pool, self.tenant, timeout_ms=self.timeout_ms) as conn:
                hashes = await _hashes(conn, self.tenant, tiles_for_nodes(nodes, size), size)
            paths = {seq: inclusion_proof_from(hashes, seq, size) for seq in covered}
        return [
            {"proof": {"leaf_index": s.seq, "tree_size": size,
                       "inclusion_path": [encode_base64(h) for h in paths[s.seq]]}}
            if s.seq in paths else {"proof": None}
            for s in batch
        ]  # fmt: skip


class ProofService:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        access: AccessLog,
        sealer: Sealer,
        seal_interval: float,
        *,
        timeout_ms: int,
        export_timeout_ms: int,
    ) -> None:
        self.pool = pool
        self.access = access
        self.sealer = sealer
        self.seal_interval = seal_interval
        self.timeout_ms = timeout_ms
        self.export_timeout_ms = export_timeout_ms

    def _read(self, tenant: TenantId) -> AbstractAsyncContextManager[Connection]:
        return read_transaction(self.pool, tenant, timeout_ms=self.timeout_ms)

    async def for_export(self, tenant: TenantId) -> ExportProofs:
        """Proofs for an export that starts now: the log is sealed up to this moment first,
        so the checkpoint covers every event the export can contain."""
        await self.sealer.seal_until_current(tenant)
        async with self._read(tenant) as conn:
            latest = await store.latest_checkpoint(conn, tenant)
        if latest is None:  # pragma: no cover - sealing always leaves a checkpoint
            raise NotSealed(self._not_yet("the log has no checkpoint yet"))
        return ExportProofs(self.pool, tenant, latest, self.export_timeout_ms)

    async def checkpoint(self, tenant: TenantId, actor: Actor) -> StoredCheckpoint:
        async with self._read(tenant) as conn:
            latest = await store.latest_checkpoint(conn, tenant)
        await self._record(tenant, actor, "read the log's checkpoint", {
            "tree_size": latest.tree_size if latest else None})  # fmt: skip
        if latest is None:
            raise NotSealed(self._not_yet("the log has no checkpoint yet"))
        return latest

    async def inclusion(self, tenant: TenantId, event_id: UUID, actor: Actor) -> InclusionProof:
        """The event's inclusion proof in the newest checkpoint.

        Raises ``UnknownEvent`` (also for another tenant's event: the transaction only
        shows this tenant's rows) or ``NotSealed`` when the newest checkpoint does not
        cover it yet.
        """
        async with self._read(tenant) as conn:
            leaf = await store.leaf_of(conn, tenant, event_id)
            latest = await store.latest_checkpoint(conn, tenant)
            path = None
            if leaf is not None and latest is not None and leaf.seq < latest.tree_size:
                size = latest.tree_size
                nodes = inclusion_proof_nodes(leaf.seq, size)
                hashes = await _hashes(conn, tenant, tiles_for_nodes(nodes, size), size)
                path = inclusion_proof_from(hashes, leaf.seq, size)
        await self._record(tenant, actor, "read an inclusion proof", {
            "event_id": str(event_id), "found": leaf is not None, "sealed": path is not None},
            resource_id=str(event_id))  # fmt: skip
        if leaf is None:
            raise UnknownEvent(str(event_id))
        if path is None or latest is None:
            raise NotSealed(self._not_yet(f"event {event_id} (seq {leaf.seq}) is not sealed yet"))
        return InclusionProof(leaf.seq, leaf.leaf_hash, path, latest)

    async def consistency(
        self, tenant: TenantId, old: int, new: int | None, actor: Actor
    ) -> tuple[int, int, list[bytes]]:
        """``PROOF(old, D[new])`` (*new* defaults to the newest checkpoint's size).

        Both sizes must be checkpointed sizes or lie between 0 and the newest one; a proof
        from a size the log never had is still well defined, and verifying it against the
        client's own checkpoint is what catches a forked log.
        """
        async with self._read(tenant) as conn:
            latest = await store.latest_checkpoint(conn, tenant)
            newest = latest.tree_size if latest else -1
            target = newest if new is None else new
            ok = latest is not None and 0 <= old <= target <= newest
            path: list[bytes] = []
            if ok and 0 < old < target:
                nodes = consistency_proof_nodes(old, target)
                hashes = await _hashes(conn, tenant, tiles_for_nodes(nodes, target), target)
                path = consistency_proof_from(hashes, old, target)
        await self._record(tenant, actor, "read a consistency proof", {
            "from": old, "to": target, "valid_range": ok})  # fmt: skip
        if latest is None:
            raise NotSealed(self._not_yet("the log has no checkpoint yet"))
        if not ok:
            raise InvalidRange(
                f"need 0 <= from <= to <= {newest} (the newest checkpoint's size); "
                f"got from={old}, to={target}"
            )
        return old, target, path

    def _not_yet(self, what: str) -> str:
        return f"{what}; logs are sealed about every {self.seal_interval:g} s, retry then"

    async def _record(
        self,
        tenant: TenantId,
        actor: Actor,
        message: str,
        metadata: dict[str, object],
        *,
        resource_id: str | None = None,
    ) -> None:
        await self.access.record(
            tenant, actor, action="VERIFY", resource_type=ACCESS_RESOURCE,
            resource_id=resource_id, message=message, metadata=dict(metadata),
        )  # fmt: skip
