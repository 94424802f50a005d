"""The security services of one app: authentication, API keys, rate limits, failure records.

Built once by the app's lifespan (:func:`build_security`) and shared by every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from auditline.config import Settings
from auditline.ingest.access import AccessRecorder
from auditline.security.api_keys import ApiKeys, looks_like_api_key
from auditline.security.audit import AccessAudit
from auditline.security.jwks import Fetch, fetch_url
from auditline.security.principal import InvalidClaims, Principal
from auditline.security.ratelimit import Buckets, MemoryBuckets, RateLimits
from auditline.security.tokens import InvalidToken, SigningKey, TokenVerifier, jwks_document
from auditline.storage.database import Connection
from auditline.storage.ratelimit import PostgresBuckets


class Authenticator:
    """A bearer credential in, a :class:`Principal` out, or :class:`InvalidToken`.

    A JWT that verified is remembered for a short while (``_CACHE_SECONDS``, and never past
    its own ``exp``): clients send the same token with every request, and checking its
    signature again each time was the largest cost of a single-event write. The cache holds
    only successes, keyed by the exact token text, so it can make no token valid that the
    verifier would refuse, except one whose signing key an identity provider withdrew
    within the last ``_CACHE_SECONDS``. API keys are not cached: revoking one takes effect
    on the next request in every process.
    """

    _CACHE_SECONDS = 60.0
    _CACHE_ENTRIES = 10_000

    def __init__(
        self, verifier: TokenVerifier, api_keys: ApiKeys, *, clock: Any = time.time
    ) -> None:
        self._verifier = verifier
        self._api_keys = api_keys
        self._clock = clock
        self._verified: dict[str, tuple[Principal, float, float]] = {}

    async def authenticate(self, credential: str) -> Principal:
        return (await self.authenticate_until(credential))[0]

    async def authenticate_until(self, credential: str) -> tuple[Principal, float | None]:
        """The principal and when its credential expires (epoch seconds; None for an API
        key, which lasts until revoked). A stream closes its connection at that instant."""
        if looks_like_api_key(credential):
            return await self._api_keys.authenticate(credential), None
        now = self._clock()
        cached = self._verified.get(credential)
        if cached is not None and now < cached[1]:
            return cached[0], cached[2]
        principal, exp = await self._verify(credential)
        if len(self._verified) >= self._CACHE_ENTRIES:
            self._verified.clear()  # simple and bounded; the next requests refill it
        self._verified[credential] = (principal, min(exp, now + self._CACHE_SECONDS), exp)
        return principal, exp

    async def _verify(self, credential: str) -> tuple[Principal, float]:
        verified = await self._verifier.verify(credential)
        issuer = verified.issuer
        try:
            principal = Principal.from_claims(
                verified.claims,
                issuer.mapping,
                issuer=None if issuer.local else issuer.issuer,
                allow_platform_admin=issuer.allow_platform_admin,
            )
        except InvalidClaims as exc:
            raise InvalidToken(
                str(exc), reason="invalid_claims", details={"issuer": issuer.issuer}
            ) from exc
        return principal, float(verified.claims["exp"])


@dataclass
class Security:
    authenticator: Authenticator
    verifier: TokenVerifier
    api_keys: ApiKeys
    audit: AccessAudit
    limits: RateLimits | None
    jwks: dict[str, Any]


def build_security(
    settings: Settings,
    pool: AsyncConnectionPool[Connection],
    access: AccessRecorder,
    key: SigningKey,
    *,
    fetch: Fetch = fetch_url,
) -> Security:
    verifier = TokenVerifier(key, settings.auth, fetch=fetch)
    api_keys = ApiKeys(pool, access, settings.api_keys)
    limits = None
    rl = settings.rate_limits
    if rl.enabled:
        buckets: Buckets
        if rl.backend == "postgres":
            budgets = (
                rl.ingest_per_tenant,
                rl.ingest_per_principal,
                rl.read_per_tenant,
                rl.read_per_principal,
            )
            idle = max(b.burst / b.rate for b in budgets) + 60
            buckets = PostgresBuckets(pool, idle_seconds=idle)
        else:
            buckets = MemoryBuckets()
        limits = RateLimits(rl, buckets)
    return Security(
        authenticator=Authenticator(verifier, api_keys),
        verifier=verifier,
        api_keys=api_keys,
        audit=AccessAudit(access, rl),
        limits=limits,
        jwks=jwks_document(key),
    )
