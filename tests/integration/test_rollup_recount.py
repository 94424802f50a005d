"""The rollups hold exactly what counting the events again gives, after inserts and deletes.

The triggers count a statement's events with one GROUPING SETS aggregation (migration
0008), leaving out the service's records of reads (resource type ``audit_log``, migration
0009). The recount here uses the plain per-event form, ``auditline_rollup_rows`` (one
row per event and dimension), so a wrong bit in the triggers' dimension mapping, a key
coalesced differently, a dimension left out or an access record counted shows up as a
difference.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.events import SEVERITIES, EventDraft
from auditline.ingest.prepare import prepare_events
from auditline.storage.database import STAGING_DDL, Connection, set_tenant
from auditline.storage.embedded import EmbeddedPostgres
from auditline.storage.events import ensure_partition, insert_events
from auditline.storage.migrations import migrate
from tests.integration.conftest import ACME, GLOBEX
from tests.integration.rollup_checks import (
    DIFFERENCES,
    FOLDED_DIFFERENCES,
    fold_all,
    heavy_mismatches,
)

NOW = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


def drafts(rng: random.Random, count: int) -> list[EventDraft]:
    """Events over five hours whose optional keys are often missing, each on its own."""

    def maybe(value: str) -> str | None:
        return None if rng.random() < 0.3 else value

    return [
        EventDraft(
            action=rng.choice(["CREATE", "UPDATE", "DELETE", "LOGIN", "CUSTOM_VERB"]),
            severity=rng.choice(SEVERITIES),
            timestamp=NOW - timedelta(minutes=rng.randrange(5 * 60)),
            user_id=maybe(f"user-{rng.randrange(6)}"),
            resource_type=maybe(rng.choice(["doc", "invoice", "audit_log"])),
            resource_id=maybe(f"r-{rng.randrange(9)}"),
            outcome=rng.choice(["success", "failure", None]),
        )
        for _ in range(count)
    ]


async def test_rollups_equal_a_recount_after_inserts_and_deletes(
    pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    rng = random.Random(9162)
    async with pool.connection() as conn:
        for month in {NOW, NOW - timedelta(hours=5)}:
            await ensure_partition(conn, month)
            await conn.commit()
        # Statements of several sizes, both tenants: keys get counted once and then added to.
        for size in (1, 7, 300, 40, 1000):
            for tenant in (ACME, GLOBEX):
                async with conn.transaction():
                    await set_tenant(conn, tenant)
                    events = prepare_events(
                        tenant, drafts(rng, size), limits=IngestSettings(), now=NOW
                    )
                    await insert_events(conn, tenant, events)

    with psycopg.connect(database_url, autocommit=True) as conn:
        # The writes appended deltas and updated no counter (migration 0021) ...
        assert conn.execute("SELECT count(*) FROM event_rollups").fetchone() == (0,)
        dims = {row[0] for row in conn.execute("SELECT DISTINCT dim FROM event_rollup_rows")}
        assert dims == {"total", "action", "severity", "resource_type", "outcome", "user",
                        "resource"}  # fmt: skip
        missing = conn.execute(
            "SELECT count(*) FROM event_rollup_rows WHERE dim <> 'total' AND (k1 = '' OR "
            "(dim = 'resource' AND k2 = ''))"
        ).fetchone()
        assert missing is not None
        assert missing[0] > 0  # missing keys were counted, under ''
        # ... which add up to the recount before any fold, and after it in the counters alone.
        assert conn.execute(DIFFERENCES).fetchall() == []
        assert fold_all(conn) > 0
        assert conn.execute("SELECT count(*) FROM event_rollup_deltas").fetchone() == (0,)
        assert conn.execute(FOLDED_DIFFERENCES).fetchall() == []
        assert heavy_mismatches(conn) == []

        # Retention with a maintenance role: one statement across both tenants.
        deleted = conn.execute(
            "DELETE FROM events WHERE seq % 3 = 0 OR (user_id IS NULL AND seq % 2 = 0)"
        ).rowcount
        assert deleted > 500
        negative = conn.execute("SELECT count(*) FROM event_rollup_deltas WHERE n < 0").fetchone()
        assert negative is not None
        assert negative[0] > 0  # taken back as deltas, not by updating the counters
        assert conn.execute(DIFFERENCES).fetchall() == []
        assert heavy_mismatches(conn) == []
        assert conn.execute(FOLDED_DIFFERENCES).fetchall() == []


async def test_migration_0009_takes_back_the_access_records_counted_before_it(
    pg_server: EmbeddedPostgres,
) -> None:
    name = f"m9_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg_server.url(name)
    try:
        await migrate(url, app_role="auditline_app", up_to=8)
        rng = random.Random(9)
        async with await psycopg.AsyncConnection.connect(
            url, row_factory=dict_row, autocommit=True
        ) as conn:
            await conn.execute(STAGING_DDL)
            for month in {NOW, NOW - timedelta(hours=5)}:
                await ensure_partition(conn, month)
            for tenant in (ACME, GLOBEX):
                async with conn.transaction():  # one staging table's contents per transaction
                    # As 0001-0008 create a tenant (today's create_tenant needs later tables).
                    await conn.execute(
                        "INSERT INTO tenants (id, name) VALUES (%s, %s)", (tenant,) * 2
                    )
                    await conn.execute("INSERT INTO tenant_log_heads VALUES (%s)", (tenant,))
                    drafted = drafts(rng, 400)
                    events = prepare_events(tenant, drafted, limits=IngestSettings(), now=NOW)
                    await insert_events(conn, tenant, events)
        with psycopg.connect(url, autocommit=True) as conn:
            # Before 0009 the access records were counted like any event.
            assert conn.execute(FOLDED_DIFFERENCES).fetchall() != []
        await migrate(url, app_role="auditline_app")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(DIFFERENCES).fetchall() == []
            assert heavy_mismatches(conn) == []
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
