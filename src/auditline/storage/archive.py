"""SQL for archival: reading a tenant-day's events out, putting archived ones back, and the
``archives`` table that records what has been archived (migration 0013).

Rows travel as tuples in ``storage.events.COLUMNS`` order, in the forms the Parquet files
keep: JSON as its text (``jsonb::text``, which ``::jsonb`` reads back to the same value),
the address and the severity as text, everything else as PostgreSQL returns it. The
generated ``search_vector`` is not carried: the restore regenerates it from the same values.

Every function here runs inside a tenant transaction (``storage.database.tenant_transaction``)
and names the tenant in its own conditions as well (the first wall; row-level security is
the second).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from auditline.domain.tenants import TenantId
from auditline.storage.database import Connection
from auditline.storage.events import _STAGING_TYPES, COLUMNS

_JSON: Final = frozenset({"before", "after", "metadata"})
_TEXT_CAST: Final = {"ip_address": "text", "severity": "text"} | dict.fromkeys(_JSON, "text")
_SELECT: Final = ", ".join(
    f"{c}::{_TEXT_CAST[c]} AS {c}" if c in _TEXT_CAST else c for c in COLUMNS
)
_RANGE: Final = "tenant_id = %(t)s AND timestamp >= %(start)s AND timestamp < %(end)s"


class RestoreConflict(RuntimeError):
    """An archived event's id is stored with another position (seq or timestamp) in the hot
    log: the archive and the log disagree, and nothing of the day was restored."""


@dataclass(frozen=True, slots=True)
class ArchiveRow:
    tenant_id: TenantId
    day: date
    manifest: dict[str, Any]
    location: str
    created_at: datetime
    updated_at: datetime


async def first_event_at(
    conn: Connection, tenant: TenantId, start: datetime, end: datetime
) -> datetime | None:
    """The earliest timestamp of *tenant*'s events in [*start*, *end*), or None.

    One probe of the ``(tenant_id, timestamp, id)`` key per partition, so walking the days
    that hold events costs a probe per day, not a scan.
    """
    cur = await conn.execute(
        f"SELECT min(timestamp) AS first FROM events WHERE {_RANGE}",  # noqa: S608 - constant
        {"t": tenant, "start": start, "end": end},
    )
    row = await cur.fetchone()
    return None if row is None else row["first"]


async def read_events(
    conn: Connection, tenant: TenantId, start: datetime, end: datetime, *, batch_rows: int
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """*tenant*'s events in [*start*, *end*) in ``seq`` order, *batch_rows* at a time.

    A server-side cursor: memory stays at one batch whatever the day holds. Needs the
    caller's transaction (the cursor lives in it).
    """
    cur = conn.cursor("archive_read", row_factory=tuple_row)
    try:
        await cur.execute(
            f"SELECT {_SELECT} FROM events WHERE {_RANGE} ORDER BY seq",  # noqa: S608 - constants
            {"t": tenant, "start": start, "end": end},
        )
        while rows := await cur.fetchmany(batch_rows):
            yield rows
    finally:
        await cur.close()


async def count_unarchived(
    conn: Connection, tenant: TenantId, start: datetime, end: datetime, ranges: list[list[int]]
) -> int:
    """How many of *tenant*'s events a removal of everything before *end* numbered up to the
    last of *ranges* would take that an archive of [*start*, *end*) holding *ranges*
    (inclusive [first, last] ``seq`` runs) does not hold: events of the day outside the
    ranges, and events of earlier days (late arrivals for days archived before) inside
    that bound. Zero means such a removal takes only archived events."""
    if not ranges:
        raise ValueError("an archive holds at least one event")
    cur = await conn.execute(
        """SELECT count(*) AS n FROM events e
            WHERE tenant_id = %(t)s AND timestamp < %(end)s AND seq <= %(through)s
              AND NOT (timestamp >= %(start)s
                       AND EXISTS (SELECT FROM unnest(%(lo)s::int8[], %(hi)s::int8[]) r(lo, hi)
                                    WHERE e.seq BETWEEN r.lo AND r.hi))""",
        {"t": tenant, "start": start, "end": end, "through": max(r[1] for r in ranges),
         "lo": [r[0] for r in ranges], "hi": [r[1] for r in ranges]},
    )  # fmt: skip
    row = await cur.fetchone()
    return 0 if row is None else int(row["n"])


async def unlist_removed(conn: Connection, tenant: TenantId, ranges: list[list[int]]) -> int:
    """Take restored numbers (*ranges*, inclusive, ascending) out of *tenant*'s
    ``removed_ranges`` (migration 0012), in the caller's transaction; the rows changed.

    That table lists the numbers absent from the log on purpose; restored events are
    present again, and a later removal of them records them anew (its ranges must not
    overlap listed ones). A listed range only partly restored is split around the restored
    numbers, each piece keeping the row's reason, actor, time and job.
    """
    if not ranges:
        return 0
    cur = await conn.execute(
        """SELECT first_seq, last_seq, removed_at, reason, actor, job_id, ids_removed
             FROM removed_ranges
            WHERE tenant_id = %(t)s AND first_seq <= %(hi)s AND last_seq >= %(lo)s
            ORDER BY first_seq FOR UPDATE""",
        {"t": tenant, "lo": ranges[0][0], "hi": ranges[-1][1]},
    )
    changed = 0
    for row in await cur.fetchall():
        pieces = subtract_ranges([row["first_seq"], row["last_seq"]], ranges)
        if pieces == [[row["first_seq"], row["last_seq"]]]:
            continue
        changed += 1
        await conn.execute(
            "DELETE FROM removed_ranges WHERE tenant_id = %(t)s AND first_seq = %(first)s",
            {"t": tenant, "first": row["first_seq"]},
        )
        for first, last in pieces:
            await conn.execute(
                """INSERT INTO removed_ranges (tenant_id, first_seq, last_seq, events,
                                               removed_at, reason, actor, job_id, ids_removed)
                   VALUES (%(t)s, %(first)s, %(last)s, %(n)s, %(at)s, %(reason)s, %(actor)s,
                           %(job)s, %(ids)s)""",
                {"t": tenant, "first": first, "last": last, "n": last - first + 1,
                 "at": row["removed_at"], "reason": row["reason"], "actor": row["actor"],
                 "job": row["job_id"], "ids": row["ids_removed"]},
            )  # fmt: skip
    return changed


def subtract_ranges(whole: list[int], ranges: list[list[int]]) -> list[list[int]]:
    """*whole* (an inclusive [first, last]) without the numbers in *ranges* (ascending,
    disjoint): what is left, as inclusive ranges in order."""
    left: list[list[int]] = []
    at, last = whole
    for lo, hi in ranges:
        if hi < at or lo > last:
            continue
        if lo > at:
            left.append([at, lo - 1])
        at = max(at, hi + 1)
        if at > last:
            break
    if at <= last:
        left.append([at, last])
    return left


def _raw_json(value: str | None) -> Jsonb | None:
    """JSON text bound as ``jsonb`` as it is (not parsed and dumped again)."""
    return None if value is None else Jsonb(value, dumps=_identity)


def _identity(value: str) -> str:
    return value


_RESTORE: Final = f"""
WITH batch AS (
    SELECT * FROM staging_events WHERE tenant_id = %(t)s
), ids AS (
    INSERT INTO event_ids (tenant_id, id, seq, timestamp)
    SELECT tenant_id, id, seq, timestamp FROM batch
    ON CONFLICT (tenant_id, id) DO NOTHING
), stored AS (
    INSERT INTO events ({", ".join(COLUMNS)})
    SELECT {
    ", ".join(
        f"{c}::inet" if c == "ip_address" else f"{c}::severity" if c == "severity" else c
        for c in COLUMNS
    )
}
      FROM batch
    ON CONFLICT (tenant_id, timestamp, id) DO NOTHING
    RETURNING 1
)
SELECT count(*) AS inserted FROM stored
"""  # noqa: S608 - column names are constants
_CONFLICTS: Final = """
SELECT s.id FROM staging_events s
  JOIN event_ids x ON x.tenant_id = %(t)s AND x.id = s.id
 WHERE s.tenant_id = %(t)s AND (x.seq <> s.seq OR x.timestamp <> s.timestamp)
 LIMIT 1
