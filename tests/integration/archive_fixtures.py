"""Events to archive, and snapshots of what the database holds, for the archival tests."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.events import SEVERITIES, EventDraft
from auditline.domain.tenants import TenantId
from auditline.evidence.sealer import Sealer
from auditline.ingest.prepare import prepare_events
from auditline.integrity.note import Ed25519Signer
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.events import insert_events

OLD_DAY = (datetime.now(UTC) - timedelta(days=40)).date()
"""A day the test template has a partition for, old enough to archive."""


def drafts(day: date, count: int, *, seed: int = 7, word: str = "event") -> list[EventDraft]:
    """*count* events spread over *day*, using every column (JSON with unicode, nested
    values, numbers; IPv4 and IPv6; before/after with changed fields; every severity)."""
    rng = random.Random(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    out = []
    for i in range(count):
        update = i % 3 == 0
        out.append(
            EventDraft(
                action="UPDATE" if update else rng.choice(["READ", "LOGIN", "CUSTOM_VERB"]),
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                timestamp=start + timedelta(seconds=rng.randrange(86_400), microseconds=i),
                severity=rng.choice(SEVERITIES),
                metadata={"n": i, "price": 12.50, "big": 2**53 - 1, "tiny": 1e-300,
                          "pi": 3.141592653589793, "ünï": "cödé",
                          "nested": {"list": [1, "two", None, True], "empty": {}}},
                user_id=f"user-{rng.randrange(5)}",
                actor_type=rng.choice(["user", "service", "system"]),
                session_id=None if i % 4 else f"s-{i}",
                resource_type=rng.choice(["doc", "invoice", None]),
                resource_id=f"r-{rng.randrange(9)}",
                ip_address=rng.choice(["10.1.2.3", "2001:db8::1", None]),
                user_agent="agent/1.0",
                before={"status": "draft", "n": i} if update else None,
                after={"status": "open", "n": i, "extra": [1, 2]} if update else None,
                message=f"{word} {i} — ünïcödé",
                request_id=uuid.UUID(int=rng.getrandbits(128)).hex if i % 2 else None,
                outcome=rng.choice(["success", "failure", None]),
            )
        )  # fmt: skip
    return out


async def write(
    pool: AsyncConnectionPool[Connection], tenant: TenantId, events: list[EventDraft]
) -> None:
    prepared = prepare_events(tenant, events, limits=IngestSettings(), now=datetime.now(UTC))
    for i in range(0, len(prepared), 500):
        async with tenant_transaction(pool, tenant) as conn:
            await insert_events(conn, tenant, prepared[i : i + 500])
    # Only sealed events may leave the hot table (retention's sealed_through bound). A
    # throwaway key will do: these tests archive, they do not verify checkpoints.
    sealer = Sealer(
        pool, Ed25519Signer(Ed25519PrivateKey.generate(), "auditline.localhost"),
        "auditline.localhost", _NoWitness(),
    )  # fmt: skip
    await sealer.seal_until_current(tenant, wait=True)


class _NoWitness:
    """These checkpoints are signed by a throwaway key: nobody needs a copy of them."""

    async def append(self, tenant: TenantId, tree_size: int, note: str) -> None:
        return None


def snapshot(url: str, tenant: str, day: date | None = None) -> dict[str, Any]:
    """Every column of the tenant's events (of *day*, or all), its id rows, rollups (of the
    day's hours) and, without *day*, its removed ranges and log head, as the superuser sees
    them (no row-level security). Those two are the tenant's, not a day's, and move with
    every record the service writes now (deletion, restore)."""
    where = buckets = "tenant_id = %(t)s"
    params: dict[str, Any] = {"t": tenant}
    if day is not None:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        where += " AND timestamp >= %(start)s AND timestamp < %(end)s"
        buckets += " AND bucket >= %(start)s AND bucket < %(end)s"
        params |= {"start": start, "end": start + timedelta(days=1)}
    with psycopg.connect(url) as conn:
        return {
            "events": conn.execute(
                f"SELECT e::text FROM events e WHERE {where} ORDER BY seq",  # noqa: S608
                params,
            ).fetchall(),
            "ids": conn.execute(
                f"SELECT i::text FROM event_ids i WHERE {where} ORDER BY seq",  # noqa: S608
                params,
            ).fetchall(),
            "rollups": conn.execute(  # folded and not, as readers add them up (0021)
                f"SELECT dim, bucket, k1, k2, sum(n) FROM event_rollup_rows WHERE {buckets} "  # noqa: S608
                "GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4", params,
            ).fetchall(),
        } | ({} if day is not None else {
            "removed": removed(conn, tenant),
            "head": conn.execute(
                "SELECT next_seq FROM tenant_log_heads WHERE tenant_id = %(t)s", params
            ).fetchall(),
        })  # fmt: skip


def removed(conn: psycopg.Connection[Any], tenant: str) -> list[tuple[Any, ...]]:
    """The tenant's ``removed_ranges``: (first_seq, last_seq, reason), in order."""
    return conn.execute(
        "SELECT first_seq, last_seq, reason FROM removed_ranges WHERE tenant_id = %s "
        "ORDER BY first_seq", (tenant,),
    ).fetchall()  # fmt: skip
