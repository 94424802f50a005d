"""Several indexers at once: a tenant another indexer holds is skipped, never waited for.

Workers run the indexing task side by side (a long catch-up overlaps the next scheduled
pass). Each tenant's run holds its progress row until it commits, having moved it on; a
second indexer must pass over that tenant at once. Before, taking the row began with an
``INSERT ... ON CONFLICT DO NOTHING``, which waits for any uncommitted change to the
conflicting row, so the second indexer hung for the first one's whole run and failed on
its statement timeout (seen with three indexing passes over the 10 M-event benchmark).
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from auditline.domain.tenants import TenantId
from auditline.storage import search_index as index_store
from auditline.storage.database import Connection, tenant_transaction
from tests.integration.conftest import ACME, GLOBEX


async def _lock_without_waiting(
    pool: AsyncConnectionPool[Connection], tenant: TenantId
) -> int | None:
    async with tenant_transaction(pool, tenant) as conn:
        # A wait of more than a second fails the statement instead of hiding in the test.
        await conn.execute("SET LOCAL lock_timeout = '1s'")
        return await index_store.lock_progress(conn, tenant)


async def test_a_tenant_another_indexer_has_moved_on_is_skipped_at_once(
    pool: AsyncConnectionPool[Connection],
) -> None:
    async with tenant_transaction(pool, ACME) as conn:  # the rows exist, as after a first run
        assert await index_store.lock_progress(conn, ACME) == 0
    async with tenant_transaction(pool, GLOBEX) as conn:
        assert await index_store.lock_progress(conn, GLOBEX) == 0
    async with tenant_transaction(pool, ACME) as running:  # an indexer mid-run
        assert await index_store.lock_progress(running, ACME) == 0
        await index_store.advance(running, ACME, 40)  # uncommitted
        assert await _lock_without_waiting(pool, ACME) is None
        assert await _lock_without_waiting(pool, GLOBEX) == 0  # another tenant is free
    assert await _lock_without_waiting(pool, ACME) == 40  # committed: the next run goes on


async def test_two_first_runs_of_a_new_tenant_do_not_wait_for_each_other(
    pool: AsyncConnectionPool[Connection],
) -> None:
    async with tenant_transaction(pool, ACME) as first:  # creates acme's row, uncommitted
        assert await index_store.lock_progress(first, ACME) == 0
        await index_store.advance(first, ACME, 7)
        assert await _lock_without_waiting(pool, ACME) is None
    assert await _lock_without_waiting(pool, ACME) == 7