"""


async def restore_events(
    conn: Connection, tenant: TenantId, rows: Sequence[tuple[Any, ...]]
) -> int:
    """Put archived *rows* of *tenant* back, with their own ids, ``seq`` and leaf hashes;
    how many were not stored already. The caller commits.

    Idempotent: an event already in the hot log is left alone (its id row and its event
    row are each inserted only if missing, so a log whose deletion kept the id rows is
    completed too). The log head does not move: these positions were numbered long ago.
    The rollup triggers count what is inserted. Raises :class:`RestoreConflict` when an id
    is stored at another position; a ``seq`` held by another id fails on its unique key.
    Both leave the transaction to be rolled back.
    """
    if any(row[0] != tenant for row in rows):
        raise ValueError(f"an event of another tenant in a restore for tenant {tenant}")
    json_at = [i for i, c in enumerate(COLUMNS) if c in _JSON]
    async with conn.cursor().copy(
        f"COPY staging_events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_STAGING_TYPES)
        for row in rows:
            values = list(row)
            for i in json_at:
                values[i] = _raw_json(values[i])
            await copy.write_row(values)
    cur = await conn.execute(_CONFLICTS, {"t": tenant})
    if (clash := await cur.fetchone()) is not None:
        raise RestoreConflict(f"event {clash['id']} of {tenant} is stored at another position")
    cur = await conn.execute(_RESTORE, {"t": tenant})
    result = await cur.fetchone()
    await conn.execute("TRUNCATE staging_events")
    return 0 if result is None else int(result["inserted"])


_ARCHIVE_COLUMNS: Final = "tenant_id, day, manifest, location, created_at, updated_at"


async def save_archive(
    conn: Connection, tenant: TenantId, day: date, manifest: dict[str, Any], location: str
) -> ArchiveRow:
    """Record *tenant*'s archive of *day* (replacing the record of an earlier one)."""
    cur = await conn.execute(
        f"""INSERT INTO archives (tenant_id, day, manifest, location)
            VALUES (%(t)s, %(day)s, %(manifest)s, %(location)s)
            ON CONFLICT (tenant_id, day) DO UPDATE
               SET manifest = excluded.manifest, location = excluded.location,
                   updated_at = now()
             WHERE archives.tenant_id = %(t)s
            RETURNING {_ARCHIVE_COLUMNS}""",  # noqa: S608 - constant
        {"t": tenant, "day": day, "manifest": Jsonb(manifest), "location": location},
    )
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - an upsert returns its row
    return ArchiveRow(**row)


async def list_archives(
    conn: Connection, tenant: TenantId, first: date | None = None, last: date | None = None
) -> list[ArchiveRow]:
    """*tenant*'s archived days from *first* through *last* (inclusive, either open), by day."""
    cur = await conn.execute(
        f"""SELECT {_ARCHIVE_COLUMNS} FROM archives
             WHERE tenant_id = %(t)s
               AND (%(first)s::date IS NULL OR day >= %(first)s)
               AND (%(last)s::date IS NULL OR day <= %(last)s)
             ORDER BY day""",  # noqa: S608 - constant
        {"t": tenant, "first": first, "last": last},
    )
    return [ArchiveRow(**row) for row in await cur.fetchall()]


async def archiving_tenants(conn: Connection) -> list[tuple[str, int]]:
    """(id, archive_after_days) of every tenant with archival on, by id.

    Not tenant-scoped: the archival task's list of work. ``tenants`` holds no log data.
    """
    cur = await conn.execute(
        "SELECT id, archive_after_days FROM tenants "
        "WHERE archive_after_days IS NOT NULL ORDER BY id"
    )
    return [(row["id"], row["archive_after_days"]) for row in await cur.fetchall()]
