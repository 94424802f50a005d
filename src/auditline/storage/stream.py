"""SQL for live streams: the announcement channel, new rows by ``seq``, replay by ``seq``.

A commit that appends to a tenant's log sends ``NOTIFY auditline_events, '<tenant> <first>
<last>'`` (migration 0017's trigger on ``tenant_log_heads``); a process reads the rows of
that range here once, whatever the number of its subscribers. ``seq`` is gap-free and in
commit order per tenant, so "every event after seq N" is exact, which is what resume rests
on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from psycopg import sql

from auditline.domain.events import StoredEvent
from auditline.domain.tenants import TenantId
from auditline.search.model import SearchQuery
from auditline.search.query import Text
from auditline.storage.database import Connection
from auditline.storage.events import COLUMNS, row_to_stored
from auditline.storage.search.compiler import Compiler, where_all

CHANNEL: Final = "auditline_events"
"""The NOTIFY channel every append is announced on (see migration 0017)."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """A committed append: *tenant*'s events with ``first <= seq <= last``."""

    tenant: str
    first: int
    last: int


def parse_announcement(payload: str) -> Announcement | None:
    """The reference a notification carries, or None for a payload that is not one."""
    parts = payload.split(" ")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return Announcement(parts[0], int(parts[1]), int(parts[2]))


async def last_seq(conn: Connection, tenant: TenantId) -> int:
    """The ``seq`` of *tenant*'s last committed event (-1 for an empty log)."""
    cur = await conn.execute(
        "SELECT next_seq FROM tenant_log_heads WHERE tenant_id = %s", (tenant,)
    )
    row = await cur.fetchone()
    return int(row["next_seq"]) - 1 if row else -1


@dataclass(frozen=True, slots=True)
class NewEvent:
    event: StoredEvent
    hits: tuple[bool, ...]
    """Whether its ``search_vector`` matches each term asked for, in their order."""


async def events_after(
    conn: Connection,
    tenant: TenantId,
    after: int,
    upto: int,
    terms: Sequence[Text] = (),
    *,
    limit: int,
) -> list[NewEvent]:
    """*tenant*'s events with ``after < seq <= upto``, in ``seq`` order, at most *limit*;
    with each, whether it matches each full-text term of *terms* (decided by PostgreSQL,
    with the very tsquery the search compiler builds)."""
    c = Compiler("e")
    hits: sql.Composable = sql.SQL("ARRAY[]::boolean[]")
    if terms:
        hits = sql.SQL("ARRAY[{}]").format(
            sql.SQL(", ").join(
                sql.SQL("coalesce({} @@ {}, false)").format(c.col("search_vector"), c.tsquery(t))
                for t in terms
            )
        )
    statement = sql.SQL(
        """SELECT {columns}, {hits} AS hits
             FROM event_ids i
             JOIN events e ON e.tenant_id = i.tenant_id AND e.timestamp = i.timestamp
                          AND e.id = i.id
            WHERE i.tenant_id = {t} AND e.tenant_id = {t}
              AND i.seq > {after} AND i.seq <= {upto}
            ORDER BY i.seq
            LIMIT {limit}"""
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("e", col) for col in COLUMNS),
        hits=hits,
        t=c.param(tenant),
        after=c.param(after),
        upto=c.param(upto),
        limit=c.param(limit),
    )
    cur = await conn.execute(statement, c.params)
    out = []
    for row in await cur.fetchall():
        flags = tuple(row.pop("hits"))
        out.append(NewEvent(row_to_stored(row), flags))
    return out


async def replay(
    conn: Connection, tenant: TenantId, query: SearchQuery, after: int, upto: int, *, limit: int
) -> list[StoredEvent]:
    """*tenant*'s stored events matching *query* with ``after < seq <= upto``, in ``seq``
    order, at most *limit* (the compiled query of a search: the same answers)."""
    c = Compiler("e")
    conditions = c.base(tenant, query)
    if query.q is not None:
        conditions.append(c.node(query.q))
    statement = sql.SQL(
        """SELECT {columns}
             FROM event_ids i
             JOIN events e ON e.tenant_id = i.tenant_id AND e.timestamp = i.timestamp
                          AND e.id = i.id
            WHERE i.tenant_id = {t} AND i.seq > {after} AND i.seq <= {upto} AND {where}
            ORDER BY i.seq
            LIMIT {limit}"""
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("e", col) for col in COLUMNS),
        t=c.param(tenant),
        after=c.param(after),
        upto=c.param(upto),
        where=where_all(conditions),
        limit=c.param(limit),
    )
    cur = await conn.execute(statement, c.params)
    return [row_to_stored(row) for row in await cur.fetchall()]
