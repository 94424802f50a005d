"""The verified-JWT cache: it saves signature checks and never outlives a token."""

from __future__ import annotations

from typing import Any, cast

import pytest

from auditline.security.service import Authenticator
from auditline.security.tokens import InvalidToken, TokenVerifier, TrustedIssuer, VerifiedToken


class CountingVerifier:
    """Stands in for TokenVerifier: accepts one token until 'revoked', counts the calls."""

    def __init__(self, exp: float) -> None:
        self.calls = 0
        self.exp = exp
        self.accept = True

    async def verify(self, token: str) -> VerifiedToken:
        self.calls += 1
        if not self.accept:
            raise InvalidToken("token has expired", reason="expired")
        claims = {"sub": "svc", "role": "user", "tenants": ["acme"], "exp": self.exp}
        issuer = TrustedIssuer(
            issuer="auditline", audience="auditline", algorithms=frozenset({"EdDSA"}),
            keys=cast(Any, None), local=True,
        )  # fmt: skip
        return VerifiedToken(claims=claims, issuer=issuer)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def make(exp: float) -> tuple[Authenticator, CountingVerifier, Clock]:
    verifier, clock = CountingVerifier(exp), Clock()
    auth = Authenticator(cast(TokenVerifier, verifier), cast(Any, None), clock=clock)
    return auth, verifier, clock


async def test_a_verified_token_is_not_checked_again_within_the_cache_window() -> None:
    auth, verifier, clock = make(exp=5_000)
    first = await auth.authenticate("t")
    clock.now += 59
    assert await auth.authenticate("t") is first
    assert verifier.calls == 1


async def test_the_cache_entry_ends_after_a_minute_and_the_token_is_checked_again() -> None:
    auth, verifier, clock = make(exp=5_000)
    await auth.authenticate("t")
    clock.now += 61
    verifier.accept = False
    with pytest.raises(InvalidToken):
        await auth.authenticate("t")
    assert verifier.calls == 2


async def test_the_cache_never_outlives_the_tokens_own_expiry() -> None:
    auth, verifier, clock = make(exp=1_010)
    await auth.authenticate("t")
    clock.now = 1_010
    verifier.accept = False
    with pytest.raises(InvalidToken):
        await auth.authenticate("t")


async def test_a_different_token_text_is_verified_on_its_own() -> None:
    auth, verifier, _ = make(exp=5_000)
    await auth.authenticate("t1")
    await auth.authenticate("t2")
    assert verifier.calls == 2
