"""JWTs: the server's own Ed25519 key, issuing tokens, and verifying tokens of every issuer.

Verification follows RFC 8725 (JWT Best Current Practices):

* the issuer is trusted by configuration, and it alone decides the allowed algorithms and
  the keys; the token's ``alg`` only has to be one of them and must match the key it names
  (``alg: none`` is never allowed; an HS256 token can only ever be checked against a
  configured shared secret, never against a public key, so algorithm confusion has nothing
  to work with);
* headers that point at other keys (``jku``, ``x5u``, ``jwk``, ``x5c``) and critical
  extensions (``crit``) are refused; ``typ``, when present, must be a JWT or access token;
* ``exp``, ``iss`` and ``aud`` are required and checked, ``nbf`` and ``iat`` when present;
* asymmetric tokens must name their key (``kid``); an unknown ``kid`` refreshes the
  issuer's JWKS at a bounded rate before the token is refused.

Every refusal is an :class:`InvalidToken` with a short reason code and the (unverified,
bounded) header details, which the caller records; the token itself is never kept.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditline.config import AuthSettings, ClaimMapping, IssuerSettings
from auditline.domain.validation import storable_text
from auditline.security.jwks import Fetch, RemoteKeySet, fetch_url

ALGORITHM = "EdDSA"
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
_ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_DETAIL_CHARS = 200


class InvalidToken(Exception):
    """The credential is not one this server accepts. The message is safe to show the caller.

    *reason* is a stable code for the audit record; *details* are unverified, bounded facts
    about the credential (header fields, claimed issuer, API key prefix), never the secret.
    *tenant* and *actor* are set only when the credential proved which tenant it belongs to
    (an API key with the right secret that was revoked or expired).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "invalid",
        scheme: str = "jwt",
        details: Mapping[str, str] | None = None,
        tenant: str | None = None,
        actor: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.scheme = scheme
        self.details = dict(details or {})
        self.tenant = tenant
        self.actor = actor


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    kid: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_x(public: Ed25519PublicKey) -> str:
    return _b64(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def _kid(public: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of the OKP public key: stable, derived, nothing to configure."""
    canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{_public_x(public)}"}}'.encode()
    return _b64(hashlib.sha256(canonical).digest())


def public_jwk(key: SigningKey) -> dict[str, str]:
    """The server's verification key as a JWK (RFC 8037), as published in its JWKS."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _public_x(key.public),
        "kid": key.kid,
        "use": "sig",
        "alg": ALGORITHM,
    }


def jwks_document(key: SigningKey) -> dict[str, list[dict[str, str]]]:
    """The body of ``/.well-known/jwks.json``."""
    return {"keys": [public_jwk(key)]}


def load_or_create_signing_key(path: Path) -> tuple[SigningKey, bool]:
    """The key at *path*, creating it (mode 0600) if absent; returns (key, created)."""
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; use theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            created = True
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return SigningKey(private=private, kid=_kid(private.public_key())), created


def issue_token(
    key: SigningKey,
    settings: AuthSettings,
    *,
    subject: str,
    role: str,
    tenants: list[str],
    ttl_seconds: int,
) -> str:
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject,
        "role": role,
        "tenants": tenants,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


# -- verification -----------------------------------------------------------------------


class KeySource(Protocol):
    async def key(self, kid: str | None, alg: str) -> jwt.PyJWK | bytes | None:
        """The key that verifies a token with this header, or None."""


@dataclass(frozen=True)
class _LocalKey:
    jwk: jwt.PyJWK
    kid: str

    async def key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        return self.jwk if kid == self.kid and alg == ALGORITHM else None


@dataclass(frozen=True)
class _SharedSecret:
    secret: bytes

    async def key(self, kid: str | None, alg: str) -> bytes | None:
        return self.secret if alg == "HS256" else None


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer whose tokens this server accepts, with everything needed to check them."""

    issuer: str
    audience: str
    algorithms: frozenset[str]
    keys: KeySource
    mapping: ClaimMapping = field(default_factory=ClaimMapping)
    allow_platform_admin: bool = False
    leeway_seconds: int = 30
    required: tuple[str, ...] = ("exp", "iss", "aud")
    local: bool = False


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    issuer: TrustedIssuer


def _bounded(value: Any) -> str:
    """An unverified header fact as a failure record can hold it, however it was spelled."""
    return storable_text(str(value)[:_DETAIL_CHARS])


def _raw_header(token: str) -> dict[str, Any]:
    """The JOSE header as sent, decoded without any validation (or :class:`InvalidToken`)."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError) as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise InvalidToken("malformed token", reason="malformed") from exc
    if not isinstance(header, dict) or token.count(".") != 2:
        raise InvalidToken("malformed token", reason="malformed")
    return header


class TokenVerifier:
    """Checks JWTs from the server's own key and from every configured external issuer."""

    def __init__(
        self,
        key: SigningKey,
        settings: AuthSettings,
        *,
        fetch: Fetch = fetch_url,
        clock: Any = time.monotonic,
    ) -> None:
        self._max_bytes = settings.max_token_bytes
        local = TrustedIssuer(
            issuer=settings.issuer,
            audience=settings.audience,
            algorithms=frozenset({ALGORITHM}),
            keys=_LocalKey(jwt.PyJWK(public_jwk(key), algorithm=ALGORITHM), key.kid),
            allow_platform_admin=True,
            leeway_seconds=settings.leeway_seconds,
            required=("exp", "iat", "iss", "aud", "sub"),
            local=True,
        )
        self.issuers: dict[str, TrustedIssuer] = {local.issuer: local}
        for conf in settings.issuers:
            self.issuers[conf.issuer] = self._external(conf, settings, fetch, clock)

    @staticmethod
    def _external(
        conf: IssuerSettings, settings: AuthSettings, fetch: Fetch, clock: Any
    ) -> TrustedIssuer:
        keys: KeySource
        if conf.shared_secret is not None:
            keys = _SharedSecret(conf.shared_secret.get_secret_value().encode())
        else:
            assert conf.jwks_url is not None  # noqa: S101 - enforced by IssuerSettings
            keys = RemoteKeySet(
                conf.jwks_url,
                frozenset(conf.algorithms),
                cache_seconds=settings.jwks_cache_seconds,
                min_refresh_seconds=settings.jwks_min_refresh_seconds,
                timeout_seconds=settings.jwks_fetch_timeout_seconds,
                fetch=fetch,
                clock=clock,
            )
        return TrustedIssuer(
            issuer=conf.issuer,
            audience=conf.audience,
            algorithms=frozenset(conf.algorithms),
            keys=keys,
            mapping=conf.claims,
            allow_platform_admin=conf.allow_platform_admin,
            leeway_seconds=conf.leeway_seconds,
        )

    async def verify(self, token: str) -> VerifiedToken:
        """The token's claims and issuer if it is valid here, else :class:`InvalidToken`."""
        if len(token) > self._max_bytes:
            raise InvalidToken("token is too large", reason="too_large")
        header = _raw_header(token)
        details: dict[str, str] = {
            k: _bounded(header[k]) for k in ("alg", "kid", "typ") if k in header
        }

        def refuse(message: str, reason: str) -> InvalidToken:
            return InvalidToken(message, reason=reason, details=details)

        # Before any library parsing: these headers are refused whatever else is wrong.
        if _FORBIDDEN_HEADERS & header.keys():
            raise refuse("token header refers to external keys or extensions", "forbidden_header")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise refuse("malformed token", "malformed") from exc
        if "iss" in unverified:
            details["issuer"] = _bounded(unverified["iss"])
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES):
            raise refuse("token type is not accepted", "bad_type")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise refuse("token issuer is not trusted", "unknown_issuer")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in issuer.algorithms:
            raise refuse("token algorithm is not accepted", "bad_alg")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise refuse("malformed token", "malformed")
        if alg != "HS256" and not kid:
            raise refuse("token does not name its key (kid)", "unknown_kid")
        key = await issuer.keys.key(kid, alg)
        if key is None:
            raise refuse("token was signed by an unknown key", "unknown_kid")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway_seconds,
                options={"require": list(issuer.required), "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise refuse("token has expired", "expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise refuse("token is not valid yet", "not_yet_valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise refuse("token audience is not accepted", "bad_audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise refuse("token issuer is not trusted", "unknown_issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise refuse(f"token lacks the '{exc.claim}' claim", "missing_claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise refuse("token signature is not valid", "bad_signature") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise refuse("token algorithm is not accepted", "bad_alg") from exc
        except jwt.PyJWTError as exc:
            raise refuse("token is not valid", "invalid") from exc
        return VerifiedToken(claims=claims, issuer=issuer)
