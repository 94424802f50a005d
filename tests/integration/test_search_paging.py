"""Keyset paging: complete and exactly once in both orders, stable under concurrent
writes (including late events with old timestamps), and tamper-proof cursors."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from auditline.config import SearchSettings, Settings
from tests.conftest import TokenFactory, bearer
from tests.integration.search_fixtures import base_time

pytestmark = pytest.mark.usefixtures("tenants")


# The full-text plan has three routes; each must give the same answers. "default": one
# walk fills every page here; "walk": 2-row first walks, then a second walk sized from the
# density; "index": 2-row first walks, then the GIN index at once.
PLANS = {"default": (2000, 10_000), "walk": (2, 1_000_000), "index": (2, 0)}


@pytest.fixture(params=list(PLANS))
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    probe_rows, probe_max_rows = PLANS[request.param]
    settings.search = SearchSettings(probe_rows=probe_rows, probe_max_rows=probe_max_rows)
    return settings


@pytest.fixture
def admin(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("admin", "acme", sub="admin-acme"))


async def store(
    client: httpx.AsyncClient, headers: dict[str, str], events: list[dict[str, Any]]
) -> list[str]:
    for event in events:
        event.setdefault("id", str(uuid.uuid4()))
    response = await client.post("/api/v1/logs/bulk", json={"events": events}, headers=headers)
    assert response.status_code == 201, response.text
    return [e["id"] for e in events]


def spread(n: int, *, minutes: int = 1, ties: int = 1, **fields: Any) -> list[dict[str, Any]]:
    """*n* events, *ties* per timestamp, *minutes* apart, starting at the test base time."""
    base = base_time()
    return [
        {
            "action": "READ",
            "message": f"paging invoice {i}",
            "timestamp": (base + timedelta(minutes=minutes * (i // ties))).isoformat(),
            **fields,
        }
        for i in range(n)
    ]


async def page_all(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    params: dict[str, Any],
    *,
    between_pages: Any = None,
) -> list[str]:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get("/api/v1/logs", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(item["id"] for item in body["items"])
        assert len(body["items"]) <= params["limit"]
        cursor = body["next_cursor"]
        pages += 1
        assert pages < 100
        if cursor is None:
            return seen
        if between_pages is not None:
            await between_pages(pages)


def window() -> dict[str, str]:
    base = base_time()
    return {"start": base.isoformat(), "end": (base + timedelta(hours=6)).isoformat()}


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("q", [None, "paging", "action:READ"])
async def test_paging_returns_every_event_once_in_order(
    client: httpx.AsyncClient, admin: dict[str, str], order: str, q: str | None
) -> None:
    # 23 events, three per timestamp: page edges fall inside groups of equal timestamps.
    ids = await store(client, admin, spread(23, ties=3))
    params: dict[str, Any] = {**window(), "limit": 4, "order": order}
    if q is not None:
        params["q"] = q
    seen = await page_all(client, admin, params)
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    single = await client.get("/api/v1/logs", params={**params, "limit": 100}, headers=admin)
    assert seen == [item["id"] for item in single.json()["items"]]


async def test_a_full_last_page_has_no_cursor(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await store(client, admin, spread(8))
    first = await client.get("/api/v1/logs", params={**window(), "limit": 4}, headers=admin)
    second = await client.get(
        "/api/v1/logs",
        params={**window(), "limit": 4, "cursor": first.json()["next_cursor"]},
        headers=admin,
    )
    assert len(second.json()["items"]) == 4
    assert second.json()["next_cursor"] is None


async def test_paging_is_exactly_once_while_events_arrive_in_every_region(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Between pages, events land before, inside and after the region already paged,
    including late events whose timestamps fall among the pages still to come: the
    paging session returns exactly the events that existed at its first page."""
    original = await store(client, admin, spread(20, minutes=10))
    base = base_time()
    arrived: list[str] = []

    async def write_between(page: int) -> None:
        late = [
            # newer than everything: before the first page in desc order
            base + timedelta(minutes=199, seconds=page),
            # late: an old timestamp in the middle of the range, seen and unseen parts alike
            base + timedelta(minutes=(95 - page * 20) % 190),
            # exactly the timestamp of an existing event (ties are broken by id)
            base + timedelta(minutes=10 * page),
        ]
        fresh = [
            {"action": "READ", "message": "paging late", "timestamp": ts.isoformat()} for ts in late
        ]
        arrived.extend(await store(client, admin, fresh))

    for order in ("desc", "asc"):
        seen = await page_all(
            client, admin, {**window(), "limit": 3, "order": order, "q": "paging"},
            between_pages=write_between,
        )  # fmt: skip
        assert len(seen) == len(set(seen))
        assert sorted(seen) == sorted(original)
        # A new search sees everything stored so far.
        everything = await page_all(client, admin, {**window(), "limit": 50, "q": "paging"})
        assert sorted(everything) == sorted(original + arrived)
        original = original + arrived
        arrived = []


