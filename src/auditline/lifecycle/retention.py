"""Retention and cleanup: the one way events leave a tenant's log.

:meth:`RetentionService.delete_events` is the deletion primitive every removal goes
through: an admin's cleanup (``DELETE /api/v1/logs/cleanup``), the daily retention task
(:meth:`RetentionService.apply_retention`) and archival, which calls it once an archive is
written and verified. It guarantees, for every batch, in one transaction:

* nothing younger than ``retention.min_age_hours`` and nothing under a legal hold goes (the
  hold is read under a lock on the tenant row, so a hold placed meanwhile stops the next
  batch);
* the events, their ``event_ids`` rows and their rollup counts go together (the delete
  trigger takes the counts back in the same statement);
* the removal is recorded twice, in the tenant's own log (DELETE records of resource type
  ``audit_log``: who, which time range, how many, the ``seq`` ranges; as many records as it
  takes for every range to be listed, ``RECORD_MAX_RANGES`` at most in each) and in
  ``removed_ranges`` (every range, for the integrity checks), so a failure leaves neither
  the deletion nor any of its records. Every removed number is listed in a record inside
  the signed log: the verifier accepts a gap only if one does (``evidence.verify``).

Batches are bounded (``retention.batch_size``) and paused between (``retention.pause_ms``)
so a removal takes a bounded share of the database; the tenant's writes wait only for a
batch's record and commit (``storage.retention`` says how). The retention task first drops whole
monthly partitions that no tenant keeps anything of (one transaction per month, the same
records per tenant, no per-row work), then deletes the rest in batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from auditline.config import RetentionSettings
from auditline.domain.access import ACCESS_RESOURCE, AccessFields, Actor
from auditline.domain.retention import (
    RECORD_MAX_RANGES,
    Deletion,
    LegalHold,
    Reason,
    TooRecent,
    carried_ranges,
    merge_ranges,
    record_parts,
)
from auditline.domain.tenants import TenantId, UnknownTenant
from auditline.ingest.access import AccessRecorder
from auditline.ingest.writer import EventWriter, months_from
from auditline.jobs.service import Jobs
from auditline.storage import retention as store
from auditline.storage.database import Connection, set_tenant, tenant_transaction
from auditline.storage.events import partition_months
from auditline.storage.tenants import get_tenant
from auditline.tenancy.scope import for_system

log = logging.getLogger(__name__)

CLEANUP_JOB: Final = "retention.cleanup"
"""The job kind of a cleanup too large to answer at once (payload: :meth:`cleanup_payload`)."""
RETENTION_JOB: Final = "retention.apply"
"""The job kind of the daily retention task (empty payload)."""

SYSTEM_ACTOR: Final = Actor(subject="system:retention", type="system")
"""Who removes expired events: the service itself, by each tenant's retention."""

Progress = Callable[[Mapping[str, Any]], Awaitable[None]]

SealedThrough = Callable[[Connection, TenantId], Awaitable[int]]
"""The last ``seq`` of *tenant* that a signed checkpoint covers (-1: none yet), read in
the removal's transaction. With tamper evidence (issue 19) an event may only be removed
once the tenant's tree covers it: the sealer reads every leaf below the log head it has
not sealed, and a missing one stops it for good. The composition root passes the
checkpoint store's reader; without it nothing bounds removals by sealing."""


@dataclass(frozen=True, slots=True)
class Cleanup:
    """The answer to a cleanup request: a count (dry run), a deletion, or a queued job."""

    before: datetime
    count: int
    dry_run: bool = False
    deletion: Deletion | None = None
    job_id: UUID | None = None


class _Kept(Exception):
    """A tenant keeps something of the month: its partition stays (rolls the drop back)."""


@dataclass(frozen=True, slots=True)
class _Due:
    """A tenant's retention as the task applies it."""

    tenant: TenantId
    bound: datetime | None  # None: under legal hold, nothing goes


ArchiveFirst = Callable[[TenantId, datetime, Actor], Awaitable[tuple[int, int]]]
"""Archive a tenant's events older than a bound, then remove them: (archived, removed)."""


