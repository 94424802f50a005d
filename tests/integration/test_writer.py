"""The group-commit writer against a real database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.app import create_app
from auditline.config import IngestSettings, Settings
from auditline.domain.events import EventDraft
from auditline.domain.tenants import TenantId, UnknownTenant
from auditline.ingest.prepare import prepare_events
from auditline.ingest.writer import EventWriter, WriterClosed
from auditline.security.tokens import issue_token
from auditline.storage.database import Connection

ACME, GLOBEX = TenantId("acme"), TenantId("globex")


def make(tenant: TenantId, n: int = 1, **fields: object) -> list:  # type: ignore[type-arg]
    drafts = [EventDraft(action="CREATE", **fields) for _ in range(n)]  # type: ignore[arg-type]
    return prepare_events(tenant, drafts, limits=IngestSettings(), now=datetime.now(UTC))


def transactions(database_url: str) -> list[tuple[str, int]]:
    """(tenant, transaction id) of every stored event, in log order."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT tenant_id, xmin::text::bigint FROM events ORDER BY seq")
        return [(r[0], r[1]) for r in rows.fetchall()]


async def test_concurrent_writes_share_commits(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    writer = EventWriter(pool)
    await writer.start()
    results = await asyncio.gather(
        *(
            writer.write(ACME if i % 2 else GLOBEX, make(ACME if i % 2 else GLOBEX))
            for i in range(50)
        )
    )
    await writer.close()
    assert all(len(r.inserted) == 1 for r in results)
    stored = transactions(database_url)
    assert len(stored) == 50
    assert len({xid for _, xid in stored}) < 5  # without group commit: 50 transactions
    for tenant in ("acme", "globex"):
        with psycopg.connect(database_url) as conn:
            seqs = [r[0] for r in conn.execute(
                "SELECT seq FROM events WHERE tenant_id = %s ORDER BY seq", (tenant,)
            ).fetchall()]  # fmt: skip
        assert seqs == list(range(25))


@pytest.mark.parametrize(("linger", "transactions_expected"), [(0.0, 2), (0.5, 1)])
async def test_a_linger_lets_a_later_write_share_the_commit(
    pool: AsyncConnectionPool[Connection],
    database_url: str,
    linger: float,
    transactions_expected: int,
) -> None:
    """A write arriving 20 ms after another shares its commit when the flusher lingers
    longer than that (``ingest.group_linger_ms``), and has one of its own otherwise."""
    writer = EventWriter(pool, linger=linger)
    await writer.start()
    first = asyncio.create_task(writer.write(ACME, make(ACME)))
    await asyncio.sleep(0.02)
    second = asyncio.create_task(writer.write(ACME, make(ACME)))
    await asyncio.gather(first, second)
    await writer.close()
    assert len({xid for _, xid in transactions(database_url)}) == transactions_expected


async def test_a_large_write_commits_alone_in_one_gap_free_block(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    """Bulk-sized writes skip the group queue: each is its own transaction, numbered as
    one contiguous block, interleaved with small grouped writes without gaps."""
    writer = EventWriter(pool)
    await writer.start()
    large = [make(ACME, 40) for _ in range(3)]
    small = [make(ACME) for _ in range(10)]
    results = await asyncio.gather(*(writer.write(ACME, b) for b in [*large, *small]))
    await writer.close()
    stored = transactions(database_url)
    assert len(stored) == 130  # seqs 0..129, all acme (transactions() orders by seq)
    with psycopg.connect(database_url) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq").fetchall()]
    assert seqs == list(range(130))
    for result in results[:3]:
        block = sorted(result.inserted.values())
        assert block == list(range(block[0], block[0] + 40))
        xids = {stored[seq][1] for seq in block}
        assert len(xids) == 1
        assert sum(1 for _, xid in stored if xid in xids) == 40  # nothing else in it


async def test_without_group_commit_every_write_has_its_own_transaction(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    writer = EventWriter(pool, group_commit=False)
    await writer.start()
    await asyncio.gather(*(writer.write(ACME, make(ACME)) for _ in range(10)))
    await writer.close()
    assert len({xid for _, xid in transactions(database_url)}) == 10


async def test_unknown_tenant_fails_only_its_own_write(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    writer = EventWriter(pool)
    await writer.start()
    ghost = TenantId("ghost")
    outcomes = await asyncio.gather(
        writer.write(ACME, make(ACME)),
        writer.write(ghost, make(ghost)),
        writer.write(GLOBEX, make(GLOBEX)),
        return_exceptions=True,
    )
    await writer.close()
    assert isinstance(outcomes[1], UnknownTenant)
    assert [type(o).__name__ for o in (outcomes[0], outcomes[2])] == ["WriteResult"] * 2
    assert sorted(t for t, _ in transactions(database_url)) == ["acme", "globex"]


async def test_a_failing_write_is_isolated_from_its_group(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    """A write that breaks inside the shared transaction is retried alone; others commit."""
    writer = EventWriter(pool)
    await writer.start()
    good = make(ACME, 3)
    (bad,) = make(GLOBEX)
    forged = type(bad)(**{**{f: getattr(bad, f) for f in bad.__slots__}, "leaf_hash": b"short"})
    outcomes = await asyncio.gather(
        writer.write(ACME, good), writer.write(GLOBEX, [forged]), return_exceptions=True
    )
    await writer.close()
    assert isinstance(outcomes[1], psycopg.errors.CheckViolation)
    assert len(outcomes[0].inserted) == 3  # type: ignore[union-attr]
    assert [t for t, _ in transactions(database_url)] == ["acme"] * 3


async def test_same_id_in_concurrent_writes_is_stored_once(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    writer = EventWriter(pool)
    await writer.start()
    event_id = uuid.uuid4()
    results = await asyncio.gather(*(writer.write(ACME, make(ACME, id=event_id)) for _ in range(5)))
    await writer.close()
    assert sorted(len(r.inserted) for r in results) == [0, 0, 0, 0, 1]
    assert sum(len(r.duplicates) for r in results) == 4
    assert len(transactions(database_url)) == 1


async def test_closed_writer_refuses_new_writes_after_finishing_queued_ones(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    writer = EventWriter(pool)
    await writer.start()
    pending = [asyncio.create_task(writer.write(ACME, make(ACME))) for _ in range(20)]
    await asyncio.sleep(0)
    await writer.close()
    assert [len(result.inserted) for result in await asyncio.gather(*pending)] == [1] * 20
    with pytest.raises(WriterClosed):
        await writer.write(ACME, make(ACME))
    assert len(transactions(database_url)) == 20


async def test_a_write_during_shutdown_is_a_503_not_a_500(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        token = issue_token(
            services.signing_key, settings.auth, subject="root", role="admin",
            tenants=["*"], ttl_seconds=600,
        )  # fmt: skip
        admin = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            created = await http.post(
                "/api/v1/tenants", json={"id": "acme", "name": "A"}, headers=admin
            )
            assert created.status_code == 201
            await services.writer.close()  # what shutdown does before the pool goes
            write = await http.post(
                "/api/v1/logs", json={"action": "CREATE", "tenant_id": "acme"}, headers=admin
            )
    assert write.status_code == 503
    assert write.headers["content-type"] == "application/problem+json"
