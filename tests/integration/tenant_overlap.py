"""Two tenants whose data overlap wherever a missing tenant condition could show, and what
each of them should get back.

Used by the tenant-wall tests (``test_search_backend_contract.py``,
``test_repository_tenant_wall.py``). Both tenants use the same user ids, words, metadata,
actions and resource types; 48 events have the same id *and* timestamp in both tenants;
their other timestamps interleave and include ties. So any query that loses its tenant
condition returns rows of the other tenant, and every search case below matches events of
both tenants (``test_every_case_matches_events_of_both_tenants`` keeps it so).

The expected answers are computed here from the events as written, by a small reference
evaluator of the query language. It is exact for this data only: message words are
chosen so that English stemming maps each to its own stem, no phrase word occurs in the
metadata, and metadata strings are single lower-case words.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from psycopg_pool import AsyncConnectionPool

from auditline.config import IngestSettings
from auditline.domain.events import SEVERITIES, Event, EventDraft
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.search import evaluate
from auditline.search.model import (
    INTERVAL_SECONDS,
    Bucket,
    Count,
    Interval,
    Order,
    ResourceCount,
    SearchFilters,
    SearchQuery,
    Stats,
)
from auditline.search.query import Text, parse
from auditline.storage.database import Connection, tenant_transaction
from auditline.storage.events import insert_events
from tests.integration.conftest import ACME, GLOBEX
from tests.integration.search_fixtures import base_time

TENANTS: Final = (ACME, GLOBEX)
Key = tuple[str, uuid.UUID]
"""How results are compared: (tenant_id, id). Ids alone would not do: 48 are in both."""

SHARED: Final = 48
_OWN: Final = {ACME: 100, GLOBEX: 130}
_EARLY: Final = 4  # per tenant, a day before the window: outside every time range below
_NAMESPACE: Final = uuid.UUID("8f3c1a52-4b7e-4d0e-9a61-2f5d3c7b9e10")

# Each word is its own English stem class (payment, refund, card, declin, invoic,
# password, report); none is a stop word.
_WORDS: Final = ("payment", "refund", "card", "declined", "invoice", "password", "report")
_USERS: Final = ("alice", "bob", "carol", "dave", None)
# alice dominates acme, bob globex: heavy rollup rows in every hour, and different top lists.
_USER_WEIGHTS: Final = {ACME: (9, 3, 2, 2, 1), GLOBEX: (2, 8, 3, 2, 1)}
_ACTIONS: Final = ("LOGIN", "LOGOUT", "READ", "UPDATE", "DELETE", "EXPORT")
_RESOURCES: Final = (
    ("invoice", "inv-1001"), ("invoice", "inv-1002"), ("document", "doc-7"),
    ("report", "rep-1"), (None, None),
)  # fmt: skip
_IPS: Final = ("10.0.0.5", "10.1.2.3", "192.168.1.20", "2001:db8::10", None)
_TAGS: Final = ("billing", "urgent", "refund")  # "refund" is also a message word
_PLANS: Final = ("pro", "basic", "payout")  # "payout" shares a prefix with "payment"
_AMOUNTS: Final = (10, 55, 99, 100, 120, 180.5, "120")  # "120": a string, not a number


def shared_id(k: int) -> uuid.UUID:
    """The id of the *k*-th event both tenants hold (with the same timestamp)."""
    return uuid.uuid5(_NAMESPACE, f"shared-{k}")


def _draft(
    rng: random.Random, tenant: TenantId, event_id: uuid.UUID, ts: datetime, n: int
) -> EventDraft:
    user = rng.choices(_USERS, _USER_WEIGHTS[tenant])[0]
    resource_type, resource_id = rng.choice(_RESOURCES)
    words = rng.choices(_WORDS, k=rng.randint(2, 4))
    if n % 9 == 0:
        words[-1:] = ["card", "declined"]  # the phrase
    elif n % 11 == 0:
        words[-1:] = ["declined", "card"]  # both words, not the phrase
    metadata: dict[str, Any] = {}
    if rng.random() < 0.8:
        metadata["geo"] = {"country": rng.choice(("DE", "FR", "US"))}
    if rng.random() < 0.6:
        metadata["amount"] = rng.choice(_AMOUNTS)
    if rng.random() < 0.5:
        metadata["tags"] = rng.sample(_TAGS, rng.randint(1, 2))
    if rng.random() < 0.5:
        metadata["plan"] = rng.choice(_PLANS)
    if rng.random() < 0.3:
        metadata["flag"] = rng.random() < 0.5
    return EventDraft(
        action=rng.choice(_ACTIONS), id=event_id, timestamp=ts,
        severity=rng.choices(SEVERITIES, (6, 3, 2, 1))[0], metadata=metadata, user_id=user,
        actor_type="user" if user else "system", session_id=rng.choice(("s-1", "s-2", "s-3")),
        resource_type=resource_type, resource_id=resource_id, ip_address=rng.choice(_IPS),
        message=" ".join(words), request_id=f"r-{rng.randrange(6)}",
        outcome=rng.choice(("success", "failure", None)),
    )  # fmt: skip


@dataclass(frozen=True)
class Overlap:
    """The data set as written: per tenant, its events in write order."""

    base: datetime
    """Start of the five-hour window (two days ago, on the hour) holding most events."""
    events: dict[TenantId, list[Event]]

    def own_ids(self, tenant: TenantId) -> list[uuid.UUID]:
        """Ids only *tenant* holds."""
        other = {e.id for t, events in self.events.items() if t != tenant for e in events}
        return [e.id for e in self.events[tenant] if e.id not in other]

    def event(self, tenant: TenantId, event_id: uuid.UUID) -> Event:
        return next(e for e in self.events[tenant] if e.id == event_id)

    def expected(self, tenant: TenantId, query: SearchQuery, order: Order = "desc") -> list[Key]:
        """Keys of *tenant*'s events matching *query*, in (timestamp, id) *order*."""
        found = sorted(
            (e for e in self.events[tenant] if matches(e, query)), key=lambda e: (e.timestamp, e.id)
        )
        if order == "desc":
            found.reverse()
        return [(e.tenant_id, e.id) for e in found]

    def stats(
        self,
        tenant: TenantId,
        query: SearchQuery,
        *,
        start: datetime,
        end: datetime,
        interval: Interval,
        top: int,
    ) -> Stats:
        """The statistics of *tenant*'s events matching *query* in [start, end)."""
        chosen = [
            e for e in self.events[tenant] if start <= e.timestamp < end and matches(e, query)
        ]

        def counts(values: Iterator[str | None]) -> list[Count]:
            return [Count(k, n) for k, n in Counter(values).items()]

        users = Counter(e.user_id for e in chosen if e.user_id is not None)
        resources = Counter(
            (e.resource_type, e.resource_id) for e in chosen if e.resource_id is not None
        )
        step = timedelta(seconds=INTERVAL_SECONDS[interval])
        per_bucket = Counter(_floor(e.timestamp, interval) for e in chosen)
        timeline: list[Bucket] = []
        bucket = _floor(start, interval)
        while bucket < end:
            timeline.append(Bucket(bucket, per_bucket[bucket]))
            bucket += step
        return Stats(
            start=start, end=end, interval=interval, total=len(chosen),
            by_action=sorted(counts(e.action for e in chosen), key=_by_count),
            by_severity=sorted(counts(e.severity for e in chosen),
                               key=lambda c: _RANK[c.key or ""]),
            by_resource_type=sorted(counts(e.resource_type for e in chosen), key=_by_count),
            by_outcome=sorted(counts(e.outcome for e in chosen), key=_by_count),
            top_users=sorted((Count(k, n) for k, n in users.items()), key=_by_count)[:top],
            top_resources=sorted(
                (ResourceCount(rt, rid, n) for (rt, rid), n in resources.items()),
                key=lambda r: (-r.count, r.resource_type or "", r.resource_id or ""),
            )[:top],
            timeline=timeline, source="events",
        )  # fmt: skip


