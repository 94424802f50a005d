"""The per-process cache of tenants' masking rules: fresh for its TTL, dropped at once on a
change, one load per tenant at a time, bounded; with a fake clock and a fake loader."""

from __future__ import annotations

import asyncio
import logging

import pytest

from auditline.domain.masking import DEFAULT_RULES, DEFAULT_SECRET_KEYS, MaskingRules, mask_text
from auditline.domain.tenants import TenantId
from auditline.ingest.tenant_rules import TenantRules, compile_rules
from auditline.storage.tenants import MaskingSource

ACME, GLOBEX = TenantId("acme"), TenantId("globex")
REDACT_CARDS_ONLY = MaskingRules(DEFAULT_SECRET_KEYS, mask_emails=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Answers from ``current`` and counts its calls; ``gate`` holds loads until set,
    ``started`` is set once a load has read its answer."""

    def __init__(self) -> None:
        self.current: dict[TenantId, MaskingRules] = {}
        self.calls: list[TenantId] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()
        self.fail = False

    async def __call__(self, tenant: TenantId) -> MaskingRules:
        self.calls.append(tenant)
        answer = self.current.get(tenant, DEFAULT_RULES)  # read when the query would run
        self.started.set()
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("database down")
        return answer


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def loader() -> Loader:
    return Loader()


@pytest.fixture
def rules(loader: Loader, clock: Clock) -> TenantRules:
    return TenantRules(loader, ttl_seconds=5, clock=clock)


async def test_rules_are_loaded_once_and_served_from_memory_for_the_ttl(
    rules: TenantRules, loader: Loader, clock: Clock
) -> None:
    assert rules.cached(ACME) is None
    assert await rules.get(ACME) is DEFAULT_RULES
    clock.now += 4.9
    loader.current[ACME] = REDACT_CARDS_ONLY  # changed elsewhere: not seen yet
    assert rules.cached(ACME) is DEFAULT_RULES
    assert await rules.get(ACME) is DEFAULT_RULES
    assert loader.calls == [ACME]

    clock.now += 0.1  # the TTL has passed: the change shows
    assert rules.cached(ACME) is None
    assert await rules.get(ACME) is REDACT_CARDS_ONLY
    assert loader.calls == [ACME, ACME]


async def test_invalidation_applies_a_change_at_once(rules: TenantRules, loader: Loader) -> None:
    await rules.get(ACME)
    await rules.get(GLOBEX)
    loader.current[ACME] = REDACT_CARDS_ONLY

    rules.invalidate(ACME)

    assert rules.cached(ACME) is None
    assert await rules.get(ACME) is REDACT_CARDS_ONLY
    assert rules.cached(GLOBEX) is DEFAULT_RULES  # other tenants keep theirs
    assert loader.calls == [ACME, GLOBEX, ACME]


async def test_concurrent_misses_share_one_load(rules: TenantRules, loader: Loader) -> None:
    loader.gate.clear()
    waiting = [asyncio.create_task(rules.get(ACME)) for _ in range(50)]
    await asyncio.sleep(0)
    loader.gate.set()

    assert set(await asyncio.gather(*waiting)) == {DEFAULT_RULES}
    assert loader.calls == [ACME]


async def test_a_load_that_raced_a_change_is_not_kept(rules: TenantRules, loader: Loader) -> None:
    loader.gate.clear()
    stale = asyncio.create_task(rules.get(ACME))
    await loader.started.wait()  # the load has read the old settings and waits
    loader.current[ACME] = REDACT_CARDS_ONLY
    rules.invalidate(ACME)  # the change commits meanwhile
    loader.gate.set()

    assert await stale is DEFAULT_RULES  # its own caller was already waiting
    assert rules.cached(ACME) is None  # but it was not kept
    assert await rules.get(ACME) is REDACT_CARDS_ONLY


async def test_a_caller_going_away_does_not_cancel_the_shared_load(
    rules: TenantRules, loader: Loader
) -> None:
    loader.gate.clear()
    first = asyncio.create_task(rules.get(ACME))
    second = asyncio.create_task(rules.get(ACME))
    await loader.started.wait()
    first.cancel()
    loader.gate.set()

    assert await second is DEFAULT_RULES
    assert first.cancelled()
    assert loader.calls == [ACME]


async def test_a_failed_load_is_not_cached(rules: TenantRules, loader: Loader) -> None:
    loader.fail = True
    with pytest.raises(ConnectionError):
        await rules.get(ACME)
    loader.fail = False

    assert await rules.get(ACME) is DEFAULT_RULES
    assert loader.calls == [ACME, ACME]


async def test_a_zero_ttl_loads_every_time(loader: Loader, clock: Clock) -> None:
    rules = TenantRules(loader, ttl_seconds=0, clock=clock)

    await rules.get(ACME)
    await rules.get(ACME)

    assert rules.cached(ACME) is None
    assert loader.calls == [ACME, ACME]


async def test_the_cache_is_bounded_and_drops_the_oldest(loader: Loader, clock: Clock) -> None:
    rules = TenantRules(loader, ttl_seconds=60, max_tenants=3, clock=clock)
    tenants = [TenantId(f"t{i}") for i in range(5)]

    for tenant in tenants:
        await rules.get(tenant)
        clock.now += 1

    assert [rules.cached(t) is not None for t in tenants] == [False, False, True, True, True]


async def test_expired_entries_go_before_fresh_ones(loader: Loader, clock: Clock) -> None:
    rules = TenantRules(loader, ttl_seconds=10, max_tenants=3, clock=clock)
    await rules.get(TenantId("old"))
    clock.now += 5
    await rules.get(TenantId("a"))
    await rules.get(TenantId("b"))
    clock.now += 6  # "old" has expired, "a" and "b" have not

    await rules.get(TenantId("c"))

    assert [rules.cached(TenantId(t)) is not None for t in ("a", "b", "c")] == [True] * 3


# --- compiling what was stored -----------------------------------------------------------


KEY = b"k" * 32


def test_stored_settings_compile_with_the_tenant_key() -> None:
    rules = compile_rules(ACME, MaskingSource({"masking": {"email": "pseudonymise"}}, KEY))

    assert rules.pseudonym_key == KEY
    assert mask_text("ann@example.com", rules).startswith("[EMAIL:")


def test_no_tenant_and_no_settings_give_the_default_rules() -> None:
    assert compile_rules(ACME, None) is DEFAULT_RULES
    assert compile_rules(ACME, MaskingSource({}, KEY)) is DEFAULT_RULES


def test_invalid_stored_settings_fall_back_to_the_defaults_and_say_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        rules = compile_rules(ACME, MaskingSource({"masking": {"email": "hash"}}, KEY))

    assert rules is DEFAULT_RULES
    assert "tenant acme: stored masking settings are invalid (settings/masking/email)" in (
        caplog.text
    )
    assert "hash" not in caplog.text


def test_a_missing_key_redacts_instead_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        rules = compile_rules(ACME, MaskingSource({"masking": {"email": "pseudonymise"}}, None))

    assert mask_text("ann@example.com", rules) == "[EMAIL]"
    assert "tenant acme has no pseudonym key" in caplog.text
