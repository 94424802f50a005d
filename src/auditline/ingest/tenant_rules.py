"""Each tenant's masking rules, compiled once and kept per process for a short time.

Preparing an event must not wait for the database: the rules are read from ``tenants`` and
``tenant_secrets`` at most once per tenant per ``ingest.masking_rules_ttl_seconds`` (5 s) in
each process, and every request in between takes them from memory (a dictionary lookup
and a clock read). Guarantees:

* **Immediate in the changing process.** ``TenantService`` calls :meth:`TenantRules.invalidate`
  after a settings change has committed, so the next request of that process compiles the
  new rules. A load that was already running when the change committed may still finish
  with the old rules, but it is not kept (an epoch counter tells), so they are used at most
  by the requests that were already waiting for it.
* **Within the TTL elsewhere.** Other processes (``--workers``, other hosts) compile the
  new rules once their entry expires: a change applies everywhere within the TTL plus one
  load. There is no cross-process signal to lose (cf. API keys in docs/security.md).
* **One load per tenant at a time.** Concurrent requests that miss share one load, so an
  expiry under load costs one query, not one per request. A failed load is not cached:
  its requests fail (as their write would have), the next one tries again.
* **Bounded.** At most ``max_tenants`` entries; the oldest go first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from psycopg_pool import AsyncConnectionPool

from auditline.domain.masking import DEFAULT_RULES, MaskingRules
from auditline.domain.masking_settings import InvalidSettings, masking_settings
from auditline.domain.tenants import TenantId
from auditline.storage import tenants as store
from auditline.storage.database import Connection

log = logging.getLogger(__name__)

Loader = Callable[[TenantId], Awaitable[MaskingRules]]

DEFAULT_MAX_TENANTS: Final = 10_000


class TenantRules:
    """The per-process cache of compiled masking rules, by tenant."""

    def __init__(
        self,
        load: Loader,
        *,
        ttl_seconds: float,
        max_tenants: int = DEFAULT_MAX_TENANTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._max = max_tenants
        self._clock = clock
        self._entries: dict[TenantId, tuple[float, MaskingRules]] = {}
        self._loading: dict[TenantId, asyncio.Task[MaskingRules]] = {}
        self._epoch = 0

    def cached(self, tenant: TenantId) -> MaskingRules | None:
        """The tenant's rules if this process holds a fresh copy: the hot path, no await."""
        entry = self._entries.get(tenant)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None

    async def get(self, tenant: TenantId) -> MaskingRules:
        """The tenant's rules, loaded (once, however many callers wait) if not fresh."""
        rules = self.cached(tenant)
        if rules is not None:
            return rules
        task = self._loading.get(tenant)
        if task is None:
            task = asyncio.create_task(self._load_and_keep(tenant, self._epoch))
            self._loading[tenant] = task
            task.add_done_callback(lambda done: self._loaded(tenant, done))
        # Shielded: a caller that goes away (client disconnect) must not cancel the load
        # the other callers wait for.
        return await asyncio.shield(task)

    def invalidate(self, tenant: TenantId) -> None:
        """Forget *tenant*'s rules now; call after a change to its settings has committed."""
        self._epoch += 1
        self._entries.pop(tenant, None)
        self._loading.pop(tenant, None)  # its result would be stale: the next caller reloads

    async def _load_and_keep(self, tenant: TenantId, epoch: int) -> MaskingRules:
        rules = await self._load(tenant)
        if epoch == self._epoch:  # no settings changed while it ran
            if len(self._entries) >= self._max:
                self._evict()
            self._entries[tenant] = (self._clock() + self._ttl, rules)
        return rules

    def _loaded(self, tenant: TenantId, task: asyncio.Task[MaskingRules]) -> None:
        if self._loading.get(tenant) is task:
            del self._loading[tenant]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone

    def _evict(self) -> None:
        now = self._clock()
        for tenant in [t for t, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[tenant]
        while len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]


def compile_rules(tenant: TenantId, source: store.MaskingSource | None) -> MaskingRules:
    """The rules for what was stored; the default rules when nothing usable was.

    Settings stored before masking settings were checked (or by hand) may not pass the
    check: they give the default rules, which mask as everything did before. A missing key
    makes pseudonymised kinds redacted (see ``MaskingSettings.rules``). Both are logged
    (never the values), since the tenant asked for something it does not get.
    """
    if source is None:  # no such tenant: its write will fail in the writer, as before
        return DEFAULT_RULES
    try:
        settings = masking_settings(source.settings)
    except InvalidSettings as exc:
        log.warning(
            "tenant %s: stored masking settings are invalid (%s); using the default rules",
            tenant,
            "; ".join("/".join(map(str, e.path)) for e in exc.errors),
        )
        return DEFAULT_RULES
    if settings.pseudonymises and source.pseudonym_key is None:
        log.error("tenant %s has no pseudonym key; pseudonymised kinds are redacted", tenant)
    return settings.rules(source.pseudonym_key)


def database_loader(pool: AsyncConnectionPool[Connection]) -> Loader:
    """A loader that reads a tenant's rules with one query in a short transaction."""

    async def load(tenant: TenantId) -> MaskingRules:
        async with pool.connection() as conn, conn.transaction():
            source = await store.masking_source(conn, tenant)
        return compile_rules(tenant, source)

    return load
