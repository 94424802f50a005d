"""``auditline bench seed``: realistic, skewed audit data for benchmarks and demos.

The shape is what a multi-tenant audit service sees:

* tenant sizes follow Zipf (s = 1): with 100 tenants the largest holds ~19 % of the
  events and most hold well under 1 %;
* within a tenant, users and resources are Zipf-distributed (a few very active ones);
* time has a working-day rhythm (UTC office hours busier than nights) and bursts: a
  few ten-minute windows per tenant take 15 % of its events;
* actions, severities and outcomes have realistic proportions; messages come from
  per-action templates plus words drawn with Zipf frequency from a small vocabulary, so
  some words are very common and some rare (the full-text benchmark needs both), and a
  fixed share carries known marker words (``MARKERS``) with known frequencies.

Events are written through the same storage function as the API's writer
(``storage.events.insert_events``: tenant log-head lock, gap-free ``seq``, ``event_ids``,
row-level security, rollup triggers), in batches of a few thousand per transaction and in
timestamp order per tenant, with real RFC 9162 leaf hashes. Only HTTP, validation and
masking are skipped. Generation is deterministic for a given ``--seed``.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from psycopg_pool import AsyncConnectionPool

from auditline.domain.diffing import changed_fields
from auditline.domain.events import Event, Severity
from auditline.domain.tenants import TenantExists, TenantId
from auditline.ingest.writer import months_from
from auditline.integrity.leaf import leaf_hash
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.events import ensure_partition, insert_events
from auditline.storage.tenants import create_tenant
from auditline.tenancy.scope import for_system

ACTIONS: Final[list[tuple[str, float]]] = [
    ("READ", 38), ("VIEW", 20), ("UPDATE", 12), ("LOGIN", 9), ("LOGOUT", 6), ("CREATE", 6),
    ("DELETE", 2), ("EXPORT", 1), ("ACCESS", 2), ("APPROVE", 1.5), ("REJECT", 0.5),
    ("GRANT", 0.6), ("REVOKE", 0.4), ("SYNC_INVOICES", 1),
]  # fmt: skip
SEVERITY_WEIGHTS: Final[list[tuple[Severity, float]]] = [
    ("INFO", 90), ("WARNING", 7), ("ERROR", 2.5), ("CRITICAL", 0.5),
]  # fmt: skip
RESOURCE_TYPES: Final[list[tuple[str, float]]] = [
    ("document", 30), ("invoice", 20), ("user", 15), ("project", 10), ("order", 10),
    ("report", 6), ("api_key", 3), ("payment", 4), ("setting", 2),
]  # fmt: skip
_WORDS: Final = (
    "account balance batch billing branch budget calendar campaign card catalog channel "
    "checkout client cluster comment compliance config contract coupon credential customer "
    "dashboard database deadline delivery deployment device discount domain draft email "
    "employee endpoint environment estimate event expense feature feedback file folder "
    "forecast gateway group incident integration inventory invoice issue job ledger license "
    "list location lead login mailbox meeting member message migration milestone mobile "
    "module network note notification offer office order organisation owner package page "
    "partner password payment payroll permission phone pipeline plan policy portal price "
    "product profile project proposal purchase quota quote receipt record refund region "
    "release report repository request reservation resource review role roster schedule "
    "schema secret segment server service session setting shipment signature snapshot "
    "storage subscription supplier survey task tax team template tenant ticket timesheet "
    "token transfer trial upload vendor version voucher warehouse webhook workflow workspace"
)
VOCABULARY: Final = tuple(_WORDS.split())
MARKERS: Final[dict[str, float]] = {"quarantine": 0.0002, "escalation": 0.01}
"""Marker words and the share of events whose message carries each (rare and common)."""
REGIONS: Final = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")
PLANS: Final = ("free", "team", "business", "enterprise")
AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "auditline-sdk-python/1.4.2",
    "curl/8.7.1",
    "okhttp/4.12.0",
)
TEMPLATES: Final[dict[str, str]] = {
    "READ": "read {rt} {rid}",
    "VIEW": "viewed {rt} {rid}",
    "UPDATE": "updated {rt} {rid}",
    "LOGIN": "signed in from {region}",
    "LOGOUT": "signed out",
    "CREATE": "created {rt} {rid}",
    "DELETE": "deleted {rt} {rid}",
    "EXPORT": "exported {rt} list",
    "ACCESS": "accessed {rt} {rid} via api",
    "APPROVE": "approved {rt} {rid}",
    "REJECT": "rejected {rt} {rid}",
    "GRANT": "granted role on {rt} {rid}",
    "REVOKE": "revoked role on {rt} {rid}",
    "SYNC_INVOICES": "synchronised invoices with the ledger",
}


def zipf_cum_weights(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (i + 1) ** s for i in range(n)))


def tenant_sizes(events: int, tenants: int) -> list[int]:
    """Zipf (s = 1) split of *events* over *tenants*; every tenant gets at least one."""
    weights = [1.0 / (i + 1) for i in range(tenants)]
    total = sum(weights)
    sizes = [max(1, int(events * w / total)) for w in weights]
    sizes[0] += events - sum(sizes)
    return sizes


@dataclass
class TenantShape:
    tenant: TenantId
    size: int
    users: int
    resources: int
    start: datetime
    end: datetime


class EventFactory:
    """Deterministic generator of one tenant's events, in timestamp order."""

    def __init__(self, shape: TenantShape, rng: random.Random) -> None:
        self.shape = shape
        self.rng = rng
        self.user_cw = zipf_cum_weights(shape.users, 1.1)
        self.resource_cw = zipf_cum_weights(shape.resources, 1.05)
        self.word_cw = zipf_cum_weights(len(VOCABULARY), 1.0)
        self.action_names = [a for a, _ in ACTIONS]
        self.action_cw = list(itertools.accumulate(w for _, w in ACTIONS))
        self.severity_names = [s for s, _ in SEVERITY_WEIGHTS]
        self.severity_cw = list(itertools.accumulate(w for _, w in SEVERITY_WEIGHTS))
        self.type_names = [t for t, _ in RESOURCE_TYPES]
        self.type_cw = list(itertools.accumulate(w for _, w in RESOURCE_TYPES))
        self.hour_cw = list(
            itertools.accumulate(
                (8.0 if 8 <= h < 18 else 3.0 if 6 <= h < 22 else 1.0) for h in range(24)
            )
        )

    def timestamps(self) -> list[datetime]:
        shape, rng = self.shape, self.rng
        span = (shape.end - shape.start).total_seconds()
        days = max(1, int(span // 86400))
        n_bursts = max(1, days // 2) if shape.size >= 1000 else 0
        in_bursts = int(shape.size * 0.15) if n_bursts else 0
        out: list[float] = []
        base = shape.start.timestamp()
        for _ in range(shape.size - in_bursts):
            day = rng.randrange(days)
            hour = rng.choices(range(24), cum_weights=self.hour_cw)[0]
            offset = day * 86400 + hour * 3600 + rng.random() * 3600
            out.append(base + min(offset, span - 1e-3))
        for burst in range(n_bursts):
            at = rng.random() * max(1.0, span - 600)
            count = in_bursts // n_bursts + (1 if burst < in_bursts % n_bursts else 0)
            out.extend(base + at + rng.random() * 600 for _ in range(count))
        out.sort()
        return [datetime.fromtimestamp(round(t, 6), UTC) for t in out]

    def events(self) -> Iterator[Event]:
        shape, rng = self.shape, self.rng
        ip_prefix = f"10.{rng.randrange(256)}"
        sessions: dict[int, str] = {}
        for ts in self.timestamps():
            user = rng.choices(range(shape.users), cum_weights=self.user_cw)[0]
            action = rng.choices(self.action_names, cum_weights=self.action_cw)[0]
            rtype = rng.choices(self.type_names, cum_weights=self.type_cw)[0]
            res = rng.choices(range(shape.resources), cum_weights=self.resource_cw)[0]
            severity: Severity = rng.choices(self.severity_names, cum_weights=self.severity_cw)[0]
            failure = rng.random() < (0.3 if severity in ("ERROR", "CRITICAL") else 0.03)
            if action == "LOGIN" or user not in sessions:
                sessions[user] = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
            region = REGIONS[user % len(REGIONS)]
            rid = f"{rtype[:3]}-{res:06d}"
            words = rng.choices(VOCABULARY, cum_weights=self.word_cw, k=2)
            message = TEMPLATES[action].format(rt=rtype, rid=rid, region=region)
            message += " " + " ".join(words)
            for marker, share in MARKERS.items():
                if rng.random() < share:
                    message += " " + marker
            if failure:
                message += " failed: permission denied"
            metadata: dict[str, Any] = {
                "region": region,
                "plan": PLANS[user % len(PLANS)],
                "client": {"version": f"1.{user % 7}.{res % 11}"},
            }
            if rtype in ("invoice", "payment", "order"):
                metadata["amount"] = round(rng.lognormvariate(4, 1.2), 2)
            before = after = None
            if action == "UPDATE":
                status = rng.choice(("draft", "open", "approved", "closed"))
                before = {"status": status, "owner": f"user-{user:05d}"}
                after = {
                    "status": rng.choice(("open", "approved", "closed")),
                    "owner": before["owner"],
                }
            yield self._event(
                ts=ts, user=f"user-{user:05d}", action=action, rtype=rtype, rid=rid,
                severity=severity, outcome="failure" if failure else "success",
                message=message, metadata=metadata, before=before, after=after,
                session=sessions[user], ip=f"{ip_prefix}.{user % 256}.{res % 250 + 1}",
                agent=AGENTS[user % len(AGENTS)],
                request=uuid.UUID(int=rng.getrandbits(128)).hex if rng.random() < 0.5 else None,
            )  # fmt: skip

    def _event(self, **f: Any) -> Event:
        fields: dict[str, Any] = {
            "tenant_id": self.shape.tenant,
            "id": uuid.UUID(int=self.rng.getrandbits(128), version=4),
            "timestamp": f["ts"],
            "received_at": f["ts"] + timedelta(milliseconds=self.rng.randrange(5, 400)),
            "action": f["action"],
            "severity": f["severity"],
            "metadata": f["metadata"],
            "user_id": f["user"],
            "actor_type": "user",
            "session_id": f["session"],
            "resource_type": f["rtype"],
            "resource_id": f["rid"],
            "ip_address": f["ip"],
            "user_agent": f["agent"],
            "before": f["before"],
            "after": f["after"],
            "changed_fields": changed_fields(f["before"], f["after"])
            if f["before"] is not None
            else None,
            "message": f["message"],
            "request_id": f["request"],
            "outcome": f["outcome"],
        }
        unsigned = Event(leaf_hash=b"", **fields)
        return Event(leaf_hash=leaf_hash(unsigned), **fields)


@dataclass(frozen=True)
class SeedReport:
    tenants: list[tuple[str, int]]
    events: int
    seconds: float


async def seed(
    pool: AsyncConnectionPool[Connection],
    *,
    events: int,
    tenants: int,
    days: int = 30,
    prefix: str = "bench",
    seed_value: int = 42,
    batch_size: int = 5000,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Create *tenants* tenants ``<prefix>-NNN`` and write *events* events over *days*.

    A tenant that already exists is written to as well (its log continues at its head).
    """
    end = (now or datetime.now(UTC)).replace(microsecond=0) - timedelta(minutes=1)
    start = end - timedelta(days=days)
    rng = random.Random(seed_value)  # noqa: S311 - benchmark data, not secrets
    sizes = tenant_sizes(events, tenants)
    shapes = [
        TenantShape(
            tenant=for_system(f"{prefix}-{i:03d}", reason="benchmark data generator"),
            size=size,
            users=max(3, min(20_000, size // 150)),
            resources=max(5, min(200_000, size // 12)),
            start=start,
            end=end,
        )
        for i, size in enumerate(sizes)
    ]
    began = time.perf_counter()
    async with pool.connection() as conn:
        for month in months_from(start, (end.year - start.year) * 12 + end.month - start.month + 1):
            async with conn.transaction():
                await ensure_partition(conn, month)
        for shape in shapes:
            with contextlib.suppress(TenantExists):
                await create_tenant(
                    conn, shape.tenant, name=f"Benchmark tenant {shape.tenant}",
                    retention_days=max(90, days + 1), archive_after_days=None, settings={},
                )  # fmt: skip
    written = 0
    for shape in shapes:
        factory = EventFactory(shape, random.Random(rng.getrandbits(64)))  # noqa: S311
        stream = factory.events()
        while batch := list(itertools.islice(stream, batch_size)):
            async with tenant_transaction(pool, shape.tenant) as conn:
                await insert_events(conn, shape.tenant, batch)
            written += len(batch)
            if progress is not None:
                progress(len(batch))
    return SeedReport(
        tenants=[(s.tenant, s.size) for s in shapes],
        events=written,
        seconds=time.perf_counter() - began,
    )
