"""Retention and cleanup end to end, against the real database.

The deletion primitive removes a tenant's old events in batches, each batch together with
its ``event_ids`` rows, its rollup counts, its ``removed_ranges`` rows and its DELETE record
in the tenant's own log; the retention task also drops whole months. Every test checks the
invariants that must hold afterwards: what is gone is exactly what the records name, the
rollups equal a recount, and nothing of another tenant moved.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from auditline.app import create_app
from auditline.config import IngestSettings, Settings
from auditline.domain.events import SEVERITIES, EventDraft
from auditline.domain.retention import LegalHold, TooRecent
from auditline.domain.tenants import TenantId
from auditline.evidence.verify import Report, verify_log
from auditline.ingest.prepare import prepare_events
from auditline.ingest.writer import month_of, months_from
from auditline.lifecycle import retention as retention_module
from auditline.lifecycle.archive.manifest import Manifest
from auditline.lifecycle.retention import SYSTEM_ACTOR, RetentionService
from auditline.services import Services
from auditline.storage import retention as retention_store
from auditline.storage.database import set_tenant, tenant_transaction
from auditline.storage.events import ensure_partition, insert_events
from auditline.tenancy.scope import for_system
from tests.conftest import TokenFactory, bearer
from tests.integration.rollup_checks import DIFFERENCES, fold_all, heavy_mismatches

NOW = datetime.now(UTC)
ACME = for_system("acme", reason="tests")
GLOBEX = for_system("globex", reason="tests")
INITECH = for_system("initech", reason="tests")
DAY = timedelta(days=1)


@dataclass
class Stack:
    http: httpx.AsyncClient
    services: Services
    platform: dict[str, str]
    url: str

    def admin(self, tenant: str) -> dict[str, str]:
        return self.owners[tenant]

    owners: dict[str, dict[str, str]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.rate_limits.enabled = False
    settings.retention.batch_size = 7  # several batches from a few dozen events
    settings.retention.pause_ms = 1
    return settings


@pytest.fixture
async def stack(
    settings: Settings, make_token: TokenFactory, database_url: str
) -> AsyncIterator[Stack]:
    """The app (for HTTP) and its services (for the task), with acme, globex and initech."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            platform = bearer(make_token("admin", "*", sub="root"))
            for tenant in ("acme", "globex", "initech"):
                response = await http.post(
                    "/api/v1/tenants", json={"id": tenant, "name": tenant}, headers=platform
                )
                assert response.status_code == 201, response.text
            owners = {t: bearer(make_token("admin", t, sub=f"{t}-admin"))
                      for t in ("acme", "globex", "initech")}  # fmt: skip
            yield Stack(http, app.state.services, platform, database_url, owners)


async def seed(services: Services, tenant: TenantId, ages: list[timedelta], seed: int = 0) -> None:
    """Events of *tenant* at now minus each age (varied keys, so the rollups have rows of
    every dimension), written through the repository as the writer would, then sealed."""
    rng = random.Random(f"{tenant}{seed}")
    drafts = [
        EventDraft(
            action=rng.choice(["CREATE", "UPDATE", "LOGIN"]),
            severity=rng.choice(SEVERITIES),
            timestamp=NOW - age - timedelta(seconds=rng.randrange(3600)),
            user_id=rng.choice([None, "u1", "u2"]),
            resource_type=rng.choice([None, "doc"]),
            resource_id=rng.choice([None, "r1", "r2"]),
            message=f"{tenant} event {i}",
        )
        for i, age in enumerate(ages)
    ]
    events = prepare_events(tenant, drafts, limits=IngestSettings(), now=NOW)
    async with services.pool.connection() as conn:
        for month in {month_of(e.timestamp) for e in events}:
            async with conn.transaction():
                await ensure_partition(conn, month)
    async with tenant_transaction(services.pool, tenant) as conn:
        await insert_events(conn, tenant, events)
    # Only sealed events may be removed (the sealer needs every leaf below the log head).
    await services.sealer.seal_until_current(tenant, wait=True)


async def snapshot(url: str) -> dict[str, Any]:
    """Everything a removal may touch, per table (the rollups folded, so that a fold
    beside the test cannot tell two snapshots apart).

    Read on a thread: folding waits out a fold in flight, and the app's own folder runs
    on this event loop; blocking the loop would hold that fold, and its lock, open."""
    return await asyncio.to_thread(_snapshot, url)


