"""API keys: service credentials bound to one tenant, with scopes, optional expiry, revocable.

A key looks like ``alk_<12 base32 chars>_<43 base64url chars>``:

* ``alk_`` makes leaked keys easy to find for secret scanners;
* the 12 characters after it (60 random bits) are the visible, unique *prefix*: shown in
  listings, used as the key's name in audit records, and used to find its row;
* the rest is 256 random bits from ``secrets``.

Only SHA-256 of the whole key is stored, and it is compared in constant time. A fast hash is
the right tool here, unlike for passwords: with 256 bits of entropy there is nothing to
guess, so a stolen hash is useless, while a deliberately slow hash (bcrypt, Argon2) would
cost tens of milliseconds of CPU on every ingest request and hand attackers a cheap way to
burn server CPU. A keyed hash (HMAC with a server-side pepper) would add a secret every API
process must share and that, if lost, invalidates every key, for no gain at this entropy.

Revocation takes effect on the next request in every process: keys are looked up on every
request (one index probe through a SECURITY DEFINER function) and never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Final, cast
from uuid import UUID

from psycopg import errors
from psycopg_pool import AsyncConnectionPool
from uuid_utils.compat import uuid7

from auditline.config import ApiKeySettings
from auditline.domain.access import Actor
from auditline.domain.tenants import TenantId, UnknownTenant
from auditline.ingest.access import AccessRecorder
from auditline.security.principal import Principal, Scope
from auditline.security.tokens import InvalidToken
from auditline.storage.api_keys import (
    ApiKey,
    find_key_by_prefix,
    insert_api_key,
    list_api_keys,
    lock_tenant_keys,
    revoke_api_key,
    touch_api_key,
)
from auditline.storage.database import Connection, tenant_transaction
from auditline.tenancy.scope import for_system

KEY_MARKER: Final = "alk_"
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
_KEY: Final = re.compile(r"^(alk_[a-z2-7]{12})_([A-Za-z0-9_-]{43})$")


class ApiKeyLimitReached(Exception):
    """The tenant already has the configured maximum of active keys."""


def generate_key() -> tuple[str, str]:
    """A new key and its prefix."""
    prefix = KEY_MARKER + "".join(secrets.choice(_BASE32) for _ in range(12))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(KEY_MARKER)


class ApiKeys:
    """Create, list, revoke and check API keys; changes are recorded in the tenant's log."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        access: AccessRecorder,
        settings: ApiKeySettings,
    ) -> None:
        self._pool = pool
        self._access = access
        self._settings = settings

    async def create(
        self,
        tenant: TenantId,
        *,
        name: str,
        scopes: list[Scope],
        expires_at: datetime | None,
        actor: Actor,
    ) -> tuple[ApiKey, str]:
        """The new key's record and its secret, which exists nowhere else after this returns."""
        scopes = sorted(set(scopes))
        async with tenant_transaction(self._pool, tenant) as conn:
            active = await lock_tenant_keys(conn, tenant)
            if active is None:
                raise UnknownTenant(tenant)
            if active >= self._settings.max_active_per_tenant:
                raise ApiKeyLimitReached(self._settings.max_active_per_tenant)
            for attempt in range(3):
                key, prefix = generate_key()
                try:
                    async with conn.transaction():  # a savepoint: a prefix clash is retried
                        stored = await insert_api_key(
                            conn, tenant, key_id=uuid7(), prefix=prefix,
                            secret_hash=hash_key(key), name=name, scopes=list(scopes),
                            created_by=actor.subject, expires_at=expires_at,
                        )  # fmt: skip
                    break
                except errors.UniqueViolation:
                    if attempt == 2:
                        raise
            await self._access.record_in(
                conn, tenant, actor, action="CREATE", resource_type="api_key",
                resource_id=str(stored.id), message=f"created API key {stored.prefix}",
                after=_describe(stored),
            )  # fmt: skip
        return stored, key

    async def list(self, tenant: TenantId) -> list[ApiKey]:
        async with tenant_transaction(self._pool, tenant) as conn:
            return await list_api_keys(conn, tenant)

    async def revoke(
        self,
        tenant: TenantId,
        key_id: UUID,
        *,
        actor: Actor,
    ) -> ApiKey | None:
        """Revoke the key (idempotent); None if *tenant* has no such key."""
        async with tenant_transaction(self._pool, tenant) as conn:
            found = await revoke_api_key(conn, tenant, key_id, revoked_by=actor.subject)
            if found is None:
                return None
            stored, revoked_now = found
            if revoked_now:
                await self._access.record_in(
                    conn, tenant, actor, action="DELETE", resource_type="api_key",
                    resource_id=str(stored.id), message=f"revoked API key {stored.prefix}",
                    before=_describe(stored, revoked=False), after=_describe(stored),
                )  # fmt: skip
        return stored

    async def authenticate(self, presented: str) -> Principal:
        """The principal of a valid, active key, else :class:`InvalidToken`."""
        prefix = key_prefix(presented)
        if prefix is None:
            raise InvalidToken("malformed API key", reason="malformed", scheme="api_key")
        details = {"key_prefix": prefix}
        async with self._pool.connection() as conn:
            found = await find_key_by_prefix(conn, prefix)
        if found is None or not hmac.compare_digest(found.secret_hash, hash_key(presented)):
            raise InvalidToken(
                "API key is not valid", reason="unknown_key", scheme="api_key", details=details
            )
        now = datetime.now(UTC)
        # The secret matched, so the key's tenant is proven: its own log records the attempt.
        if found.revoked_at is not None:
            raise InvalidToken(
                "API key has been revoked", reason="revoked", scheme="api_key",
                details=details, tenant=found.tenant_id, actor=prefix,
            )  # fmt: skip
        if found.expires_at is not None and found.expires_at <= now:
            raise InvalidToken(
                "API key has expired", reason="key_expired", scheme="api_key",
                details=details, tenant=found.tenant_id, actor=prefix,
            )  # fmt: skip
        resolution = timedelta(seconds=self._settings.last_used_resolution_seconds)
        if found.last_used_at is None or now - found.last_used_at >= resolution:
            tenant = for_system(found.tenant_id, reason="the key's secret proved its tenant")
            async with tenant_transaction(self._pool, tenant) as conn:
                await touch_api_key(conn, tenant, found.id)
        return Principal.for_api_key(
            tenant=found.tenant_id,
            key_id=found.id,
            prefix=prefix,
            scopes=frozenset(cast(list[Scope], found.scopes)),
        )


def _describe(key: ApiKey, *, revoked: bool = True) -> dict[str, object]:
    """The key as its change records show it: never the secret or its hash."""
    described: dict[str, object] = {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "expires_at": None if key.expires_at is None else key.expires_at.isoformat(),
    }
    if revoked and key.revoked_at is not None:
        described["revoked_at"] = key.revoked_at.isoformat()
    return described
