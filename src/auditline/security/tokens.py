"""Locally signed JWTs: the server's Ed25519 key, issuing tokens and verifying them.

Verification follows RFC 8725: one allowed algorithm (EdDSA) fixed by the server, never
taken from the token; ``exp``, ``iat``, ``iss``, ``aud``, ``sub`` required; any header that
points at other keys (``jku``, ``x5u``, ``jwk``, ``x5c``) refused; ``kid`` must name our key.
External identity providers (JWKS) come with the identity issue and plug in here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditline.config import AuthSettings

ALGORITHM = "EdDSA"
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})


class InvalidToken(Exception):
    """The token is not one this server accepts. The message is safe to show the caller."""


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    kid: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def _kid(public: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of the OKP public key: stable, derived, nothing to configure."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


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


def verify_token(token: str, key: SigningKey, settings: AuthSettings) -> dict[str, Any]:
    """The token's claims if it is valid for this server, else :class:`InvalidToken`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc
    if _FORBIDDEN_HEADERS & header.keys():
        raise InvalidToken("token header refers to external keys")
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("token algorithm is not accepted")
    if header.get("kid") != key.kid:
        raise InvalidToken("token was signed by an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public,
            algorithms=[ALGORITHM],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("token is not valid") from exc
    return claims