def _snapshot(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        fold_all(conn)
        q = conn.execute
        return {
            "events": q("SELECT tenant_id, seq, id FROM events ORDER BY 1, 2").fetchall(),
            "ids": q("SELECT tenant_id, seq, id FROM event_ids ORDER BY 1, 2").fetchall(),
            "rollups": q("SELECT * FROM event_rollups ORDER BY 1, 2, 3, 4, 5").fetchall(),
            "heavy": q("SELECT * FROM event_rollup_heavy ORDER BY 1, 2, 3, 4, 5").fetchall(),
            "ranges": q("SELECT * FROM removed_ranges ORDER BY 1, 2").fetchall(),
            "heads": q("SELECT * FROM tenant_log_heads ORDER BY 1").fetchall(),
        }


def seqs(url: str, tenant: str, table: str = "events") -> set[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT seq FROM {table} WHERE tenant_id = %s",  # noqa: S608 - test constant
            (tenant,),
        ).fetchall()
    return {r[0] for r in rows}


def deletion_records(url: str, tenant: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT user_id, actor_type, resource_id, after, seq FROM events
                WHERE tenant_id = %s AND action = 'DELETE' AND resource_type = 'audit_log'
                ORDER BY seq""",
            (tenant,),
        ).fetchall()


def ranges(url: str, tenant: str) -> list[tuple[int, int, str, str, bool]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT first_seq, last_seq, reason, actor, ids_removed FROM removed_ranges
                WHERE tenant_id = %s ORDER BY first_seq""",
            (tenant,),
        ).fetchall()


def expand(pairs: Iterator[tuple[int, int]] | list[tuple[int, int]]) -> set[int]:
    return {s for a, b, *_ in pairs for s in range(a, b + 1)}


async def assert_rollups_recount(url: str) -> None:
    """The rollups add up to a recount, folded or not (on a thread, as :func:`snapshot`)."""
    await asyncio.to_thread(_assert_rollups_recount, url)


def _assert_rollups_recount(url: str) -> None:
    with psycopg.connect(url) as conn:
        assert conn.execute(DIFFERENCES).fetchall() == []
        assert heavy_mismatches(conn) == []
        assert conn.execute(DIFFERENCES).fetchall() == []  # folded, still exact


def partition_exists(url: str, month: datetime) -> bool:
    name = f"events_y{month.year:04d}m{month.month:02d}"
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
    return row is not None and row[0] is not None


# ---------------------------------------------------------------------------------------
# DELETE /api/v1/logs/cleanup


async def test_dry_run_counts_what_would_go_and_changes_nothing(stack: Stack) -> None:
    await seed(stack.services, ACME, [100 * DAY] * 9 + [10 * DAY] * 4)
    await seed(stack.services, GLOBEX, [100 * DAY] * 3)
    before = await snapshot(stack.url)
    asked = datetime.now(UTC)
    response = await stack.http.delete(
        "/api/v1/logs/cleanup", params={"dry_run": "true"}, headers=stack.admin("acme")
    )
    answered = datetime.now(UTC)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["dry_run"], body["count"], body["deleted"], body["seq_ranges"]) == (
        True, 9, 0, [],
    )  # fmt: skip
    # The default bound is the tenant's retention before the moment of the request (NOW is
    # the module's import time: minutes earlier in a full run).
    assert asked - 90 * DAY <= datetime.fromisoformat(body["before"]) <= answered - 90 * DAY
    # an explicit bound counts from there
    response = await stack.http.delete(
        "/api/v1/logs/cleanup",
        params={"dry_run": "true", "before": (NOW - 5 * DAY).isoformat()},
        headers=stack.admin("acme"),
    )
    assert response.json()["count"] == 13
    assert await snapshot(stack.url) == before


