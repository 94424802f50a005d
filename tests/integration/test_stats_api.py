"""GET /api/v1/logs/stats: exact numbers from rollups and from events, zero-filled timelines."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import TokenFactory, bearer
from tests.integration.search_fixtures import ACME_EVENTS, GLOBEX_EVENTS, DataSet, load

pytestmark = pytest.mark.usefixtures("tenants")

STEP = timedelta(minutes=25)  # e0..e7 at +0, +25, ... +175 minutes: three whole hours


@pytest.fixture
def auditor(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("auditor", "acme", sub="auditor-acme"))


@pytest.fixture
async def data(client: httpx.AsyncClient, make_token: TokenFactory) -> DataSet:
    acme = await load(client, bearer(make_token("admin", "acme")), "acme", ACME_EVENTS, step=STEP)
    await load(client, bearer(make_token("admin", "globex")), "globex", GLOBEX_EVENTS,
               base=acme.base, step=STEP)  # fmt: skip
    return acme


async def stats(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get("/api/v1/logs/stats", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def expected(names: list[str]) -> dict[str, Any]:
    events = [ACME_EVENTS[n] for n in names]

    def counts(field: str) -> list[dict[str, Any]]:
        c = Counter(e.get(field) for e in events)
        return sorted(
            ({"key": k, "count": v} for k, v in c.items()),
            key=lambda x: (-x["count"], x["key"] or ""),
        )

    order = ["INFO", "WARNING", "ERROR", "CRITICAL"]
    severities = Counter(e["severity"] for e in events)
    return {
        "total": len(events),
        "by_action": counts("action"),
        "by_resource_type": counts("resource_type"),
        "by_outcome": counts("outcome"),
        "by_severity": [{"key": s, "count": severities[s]} for s in order if severities[s]],
        "top_users": [c for c in counts("user_id") if c["key"] is not None],
    }


def strip(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("total", "by_action", "by_resource_type", "by_outcome",
                                 "by_severity", "top_users")}  # fmt: skip


async def test_whole_hours_come_from_rollups_with_exact_numbers(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    body = await stats(
        client, auditor, start=data.base.isoformat(),
        end=(data.base + timedelta(hours=3)).isoformat(), interval="hour",
    )  # fmt: skip
    assert body["source"] == "rollup"
    assert strip(body) == expected(list(ACME_EVENTS))
    assert [b["count"] for b in body["timeline"]] == [3, 2, 3]  # 0/25/50, 75/100, 125/150/175
    assert [b["start"] for b in body["timeline"]] == [
        (data.base + timedelta(hours=h)).isoformat().replace("+00:00", "Z") for h in range(3)
    ]
    # Ties are ordered by type and id; events without a resource (e6, e7) are not ranked.
    assert body["top_resources"] == [
        {"resource_type": t, "resource_id": i, "count": 1}
        for t, i in [("document", "doc-9"), ("invoice", "inv-1001"), ("invoice", "inv-1002"),
                     ("invoice", "inv-1003"), ("report", "rep-1"), ("user", "alice")]
    ]  # fmt: skip


async def test_partial_hours_at_the_edges_come_from_the_events(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    # [+20min, +130min): e1 (25) and e2 (50) in the leading partial hour, e3 (75) and e4
    # (100) in the whole hour, e5 (125) in the trailing partial hour.
    start, end = data.base + timedelta(minutes=20), data.base + timedelta(minutes=130)
    params = {"start": start.isoformat(), "end": end.isoformat(), "interval": "hour"}
    body = await stats(client, auditor, **params)
    assert body["source"] == "rollup"
    assert strip(body) == expected(["e1", "e2", "e3", "e4", "e5"])
    assert [b["count"] for b in body["timeline"]] == [2, 2, 1]
    # The same question with a filter that keeps everything goes to the events table
    # and must give the same answer.
    filtered = await stats(client, auditor, **params, q="severity>=INFO")
    assert filtered["source"] == "events"
    assert {k: v for k, v in filtered.items() if k != "source"} == {
        k: v for k, v in body.items() if k != "source"
    }


async def test_minute_and_day_timelines_are_zero_filled(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    start = data.base + timedelta(minutes=20)
    minutes = await stats(
        client, auditor, start=start.isoformat(),
        end=(start + timedelta(minutes=40)).isoformat(), interval="minute",
    )  # fmt: skip
    assert len(minutes["timeline"]) == 40
    assert sum(b["count"] for b in minutes["timeline"]) == 2  # e1 at +25, e2 at +50
    assert minutes["timeline"][5]["count"] == 1
    assert minutes["timeline"][30]["count"] == 1
    days = await stats(
        client, auditor, start=(data.base - timedelta(days=3)).isoformat(),
        end=(data.base + timedelta(days=1)).isoformat(), interval="day",
    )  # fmt: skip
    assert len(days["timeline"]) in (4, 5)  # the range need not start at midnight
    assert sum(b["count"] for b in days["timeline"]) == len(ACME_EVENTS)
    assert days["total"] == len(ACME_EVENTS)


async def test_filters_apply_to_every_figure(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    body = await stats(client, auditor, **data.window, user_id="alice", interval="hour")
    assert body["source"] == "events"
    assert strip(body) == expected(["e0", "e1", "e7"])
    text = await stats(client, auditor, **data.window, q="invoice")
    assert strip(text) == expected(["e1", "e2", "e5", "e6"])


async def test_the_default_range_is_the_last_24_hours(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    body = await stats(client, auditor)
    # The data set is two days old: only earlier reads recorded just now can be counted.
    assert body["total"] == 0
    assert len(body["timeline"]) in (24, 25)
    assert body["interval"] == "hour"
    again = await stats(client, auditor)
    assert again["total"] == 0  # the first call is recorded, but records of reads are left out
    assert again["source"] == "rollup"
    reads = await stats(client, auditor, include_access="true")
    assert reads["total"] == 2  # the two calls before, recorded in the tenant's log
    assert reads["by_action"] == [{"key": "VIEW", "count": 2}]
    assert reads["top_users"] == [{"key": "auditor-acme", "count": 2}]
    assert reads["source"] == "events"  # the rollups do not count records of reads


async def test_an_end_in_the_first_day_of_year_one_starts_the_range_at_the_earliest_instant(
    client: httpx.AsyncClient, auditor: dict[str, str]
) -> None:
    # 24 hours before this end does not exist; found by schemathesis as a 500.
    body = await stats(client, auditor, end="0001-01-01T00:01:00Z", interval="day")
    assert body["start"] == "0001-01-01T00:00:00Z"
    assert body["total"] == 0


async def test_stats_are_tenant_scoped_and_role_checked(
    client: httpx.AsyncClient, data: DataSet, make_token: TokenFactory
) -> None:
    globex = bearer(make_token("auditor", "globex"))
    body = await stats(client, globex, **data.window)
    assert body["total"] == len(GLOBEX_EVENTS)
    assert {u["key"] for u in body["top_users"]} == {"alice", "bob"}
    acme = await client.get(
        "/api/v1/logs/stats", params={**data.window, "tenant_id": "acme"}, headers=globex
    )
    assert acme.status_code == 404
    user = bearer(make_token("user", "acme", sub="alice"))
    forbidden = await client.get("/api/v1/logs/stats", params=data.window, headers=user)
    assert forbidden.status_code == 403


async def test_bad_ranges_are_rejected(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet
) -> None:
    too_many = await client.get(
        "/api/v1/logs/stats",
        params={"start": (data.base - timedelta(days=30)).isoformat(), "interval": "minute"},
        headers=auditor,
    )
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["parameter"] == "interval"
    backwards = await client.get(
        "/api/v1/logs/stats",
        params={"start": data.window["end"], "end": data.window["start"]},
        headers=auditor,
    )
    assert backwards.status_code == 422


async def test_stats_reads_are_recorded(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet, database_url: str
) -> None:
    await client.get(
        "/api/v1/logs/stats", params={**data.window, "action": "LOGIN"},
        headers={**auditor, "X-Request-ID": "req-stats-1"},
    )  # fmt: skip
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT action, metadata FROM events WHERE request_id = 'req-stats-1'"
        ).fetchone()
    assert row is not None
    assert row[0] == "VIEW"
    assert row[1]["result_count"] == 1
    assert row[1]["query"]["actions"] == ["LOGIN"]


async def test_rollups_follow_deletes(
    client: httpx.AsyncClient, auditor: dict[str, str], data: DataSet, database_url: str
) -> None:
    # Retention deletes events with a maintenance role; the rollups must follow.
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "DELETE FROM events WHERE tenant_id = 'acme' AND id = ANY(%s)",
            ([data.ids["e1"], data.ids["e3"]],),
        )
    window = {"start": data.base.isoformat(),
              "end": (data.base + timedelta(hours=3)).isoformat()}  # fmt: skip
    body = await stats(client, auditor, **window)
    assert body["source"] == "rollup"
    assert strip(body) == expected(["e0", "e2", "e4", "e5", "e6", "e7"])


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        # Once in UTC these leave the calendar (year 10000, year 0): a 500 before.
        ({"end": "9999-12-31T23:59:59-14:00", "start": "9999-12-01T00:00:00Z"}, "end"),
        ({"start": "0001-01-01T00:00:00+14:00", "end": "0001-01-02T00:00:00Z"}, "start"),
    ],
)
async def test_times_beyond_the_calendar_in_utc_are_refused_alike_everywhere(
    client: httpx.AsyncClient, auditor: dict[str, str], params: dict[str, str], parameter: str
) -> None:
    for path in ("/api/v1/logs/stats", "/api/v1/logs", "/api/v1/logs/export"):
        response = await client.get(path, params=params, headers=auditor)
        assert response.status_code == 422, (path, response.text)
        assert [e["parameter"] for e in response.json()["errors"]] == [parameter]


async def test_a_range_in_the_calendars_last_day_is_a_clear_400_not_a_500(
    client: httpx.AsyncClient, auditor: dict[str, str]
) -> None:
    # Statistics count whole UTC hours and days; the last day of year 9999 has no next hour.
    params = {"start": "9999-12-31T20:00:00Z", "end": "9999-12-31T23:30:00Z", "interval": "day"}
    response = await client.get("/api/v1/logs/stats", params=params, headers=auditor)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["parameter"] == "start"
    assert "9999-12-31T00:00:00Z" in response.json()["detail"]