async def test_paging_is_exactly_once_under_truly_concurrent_writers(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    original = await store(client, admin, spread(30, minutes=5))
    base = base_time()
    started = asyncio.Event()  # writers start once the first page (the snapshot) is read
    stop = asyncio.Event()

    async def writer(offset: int) -> int:
        await started.wait()
        written = 0
        while not stop.is_set():
            late = base + timedelta(minutes=(written * 7 + offset) % 150, microseconds=written)
            await store(client, admin, [
                {"action": "READ", "message": "paging concurrent", "timestamp": late.isoformat()}
            ])  # fmt: skip
            written += 1
            await asyncio.sleep(0)
        return written

    async def after_page(page: int) -> None:
        started.set()
        await asyncio.sleep(0.01)  # let the writers commit between pages too

    writers = [asyncio.create_task(writer(i)) for i in range(2)]
    try:
        seen = await page_all(
            client, admin, {**window(), "limit": 2, "q": "paging"}, between_pages=after_page
        )
    finally:
        started.set()
        stop.set()
        written = await asyncio.gather(*writers)
    assert sum(written) > 0
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(original)


async def test_a_tampered_cursor_is_rejected(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await store(client, admin, spread(5))
    params = {**window(), "limit": 2}
    cursor = (await client.get("/api/v1/logs", params=params, headers=admin)).json()["next_cursor"]
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for index in (1, 5, 12, len(raw) - 1):  # timestamp, watermark, id and the mac itself
        forged = bytearray(raw)
        forged[index] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        response = await client.get(
            "/api/v1/logs", params={**params, "cursor": token}, headers=admin
        )
        assert response.status_code == 400, index
        assert response.json()["type"].endswith("/invalid-cursor")
        assert response.json()["errors"][0]["parameter"] == "cursor"
    for junk in ("x", "!!!!", cursor[:-2], cursor + "AA"):
        response = await client.get(
            "/api/v1/logs", params={**params, "cursor": junk}, headers=admin
        )
        assert response.status_code == 400, junk


async def test_a_cursor_only_works_for_its_own_query_order_and_tenant(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    both = bearer(make_token("admin", "acme", "globex", sub="admin-both"))
    for tenant in ("acme", "globex"):
        response = await client.post(
            "/api/v1/logs/bulk", json={"events": spread(5)}, headers=both,
            params={"tenant_id": tenant},
        )  # fmt: skip
        assert response.status_code == 201
    params = {**window(), "limit": 2, "tenant_id": "acme", "q": "paging"}
    cursor = (await client.get("/api/v1/logs", params=params, headers=both)).json()["next_cursor"]
    ok = await client.get("/api/v1/logs", params={**params, "cursor": cursor}, headers=both)
    assert ok.status_code == 200
    changes: list[dict[str, str]] = [
        {"tenant_id": "globex"},
        {"q": "invoice"},
        {"order": "asc"},
        {"action": "READ"},
        {"end": (base_time() + timedelta(hours=5)).isoformat()},
    ]
    for change in changes:
        response = await client.get(
            "/api/v1/logs", params={**params, **change, "cursor": cursor}, headers=both
        )
        assert response.status_code == 400, change
    # The limit may change between pages: it is not part of the query.
    wider = await client.get(
        "/api/v1/logs", params={**params, "limit": 10, "cursor": cursor}, headers=both
    )
    assert wider.status_code == 200
    assert len(wider.json()["items"]) == 3


async def test_the_default_page_holds_50_events(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await store(client, admin, spread(55))
    page = await client.get("/api/v1/logs", params=window(), headers=admin)
    assert len(page.json()["items"]) == 50
    assert page.json()["next_cursor"] is not None


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_full_text_paging_across_months(
    client: httpx.AsyncClient, admin: dict[str, str], order: str
) -> None:
    """Rare words spread over three monthly partitions, between many other events: the
    index route searches month by month and must still return every match, in order."""
    now = base_time()
    matches, others = [], []
    for days in (50, 49, 20, 3, 2):
        at = now - timedelta(days=days)
        matches.append(
            {"action": "READ", "message": "quarantine alert", "timestamp": at.isoformat()}
        )
        others += [
            {"action": "READ", "message": f"routine read {i}",
             "timestamp": (at + timedelta(minutes=i + 1)).isoformat()}
            for i in range(4)
        ]  # fmt: skip
    ids = await store(client, admin, matches)
    await store(client, admin, others)
    start = (now - timedelta(days=55)).isoformat()
    for limit in (1, 2, 50):
        seen = await page_all(
            client, admin,
            # `end`: the earlier searches' own access records (metadata q: "quarantine",
            # timestamped now) would match too.
            {"q": "quarantine", "limit": limit, "order": order, "start": start,
             "end": (now + timedelta(hours=1)).isoformat()},
        )  # fmt: skip
        expected = ids if order == "asc" else list(reversed(ids))
        assert seen == expected, limit