def _by_count(c: Count) -> tuple[int, str]:
    return (-c.count, c.key or "")


def _floor(ts: datetime, interval: Interval) -> datetime:
    ts = ts.astimezone(UTC)
    if interval == "minute":
        return ts.replace(second=0, microsecond=0)
    if interval == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


QUIET_HOUR: Final = 2
"""The window's third hour: each tenant's top user is light in it (at most 3 events, so
no heavy rollup row), and the other tenant holds a different count for that user there.
Proven top lists then count that hour from the rollups, per tenant."""
_QUIET_USERS: Final = {  # users of the 10 shared events in the quiet hour (its only events)
    ACME: ("alice", "alice", "bob", "bob", "bob", "carol", "carol", "carol", "dave", None),
    GLOBEX: ("alice", "bob", "bob", "carol", "carol", "carol", "carol", "dave", "dave", None),
}


def build(now: datetime | None = None) -> Overlap:
    """The data set, deterministic apart from the window's position (two days ago)."""
    now = now or datetime.now(UTC)
    base = base_time()
    slots = [base + timedelta(seconds=k * 360 + 7) for k in range(SHARED)]
    quiet = [k for k, ts in enumerate(slots) if (ts - base) // timedelta(hours=1) == QUIET_HOUR]
    loud = [ts for k, ts in enumerate(slots) if k not in quiet]
    events: dict[TenantId, list[Event]] = {}
    for tenant in TENANTS:
        rng = random.Random(f"tenant-overlap-{tenant}")
        drafts = [_draft(rng, tenant, shared_id(k), ts, k) for k, ts in enumerate(slots)]
        for k, user in zip(quiet, _QUIET_USERS[tenant], strict=True):
            actor = "user" if user else "system"
            drafts[k] = dataclasses.replace(drafts[k], user_id=user, actor_type=actor)
        ts = base
        for i in range(_OWN[tenant]):
            if i % 10 == 3:
                ts = rng.choice(loud)  # a tie with a shared event
            elif i % 6 != 5:  # every sixth repeats the previous timestamp
                second = rng.randrange(4 * 3600)  # any hour of the window but the quiet one
                second += 3600 if second >= QUIET_HOUR * 3600 else 0
                ts = base + timedelta(seconds=second, microseconds=i)
            own_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            drafts.append(_draft(rng, tenant, own_id, ts, SHARED + i))
        for i in range(_EARLY):
            early = base - timedelta(hours=20, minutes=7 * i)
            drafts.append(_draft(rng, tenant, uuid.UUID(int=rng.getrandbits(128), version=4),
                                 early, i))  # fmt: skip
        events[tenant] = prepare_events(tenant, drafts, limits=IngestSettings(), now=now)
    return Overlap(base, events)


def later_events(data: Overlap, tenant: TenantId, n: int, *, now: datetime) -> list[Event]:
    """*n* new events of *tenant*, dated among the old ones, that match most search cases
    (among them the paging ones: everything, word, word and field, action, or)."""
    rng = random.Random(f"later-{tenant}-{n}")
    drafts = [
        EventDraft(
            action="LOGIN", id=uuid.uuid4(),
            timestamp=data.base + timedelta(seconds=rng.randrange(2 * 3600)),
            severity="CRITICAL", user_id="alice", actor_type="user", session_id="s-2",
            resource_type="invoice", resource_id="inv-1001", ip_address="10.0.0.5",
            message="refund payment card declined password invoice", request_id="r-3",
            outcome="success",
            metadata={"geo": {"country": "DE"}, "amount": 120, "tags": ["urgent"],
                      "plan": "payout", "flag": True},
        )
        for _ in range(n)
    ]  # fmt: skip
    return prepare_events(tenant, drafts, limits=IngestSettings(), now=now)


async def store(pool: AsyncConnectionPool[Connection], events: Sequence[Event]) -> None:
    """Write *events* (all of one tenant) in one transaction, as the ingest writer does."""
    tenant = events[0].tenant_id
    async with tenant_transaction(pool, tenant) as conn:
        result = await insert_events(conn, tenant, events)
    assert len(result.inserted) == len(events)


def _q(
    text: str, filters: SearchFilters | None = None, only_user: str | None = None
) -> SearchQuery:
    return SearchQuery(filters=filters or SearchFilters(), q=parse(text), only_user=only_user)


def cases(data: Overlap) -> dict[str, SearchQuery]:
    """Search cases covering every kind of filter and query term, by name."""
    b = data.base
    acme_only, globex_only = data.own_ids(ACME)[0], data.own_ids(GLOBEX)[0]
    window = SearchFilters(start=b + timedelta(minutes=50), end=b + timedelta(hours=3, minutes=10))
    return {
        "everything": SearchQuery(),
        "word": _q("refund"),
        "two words": _q("payment card"),
        "phrase": _q('"card declined"'),
        "prefix": _q("pay*"),
        "word and field": _q("refund user_id:alice"),
        "word in a time window": SearchQuery(filters=window, q=parse("invoice")),
        # partial hours at both ends: totals add whole hours' rollups to the edges' events
        "time window": SearchQuery(filters=window),
        "word and filters": _q("password", SearchFilters(actions=("READ", "UPDATE", "LOGIN"))),
        "field": _q("user_id:bob"),
        "field prefix": _q("resource_id:inv-*"),
        "action": _q("action:login"),
        "severity comparison": _q("severity>=ERROR"),
        "network": _q("ip_address:10.0.0.0/8"),
        "ids": _q(f"id:{shared_id(5)} OR id:{acme_only} OR id:{globex_only}"),
        "timestamp comparison": _q(f"timestamp>={(b + timedelta(hours=4)).isoformat()}"),
        "metadata value": _q("metadata.geo.country:DE"),
        "metadata array": _q("metadata.tags:urgent"),
        "metadata number": _q("metadata.amount>=100"),
        "metadata spelled number": _q("metadata.amount:120"),
        "metadata boolean": _q("metadata.flag:true"),
        "metadata prefix": _q("metadata.plan:pay*"),
        "negated field": _q("-user_id:alice"),
        "negated word": _q("NOT refund"),
        "or": _q("refund OR password"),
        "or in a group": _q("(action:login OR action:logout) user_id:carol"),
        "filters": SearchQuery(
            filters=SearchFilters(user_id="alice", min_severity="WARNING", outcome="success")
        ),
        "more filters": SearchQuery(
            filters=SearchFilters(
                resource_type="invoice",
                ip_network="10.0.0.0/8",
                severities=("INFO", "ERROR"),
                session_id="s-2",
                actor_type="user",
            )
        ),
        "request and resource": SearchQuery(
            filters=SearchFilters(request_id="r-3", resource_id="inv-1002")
        ),
        "only the user's own": _q("refund OR invoice", only_user="dave"),
    }


StatsRun = tuple[SearchQuery, datetime, datetime, Interval]


def stats_with_filters(data: Overlap) -> list[StatsRun]:
    """Statistics of more than a time range (PostgreSQL answers them from the events)."""
    named = cases(data)
    start, end = data.base + timedelta(minutes=10), data.base + timedelta(hours=4, minutes=40)
    return [
        (named["word and filters"], start, end, "hour"),
        (named["or"], start, end, "minute"),
        (named["metadata value"], start, end, "day"),
        (SearchQuery(only_user="alice"), start, end, "hour"),
        (SearchQuery(), start, end, "minute"),
    ]


def stats_over_time(data: Overlap) -> list[StatsRun]:
    """Statistics of a time range alone (PostgreSQL answers them from the hourly rollups):
    partial hours at both edges, the last one ending late or early in its hour, or whole
    hours only."""
    base, h, m = data.base, timedelta(hours=1), timedelta(minutes=1)
    return [
        (SearchQuery(), base + 10 * m, base + 4 * h + 40 * m, "hour"),
        (SearchQuery(), base + 25 * m, base + 3 * h + 20 * m, "hour"),
        (SearchQuery(), base, base + 5 * h, "hour"),
        (SearchQuery(), base - 3 * h, base + 2 * h + 50 * m, "day"),
    ]


# ---------------------------------------------------------------------------------------
# The reference evaluator


_RANK: Final = {s: i for i, s in enumerate(SEVERITIES)}


def matches(event: Event, query: SearchQuery) -> bool:
    """Whether *event* answers *query*: the stream's evaluator (``search.evaluate``), with
    full text decided by the word rules below, exact for this data set only."""
    return evaluate.matches(event, query, lambda term: _text(event, term))


def _scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, list):
        for v in value:
            yield from _scalars(v)
    else:
        yield value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(event: Event, node: Text) -> bool:
    message = (event.message or "").lower().split()
    metadata = [str(v).lower() for v in _scalars(event.metadata) if isinstance(v, str)]
    metadata += [str(v) for v in _scalars(event.metadata) if _is_number(v)]
    words = node.text.lower().split()
    if node.phrase:  # phrase words never occur in the metadata of this data set
        return any(message[i : i + len(words)] == words for i in range(len(message)))
    if node.prefix:
        return any(w.startswith(words[0]) for w in message + metadata)
    return all(w in message or w in metadata for w in words)
