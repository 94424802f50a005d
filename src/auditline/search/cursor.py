"""Opaque, tamper-proof keyset cursors.

A cursor carries the last position a page returned and the snapshot watermark of the
paging session, and it is bound to the tenant, the query (filters, ``q``, the caller's row
restriction) and the order: an HMAC-SHA256 over the payload *and* a digest of those is
appended, so a cursor that was edited, forged, or replayed against another tenant or
another query fails verification (400).

The HMAC key is derived with HKDF-SHA256 from the raw bytes of the server's Ed25519 signing
key (``info = "auditline search cursor v1"``): no extra secret to configure, and every API
replica that shares the signing key accepts every other replica's cursors. Rotating the
signing key invalidates outstanding cursors, which only means a client restarts paging.

Wire format (base64url, no padding)::

    version (1) | timestamp µs since epoch (int64) | watermark (uint64) | id (16) | mac (16)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from auditline.domain.tenants import TenantId
from auditline.search.model import Order, Position, SearchQuery

_VERSION: Final = 1
_BODY = struct.Struct(">BqQ16s")
_MAC_BYTES: Final = 16
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INFO: Final = b"auditline search cursor v1"


class InvalidCursor(ValueError):
    """The cursor is malformed, forged, or belongs to another query or tenant (400)."""


def derive_key(private: Ed25519PrivateKey) -> bytes:
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)


def binding(tenant: TenantId, query: SearchQuery, order: Order) -> bytes:
    """What a cursor is valid for: the tenant, the full query and the order."""
    canonical = json.dumps(
        {"tenant": tenant, "query": query.describe(), "order": order},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).digest()


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("cursor key must be at least 32 bytes")
        self._key = key

    @classmethod
    def from_signing_key(cls, private: Ed25519PrivateKey) -> CursorCodec:
        return cls(derive_key(private))

    def _mac(self, body: bytes, bound_to: bytes) -> bytes:
        return hmac.new(self._key, body + bound_to, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, position: Position, watermark: int, bound_to: bytes) -> str:
        delta = position.timestamp - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        body = _BODY.pack(_VERSION, micros, watermark, position.id.bytes)
        token = body + self._mac(body, bound_to)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode()

    def decode(self, cursor: str, bound_to: bytes) -> tuple[Position, int]:
        """(position, watermark) of a cursor made by :meth:`encode` for *bound_to*."""
        try:
            if len(cursor) > 128 or not cursor.isascii():
                raise ValueError
            token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, binascii.Error):
            raise InvalidCursor("the cursor is not one this server issued") from None
        if len(token) != _BODY.size + _MAC_BYTES:
            raise InvalidCursor("the cursor is not one this server issued")
        body, mac = token[: _BODY.size], token[_BODY.size :]
        if not hmac.compare_digest(mac, self._mac(body, bound_to)):
            raise InvalidCursor(
                "the cursor was altered or belongs to another query, order or tenant; "
                "repeat the search without a cursor"
            )
        version, micros, watermark, raw_id = _BODY.unpack(body)
        if version != _VERSION:
            raise InvalidCursor("the cursor comes from an incompatible version")
        timestamp = _EPOCH + timedelta(microseconds=micros)
        return Position(timestamp, UUID(bytes=raw_id)), watermark
