"""SQL for events: the batched write path and reads by id.

The write path for one tenant, inside the caller's transaction: lock the tenant's log
head (``FOR UPDATE``), then one statement that skips ids already stored (its snapshot is
taken after the lock, so no other transaction can store one of them until we commit),
numbers the rest from the head without gaps, inserts them into ``events`` and
``event_ids`` and advances the head. The two statements never wait for each other's
results, so a caller can pipeline them with its commit (``send_insert``): the server runs
lock, insert and commit back to back, and the head stays locked for no client round trip.

The insert reads the batch from one of two sources, with the same guarantees (tested
against each other):

* **column arrays** bound as parameters, for small batches (up to ``SMALL_BATCH``
  events: single events, group-commit groups);
* **the staging table**, for large ones (``stage``): COPY encodes rows several times
  faster than array parameters, and it happens *before* the head is locked, so a second
  transaction of the same tenant transfers its rows while the first is inserting. COPY
  goes through the connection's temporary staging table because PostgreSQL does not allow
  ``COPY FROM`` into a table with row-level security.

Either way row-level security checks every inserted row: a wrong tenant fails loudly
instead of storing nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson
from psycopg.types.json import Jsonb

from auditline.domain.events import Event, StoredEvent, WriteResult
from auditline.domain.normalise import canonical_ip
from auditline.domain.tenants import TenantId, UnknownTenant
from auditline.storage.database import Connection, Cursor

COLUMNS = (
    "tenant_id", "id", "seq", "timestamp", "received_at", "user_id", "actor_type",
    "session_id", "action", "resource_type", "resource_id", "ip_address", "user_agent",
    "before", "after", "changed_fields", "metadata", "severity", "message", "request_id",
    "outcome", "leaf_hash",
)  # fmt: skip
_COLUMN_LIST = ", ".join(COLUMNS)


SMALL_BATCH: Final = 32
"""Batches up to this many events are bound as column arrays, larger ones staged by COPY
(measured on the storage path: arrays win for single events, COPY from a few dozen on)."""

# (column, array type) as the array source unnests them; changed_fields travels as JSON
# because a text[] per event would make a ragged two-dimensional array.
_ARRAYS: Final = (
    ("tenant_id", "text"), ("id", "uuid"), ("timestamp", "timestamptz"),
    ("received_at", "timestamptz"), ("user_id", "text"), ("actor_type", "text"),
    ("session_id", "text"), ("action", "text"), ("resource_type", "text"),
    ("resource_id", "text"), ("ip_address", "inet"), ("user_agent", "text"),
    ("before", "jsonb"), ("after", "jsonb"), ("changed_fields", "jsonb"),
    ("metadata", "jsonb"), ("severity", "severity"), ("message", "text"),
    ("request_id", "text"), ("outcome", "text"), ("leaf_hash", "bytea"),
)  # fmt: skip
_JSON_COLUMNS: Final = frozenset(c for c, t in _ARRAYS if t == "jsonb")
_PLAIN: Final = ", ".join(c for c, _ in _ARRAYS if c != "changed_fields")
_LOCK_HEAD: Final = "SELECT next_seq FROM tenant_log_heads WHERE tenant_id = %(t)s FOR UPDATE"
# Both sources yield the batch's columns and ``ord``, its order (first occurrence first).
# changed_fields arrives as JSON from arrays (see above), as text[] from staging.
_UNNESTED: Final = ", ".join("changed_json" if c == "changed_fields" else c for c, _ in _ARRAYS)
# The arrays are bound in the binary format: psycopg builds a text array literal element by
# element in Python (quoting each): three to four times the cost for groups of 10-30 events.
_FROM_ARRAYS: Final = f"""
    SELECT DISTINCT ON (b.id) b.*
      FROM unnest({", ".join(f"%({c})b::{t}[]" for c, t in _ARRAYS)})
           WITH ORDINALITY AS b({_UNNESTED}, ord)
     ORDER BY b.id, b.ord"""  # noqa: S608 - column names are constants, values bound
# A staged row carries its order in ``seq``; its sequence number is given by the insert.
# Staging holds the address and the severity as text (see STAGING_DDL), typed here.
_STAGED_AS_TEXT: Final = {"ip_address": "inet", "severity": "severity"}
_STAGED: Final = ", ".join(
    f"s.{c}::{_STAGED_AS_TEXT[c]} AS {c}" if c in _STAGED_AS_TEXT else f"s.{c}" for c, _ in _ARRAYS
)
_FROM_STAGING: Final = f"""
    SELECT {_STAGED}, s.seq AS ord
      FROM staging_events s
     WHERE s.seq >= %(first)s AND s.seq < %(stop)s"""  # noqa: S608 - constants only
# The insert answers with the ids of the batch it did not number, those stored before (in
# practice none): every other one was numbered in order from the head the lock read, so
# the caller can tell each event's number without a row per event coming back.
_INSERT: Final = """
WITH batch AS ({source}
), numbered AS (
    SELECT b.*, h.next_seq + row_number() OVER (ORDER BY b.ord) - 1 AS new_seq
      FROM batch b JOIN tenant_log_heads h ON h.tenant_id = %(t)s
     WHERE NOT EXISTS (SELECT FROM event_ids x WHERE x.tenant_id = %(t)s AND x.id = b.id)
), ids AS (
    INSERT INTO event_ids (tenant_id, id, seq, timestamp)
    SELECT tenant_id, id, new_seq, timestamp FROM numbered
), head AS (
    UPDATE tenant_log_heads SET next_seq = next_seq + (SELECT count(*) FROM numbered)
     WHERE tenant_id = %(t)s
), stored AS (
    INSERT INTO events (seq, changed_fields, {plain})
    SELECT new_seq, {changed}, {plain} FROM numbered
)
SELECT b.id FROM batch b WHERE NOT EXISTS (SELECT FROM numbered n WHERE n.id = b.id)
"""
_INSERT_ARRAYS: Final = _INSERT.format(
    source=_FROM_ARRAYS,
    plain=_PLAIN,
    changed="CASE WHEN changed_json IS NOT NULL "
    "THEN ARRAY(SELECT jsonb_array_elements_text(changed_json)) END",
)
_INSERT_STAGED: Final = _INSERT.format(source=_FROM_STAGING, plain=_PLAIN, changed="changed_fields")
# Each column's type in ``events``, for binary COPY; the staging table's differ only where
# it stages text (above).
COLUMN_TYPES: Final = dict(_ARRAYS) | {"seq": "int8", "changed_fields": "text[]"}
_STAGING_TYPES: Final = ["text" if c in _STAGED_AS_TEXT else COLUMN_TYPES[c] for c in COLUMNS]


@dataclass(frozen=True)
class PendingInsert:
    """A batch's statements, sent; their results are read once the server ran them."""

    tenant: TenantId
    events: Sequence[Event]
    lock: Cursor
    insert: Cursor

    async def result(self) -> WriteResult:
        head = await self.lock.fetchone()
        if head is None:
            raise UnknownTenant(self.tenant)
        known = {row["id"] for row in await self.insert.fetchall()}
        return _outcome(self.events, head["next_seq"], known)


