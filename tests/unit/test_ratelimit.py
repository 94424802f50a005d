"""Token-bucket arithmetic and the RateLimit header fields, with a clock the test moves."""

from __future__ import annotations

from typing import Any

import pytest

from auditline.config import RateBudget, RateLimitSettings
from auditline.domain.access import Actor
from auditline.security.audit import AccessAudit, RequestInfo
from auditline.security.ratelimit import (
    Decision,
    MemoryBuckets,
    RateLimited,
    RateLimits,
    header_fields,
)
from auditline.security.tokens import InvalidToken


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock=clock)
    budget = RateBudget(rate=2, burst=3)
    assert [buckets.take_now("k", budget)[0] for _ in range(4)] == [True, True, True, False]
    clock.now += 0.4  # 0.8 tokens: still not one
    assert not buckets.take_now("k", budget)[0]
    clock.now += 0.1
    assert buckets.take_now("k", budget) == (True, pytest.approx(0.0))
    clock.now += 100  # never more than the burst
    assert [buckets.take_now("k", budget)[0] for _ in range(4)] == [True, True, True, False]
    assert buckets.take_now("other", budget)[0]  # buckets are independent


def test_the_least_recently_used_bucket_is_dropped_beyond_the_bound() -> None:
    buckets = MemoryBuckets(max_buckets=2, clock=Clock())
    budget = RateBudget(rate=1, burst=1)
    buckets.take_now("a", budget)
    buckets.take_now("b", budget)
    buckets.take_now("a", budget)  # a is now the most recent
    buckets.take_now("c", budget)  # drops b
    assert not buckets.take_now("a", budget)[0]
    assert buckets.take_now("b", budget)[0]  # back, and full


def test_decisions_describe_remaining_and_reset() -> None:
    budget = RateBudget(rate=0.5, burst=10)
    allowed = Decision.of("principal-read", budget, True, 3.5)
    assert (allowed.remaining, allowed.reset, allowed.limit, allowed.window) == (3, 1, 10, 20)
    refused = Decision.of("principal-read", budget, False, 0.25)
    assert (refused.allowed, refused.remaining, refused.reset) == (False, 0, 2)
    assert header_fields([allowed]) == [
        ("RateLimit-Policy", '"principal-read";q=10;w=20'),
        ("RateLimit", '"principal-read";r=3;t=1'),
    ]


async def test_the_principal_bucket_is_charged_before_the_tenant_bucket() -> None:
    clock = Clock()
    settings = RateLimitSettings(
        read_per_principal=RateBudget(rate=1, burst=2), read_per_tenant=RateBudget(rate=1, burst=3)
    )
    limits = RateLimits(settings, MemoryBuckets(clock=clock))
    for _ in range(2):
        decisions = await limits.check(kind="read", principal="alice", tenant="acme")
        assert [d.policy for d in decisions] == ["principal-read", "tenant-read"]
    with pytest.raises(RateLimited) as limited:
        await limits.check(kind="read", principal="alice", tenant="acme")
    assert [d.policy for d in limited.value.decisions] == ["principal-read"]
    assert limited.value.retry_after == 1
    # alice's refusals did not spend acme's budget: bob gets the one token left
    await limits.check(kind="read", principal="bob", tenant="acme")
    with pytest.raises(RateLimited) as limited:
        await limits.check(kind="read", principal="carol", tenant="acme")
    assert [(d.policy, d.allowed) for d in limited.value.decisions] == [
        ("principal-read", True),
        ("tenant-read", False),
    ]
    # ingest has its own budgets
    assert await limits.check(kind="ingest", principal="alice", tenant="acme")


class FakeRecorder:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def record(self, tenant: str, actor: Actor, **fields: Any) -> None:
        self.records.append({"tenant": tenant, "actor": actor.subject, **fields})


async def test_failures_beyond_the_recording_budget_are_counted_on_the_next_record() -> None:
    settings = RateLimitSettings(
        auth_failures_per_client=RateBudget(rate=1000, burst=1000),
        auth_failure_records=RateBudget(rate=1, burst=2),
    )
    recorder = FakeRecorder()
    audit = AccessAudit(recorder, settings)  # type: ignore[arg-type]
    clock = Clock()
    audit._buckets = MemoryBuckets(clock=clock)
    request = RequestInfo("GET", "/api/v1/logs", "10.0.0.1", "curl", "r-1")
    for _ in range(5):
        await audit.authentication_failed(InvalidToken("bad", reason="malformed"), request)
    assert len(recorder.records) == 2
    clock.now += 1
    await audit.authentication_failed(InvalidToken("bad", reason="expired"), request)
    assert len(recorder.records) == 3
    last = recorder.records[-1]
    assert last["tenant"] == "platform"
    assert last["metadata"]["unrecorded_failures_before"] == 3
    assert last["metadata"]["reason"] == "expired"
    assert (last["ip_address"], last["outcome"], last["action"]) == ("10.0.0.1", "failure", "LOGIN")
