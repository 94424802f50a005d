"""An external issuer's JSON Web Key Set: fetched, filtered, cached, refreshed at a bounded rate.

Guarantees:

* Only signature keys for the issuer's allowed algorithms are kept, each bound to exactly
  one algorithm (the JWK's ``alg``, else the one its key type implies), so a token cannot
  choose how a key is used. Symmetric (``oct``) keys are never taken from a URL; RSA keys
  shorter than 2048 bits are dropped.
* The set is cached for ``cache_seconds``. A token naming an unknown ``kid`` triggers a
  refresh (that is how key rotation is picked up), but at most one fetch per
  ``min_refresh_seconds`` per issuer, however many tokens with made-up ``kid`` values
  arrive; concurrent requests share one fetch.
* A failed fetch keeps the keys already known (the IdP being down must not log everybody
  out) and is retried no sooner than ``min_refresh_seconds`` later.
* The fetch does not follow redirects, has a timeout and reads at most 256 KiB.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024
Fetch = Callable[[str, float], Awaitable[bytes]]
"""``fetch(url, timeout_seconds)`` -> the response body."""

_IMPLIED_ALG = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256", ("RSA", None): "RS256"}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError for the 3xx


def _fetch_blocking(url: str, timeout: float) -> bytes:
    opener = urllib.request.build_opener(_NoRedirects())
    request = urllib.request.Request(  # noqa: S310 - scheme checked by IssuerSettings
        url, headers={"Accept": "application/json", "User-Agent": "auditline-jwks"}
    )
    with opener.open(request, timeout=timeout) as response:
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    return body


async def fetch_url(url: str, timeout_seconds: float) -> bytes:
    """GET *url* in a worker thread (urllib blocks), so the event loop keeps serving."""
    return await asyncio.to_thread(_fetch_blocking, url, timeout_seconds)


def parse_jwks(document: bytes, algorithms: frozenset[str]) -> dict[str, jwt.PyJWK]:
    """The usable signature keys of a JWKS document, by ``kid``."""
    data = json.loads(document)
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS document")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid, kty = entry.get("kid"), entry.get("kty")
        if not isinstance(kid, str) or not kid or kty == "oct":
            continue
        if entry.get("use", "sig") != "sig":
            continue
        crv = None if kty == "RSA" else entry.get("crv")
        alg = entry.get("alg") or _IMPLIED_ALG.get((str(kty), None if crv is None else str(crv)))
        if alg not in algorithms or alg == "HS256":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=alg)
        except jwt.PyJWTError:
            continue
        if isinstance(key.key, RSAPublicKey) and key.key.key_size < 2048:
            continue
        keys[kid] = key
    return keys


class RemoteKeySet:
    """The keys of one issuer's JWKS URL (see the module docstring for the guarantees)."""

    def __init__(
        self,
        url: str,
        algorithms: frozenset[str],
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout_seconds: float,
        fetch: Fetch = fetch_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._algorithms = algorithms
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout_seconds
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many fetches were attempted (for tests and metrics)."""

    async def key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if not kid:
            return None
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_seconds:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            await self._refresh()
            key = self._keys.get(kid)
        if key is None or key.algorithm_name != alg:
            return None
        return key

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
                return  # fetched (or tried) just now, possibly by a concurrent request
            self._attempted_at = now
            self.fetches += 1
            try:
                keys = parse_jwks(await self._fetch(self.url, self._timeout), self._algorithms)
            except Exception as exc:  # network, HTTP status, JSON: keep what we have
                log.warning("could not refresh the JWKS at %s: %s", self.url, exc)
                return
            self._keys = keys
            self._fetched_at = self._clock()