async def stage(conn: Connection, events: Sequence[Event], first: int = 0) -> range:
    """COPY *events* into the staging table, numbered from *first*; their numbers.

    Takes no lock, so it may run before the log head is locked. A repeated id is staged
    once, at its first occurrence. Several batches may be staged in one transaction, each
    in its own range; the commit empties the table (``ON COMMIT DELETE ROWS``).
    """
    seen: set[UUID] = set()
    ord_ = first
    statement = f"COPY staging_events ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
    async with conn.cursor().copy(statement) as copy:
        copy.set_types(_STAGING_TYPES)
        for event in events:
            if event.id not in seen:
                seen.add(event.id)
                await copy.write_row(copy_row(event, ord_))
                ord_ += 1
    return range(first, ord_)


async def send_insert(
    conn: Connection, tenant: TenantId, events: Sequence[Event], staged: range | None = None
) -> PendingInsert:
    """Send the lock and the insert of *events* (see the module's docstring).

    With *staged* (what :func:`stage` returned for these *events*) the rows come from the
    staging table, else from column arrays. In pipeline mode nothing waits for the server
    here; call ``result()`` after the pipeline's sync.

    Every event must be *tenant*'s: the statement numbers and checks them against that
    tenant's log but stores each under its own ``tenant_id``, so another tenant's event
    would land in that tenant's log with this one's numbers. Row-level security refuses
    it too, but a role that bypasses it (maintenance, a future worker) must not depend on it.
    """
    if any(event.tenant_id != tenant for event in events):
        raise ValueError(f"an event of another tenant in a write for tenant {tenant}")
    lock = await conn.execute(_LOCK_HEAD, {"t": tenant})
    if staged is not None:
        params: dict[str, Any] = {"t": tenant, "first": staged.start, "stop": staged.stop}
        insert = await conn.execute(_INSERT_STAGED, params)
    else:
        params = {"t": tenant}
        for column, _ in _ARRAYS:
            values = [getattr(event, column) for event in events]
            params[column] = [_jsonb(v) for v in values] if column in _JSON_COLUMNS else values
        insert = await conn.execute(_INSERT_ARRAYS, params)
    return PendingInsert(tenant, events, lock, insert)


