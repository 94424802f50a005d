"""Tenants without masking settings store exactly what they stored before settings existed.

The golden digest below is SHA-256 over the leaf hashes of the corpus, computed with the
code of d5eea5e (before tenant masking settings): every stored byte of every event is
under its leaf hash, so an equal digest means byte-identical events.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from auditline.config import IngestSettings
from auditline.domain.events import EventDraft
from auditline.domain.masking import DEFAULT_RULES, MaskingRules
from auditline.domain.masking_settings import masking_settings
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events

GOLDEN = "939924ca102e54c73a93c20d193cfe197b04d8adaf5c1c54ca5441175f9ca2d5"
KEY = bytes(range(32))
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

_WORDS = [
    "invoice",
    "paid",
    "Basic plan",
    "Bearer of news",
    "order 4111111111111112",
    "root@localhost",
    "sha a4111111111111111b",
    "pi 3.4111111111111111",
    "ok",
]
_PII = [
    "ann.lee+audit@example.co.uk",
    "Bob@Example.COM",
    "?to=carol@example.org&x=1",
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "378282246310005",
    "Bearer abc123.def",
    "basic YWxhZGRpbjpvcGVuc2VzYW1l",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    "'o'brien@example.com'",
]
_KEYS = [
    "email",
    "note",
    "password",
    "apiKey",
    "contact",
    "card",
    "author",
    "tokens",
    "X-Request-Id",
    "support_email",
    "iban",
    "nested",
]


def _text(rng: random.Random) -> str:
    return " ".join(
        rng.choice(_PII if rng.random() < 0.5 else _WORDS) for _ in range(rng.randrange(1, 4))
    )


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.2:
        return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(1, 4))}
    if depth < 3 and roll < 0.3:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 3))]
    if roll < 0.4:
        return rng.choice([None, True, 7, 12.5])
    return _text(rng)


def _object(rng: random.Random) -> dict[str, Any]:
    return {rng.choice(_KEYS): _value(rng, 1) for _ in range(rng.randrange(1, 5))}


def corpus(count: int = 400, seed: int = 16) -> list[EventDraft]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        before = _object(rng) if rng.random() < 0.6 else None
        after = _object(rng) if before is not None and rng.random() < 0.8 else None
        out.append(EventDraft(
            action=rng.choice(["UPDATE", "CREATE", "LOGIN"]),
            id=UUID(int=rng.getrandbits(128)),
            timestamp=NOW - timedelta(seconds=rng.randrange(86_400)),
            metadata=_object(rng) if rng.random() < 0.7 else None,
            user_id=f"user-{rng.randrange(50)}",
            user_agent=_text(rng) if rng.random() < 0.5 else None,
            message=_text(rng) if rng.random() < 0.8 else None,
            before=before,
            after=after,
        ))  # fmt: skip
    return out


def digest(rules: MaskingRules | None) -> str:
    extra = {} if rules is None else {"rules": rules}
    events = prepare_events(TenantId("acme"), corpus(), limits=IngestSettings(), now=NOW, **extra)
    return hashlib.sha256(b"".join(event.leaf_hash for event in events)).hexdigest()


def test_the_corpus_exercises_every_masker() -> None:
    events = repr(prepare_events(TenantId("acme"), corpus(), limits=IngestSettings(), now=NOW))

    for placeholder in ("[EMAIL]", "[CARD]", "[REDACTED]", "[JWT]"):
        assert placeholder in events


def test_default_preparation_is_byte_identical_to_before_tenant_settings() -> None:
    assert digest(None) == GOLDEN


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"region": "eu"},
        {"masking": {}},
        {"masking": {"email": "redact", "card": "redact"}},
        {"masking": {"redact_keys": [], "exempt_keys": []}},
    ],
)
def test_a_tenant_without_masking_choices_gets_the_default_rules_and_identical_events(
    settings: dict[str, Any],
) -> None:
    rules = masking_settings(settings).rules(KEY)

    assert rules is DEFAULT_RULES
    assert digest(rules) == GOLDEN


def test_the_golden_digest_notices_a_masking_difference() -> None:
    # The same corpus under rules that differ in one respect gives another digest, so the
    # comparison above would catch a change of the default behaviour.
    assert digest(masking_settings({"masking": {"card": "keep"}}).rules(None)) != GOLDEN
