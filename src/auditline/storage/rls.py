"""Start-up check that row-level security actually binds the API's connections.

Row-level security is the second wall between tenants; it silently does nothing for a
superuser or a role with BYPASSRLS. The API connects as whatever login role it is given and
switches to ``database.app_role``; if the role it ends up with could bypass the policies,
the service refuses to start rather than run with one wall missing.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from auditline.storage.database import Connection


class RlsNotEnforced(RuntimeError):
    """The API's database role bypasses row-level security."""


async def require_row_level_security(pool: AsyncConnectionPool[Connection]) -> None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            """SELECT current_user AS role, rolsuper, rolbypassrls,
                      current_setting('row_security') AS row_security
                 FROM pg_roles WHERE rolname = current_user"""
        )
        row = await cur.fetchone()
    if row is None:  # pragma: no cover - current_user always has a pg_roles row
        raise RlsNotEnforced("cannot determine the database role")
    if row["rolsuper"] or row["rolbypassrls"] or row["row_security"] != "on":
        raise RlsNotEnforced(
            f"the API's database role '{row['role']}' bypasses row-level security "
            "(superuser, BYPASSRLS or row_security=off); set AUDITLINE_DATABASE__APP_ROLE to a "
            "role without them (default auditline_app), or, for debugging only, "
            "AUDITLINE_DATABASE__REQUIRE_RLS=false"
        )
