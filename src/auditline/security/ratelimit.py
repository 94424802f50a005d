"""Token-bucket rate limits per tenant and per principal, for ingest and for reads.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; a request
takes one token or is refused with 429. Each request draws on its principal's bucket and,
when the tenant is known before the body is read, its tenant's bucket (the principal's
first: a caller over its own budget does not spend its tenant's).

Backends: :class:`MemoryBuckets` (per process, the default) and
``auditline.storage.ratelimit.PostgresBuckets`` (shared by every process on the database).
Both compute the same arithmetic; the PostgreSQL one does it in one UPSERT per bucket.

Responses carry the IETF draft RateLimit header fields
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy: "name";q=<burst>;w=<seconds to
refill>`` and ``RateLimit: "name";r=<remaining>;t=<seconds until more>``, plus
``Retry-After`` on a 429.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from auditline.config import RateBudget, RateLimitSettings

Kind = Literal["ingest", "read"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One bucket's answer to one request."""

    policy: str
    allowed: bool
    limit: int
    window: int
    remaining: int
    reset: int

    @classmethod
    def of(cls, policy: str, budget: RateBudget, allowed: bool, tokens: float) -> Decision:
        """From the bucket's level *after* the request (a refused request takes nothing)."""
        if allowed:
            remaining = max(0, math.floor(tokens))
            missing = remaining + 1 - tokens  # until the next whole token
        else:
            remaining = 0
            missing = 1 - tokens
        reset = 0 if tokens >= budget.burst else max(1, math.ceil(missing / budget.rate))
        return cls(
            policy=policy,
            allowed=allowed,
            limit=budget.burst,
            window=max(1, math.ceil(budget.burst / budget.rate)),
            remaining=remaining,
            reset=reset,
        )


class RateLimited(Exception):
    """A bucket is empty (429). *decisions* holds every bucket consulted, the refusal last."""

    def __init__(self, decisions: Sequence[Decision]) -> None:
        super().__init__("rate limit exceeded")
        self.decisions = list(decisions)

    @property
    def retry_after(self) -> int:
        return max([d.reset for d in self.decisions if not d.allowed] or [1])


def header_fields(decisions: Sequence[Decision]) -> list[tuple[str, str]]:
    """The RateLimit-Policy and RateLimit fields describing *decisions*."""
    if not decisions:
        return []
    policy = ", ".join(f'"{d.policy}";q={d.limit};w={d.window}' for d in decisions)
    state = ", ".join(f'"{d.policy}";r={d.remaining};t={d.reset}' for d in decisions)
    return [("RateLimit-Policy", policy), ("RateLimit", state)]


class Buckets(Protocol):
    async def take(self, key: str, budget: RateBudget) -> tuple[bool, float]:
        """Take one token from bucket *key*; returns (allowed, tokens left)."""


class MemoryBuckets:
    """Buckets in this process's memory; bounded, least recently used dropped first.

    A dropped bucket comes back full, which errs towards letting requests through; with the
    default bound that only happens beyond a million distinct callers in one refill period.
    """

    def __init__(
        self, *, max_buckets: int = 1_000_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max = max_buckets
        self._clock = clock

    async def take(self, key: str, budget: RateBudget) -> tuple[bool, float]:
        return self.take_now(key, budget)

    def take_now(self, key: str, budget: RateBudget) -> tuple[bool, float]:
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(budget.burst), now))
        tokens = min(float(budget.burst), tokens + (now - at) * budget.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now)  # re-inserted last: dict order is recency order
        if len(self._buckets) > self._max:
            del self._buckets[next(iter(self._buckets))]
        return allowed, tokens


def _hashed(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


class RateLimits:
    """The configured budgets applied to requests."""

    def __init__(self, settings: RateLimitSettings, buckets: Buckets) -> None:
        self._settings = settings
        self._buckets = buckets

    async def check(self, *, kind: Kind, principal: str, tenant: str | None) -> list[Decision]:
        """Charge one request; returns the decisions, or raises :class:`RateLimited`."""
        s = self._settings
        per_principal, per_tenant = (
            (s.ingest_per_principal, s.ingest_per_tenant)
            if kind == "ingest"
            else (s.read_per_principal, s.read_per_tenant)
        )
        plan = [(f"principal-{kind}", f"p:{kind}:{_hashed(principal)}", per_principal)]
        if tenant is not None:
            plan.append((f"tenant-{kind}", f"t:{kind}:{tenant}", per_tenant))
        decisions = []
        for policy, key, budget in plan:
            allowed, tokens = await self._buckets.take(key, budget)
            decisions.append(Decision.of(policy, budget, allowed, tokens))
            if not allowed:
                raise RateLimited(decisions)
        return decisions
