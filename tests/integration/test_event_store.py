"""The two sources of the write path (column arrays, COPY staging) store exactly the same thing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.events import Event, EventDraft, WriteResult
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.storage import events as store
from auditline.storage.database import Connection, set_tenant

ACME, GLOBEX = TenantId("acme"), TenantId("globex")
NOW = datetime.now(UTC)
Store = Callable[[Connection, TenantId, list[Event]], Awaitable[WriteResult]]


async def via_arrays(conn: Connection, tenant: TenantId, events: list[Event]) -> WriteResult:
    return await (await store.send_insert(conn, tenant, events)).result()


async def via_copy(conn: Connection, tenant: TenantId, events: list[Event]) -> WriteResult:
    staged = await store.stage(conn, events)
    return await (await store.send_insert(conn, tenant, events, staged)).result()


SHAPES = pytest.mark.parametrize("write", [via_arrays, via_copy], ids=["arrays", "copy"])


def rich_events(tenant: TenantId, n: int) -> list[Event]:
    """Events using every column, including NULLs, JSON, changed fields and IPv6."""
    drafts = [
        EventDraft(
            action="UPDATE", user_id=f"u{i}", actor_type="user", session_id="s",
            resource_type="invoice", resource_id=f"inv-{i}", severity="WARNING",
            ip_address="2001:db8::1" if i % 2 else "10.0.0.7", user_agent="curl/8",
            before={"total": i, "lines": [1, 2], "note": "a\tb"}, after={"total": i + 1},
            metadata={"k": {"nested": [True, None, 1.5]}}, message=f"changed {i} \u00e9",
            request_id=f"r{i}", outcome="success", timestamp=NOW - timedelta(minutes=i),
        )
        if i % 3
        else EventDraft(action="LOGIN")
        for i in range(n)
    ]  # fmt: skip
    return prepare_events(tenant, drafts, limits=IngestSettings(), now=NOW)


async def write_in_transaction(
    pool: AsyncConnectionPool[Connection], write: Store, tenant: TenantId, events: list[Event]
) -> WriteResult:
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, tenant)
        return await write(conn, tenant, events)


async def stored(pool: AsyncConnectionPool[Connection], tenant: TenantId) -> list[object]:
    async with pool.connection() as conn, conn.transaction():
        await set_tenant(conn, tenant)
        cur = await conn.execute(
            f"SELECT {', '.join(store.COLUMNS)} FROM events ORDER BY seq"  # noqa: S608
        )
        return [store.row_to_stored(row) for row in await cur.fetchall()]


@SHAPES
async def test_new_repeated_and_stored_ids_in_one_batch(
    pool: AsyncConnectionPool[Connection], write: Store
) -> None:
    first = rich_events(ACME, 2)
    await write_in_transaction(pool, write, ACME, first)
    new = rich_events(ACME, 3)
    repeated = dataclasses.replace(new[1], message="a retry with another body")
    batch = [new[0], first[1], new[1], new[2], repeated]
    result = await write_in_transaction(pool, write, ACME, batch)
    # Gap-free from the head (2), in batch order, first occurrence wins.
    assert result.inserted == {new[0].id: 2, new[1].id: 3, new[2].id: 4}
    assert result.duplicates == [first[1].id, repeated.id]
    rows = await stored(pool, ACME)
    assert [r.seq for r in rows] == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]
    assert [r.event for r in rows] == [*first, new[0], new[1], new[2]]  # type: ignore[attr-defined]


async def test_both_shapes_store_identical_rows(pool: AsyncConnectionPool[Connection]) -> None:
    events = rich_events(ACME, 7)
    # changed_fields travels as JSON in the array shape: both a list and NULL are covered.
    assert {e.changed_fields is None for e in events} == {True, False}
    await write_in_transaction(pool, via_arrays, ACME, events)
    twins = [dataclasses.replace(e, tenant_id=GLOBEX) for e in events]
    await write_in_transaction(pool, via_copy, GLOBEX, twins)
    arrays, copied = await stored(pool, ACME), await stored(pool, GLOBEX)
    assert [dataclasses.replace(r.event, tenant_id=GLOBEX) for r in arrays] == [  # type: ignore[attr-defined]
        r.event  # type: ignore[attr-defined]
        for r in copied
    ]
    assert [r.seq for r in arrays] == [r.seq for r in copied] == list(range(7))  # type: ignore[attr-defined]


@SHAPES
async def test_a_row_of_another_tenant_fails_loudly(
    pool: AsyncConnectionPool[Connection], write: Store, database_url: str
) -> None:
    # The write says acme; the rows say globex: refused before anything is sent (row-level
    # security would refuse them too: test_repository_tenant_wall.py proves the first wall
    # without it), instead of storing nothing or storing them in the wrong log.
    strangers = rich_events(GLOBEX, 2)
    with pytest.raises(ValueError, match="another tenant"):
        await write_in_transaction(pool, write, ACME, strangers)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)


@SHAPES
async def test_an_unknown_tenant_stores_nothing(
    pool: AsyncConnectionPool[Connection], write: Store, database_url: str
) -> None:
    ghost = TenantId("ghost")
    with pytest.raises(store.UnknownTenant):
        await write_in_transaction(pool, write, ghost, rich_events(ghost, 2))
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM event_ids").fetchone() == (0,)


@pytest.mark.parametrize("size", [3, 40], ids=["arrays", "staged"])
async def test_a_pipelined_group_commits_every_tenant_at_once(
    pool: AsyncConnectionPool[Connection], database_url: str, size: int
) -> None:
    """Both tenants' batches staged in one table, then locked, inserted and committed in one
    pipeline: each tenant gets exactly its own rows, numbered from 0."""
    batches = {ACME: rich_events(ACME, size), GLOBEX: rich_events(GLOBEX, size + 2)}
    async with pool.connection() as conn:
        staged: dict[TenantId, range] = {}
        if size > store.SMALL_BATCH:
            first = 0
            for tenant, events in batches.items():
                staged[tenant] = await store.stage(conn, events, first)
                first = staged[tenant].stop
            assert list(staged.values()) == [range(0, size), range(size, 2 * size + 2)]
        sent = []
        async with conn.pipeline():
            for tenant, events in batches.items():
                await set_tenant(conn, tenant)
                sent.append(await store.send_insert(conn, tenant, events, staged.get(tenant)))
            await conn.commit()
        results = [await s.result() for s in sent]
    assert [sorted(r.inserted.values()) for r in results] == [
        list(range(size)), list(range(size + 2))
    ]  # fmt: skip
    assert [list(r.inserted) for r in results] == [[e.id for e in b] for b in batches.values()]
    with psycopg.connect(database_url) as conn:
        xmins = conn.execute("SELECT count(DISTINCT xmin::text) FROM events").fetchone()
        assert xmins == (1,)  # one transaction for both tenants


async def test_staging_takes_no_lock_so_it_overlaps_another_writer(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    """While another transaction holds acme's log head, a second one stages its whole batch;
    only its insert waits, and it then numbers after the first one's events."""
    first, second = rich_events(ACME, 40), rich_events(ACME, 40)
    async with pool.connection() as holder, pool.connection() as conn:
        await set_tenant(holder, ACME)
        await holder.execute(
            "SELECT next_seq FROM tenant_log_heads WHERE tenant_id = 'acme' FOR UPDATE"
        )
        staged = await asyncio.wait_for(store.stage(conn, second), timeout=10)
        assert staged == range(40)
        await set_tenant(conn, ACME)
        sent = asyncio.create_task(store.send_insert(conn, ACME, second, staged))
        await asyncio.sleep(0.3)
        assert not sent.done()  # the insert does wait for the head
        await via_copy(holder, ACME, first)
        await holder.commit()
        result = await (await asyncio.wait_for(sent, timeout=10)).result()
        await conn.commit()
    assert sorted(result.inserted.values()) == list(range(40, 80))