def _outcome(events: Sequence[Event], first: int, known: set[UUID]) -> WriteResult:
    """Which of *events* were stored now, numbered from *first* in order as the insert does;
    a *known* id (stored before) or a repeated one is a duplicate."""
    inserted: dict[UUID, int] = {}
    duplicates: list[UUID] = []
    seq = first
    for event in events:
        if event.id in known or event.id in inserted:
            duplicates.append(event.id)
        else:
            inserted[event.id] = seq
            seq += 1
    return WriteResult(inserted=inserted, duplicates=duplicates)


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=_dumps)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def copy_row(event: Event, seq: int) -> tuple[Any, ...]:
    return (
        event.tenant_id, event.id, seq, event.timestamp, event.received_at, event.user_id,
        event.actor_type, event.session_id, event.action, event.resource_type,
        event.resource_id, event.ip_address, event.user_agent, _jsonb(event.before),
        _jsonb(event.after), event.changed_fields, _jsonb(event.metadata), event.severity,
        event.message, event.request_id, event.outcome, event.leaf_hash,
    )  # fmt: skip


async def insert_events(conn: Connection, tenant: TenantId, events: Sequence[Event]) -> WriteResult:
    """Store the events of one tenant that are not stored yet; the caller commits.

    Idempotent per ``(tenant, id)``: an id already stored, or repeated within *events*, is
    reported as a duplicate and the first occurrence wins.
    """
    staged = await stage(conn, events) if len(events) > SMALL_BATCH else None
    return await (await send_insert(conn, tenant, events, staged)).result()


async def get_event(
    conn: Connection, tenant: TenantId, event_id: UUID, *, user_id: str | None = None
) -> StoredEvent | None:
    """The event *event_id* of *tenant*, or None; with *user_id*, only if that user acted."""
    cur = await conn.execute(
        f"""SELECT {", ".join("e." + c for c in COLUMNS)}
              FROM event_ids i
              JOIN events e ON e.tenant_id = i.tenant_id AND e.timestamp = i.timestamp
                           AND e.id = i.id
             WHERE i.tenant_id = %(t)s AND i.id = %(id)s
               AND (%(user)s::text IS NULL OR e.user_id = %(user)s)""",  # noqa: S608
        {"t": tenant, "id": event_id, "user": user_id},
    )
    row = await cur.fetchone()
    return None if row is None else row_to_stored(row)


def row_to_stored(row: dict[str, Any]) -> StoredEvent:
    """Rebuild the domain objects from a row of ``events``."""
    fields = dict(row)
    seq = fields.pop("seq")
    fields["ip_address"] = canonical_ip(
        None if fields["ip_address"] is None else str(fields["ip_address"])
    )
    fields["leaf_hash"] = bytes(fields["leaf_hash"])
    return StoredEvent(event=Event(**fields), seq=seq)


async def partition_months(conn: Connection) -> set[datetime]:
    """First instants (UTC) of the months that have an events partition."""
    cur = await conn.execute(
        """SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS month
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'events'::regclass"""
    )
    # A partition dropped by another process while this reads the catalog has no bound left.
    return {row["month"] for row in await cur.fetchall() if row["month"] is not None}


async def ensure_partition(conn: Connection, ts: datetime) -> str:
    """Create the month partition holding *ts* if missing; returns its name."""
    cur = await conn.execute("SELECT auditline_ensure_event_partition(%s) AS name", (ts,))
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - a function call always returns a row
    return str(row["name"])
