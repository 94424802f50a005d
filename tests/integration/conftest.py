"""Fixtures shared by the integration tests below the HTTP layer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from auditline.config import DatabaseSettings
from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection, open_pool
from auditline.storage.tenants import create_tenant

ACME, GLOBEX = TenantId("acme"), TenantId("globex")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Connection]]:
    """An application pool on a database with the tenants acme and globex."""
    pool = await open_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=4))
    async with pool.connection() as conn:
        for tenant in (ACME, GLOBEX):
            await create_tenant(
                conn, tenant, name=tenant, retention_days=90, archive_after_days=None, settings={}
            )
    yield pool
    await pool.close()
