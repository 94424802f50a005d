"""Archival end to end, against real PostgreSQL and a real S3 server (S3Proxy).

Each test runs for both cold-storage backends (``store`` is parametrised): a directory and
an S3 bucket. Archived events leave the hot table through the retention deletion
primitive (``RetentionService.delete_events``), as in the service.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auditline.config import ArchiveSettings, Settings
from auditline.domain.access import Actor
from auditline.domain.tenants import TenantId
from auditline.integrity.leaf import leaf_hash
from auditline.lifecycle.archive.manifest import Manifest, day_bounds, day_prefix
from auditline.lifecycle.archive.parquet import SCHEMA_VERSION
from auditline.lifecycle.archive.service import (
    ArchiveConflict,
    ArchiveCorrupt,
    ArchiveService,
    HotDeleter,
)
from auditline.lifecycle.archive.store import ColdStore, DirectoryStore, S3Store, s3_client
from auditline.services import Services, open_services
from auditline.storage.archive import save_archive
from auditline.storage.database import tenant_transaction
from auditline.storage.events import row_to_stored
from tests.integration.archive_fixtures import OLD_DAY, drafts, removed, snapshot, write
from tests.services.fixtures import Endpoint

ACME, GLOBEX = TenantId("acme"), TenantId("globex")
OPERATOR = Actor("cli:test", "system")


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as services:
        for tenant in (ACME, GLOBEX):
            await services.tenants.create(tenant, OPERATOR, name=tenant, retention_days=365)
        yield services


@pytest.fixture(params=["directory", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ColdStore]:
    if request.param == "directory":
        yield DirectoryStore(tmp_path / "cold")
        return
    endpoint: Endpoint = request.getfixturevalue("s3_server")
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    async with s3_client(
        endpoint_url=endpoint.url, region=endpoint.region,
        access_key=endpoint.access_key, secret_key=endpoint.secret_key,
    ) as client:  # fmt: skip
        await client.create_bucket(Bucket=bucket)
        yield S3Store(client, bucket, "cold/", endpoint=endpoint.url)


def archive_service(services: Services, store: ColdStore, *, remove: bool = True) -> ArchiveService:
    deleter: HotDeleter | None = services.retention.delete_events if remove else None
    return ArchiveService(
        services.pool, store, ArchiveSettings(batch_rows=1000), services.access, deleter=deleter
    )


async def file_bytes(store: ColdStore, key: str) -> bytes:
    return await store.get_bytes(key)


def positions(url: str, tenant: str, day: Any) -> list[tuple[int, datetime]]:
    start, end = day_bounds(day)
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT seq, timestamp FROM events WHERE tenant_id = %s AND timestamp >= %s "
            "AND timestamp < %s ORDER BY seq", (tenant, start, end),
        ).fetchall()  # fmt: skip


async def test_a_day_goes_to_parquet_with_a_manifest_and_leaves_the_hot_table(
    services: Services, store: ColdStore, database_url: str
) -> None:
    await write(services.pool, ACME, drafts(OLD_DAY, 2500))
    await write(services.pool, ACME, drafts(OLD_DAY + timedelta(days=1), 30, seed=8))
    await write(services.pool, GLOBEX, drafts(OLD_DAY, 40, seed=9))
    expected = positions(database_url, ACME, OLD_DAY)
    hot_rows = snapshot(database_url, ACME, OLD_DAY)["events"]
    next_day = snapshot(database_url, ACME, OLD_DAY + timedelta(days=1))
    globex = snapshot(database_url, GLOBEX)

    archive = archive_service(services, store)
    result = await archive.archive_day(ACME, OLD_DAY)

    assert (result.archived, result.removed, result.written) == (2500, 2500, True)
    [row] = await archive.archived_days(ACME)
    manifest = Manifest.from_json(row.manifest)
    seqs = [s for s, _ in expected]
    assert manifest.rows == 2500
    assert (manifest.first_seq, manifest.last_seq) == (min(seqs), max(seqs))
    assert manifest.first_timestamp == min(t for _, t in expected)
    assert manifest.last_timestamp == max(t for _, t in expected)
    assert manifest.seq_ranges == [[min(seqs), max(seqs)]]  # written in one run: contiguous
    assert manifest.schema_version == SCHEMA_VERSION
    assert row.location == store.location(day_prefix(ACME, OLD_DAY) + "manifest.json")
    [entry] = manifest.files
    data = await file_bytes(store, day_prefix(ACME, OLD_DAY) + entry.name)
    assert hashlib.sha256(data).hexdigest() == entry.sha256
    assert len(data) == entry.bytes
    table = pq.read_table(pa.BufferReader(data))
    assert table.num_rows == 2500
    assert table.column("seq").to_pylist() == seqs
    assert table.schema.field("metadata").type == pa.json_()
    assert await store.list(day_prefix(ACME, OLD_DAY)) == sorted(
        [day_prefix(ACME, OLD_DAY) + "manifest.json", day_prefix(ACME, OLD_DAY) + entry.name]
    )
    stored_manifest = await store.get_bytes(day_prefix(ACME, OLD_DAY) + "manifest.json")
    assert Manifest.from_json(orjson.loads(stored_manifest)) == manifest
    # Gone from the hot table; the next day and the other tenant untouched.
    assert len(hot_rows) == 2500
    assert snapshot(database_url, ACME, OLD_DAY)["events"] == []
    assert snapshot(database_url, ACME, OLD_DAY + timedelta(days=1)) == next_day
    assert snapshot(database_url, GLOBEX) == globex


async def test_restore_puts_back_every_column_and_a_second_restore_inserts_nothing(
    services: Services, store: ColdStore, database_url: str
) -> None:
    await write(services.pool, ACME, drafts(OLD_DAY, 1500))
    await write(services.pool, GLOBEX, drafts(OLD_DAY, 1500))  # same ids, other tenant
    before = snapshot(database_url, ACME, OLD_DAY)
    globex = snapshot(database_url, GLOBEX)
    archive = archive_service(services, store)
    await archive.archive_day(ACME, OLD_DAY)
    manifest = Manifest.from_json((await archive.archived_days(ACME))[0].manifest)
    gone = snapshot(database_url, ACME, OLD_DAY)
    assert (gone["events"], gone["ids"], gone["rollups"]) == ([], [], [])
    # The removal is retention's: listed in removed_ranges and recorded in the log.
    with psycopg.connect(database_url) as conn:
        ranges = removed(conn, ACME)
    # Batches go in key (time) order, so one day's seqs may be listed in several runs.
    assert {seq for first, last, _ in ranges for seq in range(first, last + 1)} == set(
        range(manifest.first_seq, manifest.last_seq + 1)
    )
    assert {reason for _, _, reason in ranges} == {"archive"}
    deleted, *_ = access_records(database_url, ACME, "DELETE")
    assert deleted["resource_id"] == "archive"

    restored = await archive.restore(ACME, OLD_DAY, OLD_DAY, actor=OPERATOR)

    assert (restored.days, restored.inserted) == (1, 1500)
    after = snapshot(database_url, ACME, OLD_DAY)
    # Every column (search_vector too), the id rows, the rollups; the numbers are no longer
    # listed as removed (they are in the log again).
    assert after == before
    with psycopg.connect(database_url) as conn:
        assert removed(conn, ACME) == []
    assert snapshot(database_url, GLOBEX) == globex
    with psycopg.connect(database_url) as conn:
        conn.row_factory = psycopg.rows.dict_row
        rows = conn.execute(
            "SELECT tenant_id, id, seq, timestamp, received_at, user_id, actor_type, "
            "session_id, action, resource_type, resource_id, ip_address, user_agent, before, "
            "after, changed_fields, metadata, severity::text AS severity, message, "
            "request_id, outcome, leaf_hash FROM events WHERE tenant_id = 'acme' "
            "AND resource_type IS DISTINCT FROM 'audit_log'"
        ).fetchall()
    assert len(rows) == 1500
    for row in rows:  # the tamper-evidence leaf hashes still verify
        stored = row_to_stored(row).event
        assert leaf_hash(stored) == stored.leaf_hash
    records = access_records(database_url, ACME, "RESTORE")
    assert [r["metadata"]["inserted"] for r in records] == [1500]

    again = await archive.restore(ACME, OLD_DAY, OLD_DAY, actor=OPERATOR)

    assert (again.days, again.inserted) == (1, 0)
    assert snapshot(database_url, ACME, OLD_DAY) == after
    assert len(access_records(database_url, ACME, "RESTORE")) == 1


def access_records(url: str, tenant: str, action: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT user_id, resource_id, metadata FROM events WHERE tenant_id = %s "
            "AND action = %s AND resource_type = 'audit_log' ORDER BY seq", (tenant, action),
        ).fetchall()  # fmt: skip


async def test_a_changed_archive_file_is_detected_and_nothing_is_restored_or_deleted(
    services: Services, store: ColdStore, database_url: str
) -> None:
    await write(services.pool, ACME, drafts(OLD_DAY, 200))
    archive = archive_service(services, store)
    await archive.archive_day(ACME, OLD_DAY)
    [row] = await archive.archived_days(ACME)
    [entry] = Manifest.from_json(row.manifest).files
    key = day_prefix(ACME, OLD_DAY) + entry.name
    data = bytearray(await store.get_bytes(key))
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    await store.put_bytes(key, bytes(data))

    with pytest.raises(ArchiveCorrupt):
        await archive.verify(ACME, OLD_DAY)
    with pytest.raises(ArchiveCorrupt):
        await archive.restore(ACME, OLD_DAY, OLD_DAY, actor=OPERATOR)
    assert snapshot(database_url, ACME, OLD_DAY)["events"] == []
    # A late event for the archived day: archiving it again must merge with the archive,
    # which fails its check, so the late event stays hot.
    await write(services.pool, ACME, drafts(OLD_DAY, 1, seed=99, word="late"))
    late = snapshot(database_url, ACME, OLD_DAY)
    with pytest.raises(ArchiveCorrupt):
        await archive.archive_day(ACME, OLD_DAY)
    assert len(late["events"]) == 1
    assert snapshot(database_url, ACME, OLD_DAY) == late
    assert (await archive.archived_days(ACME))[0].manifest == row.manifest
    # The scheduled task: acme's failure is reported and does not stop globex's archival.
    await write(services.pool, GLOBEX, drafts(OLD_DAY, 10, seed=6))
    for tenant in (ACME, GLOBEX):
        await services.tenants.update(tenant, OPERATOR, {"archive_after_days": 30})
    summary = await archive.run_due_job()
    assert summary == {"days": 1, "archived": 10, "removed": 10, "tenants": [GLOBEX],
                       "failed_tenants": [ACME]}  # fmt: skip
    assert snapshot(database_url, ACME, OLD_DAY) == late


async def test_a_rewritten_archive_file_with_its_manifest_recomputed_is_caught_by_the_tree(
    services: Services, store: ColdStore, database_url: str
) -> None:
    """The administrator edits an archived event, writes the file back and fixes its SHA-256
    in the manifest (both the store's copy and the database's): the file matches its
    manifest, but the edited event no longer hashes to its leaf in the tenant's tree."""
    await write(services.pool, ACME, drafts(OLD_DAY, 50))
    archive = archive_service(services, store)
    await archive.archive_day(ACME, OLD_DAY)
    await archive.verify(ACME, OLD_DAY)  # the untouched archive passes the deep check
    [row] = await archive.archived_days(ACME)
    manifest = Manifest.from_json(row.manifest)
    [entry] = manifest.files
    key = day_prefix(ACME, OLD_DAY) + entry.name
    table = pq.read_table(pa.BufferReader(await store.get_bytes(key)))
    messages = table.column("message").to_pylist()
    messages[7] = "nothing happened here"
    table = table.set_column(
        table.schema.get_field_index("message"), "message", pa.array(messages, pa.string())
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    forged = sink.getvalue().to_pybytes()
    await store.put_bytes(key, forged)
    forged_entry = dataclasses.replace(
        entry, sha256=hashlib.sha256(forged).hexdigest(), bytes=len(forged)
    )
    forged_manifest = dataclasses.replace(manifest, files=[forged_entry])
    async with tenant_transaction(services.pool, ACME) as conn:
        await save_archive(conn, ACME, OLD_DAY, forged_manifest.to_json(), row.location)

    with pytest.raises(ArchiveCorrupt, match="does not hash to its leaf") as caught:
        await archive.verify(ACME, OLD_DAY)
    assert f"seq {table.column('seq')[7].as_py()}" in str(caught.value)


class CorruptingStore(DirectoryStore):
    """A directory whose disk changes a file right after it is written (bit rot, a
    faulty mount): what the read-back verification exists for."""

    async def put_file(self, key: str, source: Path) -> None:
        await super().put_file(key, source)
        data = bytearray(await self.get_bytes(key))
        data[-20] ^= 0x01
        await self.put_bytes(key, bytes(data))


async def test_a_write_that_does_not_read_back_as_written_deletes_nothing(
    services: Services, tmp_path: Path, database_url: str
) -> None:
    await write(services.pool, ACME, drafts(OLD_DAY, 300))
    before = snapshot(database_url, ACME, OLD_DAY)
    archive = archive_service(services, CorruptingStore(tmp_path / "rot"))

    with pytest.raises(ArchiveCorrupt, match="did not read back"):
        await archive.archive_day(ACME, OLD_DAY)

    assert snapshot(database_url, ACME, OLD_DAY) == before
    assert await archive.archived_days(ACME) == []


async def test_archiving_a_day_again_is_idempotent_and_late_events_join_the_archive(
    services: Services, store: ColdStore, database_url: str
) -> None:
    await write(services.pool, ACME, drafts(OLD_DAY, 400))
    archive = archive_service(services, store)
    first = await archive.archive_day(ACME, OLD_DAY)
    [row] = await archive.archived_days(ACME)
    files = await store.list(day_prefix(ACME, OLD_DAY))

    nothing = await archive.archive_day(ACME, OLD_DAY)  # nothing hot: nothing to do
    assert (nothing.archived, nothing.removed, nothing.written) == (400, 0, False)
    # Restored and archived again: the same rows, so the same file; removed again.
    await archive.restore(ACME, OLD_DAY, OLD_DAY, actor=OPERATOR)
    again = await archive.archive_day(ACME, OLD_DAY)
    assert (again.archived, again.removed, again.written) == (400, 400, False)
    assert await store.list(day_prefix(ACME, OLD_DAY)) == files
    assert Manifest.from_json((await archive.archived_days(ACME))[0].manifest).files == (
        Manifest.from_json(row.manifest).files
    )
    assert first.location == again.location

    # An event that arrives late for the archived day joins it: a new file, the old gone.
    await write(services.pool, ACME, drafts(OLD_DAY, 1, seed=5, word="late"))
    late = await archive.archive_day(ACME, OLD_DAY)
    assert (late.archived, late.removed, late.written) == (401, 1, True)
    manifest = Manifest.from_json((await archive.archived_days(ACME))[0].manifest)
    assert manifest.rows == 401
    assert len(manifest.seq_ranges) == 2  # the 400 first, the late one later
    listed = await store.list(day_prefix(ACME, OLD_DAY))
    assert listed == sorted(
        [day_prefix(ACME, OLD_DAY) + "manifest.json", day_prefix(ACME, OLD_DAY)
         + manifest.files[0].name]
    )  # fmt: skip
    assert listed != files
    restored = await archive.restore(ACME, OLD_DAY, OLD_DAY, actor=OPERATOR)
    assert restored.inserted == 401


async def test_a_hot_event_that_differs_from_its_archived_copy_stops_the_archive(
    services: Services, store: ColdStore, database_url: str
) -> None:
    await write(services.pool, ACME, drafts(OLD_DAY, 50))
    archive = archive_service(services, store, remove=False)  # archive stays a copy
    await archive.archive_day(ACME, OLD_DAY)
    with psycopg.connect(database_url) as conn:  # someone edits a stored event
        conn.execute(
            "UPDATE events SET message = 'edited' WHERE tenant_id = 'acme' AND seq = "
            "(SELECT min(seq) FROM events WHERE tenant_id = 'acme')"
        )
    row = (await archive.archived_days(ACME))[0]
    hot = snapshot(database_url, ACME, OLD_DAY)

    with pytest.raises(ArchiveConflict):
        await archive_service(services, store).archive_day(ACME, OLD_DAY)

    assert snapshot(database_url, ACME, OLD_DAY) == hot
    assert (await archive.archived_days(ACME))[0].manifest == row.manifest


async def test_events_committed_after_the_archive_are_not_removed_with_it(
    services: Services, store: ColdStore, database_url: str
) -> None:
    await write(services.pool, ACME, drafts(OLD_DAY, 20))
    archive = archive_service(services, store, remove=False)
    await archive.archive_day(ACME, OLD_DAY)
    manifest = Manifest.from_json((await archive.archived_days(ACME))[0].manifest)
    await write(services.pool, ACME, drafts(OLD_DAY, 1, seed=3, word="late"))
    start, end = day_bounds(OLD_DAY)

    removed = await archive_service(services, store)._remove_from_hot(
        ACME, start, end, manifest, OPERATOR
    )

    assert removed == 20
    [(seq, _)] = positions(database_url, ACME, OLD_DAY)
    assert seq == manifest.last_seq + 1  # the late one, not in the archive, stays hot


async def test_a_late_event_of_an_earlier_day_stops_the_removal(
    services: Services, store: ColdStore, database_url: str
) -> None:
    earlier = OLD_DAY - timedelta(days=1)
    await write(services.pool, ACME, drafts(earlier, 1, seed=4, word="earlier"))  # seq 0
    await write(services.pool, ACME, drafts(OLD_DAY, 30))  # seq 1-30
    hot = snapshot(database_url, ACME)

    result = await archive_service(services, store).archive_day(ACME, OLD_DAY)

    # Removing "older than the day's end, numbered up to 30" would take the earlier day's
    # event, which no archive holds: nothing is removed, the archive is kept.
    assert (result.archived, result.removed) == (30, 0)
    assert snapshot(database_url, ACME) == hot
    # The task goes oldest day first: the earlier day is archived, then the day is removed.
    results = await archive_service(services, store).archive_tenant(ACME, 30)
    assert [(r.day, r.archived, r.removed) for r in results] == [(earlier, 1, 1), (OLD_DAY, 30, 30)]
    assert positions(database_url, ACME, OLD_DAY) == []


async def test_the_archival_task_archives_only_due_days_of_tenants_that_ask_for_it(
    services: Services, store: ColdStore, database_url: str
) -> None:
    recent = (datetime.now(UTC) - timedelta(days=5)).date()
    for tenant in (ACME, GLOBEX):
        await write(services.pool, tenant, drafts(OLD_DAY, 30))
        await write(services.pool, tenant, drafts(OLD_DAY + timedelta(days=2), 10, seed=2))
        await write(services.pool, tenant, drafts(recent, 10, seed=3))
    await services.tenants.update(ACME, OPERATOR, {"archive_after_days": 30})
    globex = snapshot(database_url, GLOBEX)
    recent_acme = snapshot(database_url, ACME, recent)
    archive = archive_service(services, store)

    heard: list[dict[str, Any]] = []

    async def progress(summary: dict[str, Any]) -> None:
        heard.append(summary)

    summary = await archive.run_due_job(progress=progress)  # the archive.due job

    assert summary == {"days": 2, "archived": 40, "removed": 40, "tenants": [ACME],
                       "failed_tenants": []}  # fmt: skip
    assert heard[-1] == summary
    archived = await archive.archived_days(ACME)
    assert [r.day for r in archived] == [OLD_DAY, OLD_DAY + timedelta(days=2)]
    assert await archive.archived_days(GLOBEX) == []
    assert snapshot(database_url, GLOBEX) == globex
    assert snapshot(database_url, ACME, recent) == recent_acme
    assert await archive.archive_due() == []  # nothing left that is due


async def test_archive_before_a_time_archives_part_of_a_day_and_the_rest_joins_later(
    services: Services, store: ColdStore, database_url: str
) -> None:
    earlier = OLD_DAY - timedelta(days=3)
    await write(services.pool, ACME, drafts(earlier, 40, seed=1))
    await write(services.pool, ACME, drafts(OLD_DAY, 300))
    whole_day = snapshot(database_url, ACME, OLD_DAY)
    noon = datetime.combine(OLD_DAY, datetime.min.time(), UTC) + timedelta(hours=12)
    morning = [p for p in positions(database_url, ACME, OLD_DAY) if p[1] < noon]
    archive = archive_service(services, store)

    results = await archive.archive_before(ACME, noon, actor=OPERATOR)

    assert [(r.day, r.archived, r.removed) for r in results] == [
        (earlier, 40, 40), (OLD_DAY, len(morning), len(morning)),
    ]  # fmt: skip
    assert 0 < len(morning) < 300
    assert [p[1] >= noon for p in positions(database_url, ACME, OLD_DAY)] == [True] * (
        300 - len(morning)
    )
    rest = await archive.archive_day(ACME, OLD_DAY)
    assert (rest.archived, rest.removed) == (300, 300 - len(morning))
    assert (await archive.restore(ACME, OLD_DAY, OLD_DAY, actor=OPERATOR)).inserted == 300
    assert snapshot(database_url, ACME, OLD_DAY) == whole_day