async def test_small_cleanup_removes_old_events_with_their_ids_and_records_the_ranges(
    stack: Stack,
) -> None:
    await seed(stack.services, ACME, [100 * DAY] * 17 + [10 * DAY] * 5)
    await seed(stack.services, GLOBEX, [100 * DAY] * 6)
    old = seqs(stack.url, "acme")
    globex = await snapshot(stack.url)
    response = await stack.http.delete(
        "/api/v1/logs/cleanup",
        headers={**stack.admin("acme"), "X-Request-ID": "cleanup-1"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["deleted"], body["count"], body["batches"]) == (17, 17, 3)  # batches of 7
    kept = seqs(stack.url, "acme")
    gone = old - kept
    assert len(gone) == 17
    assert expand([tuple(r) for r in body["seq_ranges"]]) == gone
    assert not gone & seqs(stack.url, "acme", "event_ids")  # the id rows went too
    # One record per batch, by the admin, naming exactly the batch's ranges; the same
    # ranges in removed_ranges.
    records = deletion_records(stack.url, "acme")
    assert len(records) == 3
    assert {(r[0], r[1], r[2]) for r in records} == {("acme-admin", "user", "cleanup")}
    assert sum(r[3]["removed"] for r in records) == 17
    assert expand([tuple(p) for r in records for p in r[3]["seq_ranges"]]) == gone
    assert all(r[3]["reason"] == "cleanup" for r in records)
    assert expand(ranges(stack.url, "acme")) == gone
    assert {r[2:] for r in ranges(stack.url, "acme")} == {("cleanup", "acme-admin", True)}
    with psycopg.connect(stack.url) as conn:
        request_ids = conn.execute(
            "SELECT DISTINCT request_id FROM events WHERE tenant_id = 'acme' AND action = 'DELETE'"
        ).fetchall()
    assert request_ids == [("cleanup-1",)]
    await assert_rollups_recount(stack.url)
    # globex: not a row changed
    after = await snapshot(stack.url)
    for table in ("events", "ids", "rollups", "heavy", "ranges"):
        assert [r for r in after[table] if r[0] == "globex"] == [
            r for r in globex[table] if r[0] == "globex"
        ], table


async def test_platform_admin_cleans_up_the_tenant_it_names(stack: Stack) -> None:
    await seed(stack.services, GLOBEX, [200 * DAY] * 3)
    response = await stack.http.delete(
        "/api/v1/logs/cleanup", params={"tenant_id": "globex"}, headers=stack.platform
    )
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 3
    assert [r[0] for r in deletion_records(stack.url, "globex")] == ["root"]


async def test_legal_hold_refuses_cleanup_with_409_and_changes_nothing(stack: Stack) -> None:
    await seed(stack.services, ACME, [100 * DAY] * 4)
    held = await stack.http.patch(
        "/api/v1/tenants/acme", json={"legal_hold": True}, headers=stack.admin("acme")
    )
    assert held.status_code == 200, held.text
    assert held.json()["legal_hold"] is True
    before = await snapshot(stack.url)
    for params in ({}, {"dry_run": "true"}):
        response = await stack.http.delete(
            "/api/v1/logs/cleanup", params=params, headers=stack.admin("acme")
        )
        assert response.status_code == 409, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/legal-hold")
        assert "legal hold" in problem["detail"]
    assert await snapshot(stack.url) == before
    # nor does the service's own primitive, nor the task
    with pytest.raises(LegalHold):
        await stack.services.retention.delete_events(
            ACME, SYSTEM_ACTOR, before=NOW - 30 * DAY, reason="retention"
        )
    await stack.services.retention.apply_retention()
    assert seqs(stack.url, "acme") == {s for t, s, _ in before["events"] if t == "acme"}
    # the hold lifted, it goes
    await stack.http.patch(
        "/api/v1/tenants/acme", json={"legal_hold": False}, headers=stack.admin("acme")
    )
    response = await stack.http.delete("/api/v1/logs/cleanup", headers=stack.admin("acme"))
    assert response.json()["deleted"] == 4


@pytest.mark.parametrize(
    "before",
    [
        NOW - timedelta(hours=1),  # younger than the minimum age (24 h)
        NOW + DAY,  # the future
    ],
)
async def test_a_bound_younger_than_the_minimum_age_is_422_and_changes_nothing(
    stack: Stack, before: datetime
) -> None:
    await seed(stack.services, ACME, [2 * DAY, timedelta(hours=2)])
    snap = await snapshot(stack.url)
    response = await stack.http.delete(
        "/api/v1/logs/cleanup", params={"before": before.isoformat()}, headers=stack.admin("acme")
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["title"] == "Too recent"
    assert problem["errors"][0]["parameter"] == "before"
    assert "24 hours" in problem["detail"]
    assert await snapshot(stack.url) == snap
    with pytest.raises(TooRecent):
        await stack.services.retention.delete_events(
            ACME, SYSTEM_ACTOR, before=before, reason="archive"
        )
    assert await snapshot(stack.url) == snap


@pytest.mark.parametrize(
    "params",
    [
        {"before": "yesterday"},
        {"before": "2020-01-01T00:00:00"},  # no offset
        {"dry_run": "perhaps"},
        {"limit": "3"},  # not a parameter of this endpoint
    ],
)
async def test_bad_cleanup_input_is_422_and_changes_nothing(
    stack: Stack, params: dict[str, str]
) -> None:
    await seed(stack.services, ACME, [100 * DAY] * 2)
    snap = await snapshot(stack.url)
    response = await stack.http.delete(
        "/api/v1/logs/cleanup", params=params, headers=stack.admin("acme")
    )
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await snapshot(stack.url) == snap


async def wait_for_job(stack: Stack, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """The job once it finished (the in-process worker runs it), polled by state."""
    for _ in range(600):
        job: dict[str, Any] = (
            await stack.http.get(f"/api/v1/jobs/{job_id}", headers=headers)
        ).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def test_a_large_cleanup_answers_202_and_a_job_removes_it(
    stack: Stack, settings: Settings
) -> None:
    stack.services.retention.settings.sync_max_events = 10
    await seed(stack.services, ACME, [100 * DAY] * 25 + [10 * DAY] * 2)
    old = seqs(stack.url, "acme")
    before = await snapshot(stack.url)
    response = await stack.http.delete(
        "/api/v1/logs/cleanup", headers={**stack.admin("acme"), "X-Request-ID": "big-1"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["tenant_id"], body["count"]) == ("acme", 25)
    assert body["status_url"] == f"/api/v1/jobs/{body['job_id']}"
    job = await wait_for_job(stack, body["job_id"], stack.admin("acme"))
    assert (job["kind"], job["status"]) == ("retention.cleanup", "succeeded"), job
    assert (job["result"]["deleted"], job["result"]["batches"]) == (25, 4)
    gone = old - seqs(stack.url, "acme")
    assert expand([tuple(r) for r in job["result"]["seq_ranges"]]) == gone
    assert len(gone) == 25
    # recorded as the admin's, with the request that asked, and the job
    records = deletion_records(stack.url, "acme")
    assert {(r[0], r[1], r[3]["job_id"]) for r in records} == {
        ("acme-admin", "user", body["job_id"])
    }
    assert {r[2] for r in ranges(stack.url, "acme")} == {"cleanup"}
    with psycopg.connect(stack.url) as conn:
        jobs = conn.execute(
            "SELECT DISTINCT job_id::text FROM removed_ranges WHERE tenant_id = 'acme'"
        ).fetchall()
    assert jobs == [(body["job_id"],)]
    await assert_rollups_recount(stack.url)
    after = await snapshot(stack.url)
    assert [r for r in after["events"] if r[0] == "globex"] == [
        r for r in before["events"] if r[0] == "globex"
    ]
    # the job is acme's: another tenant's admin does not see it
    other = await stack.http.get(f"/api/v1/jobs/{body['job_id']}", headers=stack.admin("globex"))
    assert other.status_code == 404


async def test_the_retention_task_runs_as_a_scheduled_job(stack: Stack, settings: Settings) -> None:
    from auditline.lifecycle.retention import RETENTION_JOB
    from auditline.tasks import build_tasks

    assert "retention" not in {s.name for s in build_tasks(stack.services).schedules}
    settings.retention.scheduled = True  # as in production
    scheduled = {s.name: s for s in build_tasks(stack.services).schedules}
    assert (scheduled["retention"].kind, scheduled["retention"].interval_seconds) == (
        RETENTION_JOB, 86_400.0,
    )  # fmt: skip
    await seed(stack.services, ACME, [100 * DAY] * 3 + [DAY * 2])
    await seed(stack.services, GLOBEX, [400 * DAY] * 2)
    job_id = await stack.services.jobs.submit(RETENTION_JOB, {}, tenant=None)
    job = await wait_for_job(stack, str(job_id), stack.platform)
    assert job["status"] == "succeeded", job
    assert {t: r["deleted"] for t, r in job["result"]["tenants"].items()} == {
        "acme": 3, "globex": 2,
    }  # fmt: skip
    assert len(seqs(stack.url, "acme")) == 1 + len(deletion_records(stack.url, "acme"))


async def test_a_failure_mid_way_leaves_neither_the_deletion_nor_its_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(stack.services, ACME, [100 * DAY] * 20)
    old = seqs(stack.url, "acme")
    real = retention_module.store.record_ranges
    calls = 0

    async def failing_second_time(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        await real(*args, **kwargs)  # written, then the batch fails after it
        if calls == 2:
            raise RuntimeError("injected failure in the second batch")

    monkeypatch.setattr(retention_module.store, "record_ranges", failing_second_time)
    with pytest.raises(RuntimeError, match="injected"):
        await stack.services.retention.delete_events(
            ACME, SYSTEM_ACTOR, before=NOW - 90 * DAY, reason="retention"
        )
    gone = old - seqs(stack.url, "acme")
    assert len(gone) == 7  # the first batch only
    records = deletion_records(stack.url, "acme")
    assert len(records) == 1
    assert expand([tuple(p) for p in records[0][3]["seq_ranges"]]) == gone
    assert expand(ranges(stack.url, "acme")) == gone
    assert not gone & seqs(stack.url, "acme", "event_ids")
    assert len(seqs(stack.url, "acme", "event_ids")) == len(old) - 7 + 1  # + the record
    await assert_rollups_recount(stack.url)


async def test_the_tenants_writes_go_on_while_a_batch_deletes(stack: Stack) -> None:
    await seed(stack.services, ACME, [100 * DAY] * 20)
    pool = stack.services.pool
    async with pool.connection() as conn, conn.transaction():  # a batch, not committed yet
        await set_tenant(conn, ACME)
        assert await retention_store.lock_tenant(conn, ACME) is False
        removed = await retention_store.delete_batch(conn, ACME, NOW - 90 * DAY, 10)
        assert removed.events == 10
        # A write of the same tenant, on another connection, neither waits for the batch's
        # locks (lock_timeout would fail it) nor sees its uncommitted deletion.
        live = prepare_events(ACME, [EventDraft(action="LIVE")], limits=IngestSettings(), now=NOW)
        async with pool.connection() as other, other.transaction():
            await other.execute("SET LOCAL lock_timeout = '2s'")
            await set_tenant(other, ACME)
            written = await insert_events(other, ACME, live)
        assert list(written.inserted.values()) == [20]
    assert len(seqs(stack.url, "acme")) == 20 - 10 + 1
    await assert_rollups_recount(stack.url)


async def test_a_batch_with_more_ranges_than_a_record_holds_writes_several_records(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_module, "RECORD_MAX_RANGES", 2)
    stack.services.retention.settings.batch_size = 100  # one batch
    await seed(stack.services, ACME, [100 * DAY, 10 * DAY] * 6)  # old ones: every other seq
    deletion = await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=NOW - 90 * DAY, reason="retention"
    )
    assert deletion.seq_ranges == [(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (10, 10)]
    assert deletion.batches == 1
    records = deletion_records(stack.url, "acme")
    # Three records of two ranges, numbered one after the other right after the batch.
    assert [r[4] for r in records] == [12, 13, 14]
    assert [(a["seq_ranges"], a["part"], a["parts"], a["removed"]) for *_, a, _ in records] == [
        ([[0, 0], [2, 2]], 1, 3, 2), ([[4, 4], [6, 6]], 2, 3, 2), ([[8, 8], [10, 10]], 3, 3, 2),
    ]  # fmt: skip
    assert not any("seq_ranges_total" in r[3] for r in records)  # nothing is only counted
    assert [r[:2] for r in ranges(stack.url, "acme")] == deletion.seq_ranges
    assert (await verify_acme(stack.services)).findings == []


async def test_only_sealed_events_are_removed_when_sealing_bounds_removals(
    stack: Stack, settings: Settings
) -> None:
    async def sealed_through(conn: Any, tenant: TenantId) -> int:
        return 4  # a checkpoint of size 5 (the sealer's reader, once merged, says this)

    sv = stack.services
    sealing = RetentionService(
        sv.pool, sv.writer, sv.access, settings.retention, sealed_through=sealed_through
    )
    await seed(sv, ACME, [300 * DAY] * 10)  # a whole month, seq 0-9
    assert (await sealing.cleanup(ACME, SYSTEM_ACTOR, dry_run=True)).count == 5
    done = {d.tenant: d for d in await sealing.apply_retention()}
    assert partition_exists(stack.url, month_of(NOW - 300 * DAY))  # not all sealed: kept
    assert (done["acme"].deleted, done["acme"].partitions) == (5, [])
    assert seqs(stack.url, "acme") >= set(range(5, 10))
    assert not seqs(stack.url, "acme") & set(range(5))


async def test_archival_bound_by_seq_keeps_events_numbered_later(stack: Stack) -> None:
    await seed(stack.services, ACME, [100 * DAY] * 5)
    last_archived = max(seqs(stack.url, "acme"))
    await seed(stack.services, ACME, [100 * DAY] * 3, seed=1)  # arrived late, not archived
    deletion = await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=NOW - 90 * DAY, reason="archive", through_seq=last_archived
    )
    assert deletion.deleted == 5
    assert len(seqs(stack.url, "acme")) == 3 + 1  # the late ones and the record


# ---------------------------------------------------------------------------------------
# The retention task


async def test_retention_applies_each_tenants_own_days_and_skips_a_hold(stack: Stack) -> None:
    stack.services.retention.settings.partition_drop = False  # the batched path alone
    for tenant, days in (("acme", 30), ("globex", 120)):
        await stack.http.patch(
            f"/api/v1/tenants/{tenant}", json={"retention_days": days}, headers=stack.platform
        )
    await stack.http.patch(
        "/api/v1/tenants/initech", json={"legal_hold": True}, headers=stack.platform
    )
    ages = [10 * DAY] * 3 + [60 * DAY] * 4 + [100 * DAY] * 5 + [150 * DAY] * 6
    for tenant in (ACME, GLOBEX, INITECH):
        await seed(stack.services, tenant, ages)
    counts = {t: len(seqs(stack.url, t)) for t in ("acme", "globex", "initech")}
    done = await stack.services.retention.apply_retention()
    assert {d.tenant: d.deleted for d in done} == {"acme": 15, "globex": 6}
    # what is left: younger than each tenant's retention (+ the DELETE records)
    with psycopg.connect(stack.url) as conn:
        left = dict(
            conn.execute(
                """SELECT tenant_id, count(*) FROM events
                    WHERE resource_type IS DISTINCT FROM 'audit_log'
                      AND resource_type IS DISTINCT FROM 'tenant' GROUP BY 1"""
            ).fetchall()
        )
    assert left == {"acme": 3, "globex": 12, "initech": 18}
    assert len(seqs(stack.url, "initech")) == counts["initech"]
    for tenant, n in (("acme", 15), ("globex", 6)):
        records = deletion_records(stack.url, tenant)
        assert {(r[0], r[1], r[2]) for r in records} == {
            ("system:retention", "system", "retention")
        }
        assert sum(r[3]["removed"] for r in records) == n
    assert deletion_records(stack.url, "initech") == []
    await assert_rollups_recount(stack.url)
    # idempotent: nothing more is due
    assert await stack.services.retention.apply_retention() == []


async def test_retention_drops_a_month_nobody_keeps_and_records_it_per_tenant(
    stack: Stack,
) -> None:
    # A month past every tenant's retention (300 days ago), and one globex still keeps
    # (200 days, within its 250): the first is dropped whole, the second deleted by batches.
    dropped_month, kept_month = month_of(NOW - 300 * DAY), month_of(NOW - 200 * DAY)
    await stack.http.patch(
        "/api/v1/tenants/globex", json={"retention_days": 250}, headers=stack.platform
    )
    await seed(stack.services, ACME, [300 * DAY] * 9 + [200 * DAY] * 4 + [3 * DAY] * 2)
    await seed(stack.services, GLOBEX, [300 * DAY] * 5 + [200 * DAY] * 3)
    acme_old, globex_old = seqs(stack.url, "acme"), seqs(stack.url, "globex")
    globex_in_dropped = _seqs_in_month(stack.url, "globex", dropped_month)
    assert len(globex_in_dropped) == 5
    await stack.services.writer.ensure_partitions([dropped_month])  # the writer knows it
    done = {d.tenant: d for d in await stack.services.retention.apply_retention()}
    assert not partition_exists(stack.url, dropped_month)
    assert partition_exists(stack.url, kept_month)  # globex keeps its 200-day events
    assert done["acme"].partitions == [f"events_y{dropped_month:%Y}m{dropped_month:%m}"]
    assert done["globex"].partitions == done["acme"].partitions
    assert (done["acme"].deleted, done["globex"].deleted) == (13, 5)
    assert acme_old - seqs(stack.url, "acme") == expand(done["acme"].seq_ranges)
    assert globex_old - seqs(stack.url, "globex") == globex_in_dropped
    # per tenant: records naming the partition and the ranges; the ranges table; the id
    # rows removed after the drop
    for tenant, old in (("acme", acme_old), ("globex", globex_old)):
        gone = old - seqs(stack.url, tenant)
        records = deletion_records(stack.url, tenant)
        assert expand([tuple(p) for r in records for p in r[3]["seq_ranges"]]) == gone
        assert records[0][3].get("partition") == done[tenant].partitions[0]
        assert expand(ranges(stack.url, tenant)) == gone
        assert all(r[4] for r in ranges(stack.url, tenant))  # ids removed since
        assert not gone & seqs(stack.url, tenant, "event_ids")
    await assert_rollups_recount(stack.url)
    # A late event for the dropped month, through the writer: the partition is made anew
    # (the writer forgot it), not a failed write.
    late = prepare_events(
        ACME, [EventDraft(action="LATE", timestamp=NOW - 300 * DAY)],
        limits=IngestSettings(), now=NOW,
    )  # fmt: skip
    result = await stack.services.writer.write(ACME, late)
    assert len(result.inserted) == 1
    assert partition_exists(stack.url, dropped_month)


async def test_a_writer_that_missed_a_drop_makes_the_partition_again(stack: Stack) -> None:
    # Another process's retention dropped a month this process's writer knew: the late
    # event's write fails on the missing partition, and is tried again after a fresh look.
    month = month_of(NOW - 500 * DAY)
    await stack.services.writer.ensure_partitions([month])  # known here

    def drop_elsewhere() -> None:
        with psycopg.connect(stack.url, autocommit=True) as conn:
            conn.execute("SELECT auditline_drop_event_partition(%s)", (month,))

    # In a thread: the DROP waits for this process's own background transactions (the
    # sealer, the worker), which could never end while it blocked the event loop.
    await asyncio.to_thread(drop_elsewhere)
    assert not partition_exists(stack.url, month)
    late = prepare_events(
        ACME, [EventDraft(action="LATE", timestamp=NOW - 500 * DAY)],
        limits=IngestSettings(), now=NOW,
    )  # fmt: skip
    result = await stack.services.writer.write(ACME, late)
    assert len(result.inserted) == 1
    assert partition_exists(stack.url, month)


def _seqs_in_month(url: str, tenant: str, month: datetime) -> set[int]:
    end = months_from(month, 2)[1]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT seq FROM events WHERE tenant_id = %s AND timestamp >= %s AND timestamp < %s",
            (tenant, month, end),
        ).fetchall()
    return {r[0] for r in rows}


async def test_a_hold_keeps_the_whole_month_partition(stack: Stack) -> None:
    month = month_of(NOW - 240 * DAY)
    await seed(stack.services, ACME, [240 * DAY] * 3)
    await seed(stack.services, INITECH, [240 * DAY] * 2)
    await stack.http.patch(
        "/api/v1/tenants/initech", json={"legal_hold": True}, headers=stack.platform
    )
    done = {d.tenant: d for d in await stack.services.retention.apply_retention()}
    assert partition_exists(stack.url, month)
    assert (done["acme"].deleted, done["acme"].partitions) == (3, [])  # batched instead
    assert "initech" not in done
    assert len(_seqs_in_month(stack.url, "initech", month)) == 2
    await assert_rollups_recount(stack.url)


# -- the tamper-evident log after removals (evidence/verify.py) ----------------------------


async def as_superuser(url: str, *statements: str) -> None:
    """Run *statements* as the superuser with triggers off, in a thread: the app's sealing
    loop shares this event loop, and a blocked loop could not commit what they wait for."""

    def run() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            for statement in statements:
                conn.execute(statement)  # type: ignore[call-overload]

    await asyncio.to_thread(run)


async def verify_acme(services: Services, *, seal: bool = True) -> Report:
    if seal:
        await services.sealer.seal_until_current(ACME, wait=True)
    return await verify_log(
        services.pool, ACME, services.checkpoint_verifier, services.settings.integrity.origin
    )


async def test_a_log_with_removed_events_still_verifies(stack: Stack) -> None:
    old, young = 400 * DAY, 2 * DAY
    # numbers 0-4 and 8-16 go, 5-7 and 17-19 stay: a gap at the start and one in the middle
    await seed(stack.services, ACME, [old] * 5 + [young] * 3 + [old] * 9 + [young] * 3)
    deletion = await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=NOW - 30 * DAY, reason="cleanup"
    )
    assert deletion.seq_ranges == [(0, 4), (8, 16)]
    assert deletion.batches > 1  # several records, each naming its own part

    report = await verify_acme(stack.services)

    assert report.findings == []
    assert report.removed == [(0, 4), (8, 16)]
    assert report.leaves == report.log_head == 20 + deletion.batches  # the records too


async def test_a_deletion_listed_by_hand_as_a_removal_is_caught(stack: Stack) -> None:
    await seed(stack.services, ACME, [400 * DAY] * 6)
    assert (await verify_acme(stack.services)).ok
    # The administrator deletes sealed events and lists them as removed, as retention
    # would; what they cannot write is a removal record inside the signed log.
    await as_superuser(
        stack.url,
        "DELETE FROM events WHERE tenant_id = 'acme' AND seq IN (2, 3)",
        """INSERT INTO removed_ranges (tenant_id, first_seq, last_seq, events, reason, actor,
                                       ids_removed)
           VALUES ('acme', 2, 3, 2, 'retention', 'system', false)""",
    )

    report = await verify_acme(stack.services)

    assert report.removed == [(2, 3)]  # the tiles still rebuild the signed roots...
    assert [f.seq for f in report.findings] == [2]  # ...but nothing signed names the gap
    assert "no removal record in the signed log" in report.findings[0].what


async def test_removed_events_without_their_tiles_cannot_be_accounted_for(stack: Stack) -> None:
    await seed(stack.services, ACME, [400 * DAY] * 6 + [2 * DAY] * 2)
    await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=NOW - 30 * DAY, reason="retention"
    )
    await stack.services.sealer.seal_until_current(ACME, wait=True)
    await as_superuser(stack.url, "DELETE FROM merkle_tiles WHERE tenant_id = 'acme' AND level = 0")

    report = await verify_acme(stack.services, seal=False)

    assert report.removed == []
    assert [f.seq for f in report.findings][:1] == [0]
    assert "tiles no longer hold their hashes" in report.findings[0].what


async def test_a_gap_stays_named_after_its_removal_record_is_removed_in_turn(
    stack: Stack,
) -> None:
    """Removal records are events of the log and age like the others. The record of the
    removal that takes one names again what it named, so the first gap never becomes one
    that nothing signed explains."""
    stack.services.settings.retention.min_age_hours = 0  # the record is removable at once
    await seed(stack.services, ACME, [400 * DAY] * 4)
    first = await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=NOW - 30 * DAY, reason="retention"
    )
    assert first.seq_ranges == [(0, 3)]  # its record is seq 4
    await stack.services.sealer.seal_until_current(ACME, wait=True)  # only sealed ones go
    second = await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=datetime.now(UTC), reason="retention"
    )
    assert second.seq_ranges == [(4, 4)]  # the first record; its own record is seq 5
    with psycopg.connect(stack.url) as conn:
        rows = conn.execute("SELECT seq, after FROM events WHERE tenant_id = 'acme'").fetchall()
    assert [seq for seq, _ in rows] == [5]
    assert rows[0][1]["seq_ranges"] == [[4, 4]]
    assert rows[0][1]["carried_ranges"] == [[0, 3]]

    report = await verify_acme(stack.services)

    assert report.findings == []
    assert report.removed == [(0, 4)]


