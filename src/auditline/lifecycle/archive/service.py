"""Archival: a tenant's old events go to cold storage as Parquet, and can come back.

The order of one tenant-day's archival is what makes it safe to delete afterwards:

1. read the day's hot events (one statement, one snapshot) into a local Parquet file;
2. if the day was archived before (late events, or a restore), fetch that archive, check it
   against its manifest's SHA-256 and merge: an event in both must be identical, else
   :class:`ArchiveConflict` and nothing changes;
3. upload the file under a name made from its SHA-256, read it back *from the store* and
   compare the digest and size; then the manifest, read back as well;
4. record the day in ``archives``;
5. remove the day's events from the hot table through the retention deletion primitive
   (its one call site: :meth:`_remove_from_hot`), bounded by the archive's last ``seq``
   after a check that everything within that bound is in the verified archive (an event
   that arrived for the day meanwhile stays hot and goes with the next run);
6. delete the file the new one replaced.

A failure anywhere up to 4 leaves the hot table as it was; a crash between 4 and 5 is
completed by the next run (the merge then finds every hot event in the archive already,
writes the same file, and deletes). Every step is idempotent, as a task must be.

Restoring a day puts its events back with their own ids, ``seq`` and leaf hashes
(``storage.archive.restore_events``), so inclusion proofs hold again; a second restore
inserts nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from psycopg_pool import AsyncConnectionPool

from auditline.config import ArchiveSettings
from auditline.domain.access import Actor
from auditline.domain.events import StoredEvent
from auditline.domain.retention import Deletion, LegalHold, Reason, TooRecent
from auditline.domain.tenants import TenantId
from auditline.ingest.access import AccessRecorder
from auditline.integrity.leaf import leaf_hash
from auditline.lifecycle.archive import parquet
from auditline.lifecycle.archive.manifest import (
    MANIFEST,
    FileEntry,
    Manifest,
    data_file_name,
    day_bounds,
    day_prefix,
    seq_ranges,
)
from auditline.lifecycle.archive.store import ColdStore
from auditline.storage import archive as store_sql
from auditline.storage import integrity as integrity_store
from auditline.storage.archive import ArchiveRow
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.events import ensure_partition
from auditline.tenancy.scope import for_system

log = logging.getLogger(__name__)


class ArchiveCorrupt(RuntimeError):
    """A file in the cold store does not match its manifest (SHA-256, size or rows)."""


class ArchiveConflict(RuntimeError):
    """A hot event differs from the archived event with the same id."""


class HotDeleter(Protocol):
    """The deletion primitive as archival calls it: ``RetentionService.delete_events``
    (``lifecycle.retention``). It removes *tenant*'s events older than *before* numbered at
    most *through_seq*, in batches, each recorded in the tenant's log (who, range, count,
    ``seq`` ranges) and in ``removed_ranges`` in the same transaction, rollups kept right."""

    async def __call__(
        self,
        tenant: TenantId,
        actor: Actor,
        *,
        before: datetime,
        reason: Reason,
        through_seq: int | None = None,
    ) -> Deletion: ...


@dataclass(frozen=True, slots=True)
class DayResult:
    tenant: TenantId
    day: date
    archived: int
    """Rows in the day's archive now (earlier ones included)."""
    written: bool
    """A new data file was written (False: the store already held exactly these rows)."""
    removed: int
    """Hot events removed after the archive was verified."""
    location: str


@dataclass(frozen=True, slots=True)
class RestoreResult:
    tenant: TenantId
    days: int
    inserted: int
    """Events put back into the hot log; 0 when every one was there already."""


Progress = Callable[[dict[str, Any]], Awaitable[None]]
ARCHIVE_JOB: Final = "archive.due"
_RUN_GAP: Final = 256  # one tile: a gap up to this is read through, not around
"""The job kind of the periodic archival (empty payload)."""

SYSTEM = Actor("system:archival", "system")
"""Who the scheduled archival acts as in the records it leaves."""