class RetentionService:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        writer: EventWriter,
        access: AccessRecorder,
        settings: RetentionSettings,
        jobs: Jobs | None = None,
        sealed_through: SealedThrough | None = None,
    ) -> None:
        self._pool = pool
        self._sealed_through = sealed_through
        self._writer = writer
        self._access = access
        self._settings = settings
        self.jobs = jobs
        """Set by the composition root once the jobs service exists; without it a large
        cleanup runs in the request."""
        self.archive_first: ArchiveFirst | None = None
        """Set by the composition root (archival removes through this service, so it is
        built after it): how a cleanup of a tenant with archival on removes its events."""

    @property
    def settings(self) -> RetentionSettings:
        return self._settings

    def newest_allowed(self, now: datetime | None = None) -> datetime:
        """The youngest bound any removal may use: now minus the minimum age."""
        return (now or datetime.now(UTC)) - timedelta(hours=self._settings.min_age_hours)

    def _check_age(self, before: datetime, now: datetime | None = None) -> None:
        newest = self.newest_allowed(now)
        if before > newest:
            raise TooRecent(before, newest, self._settings.min_age_hours)

    # -- cleanup (the API) -------------------------------------------------------------
    async def cleanup(
        self,
        tenant: TenantId,
        actor: Actor,
        *,
        before: datetime | None = None,
        dry_run: bool = False,
    ) -> Cleanup:
        """Remove *tenant*'s events older than *before* (default: its retention).

        Raises ``UnknownTenant``, ``TooRecent`` (the bound is younger than the minimum age)
        or ``LegalHold`` before anything changes; a dry run only counts. More than
        ``retention.sync_max_events`` events are handed to a job when a jobs service is
        attached.
        """
        now = datetime.now(UTC)
        async with self._pool.connection() as conn:
            found = await get_tenant(conn, tenant)
            if found is None:
                raise UnknownTenant(tenant)
            bound = before if before is not None else now - timedelta(days=found.retention_days)
            self._check_age(bound, now)
            if found.legal_hold:
                raise LegalHold(tenant)
            async with conn.transaction():
                await set_tenant(conn, tenant)
                sealed = await self._seq_bound(conn, tenant, None)
                count = await store.count_events(conn, tenant, bound, through_seq=sealed)
        if dry_run:
            return Cleanup(before=bound, count=count, dry_run=True)
        # Archiving first writes and verifies files in cold storage: always a job.
        archives = found.archive_after_days is not None and self.archive_first is not None
        if (count > self._settings.sync_max_events or archives) and self.jobs is not None:
            job = await self.jobs.submit(
                CLEANUP_JOB, self.cleanup_payload(bound, actor), tenant=tenant
            )
            return Cleanup(before=bound, count=count, job_id=job)
        deletion = await self.delete_events(tenant, actor, before=bound, reason="cleanup")
        return Cleanup(before=bound, count=count, deletion=deletion)

    @staticmethod
    def cleanup_payload(before: datetime, actor: Actor) -> dict[str, Any]:
        """The job payload of a cleanup: the bound and who asked (the record names them)."""
        return {
            "before": before.isoformat(),
            "actor": {"subject": actor.subject, "type": actor.type, "request_id": actor.request_id},
        }

    async def run_cleanup_job(
        self,
        tenant: TenantId,
        payload: Mapping[str, Any],
        *,
        job_id: UUID | None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """The ``retention.cleanup`` job: :meth:`delete_events` with the payload's bound and
        actor, or for a tenant with archival on, :attr:`archive_first`; idempotent (a rerun
        removes only what is still there, and records only that). A legal hold placed
        meanwhile ends it early, with what was removed until then."""
        who = payload["actor"]
        actor = Actor(subject=who["subject"], type=who["type"], request_id=who.get("request_id"))
        before = datetime.fromisoformat(payload["before"])
        async with self._pool.connection() as conn:
            found = await get_tenant(conn, tenant)
        if found is not None and found.archive_after_days is not None and self.archive_first:
            # Archived, verified, then removed day by day (the archive's own primitive
            # call); an event that arrives meanwhile for an archived day stays hot, for
            # the next archival, rather than leave unarchived.
            try:
                archived, removed = await self.archive_first(tenant, before, actor)
            except LegalHold:
                return {"deleted": 0, "archived": 0, "stopped": "legal_hold"}
            return {"deleted": removed, "archived": archived, "before": before.isoformat()}
        try:
            deletion = await self.delete_events(
                tenant, actor, before=datetime.fromisoformat(payload["before"]),
                reason="cleanup", job_id=job_id, progress=progress,
            )  # fmt: skip
        except LegalHold:
            return {"deleted": 0, "stopped": "legal_hold"}
        return deletion_view(deletion)

    # -- the primitive -----------------------------------------------------------------
    async def delete_events(
        self,
        tenant: TenantId,
        actor: Actor,
        *,
        before: datetime,
        reason: Reason,
        job_id: UUID | None = None,
        through_seq: int | None = None,
        progress: Progress | None = None,
    ) -> Deletion:
        """Remove *tenant*'s events older than *before*, in batches, each recorded in the
        tenant's log and in ``removed_ranges`` in its own transaction (see the module).

        *through_seq* limits the removal to events numbered at most that: archival passes
        the last number it archived, so an event that arrived late for an archived day is
        never removed unarchived. Raises ``TooRecent``, ``UnknownTenant`` or ``LegalHold``
        (before the first batch); a hold placed later stops it (``Deletion.stopped``).
        """
        self._check_age(before)
        result = Deletion(tenant=tenant, before=before, reason=reason, job_id=job_id)
        # The records' month must exist before any lock is held (writer.ensure_partitions
        # runs on its own connection; inside our locks it could wait for us).
        await self._writer.ensure_partitions(months_from(datetime.now(UTC), 2))
        limit = self._settings.batch_size
        edge: tuple[datetime, UUID] | None = None  # where the next batch starts
        swept = False  # the last batch started from the beginning (events behind an edge)
        while True:
            async with tenant_transaction(self._pool, tenant) as conn:
                hold = await store.lock_tenant(conn, tenant)
                if hold is None:
                    raise UnknownTenant(tenant)
                if hold:
                    if result.batches == 0:
                        raise LegalHold(tenant)
                    result.stopped = "legal_hold"
                    break
                bound = await self._seq_bound(conn, tenant, through_seq)
                started = time.monotonic()
                swept = edge is None
                removed = await store.delete_batch(
                    conn, tenant, before, limit, through_seq=bound, start_after=edge
                )
                if removed.events:
                    await self._record(conn, tenant, actor, removed, result)
            edge = removed.edge
            if removed.events:
                result.deleted += removed.events
                result.batches += 1
                result.seq_ranges = merge_ranges(result.seq_ranges + removed.ranges)
                if progress is not None:
                    await progress({"deleted": result.deleted, "batches": result.batches})
            if edge is None and swept:
                break
            await self._pause(time.monotonic() - started)
        return result

    async def _pause(self, worked: float) -> None:
        """Between batches: the tenant's queued writes go first, and the removal takes a
        bounded share of the database: it waits as long as the batch took, times
        ``(1 - duty) / duty``, and at least ``retention.pause_ms``."""
        duty = self._settings.duty
        wait = max(self._settings.pause_ms / 1000, worked * (1 - duty) / duty)
        if wait > 0:
            await asyncio.sleep(wait)

    async def _seq_bound(
        self, conn: Connection, tenant: TenantId, through_seq: int | None
    ) -> int | None:
        """The highest ``seq`` a removal may take now: *through_seq*, and what is sealed."""
        if self._sealed_through is None:
            return through_seq
        sealed = await self._sealed_through(conn, tenant)
        return sealed if through_seq is None else min(sealed, through_seq)

    async def _record(
        self,
        conn: Connection,
        tenant: TenantId,
        actor: Actor,
        removed: store.Removed,
        deletion: Deletion,
        *,
        ids_removed: bool = True,
        partition: str | None = None,
    ) -> None:
        """Record *removed* in ``removed_ranges`` and in the tenant's log, in *conn*'s
        transaction: as many removal records as it takes to name every removed range and
        every range the removed records had named (at most ``RECORD_MAX_RANGES`` each), in
        one insert, so the batch commits with all of them or not at all, and they take
        consecutive numbers in the log like any other events."""
        await store.record_ranges(
            conn, tenant, removed.ranges, reason=deletion.reason, actor=actor.subject,
            job_id=deletion.job_id, ids_removed=ids_removed,
        )  # fmt: skip
        # Earlier removals' records went too: these name again what they named.
        parts = record_parts(removed.ranges, carried_ranges(removed.records), RECORD_MAX_RANGES)
        records: list[AccessFields] = []
        for number, part in enumerate(parts, 1):
            after: dict[str, Any] = {
                "removed": part.events,
                "reason": deletion.reason,
                "before": deletion.before.isoformat(),
                "oldest": removed.oldest.isoformat() if removed.oldest else None,
                "newest": removed.newest.isoformat() if removed.newest else None,
                "seq_ranges": [list(r) for r in part.seq_ranges],
            }
            if part.carried_ranges:
                after["carried_ranges"] = [list(r) for r in part.carried_ranges]
            if len(parts) > 1:
                after["part"], after["parts"] = number, len(parts)
            if deletion.job_id is not None:
                after["job_id"] = str(deletion.job_id)
            if partition is not None:
                after["partition"] = partition
            of = (
                f"; record {number} of {len(parts)}, naming {part.events} of them"
                if len(parts) > 1 else ""
            )  # fmt: skip
            records.append(AccessFields(
                action="DELETE", resource_type=ACCESS_RESOURCE, resource_id=deletion.reason,
                message=f"removed {removed.events} events older than "
                f"{deletion.before.isoformat()} ({deletion.reason}{of})",
                after=after,
            ))  # fmt: skip
        await self._access.record_all_in(conn, tenant, actor, records)

    # -- the daily task ----------------------------------------------------------------
    async def apply_retention(self, now: datetime | None = None) -> list[Deletion]:
        """Apply every tenant's retention (the platform log's too): drop whole months no
        tenant keeps anything of, then delete the rest in batches. Tenants under legal
        hold are skipped. Idempotent: a rerun removes only what is still due."""
        now = now or datetime.now(UTC)
        newest = self.newest_allowed(now)
        async with self._pool.connection() as conn:
            rows = await store.tenants_retention(conn)
        due = [
            _Due(
                for_system(r["id"], reason="retention applies each tenant's own setting"),
                None if r["legal_hold"] else min(newest, now - timedelta(days=r["retention_days"])),
            )
            for r in rows
        ]
        done: dict[TenantId, Deletion] = {}
        if self._settings.partition_drop:
            for deletion in await self._drop_expired_partitions(due, newest):
                merged = done.setdefault(
                    deletion.tenant, Deletion(deletion.tenant, deletion.before, "retention")
                )
                merged.deleted += deletion.deleted
                merged.batches += deletion.batches
                merged.partitions += deletion.partitions
                merged.seq_ranges = merge_ranges(merged.seq_ranges + deletion.seq_ranges)
        await self.remove_dropped_ids()
        for item in due:
            if item.bound is None:
                log.info("retention: tenant %s is under legal hold, skipped", item.tenant)
                continue
            try:
                deletion = await self.delete_events(
                    item.tenant, SYSTEM_ACTOR, before=item.bound, reason="retention"
                )
            except LegalHold:  # placed since the list was read
                continue
            merged = done.setdefault(item.tenant, Deletion(item.tenant, item.bound, "retention"))
            merged.before = item.bound
            merged.deleted += deletion.deleted
            merged.batches += deletion.batches
            merged.seq_ranges = merge_ranges(merged.seq_ranges + deletion.seq_ranges)
            merged.stopped = deletion.stopped
        return [done[t] for t in sorted(done) if done[t].deleted or done[t].partitions]

    async def _drop_expired_partitions(self, due: list[_Due], newest: datetime) -> list[Deletion]:
        """Drop each month partition that ends before every tenant's bound (and the minimum
        age) and holds nothing of a tenant under legal hold; the deletions per tenant."""
        async with self._pool.connection() as conn:
            months = sorted(await partition_months(conn))
        deletions: list[Deletion] = []
        for month in months:
            month_end = months_from(month, 2)[1]
            if month_end > newest:
                break
            try:
                deletions += await self.drop_month(month, month_end, due)
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
                log.warning("retention: could not drop %s now (%s); batches will do", month, exc)
        return deletions

    async def drop_month(
        self, month: datetime, month_end: datetime, due: list[_Due]
    ) -> list[Deletion]:
        """Drop the partition of the month starting at *month* if every tenant with events
        in it lets them all go; else change nothing. One transaction: the drop, and per
        tenant its rollups for the month, its ``removed_ranges`` rows and its record."""
        await self._writer.ensure_partitions(months_from(datetime.now(UTC), 2))
        try:
            deletions, name = await self._drop_month(month, month_end, due)
        except _Kept:
            return []
        if name is not None:
            self._writer.forget_partitions([month])
            log.info("retention: dropped partition %s (%d tenants)", name, len(deletions))
        return deletions

    async def _drop_month(
        self, month: datetime, month_end: datetime, due: list[_Due]
    ) -> tuple[list[Deletion], str | None]:
        deletions: list[Deletion] = []
        async with self._pool.connection() as conn, conn.transaction():
            if not await store.lock_partition(
                conn, month, lock_timeout_ms=self._settings.lock_timeout_ms
            ):
                return [], None
            removals: list[tuple[_Due, store.Removed]] = []
            for item in due:  # read only: the partition takes no inserts or deletes now
                await set_tenant(conn, item.tenant)
                removed = await store.partition_tenant_removal(conn, item.tenant, month, month_end)
                if removed.events == 0:
                    continue
                if item.bound is None or item.bound < month_end:
                    raise _Kept  # someone keeps something here: the batches will do
                sealed = await self._seq_bound(conn, item.tenant, None)
                if sealed is not None and removed.ranges[-1][1] > sealed:
                    raise _Kept  # not all sealed yet: the batches take what is
                removals.append((item, removed))
            # The month's rollup rows change with the month's events only, which the lock
            # on the partition holds off: no tenant's writes wait for this.
            for item, _ in removals:
                await set_tenant(conn, item.tenant)
                await store.forget_rollups(conn, item.tenant, month, month_end)
            # From here to the commit the tenants' writes wait: records and the drop only.
            for item, removed in removals:
                await set_tenant(conn, item.tenant)
                if await store.lock_tenant(conn, item.tenant):  # a hold placed meanwhile
                    raise _Kept
                assert item.bound is not None  # noqa: S101 - checked above
                deletion = Deletion(
                    item.tenant, item.bound, "retention", deleted=removed.events,
                    partitions=[store.partition_name(month)], seq_ranges=removed.ranges,
                )  # fmt: skip
                await self._record(
                    conn, item.tenant, SYSTEM_ACTOR, removed, deletion, ids_removed=False,
                    partition=store.partition_name(month),
                )  # fmt: skip
                deletions.append(deletion)
            name = await store.drop_partition(conn, month)
        return deletions, name

    async def remove_dropped_ids(self) -> int:
        """Remove the ``event_ids`` rows of events that left with a dropped partition, in
        bounded batches found by their ``removed_ranges``; resumes where a crash left off."""
        async with self._pool.connection() as conn:
            rows = await store.tenants_retention(conn)
        total = 0
        limit = self._settings.batch_size * 5  # narrow rows, no triggers
        for row in rows:
            tenant = for_system(row["id"], reason="finishing a partition drop retention made")
            async with self._pool.connection() as conn:
                async with conn.transaction():
                    await set_tenant(conn, tenant)
                    pending = await store.pending_id_ranges(conn, tenant)
                for first, last in pending:
                    while True:
                        started = time.monotonic()
                        async with conn.transaction():
                            await set_tenant(conn, tenant)
                            n = await store.delete_ids_batch(conn, tenant, first, last, limit)
                        total += n
                        if n < limit:
                            break
                        await self._pause(time.monotonic() - started)
        return total


def deletion_view(deletion: Deletion) -> dict[str, Any]:
    """A deletion as the API and job results show it: the first ``RECORD_MAX_RANGES``
    ranges and their count (the records in the log name them all)."""
    return {
        "deleted": deletion.deleted,
        "before": deletion.before.isoformat(),
        "batches": deletion.batches,
        "seq_ranges": [list(r) for r in deletion.seq_ranges[:RECORD_MAX_RANGES]],
        "seq_ranges_total": len(deletion.seq_ranges),
        "partitions": deletion.partitions,
        "stopped": deletion.stopped,
    }