async def test_a_cleanup_of_a_tenant_with_archival_archives_before_it_removes(
    stack: Stack,
) -> None:
    await seed(stack.services, ACME, [100 * DAY] * 6 + [10 * DAY] * 2)
    response = await stack.http.patch(
        "/api/v1/tenants/acme", json={"archive_after_days": 30}, headers=stack.admin("acme")
    )
    assert response.status_code == 200, response.text
    old = set(range(6))  # seeded in this order

    response = await stack.http.delete(
        "/api/v1/logs/cleanup", params={"before": (NOW - 50 * DAY).isoformat()},
        headers=stack.admin("acme"),
    )  # fmt: skip

    assert response.status_code == 202, response.text  # small, but archiving is a job
    job = await wait_for_job(stack, response.json()["job_id"], stack.admin("acme"))
    assert job["status"] == "succeeded", job
    assert (job["result"]["archived"], job["result"]["deleted"]) == (6, 6)
    assert seqs(stack.url, "acme") & old == set()
    archived = await stack.services.archive.archived_days(ACME)
    assert sum(Manifest.from_json(row.manifest).rows for row in archived) == 6
    for row in archived:  # written, verified, and every event still hashes to its leaf
        await stack.services.archive.verify(ACME, Manifest.from_json(row.manifest).day)
    assert {r[2] for r in ranges(stack.url, "acme")} == {"archive"}