class ArchiveService:
    """Archive, list, verify, export and restore a tenant's days."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        store: ColdStore,
        settings: ArchiveSettings,
        access: AccessRecorder,
        *,
        deleter: HotDeleter | None = None,
    ) -> None:
        self._pool = pool
        self.store = store
        self._settings = settings
        self._access = access
        self._delete = deleter

    # -- archiving -------------------------------------------------------------------

    async def archive_due(
        self, *, now: datetime | None = None, progress: Progress | None = None
    ) -> list[DayResult]:
        """Archive every due day of every tenant with ``archive_after_days`` set.

        The periodic task's body. A tenant's failure is logged and does not stop the others
        (it is retried next run); the results of the days that were archived are returned.
        *progress*, if given, hears the running totals after each tenant.
        """
        async with self._pool.connection() as conn:
            tenants = await store_sql.archiving_tenants(conn)
        results: list[DayResult] = []
        failed: list[str] = []
        for tenant_id, after_days in tenants:
            tenant = for_system(tenant_id, reason="scheduled archival of every tenant")
            try:
                results += await self.archive_tenant(tenant, after_days, now=now)
            except Exception:
                failed.append(tenant_id)
                log.exception("archival of tenant %s failed; retrying next run", tenant)
            if progress is not None:
                await progress(_summary(results, failed))
        return results

    async def run_due_job(self, progress: Progress | None = None) -> dict[str, Any]:
        """The ``archive.due`` job (daily): :meth:`archive_due`, answered as a JSON summary.
        Idempotent, as a task must be: a rerun archives only what is still hot and due."""
        failed: list[str] = []

        async def track(summary: dict[str, Any]) -> None:
            failed[:] = summary["failed_tenants"]
            if progress is not None:
                await progress(summary)

        return _summary(await self.archive_due(progress=track), failed)

    async def archive_tenant(
        self,
        tenant: TenantId,
        after_days: int,
        *,
        now: datetime | None = None,
        actor: Actor = SYSTEM,
    ) -> list[DayResult]:
        """Archive each whole UTC day of *tenant* that ended more than *after_days* ago."""
        now = now or datetime.now(UTC)
        cutoff, _ = day_bounds((now - timedelta(days=after_days)).date())
        return await self.archive_before(tenant, cutoff, actor=actor)

    async def archive_before(
        self, tenant: TenantId, before: datetime, *, actor: Actor = SYSTEM
    ) -> list[DayResult]:
        """Archive (and remove) every hot event of *tenant* older than *before*, day by day,
        oldest first; the day holding *before* only up to it (its later events join that
        day's archive when their turn comes).

        What a cleanup of a tenant with archival on calls before it deletes anything: the
        events then leave through this, archived first.
        """
        results = []
        async for day in self._hot_days(tenant, before):
            until = min(day_bounds(day)[1], before)
            results.append(await self.archive_day(tenant, day, actor=actor, until=until))
        return results

    async def archive_and_remove(
        self, tenant: TenantId, before: datetime, actor: Actor
    ) -> tuple[int, int]:
        """:meth:`archive_before` for a cleanup (``RetentionService.archive_first``): how
        many events were archived and how many removed from the hot table."""
        results = await self.archive_before(tenant, before, actor=actor)
        return sum(r.archived for r in results), sum(r.removed for r in results)

    async def _hot_days(self, tenant: TenantId, before: datetime) -> AsyncIterator[date]:
        """The UTC days before *before* that hold hot events of *tenant*, oldest first."""
        start = datetime(1970, 1, 1, tzinfo=UTC)
        while True:
            async with tenant_transaction(self._pool, tenant) as conn:
                first = await store_sql.first_event_at(conn, tenant, start, before)
            if first is None:
                return
            day = first.astimezone(UTC).date()
            yield day
            start = day_bounds(day)[1]

    async def archive_day(
        self,
        tenant: TenantId,
        day: date,
        *,
        actor: Actor = SYSTEM,
        until: datetime | None = None,
    ) -> DayResult:
        """Archive *tenant*'s events of *day* (UTC; with *until*, only those before it) and
        remove them from the hot table.

        Raises :class:`ArchiveCorrupt` if an earlier archive of the day fails its check, or
        the new file does not read back as written; :class:`ArchiveConflict` if a hot event
        differs from its archived copy. Either way the hot table is untouched.
        """
        start, end = day_bounds(day)
        if until is not None:
            if not start < until <= end:
                raise ValueError(f"until {until} is not within {day}")
            end = until
        prefix = day_prefix(tenant, day)
        async with _workdir() as work:
            hot = work / "hot.parquet"
            hot_rows, hot_seqs = await self._read_day(tenant, start, end, hot)
            async with tenant_transaction(self._pool, tenant) as conn:
                earlier = await store_sql.list_archives(conn, tenant, day, day)
            previous = Manifest.from_json(earlier[0].manifest) if earlier else None
            if hot_rows == 0:
                return DayResult(
                    tenant, day, previous.rows if previous else 0, False, 0,
                    self.store.location(prefix + MANIFEST) if previous else "",
                )  # fmt: skip
            final = hot
            if previous is not None:
                final = work / "merged.parquet"
                await self._merge(prefix, previous, hot, final, work)
            manifest, written = await self._upload(tenant, day, final, previous)
            location = self.store.location(prefix + MANIFEST)
            async with tenant_transaction(self._pool, tenant) as conn:
                await store_sql.save_archive(conn, tenant, day, manifest.to_json(), location)
        removed = await self._remove_from_hot(tenant, start, end, manifest, actor)
        if previous is not None:  # the files the new manifest no longer names
            kept = {f.name for f in manifest.files}
            for entry in previous.files:
                if entry.name not in kept:
                    await self.store.delete(prefix + entry.name)
        log.info(
            "archived %s %s: %d rows (%d hot, %d removed) to %s",
            tenant, day, manifest.rows, len(hot_seqs), removed, location,
        )  # fmt: skip
        return DayResult(tenant, day, manifest.rows, written, removed, location)

    async def _read_day(
        self, tenant: TenantId, start: datetime, end: datetime, target: Path
    ) -> tuple[int, list[int]]:
        """Write the day's hot events to *target*; (row count, their seqs)."""
        seqs: list[int] = []
        writer = await asyncio.to_thread(
            parquet.FileWriter, target, zstd_level=self._settings.zstd_level
        )
        try:
            async with tenant_transaction(self._pool, tenant) as conn:
                async for rows in store_sql.read_events(
                    conn, tenant, start, end, batch_rows=self._settings.batch_rows
                ):
                    seqs += [row[2] for row in rows]
                    batch = await asyncio.to_thread(parquet.to_batch, rows)
                    await asyncio.to_thread(writer.write, batch)
        finally:
            await asyncio.to_thread(writer.close)
        return writer.rows, seqs

    async def _fetch_verified(self, key: str, entry: FileEntry, target: Path) -> None:
        """Copy *key* to *target* and check it against its manifest entry."""
        await self.store.get_file(key, target)
        digest, size = await asyncio.to_thread(_sha256_file, target)
        if digest != entry.sha256 or size != entry.bytes:
            raise ArchiveCorrupt(f"{self.store.location(key)} does not match its manifest")
        if await asyncio.to_thread(parquet.row_count, target) != entry.rows:
            raise ArchiveCorrupt(f"{self.store.location(key)} holds another number of rows")

    async def _merge(
        self, prefix: str, previous: Manifest, hot: Path, target: Path, work: Path
    ) -> None:
        """Write the union of the earlier archive and the hot rows to *target*."""
        tables = []
        for i, entry in enumerate(previous.files):
            local = work / f"previous-{i}.parquet"
            await self._fetch_verified(prefix + entry.name, entry, local)
            tables.append(await asyncio.to_thread(parquet.read_file, local))
        fresh = await asyncio.to_thread(parquet.read_file, hot)

        def merge() -> pa.Table:
            old = pa.concat_tables(tables)
            ids = fresh.column("id").combine_chunks().storage
            in_both = pc.is_in(old.column("id").combine_chunks().storage, value_set=ids)
            both_old = old.filter(in_both).sort_by("seq")
            both_new = fresh.filter(
                pc.is_in(ids, value_set=both_old.column("id").combine_chunks().storage)
            ).sort_by("seq")
            if not both_old.equals(both_new):
                raise ArchiveConflict(f"{prefix}: hot events differ from their archived copies")
            merged = pa.concat_tables([old.filter(pc.invert(in_both)), fresh]).sort_by("seq")
            if len(set(merged.column("seq").to_pylist())) != merged.num_rows:
                raise ArchiveConflict(f"{prefix}: two events share a seq")
            return merged

        merged = await asyncio.to_thread(merge)
        await asyncio.to_thread(
            parquet.write_file,
            target,
            merged.to_batches(max_chunksize=self._settings.batch_rows),
            zstd_level=self._settings.zstd_level,
        )

    async def _upload(
        self, tenant: TenantId, day: date, path: Path, previous: Manifest | None
    ) -> tuple[Manifest, bool]:
        """Put the file and its manifest in the store and verify both from the store."""
        digest, size = await asyncio.to_thread(_sha256_file, path)
        seqs, first_ts, last_ts = await asyncio.to_thread(parquet.positions, path)
        entry = FileEntry(data_file_name(digest), digest, size, len(seqs))
        manifest = Manifest(
            tenant_id=tenant, day=day, rows=len(seqs), first_timestamp=first_ts,
            last_timestamp=last_ts, first_seq=seqs[0], last_seq=seqs[-1],
            seq_ranges=seq_ranges(seqs), files=[entry],
        )  # fmt: skip
        prefix = day_prefix(tenant, day)
        key = prefix + entry.name
        written = previous is None or all(f.sha256 != digest for f in previous.files)
        if written:
            await self.store.put_file(key, path)
        stored = await self.store.sha256(key)
        if stored != (digest, size):
            raise ArchiveCorrupt(f"{self.store.location(key)} did not read back as written")
        body = orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2)
        await self.store.put_bytes(prefix + MANIFEST, body)
        if await self.store.get_bytes(prefix + MANIFEST) != body:
            raise ArchiveCorrupt(f"{self.store.location(prefix + MANIFEST)} did not read back")
        return manifest, written

    async def _remove_from_hot(
        self, tenant: TenantId, start: datetime, end: datetime, manifest: Manifest, actor: Actor
    ) -> int:
        """THE call site of the retention deletion primitive (one place, by design).

        Runs only after the archive was written and verified. The primitive removes events
        older than *end* numbered at most the archive's last ``seq``; first a check that
        every such event is in this archive (none of the day outside it, no late arrival
        for an earlier day still hot). Events committed after the check are numbered
        beyond that ``seq``, so the primitive cannot take them: they stay hot and go with
        the next run, as does everything when the check finds a stray event (the next run
        archives the earlier day first, oldest day first).

        A legal hold keeps the events hot (the archive stays a copy); so does a day too
        recent for the primitive's minimum age. Without a deleter nothing is removed.
        """
        if self._delete is None:
            log.warning("no deletion primitive wired: %s's archived events stay hot", tenant)
            return 0
        async with tenant_transaction(self._pool, tenant) as conn:
            stray = await store_sql.count_unarchived(conn, tenant, start, end, manifest.seq_ranges)
        if stray:
            log.info("%s %s: %d events the archive does not hold; removal left for the next run",
                     tenant, manifest.day, stray)  # fmt: skip
            return 0
        try:
            deletion = await self._delete(
                tenant, actor, before=end, reason="archive", through_seq=manifest.last_seq
            )
        except (LegalHold, TooRecent) as exc:
            log.info("%s %s: archived, kept hot: %s", tenant, manifest.day, exc)
            return 0
        return deletion.deleted

    # -- reading ---------------------------------------------------------------------

    async def archived_days(
        self, tenant: TenantId, first: date | None = None, last: date | None = None
    ) -> list[ArchiveRow]:
        """*tenant*'s archived days from *first* through *last* (inclusive), by day."""
        async with tenant_transaction(self._pool, tenant) as conn:
            return await store_sql.list_archives(conn, tenant, first, last)

    async def verify(self, tenant: TenantId, day: date) -> Manifest:
        """Check the day's files in the store against its recorded manifest, then every
        archived event against the tenant's Merkle tree; raises :class:`ArchiveCorrupt`
        (or ``LookupError`` if the day is not archived).

        The manifest lives in the database, so an administrator who rewrites a file can
        rewrite its digest too. The tree cannot be rewritten that way: each event must hash
        to the leaf the tiles hold at its ``seq``, and the tiles are what the signed
        checkpoints check (``auditline verify --tenant`` rebuilds them against the roots).
        """
        rows = await self.archived_days(tenant, day, day)
        if not rows:
            raise LookupError(f"{tenant} has no archive of {day}")
        manifest = Manifest.from_json(rows[0].manifest)
        prefix = day_prefix(tenant, day)
        async with _workdir() as work:
            for i, entry in enumerate(manifest.files):
                path = work / f"{i}.parquet"
                await self._fetch_verified(prefix + entry.name, entry, path)
                await self._check_leaves(tenant, path, self.store.location(prefix + entry.name))
        return manifest

    async def _check_leaves(self, tenant: TenantId, path: Path, where: str) -> None:
        for batch in await asyncio.to_thread(_batches, path):
            stored = [parquet.stored_event(row) for row in await asyncio.to_thread(_rows, batch)]
            # Rows are in seq order; a day's numbers come in runs (other days' events, and
            # other tenants', lie between), and each run's hashes are read in one go.
            runs: list[list[StoredEvent]] = []
            for item in stored:
                if runs and item.seq - runs[-1][-1].seq <= _RUN_GAP:
                    runs[-1].append(item)
                else:
                    runs.append([item])
            async with tenant_transaction(self._pool, tenant) as conn:
                for run in runs:
                    first = run[0].seq
                    tree = await integrity_store.tile_leaves(conn, tenant, first, run[-1].seq + 1)
                    for item in run:
                        index = item.seq - first
                        in_tree = tree[index] if index < len(tree) else None
                        if leaf_hash(item.event) != in_tree or item.event.leaf_hash != in_tree:
                            raise ArchiveCorrupt(
                                f"{where}: the event with seq {item.seq} (id {item.event.id}) "
                                "does not hash to its leaf in the tenant's Merkle tree: the "
                                "file was changed"
                            )

    async def restore(
        self, tenant: TenantId, first: date, last: date, *, actor: Actor
    ) -> RestoreResult:
        """Put *tenant*'s archived days *first* through *last* back into the hot log.

        Day by day, each in one transaction with the record of it (RESTORE, in the
        tenant's log, only when something was put back): a day is restored whole or not at
        all. Every file is checked against its manifest first (:class:`ArchiveCorrupt`).
        """
        inserted = days = 0
        for row in await self.archived_days(tenant, first, last):
            manifest = Manifest.from_json(row.manifest)
            inserted += await self._restore_day(tenant, manifest, actor)
            days += 1
        return RestoreResult(tenant, days, inserted)

    async def _restore_day(self, tenant: TenantId, manifest: Manifest, actor: Actor) -> int:
        prefix = day_prefix(tenant, manifest.day)
        start, _ = day_bounds(manifest.day)
        async with self._pool.connection() as conn, conn.transaction():
            await ensure_partition(conn, start)  # retention may have dropped the month
        async with _workdir() as work:
            local = []
            for i, entry in enumerate(manifest.files):
                path = work / f"{i}.parquet"
                await self._fetch_verified(prefix + entry.name, entry, path)
                local.append(path)
            inserted = 0
            async with tenant_transaction(self._pool, tenant) as conn:
                for path in local:
                    for batch in await asyncio.to_thread(_batches, path):
                        rows = await asyncio.to_thread(_rows, batch)
                        inserted += await store_sql.restore_events(conn, tenant, rows)
                await store_sql.unlist_removed(conn, tenant, manifest.seq_ranges)
                if inserted:
                    await self._access.record_in(
                        conn, tenant, actor, action="RESTORE", resource_type="audit_log",
                        resource_id=manifest.day.isoformat(),
                        message=f"restored {inserted} archived events of {manifest.day}",
                        metadata={"day": manifest.day.isoformat(), "inserted": inserted,
                                  "archived": manifest.rows, "first_seq": manifest.first_seq,
                                  "last_seq": manifest.last_seq},
                    )  # fmt: skip
        return inserted

    async def export(
        self, tenant: TenantId, first: date, last: date, target: Path, *, actor: Actor
    ) -> list[Path]:
        """Copy the archived days' files and manifests, verified, under *target* (same
        layout as the store); recorded as an export in the tenant's log. The paths written."""
        written: list[Path] = []
        days = await self.archived_days(tenant, first, last)
        for row in days:
            manifest = Manifest.from_json(row.manifest)
            prefix = day_prefix(tenant, manifest.day)
            folder = target / prefix
            folder.mkdir(parents=True, exist_ok=True)
            for entry in manifest.files:
                await self._fetch_verified(prefix + entry.name, entry, folder / entry.name)
                written.append(folder / entry.name)
            (folder / MANIFEST).write_bytes(
                orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2)
            )
            written.append(folder / MANIFEST)
        await self._access.record(
            tenant, actor, action="EXPORT", resource_type="audit_log",
            message=f"exported {len(days)} archived days ({first} to {last})",
            metadata={"via": "archive", "from": first.isoformat(), "to": last.isoformat(),
                      "days": len(days), "rows": sum(r.manifest["rows"] for r in days)},
        )  # fmt: skip
        return written


def _summary(results: list[DayResult], failed: list[str]) -> dict[str, Any]:
    return {
        "days": len(results),
        "archived": sum(r.archived for r in results),
        "removed": sum(r.removed for r in results),
        "tenants": sorted({r.tenant for r in results}),
        "failed_tenants": list(failed),
    }


def _rows(batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
    return list(parquet.rows_of(batch))


def _batches(path: Path) -> list[pa.RecordBatch]:
    return list(parquet.read_batches(path))


def _sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as src:
        while chunk := src.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


@asynccontextmanager
async def _workdir() -> AsyncIterator[Path]:
    path = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="auditline-archive-"))
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)
