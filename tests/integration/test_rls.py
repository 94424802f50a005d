"""Row-level security, the second wall: a query that forgets its tenant filter leaks nothing.

These tests go through exactly the connections the API uses (``open_pool``: the login role
is the superuser of the test server, then ``SET ROLE auditline_app``) and run deliberately
unfiltered queries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from auditline.app import create_app
from auditline.config import DatabaseSettings, Settings
from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection, open_pool, set_tenant
from auditline.storage.rls import RlsNotEnforced
from tests.conftest import TokenFactory, bearer
from tests.integration.rollup_checks import fold_all

TENANT_TABLES = (
    "events",
    "event_ids",
    "tenant_log_heads",
    "api_keys",
    "event_rollup_rows",  # the rollups folded and not: a view, with the reader's policies
    "event_rollup_heavy",
    "tenant_secrets",
    "jobs",
)


@pytest.fixture
async def app_pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Connection]]:
    pool = await open_pool(database_url, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    yield pool
    await pool.close()


@pytest.fixture
async def two_tenants_with_data(
    client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:  # a job each, and a platform job
        for tenant in (*tenants, None):
            conn.execute(
                "INSERT INTO jobs (id, tenant_id, kind) VALUES (gen_random_uuid(), %s, 'k')",
                (tenant,),
            )
    for tenant in tenants:
        admin = bearer(make_token("admin", tenant))
        for i in range(4):  # one user four times in an hour: a heavy rollup row too
            response = await client.post(
                "/api/v1/logs",
                json={"action": "CREATE", "message": f"{tenant} {i}", "user_id": "u"},
                headers=admin,
            )
            assert response.status_code == 201
        response = await client.post(
            "/api/v1/api-keys", json={"name": tenant, "scopes": ["logs:write"]}, headers=admin
        )
        assert response.status_code == 201


@pytest.mark.usefixtures("two_tenants_with_data")
async def test_unfiltered_queries_see_only_the_current_tenant(
    app_pool: AsyncConnectionPool[Connection], database_url: str
) -> None:
    with psycopg.connect(database_url) as superuser:  # the data really is there
        fold_all(superuser)  # heavy rows are made by the fold (migration 0021)
        for table in TENANT_TABLES:
            row = superuser.execute(
                f"SELECT count(DISTINCT tenant_id) FROM {table} WHERE tenant_id <> 'platform'"  # noqa: S608
            ).fetchone()
            assert row == (2,), table
    async with app_pool.connection() as conn:
        role = await (await conn.execute(
            """SELECT current_user AS role, rolsuper, rolbypassrls FROM pg_roles
                WHERE rolname = current_user""")).fetchone()  # fmt: skip
        assert role == {"role": "auditline_app", "rolsuper": False, "rolbypassrls": False}
        for tenant in ("acme", "globex"):
            async with conn.transaction():
                await set_tenant(conn, TenantId(tenant))
                for table in TENANT_TABLES:
                    cur = await conn.execute(f"SELECT DISTINCT tenant_id FROM {table}")  # noqa: S608
                    assert [r["tenant_id"] for r in await cur.fetchall()] == [tenant], table
                cur = await conn.execute(  # no tenant filter
                    "SELECT message FROM events WHERE resource_type IS NULL ORDER BY seq"
                )
                assert [r["message"] for r in await cur.fetchall()] == [
                    f"{tenant} {i}" for i in range(4)
                ]
                # a partition queried directly is bound by the same policy
                cur = await conn.execute(
                    """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE i.inhparent = 'events'::regclass LIMIT 1"""
                )
                partition = (await cur.fetchone() or {})["relname"]
                cur = await conn.execute(
                    sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(sql.Identifier(partition))
                )
                assert [r["tenant_id"] for r in await cur.fetchall()] in ([tenant], [])


def test_every_table_with_a_tenant_column_is_under_a_policy(database_url: str) -> None:
    with psycopg.connect(database_url) as superuser:
        unguarded = superuser.execute(
            """SELECT c.relname FROM pg_class c
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                 JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
                WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                  AND NOT (c.relrowsecurity AND EXISTS (SELECT FROM pg_policy p
                                                         WHERE p.polrelid = c.oid))"""
        ).fetchall()
    assert unguarded == []


@pytest.mark.usefixtures("two_tenants_with_data")
async def test_without_a_tenant_setting_no_rows_are_visible(
    app_pool: AsyncConnectionPool[Connection],
) -> None:
    async with app_pool.connection() as conn:
        for table in TENANT_TABLES:
            cur = await conn.execute(f"SELECT count(*) AS n FROM {table}")  # noqa: S608
            assert (await cur.fetchone()) == {"n": 0}, table
        await conn.rollback()
        async with conn.transaction():  # an empty setting is no tenant either
            await conn.execute("SELECT set_config('auditline.tenant_id', '', true)")
            cur = await conn.execute("SELECT count(*) AS n FROM events")
            assert (await cur.fetchone()) == {"n": 0}


@pytest.mark.usefixtures("two_tenants_with_data")
async def test_the_app_role_can_neither_write_across_tenants_nor_switch_rls_off(
    app_pool: AsyncConnectionPool[Connection],
) -> None:
    async def as_acme(conn: Connection, statement: str) -> None:
        async with conn.transaction():
            await set_tenant(conn, TenantId("acme"))
            await conn.execute(statement.encode())

    async with app_pool.connection() as conn:
        # a row for another tenant is refused, not silently dropped
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await as_acme(conn, "INSERT INTO tenant_log_heads (tenant_id) VALUES ('globex')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await as_acme(
                conn, "INSERT INTO event_ids VALUES ('globex', gen_random_uuid(), 99, now())"
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await as_acme(conn, "SET LOCAL row_security = off; SELECT count(*) FROM events")
        async with conn.transaction():
            await set_tenant(conn, TenantId("acme"))
            cur = await conn.execute("UPDATE api_keys SET name = name WHERE true")
            assert cur.rowcount == 1  # acme's one key, not globex's


@pytest.mark.usefixtures("two_tenants_with_data")
async def test_the_key_lookup_function_returns_one_exact_prefix_only(
    app_pool: AsyncConnectionPool[Connection],
) -> None:
    async with app_pool.connection() as conn:
        for pattern in ("%", "alk_%", "", "alk_"):
            cur = await conn.execute("SELECT * FROM auditline_api_key_by_prefix(%s)", (pattern,))
            assert await cur.fetchall() == []


async def test_the_service_refuses_to_start_on_a_role_that_bypasses_rls(settings: Settings) -> None:
    settings.database.app_role = ""  # stay the superuser the test server logs in as
    refused = create_app(settings)
    with pytest.raises(RlsNotEnforced, match="bypasses row-level security"):
        async with refused.router.lifespan_context(refused):
            pass
    settings.database.require_rls = False  # the explicit escape hatch, for debugging
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