def removal_records_after(url: str, tenant: str, from_seq: int) -> list[dict[str, Any]]:
    return [r[3] for r in deletion_records(url, tenant) if r[4] >= from_seq]


def named(records: list[dict[str, Any]], key: str = "seq_ranges") -> list[tuple[int, int]]:
    return [(a, b) for r in records for a, b in r.get(key, [])]


async def dress_up_as_removed(url: str, seq: int) -> None:
    """What an administrator without the signing key can do to hide a deletion: delete the
    row and list its number in ``removed_ranges`` as retention would."""
    await as_superuser(
        url,
        f"DELETE FROM events WHERE tenant_id = 'acme' AND seq = {seq:d}",  # noqa: S608 - an int
        f"""INSERT INTO removed_ranges (tenant_id, first_seq, last_seq, events, reason, actor,
                                        ids_removed)
            VALUES ('acme', {seq:d}, {seq:d}, 1, 'retention', 'system:retention', false)""",  # noqa: S608
    )


async def test_a_removal_of_more_than_500_ranges_is_named_whole_and_a_hidden_deletion_caught(
    stack: Stack,
) -> None:
    """Every removed number is named by a record in the signed log, however fragmented the
    removal: so the verifier needs no record to stand for more than it lists, and a row
    deleted beside a large removal is still reported."""
    assert retention_module.RECORD_MAX_RANGES == 500
    stack.services.retention.settings.batch_size = 2000  # all 520 in one batch
    await seed(stack.services, ACME, [400 * DAY, 2 * DAY] * 520)  # old: the even numbers
    deletion = await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=NOW - 30 * DAY, reason="retention"
    )
    old = {2 * i for i in range(520)}
    assert (deletion.deleted, deletion.batches, len(deletion.seq_ranges)) == (520, 1, 520)
    records = removal_records_after(stack.url, "acme", 0)
    assert [(len(r["seq_ranges"]), r["part"], r["parts"]) for r in records] == [
        (500, 1, 2), (20, 2, 2),
    ]  # fmt: skip
    assert expand(named(records)) == old
    assert sum(r["removed"] for r in records) == 520

    report = await verify_acme(stack.services)

    assert report.findings == []
    assert report.removed == [(s, s) for s in sorted(old)]
    # A kept event whose neighbours were removed, past the first record's 500 ranges,
    # deleted by hand and listed as removed: nothing signed names it.
    await dress_up_as_removed(stack.url, 1001)

    report = await verify_acme(stack.services)

    assert (1000, 1002) in report.removed  # the gap, merged with its removed neighbours
    assert [(f.seq, f.what.split(" are gone")[0]) for f in report.findings] == [
        (1001, "events with seq 1001..1001")
    ]
    assert "no removal record in the signed log names them" in report.findings[0].what


async def test_records_of_removed_records_carry_all_they_named_over_several_records(
    stack: Stack,
) -> None:
    """A removal's several records age out in their turn: the records of the removal that
    takes them name again every range they named, split again into bounded records."""
    stack.services.settings.retention.min_age_hours = 0  # the records are removable at once
    stack.services.retention.settings.batch_size = 2000
    await seed(stack.services, ACME, [400 * DAY, 2 * DAY] * 520)  # seq 0-1039
    await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=NOW - 30 * DAY, reason="retention"
    )
    first = removal_records_after(stack.url, "acme", 1040)
    assert len(first) == 2  # seq 1040 and 1041, naming the even numbers below 1040
    await seed(stack.services, ACME, [DAY] * 3, seed=1)  # seq 1042-1044, kept
    second = await stack.services.retention.delete_events(
        ACME, SYSTEM_ACTOR, before=datetime.now(UTC), reason="retention", through_seq=1041
    )
    # The odd numbers and the two records: 520 runs of its own, 520 carried.
    assert second.seq_ranges == [(2 * i + 1, 2 * i + 1) for i in range(519)] + [(1039, 1041)]
    assert seqs(stack.url, "acme") == set(range(1042, 1048))  # 3 kept, 3 records
    records = removal_records_after(stack.url, "acme", 1045)
    assert [
        (len(r["seq_ranges"]), len(r.get("carried_ranges", [])), r["part"]) for r in records
    ] == [(500, 0, 1), (20, 480, 2), (0, 40, 3)]
    assert named(records) == second.seq_ranges
    assert named(records, "carried_ranges") == [(2 * i, 2 * i) for i in range(520)]

    report = await verify_acme(stack.services)

    assert report.findings == []
    assert report.removed == [(0, 1041)]
    await dress_up_as_removed(stack.url, 1043)

    report = await verify_acme(stack.services)

    assert [f.seq for f in report.findings] == [1043]
    assert "no removal record in the signed log names them" in report.findings[0].what


async def test_a_partial_record_from_before_records_were_split_names_only_what_it_lists(
    stack: Stack,
) -> None:
    """A record written before a removal named every range in its records lists its first
    ranges and a larger count. The verifier does not trust the count: the numbers it leaves
    out are reported, each, with the record that may explain them."""
    await seed(stack.services, ACME, [100 * DAY, 10 * DAY] * 6)  # old: 0, 2, ..., 10
    async with tenant_transaction(stack.services.pool, ACME) as conn:  # as the old code did
        assert await retention_store.lock_tenant(conn, ACME) is False
        removed = await retention_store.delete_batch(conn, ACME, NOW - 90 * DAY, 100)
        await retention_store.record_ranges(
            conn, ACME, removed.ranges, reason="retention", actor="system:retention", job_id=None
        )
        await stack.services.access.record_in(
            conn, ACME, SYSTEM_ACTOR, action="DELETE", resource_type="audit_log",
            resource_id="retention", message="removed 6 events (retention)",
            after={"removed": 6, "seq_ranges": [[0, 0], [2, 2]], "seq_ranges_total": 6},
        )  # fmt: skip
    assert removed.ranges == [(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (10, 10)]

    report = await verify_acme(stack.services)

    assert report.removed == removed.ranges  # the tiles rebuild every signed root...
    assert [f.seq for f in report.findings] == [4, 6, 8, 10]  # ...but only 0 and 2 are named
    for finding in report.findings:
        assert "no removal record in the signed log names them" in finding.what
        assert "removal records at seq 12, which list only part" in finding.what


async def test_a_dropped_month_of_many_ranges_is_named_by_several_records(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_module, "RECORD_MAX_RANGES", 2)
    month = month_of(NOW - 300 * DAY)
    await seed(stack.services, ACME, [300 * DAY, 3 * DAY] * 3)  # the month: 0, 2, 4
    await stack.services.writer.ensure_partitions([month])  # the writer knows it
    done = {d.tenant: d for d in await stack.services.retention.apply_retention()}
    assert not partition_exists(stack.url, month)
    assert done["acme"].seq_ranges == [(0, 0), (2, 2), (4, 4)]
    records = removal_records_after(stack.url, "acme", 0)
    assert [(r["seq_ranges"], r["partition"], r["part"]) for r in records] == [
        ([[0, 0], [2, 2]], done["acme"].partitions[0], 1),
        ([[4, 4]], done["acme"].partitions[0], 2),
    ]
    assert (await verify_acme(stack.services)).findings == []


async def test_a_batch_whose_records_cannot_all_be_written_removes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_module, "RECORD_MAX_RANGES", 2)
    stack.services.retention.settings.batch_size = 100
    await seed(stack.services, ACME, [100 * DAY, 10 * DAY] * 6)  # 6 ranges: 3 records
    before = await snapshot(stack.url)
    access = stack.services.access
    real = access._prepare
    calls = 0

    def failing_third(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("injected failure preparing the third record")
        return real(*args, **kwargs)

    monkeypatch.setattr(access, "_prepare", failing_third)
    with pytest.raises(RuntimeError, match="third record"):
        await stack.services.retention.delete_events(
            ACME, SYSTEM_ACTOR, before=NOW - 90 * DAY, reason="retention"
        )
    assert calls == 3
    assert await snapshot(stack.url) == before  # not an event, record or listed range more or less
