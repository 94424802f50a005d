"""Keyed pseudonyms and exempt keys: concrete cases plus hypothesis properties.

The strongest property is the oracle one: pseudonymising rules mask exactly what the
redacting rules mask, only the placeholder differs. So everything the detectors find is
hidden in both modes, and the tests of tests/unit/test_masking.py carry over.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from auditline.config import IngestSettings
from auditline.domain.events import EventDraft
from auditline.domain.masking import (
    DEFAULT_RULES,
    DEFAULT_SECRET_KEYS,
    REDACTED,
    JsonValue,
    MaskingRules,
    is_exempt_key,
    mask_json,
    mask_text,
    pseudonym,
)
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from tests.unit.test_masking import (
    JWT_EXAMPLE,
    any_keys,
    card_digits,
    exact,
    json_values,
    texts,
    with_separators,
)

KEY_A = b"A" * 32
KEY_B = b"B" * 32
keys = st.binary(min_size=16, max_size=64)
PSEUDONYM = re.compile(r"\[(EMAIL|CARD):[0-9a-f]{12}\]")


def pseudonymising(
    key: bytes = KEY_A, *, exempt_keys: tuple[str, ...] = (), mask_emails: bool = True
) -> MaskingRules:
    return MaskingRules(
        DEFAULT_SECRET_KEYS, mask_emails=mask_emails, exempt_keys=exempt_keys,
        pseudonymise_emails=True, pseudonymise_cards=True, pseudonym_key=key,
    )  # fmt: skip


PLAIN_WORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
realistic_emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    st.lists(PLAIN_WORD, min_size=1, max_size=3).map(".".join),
    st.lists(PLAIN_WORD, min_size=1, max_size=2),
    st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=4),
)
"""Addresses with nothing the detector keeps outside the match (``to=`` in a query)."""


def as_placeholders(text: str) -> str:
    """A pseudonymised text as the redacting rules would have written it."""
    return PSEUDONYM.sub(lambda match: f"[{match.group(1)}]", text)


def as_placeholders_json(value: JsonValue) -> JsonValue:
    if isinstance(value, dict):
        return {key: as_placeholders_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_placeholders_json(item) for item in value]
    return as_placeholders(value) if isinstance(value, str) else value


# --- the pseudonym -----------------------------------------------------------------------


def test_a_pseudonym_is_the_truncated_hmac_sha256_of_label_and_value() -> None:
    expected = hmac.new(KEY_A, b"EMAIL\x00ann@example.com", hashlib.sha256).hexdigest()[:12]

    assert pseudonym(KEY_A, "EMAIL", "ann@example.com") == f"[EMAIL:{expected}]"


@given(key=keys, value=st.text())
def test_pseudonyms_are_deterministic_per_key(key: bytes, value: str) -> None:
    first = pseudonym(key, "EMAIL", value)

    assert first == pseudonym(key, "EMAIL", value)
    assert PSEUDONYM.fullmatch(first)


@given(key=keys, other=keys, value=st.text(min_size=1))
def test_pseudonyms_differ_across_keys(key: bytes, other: bytes, value: str) -> None:
    assume(key != other)

    assert pseudonym(key, "EMAIL", value) != pseudonym(other, "EMAIL", value)


@given(key=keys, value=st.text(), other=st.text())
def test_different_values_get_different_pseudonyms(key: bytes, value: str, other: str) -> None:
    assume(value != other)

    assert pseudonym(key, "EMAIL", value) != pseudonym(key, "EMAIL", other)


def test_the_label_separates_kinds_with_the_same_text() -> None:
    assert pseudonym(KEY_A, "EMAIL", "4111")[7:] != pseudonym(KEY_A, "CARD", "4111")[6:]


# --- rules -------------------------------------------------------------------------------


def test_pseudonymising_needs_a_long_enough_key_and_a_masked_kind() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        MaskingRules(DEFAULT_SECRET_KEYS, pseudonymise_emails=True)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        MaskingRules(DEFAULT_SECRET_KEYS, pseudonymise_cards=True, pseudonym_key=b"k" * 15)
    with pytest.raises(ValueError, match="only a masked kind"):
        pseudonymising(mask_emails=False)


def test_the_key_is_never_shown_and_dropped_when_nothing_is_pseudonymised() -> None:
    rules = pseudonymising(bytes(range(32)))

    assert "pseudonym_key" not in repr(rules)
    assert bytes(range(32)).hex() not in repr(rules)
    assert MaskingRules(DEFAULT_SECRET_KEYS, pseudonym_key=KEY_A) == DEFAULT_RULES
    assert MaskingRules(DEFAULT_SECRET_KEYS, pseudonym_key=KEY_A).pseudonym_key is None


def test_rules_with_different_keys_are_different_rules() -> None:
    assert pseudonymising(KEY_A) != pseudonymising(KEY_B)
    assert pseudonymising(KEY_A) == pseudonymising(b"A" * 32)
    assert hash(pseudonymising(KEY_A)) == hash(pseudonymising(b"A" * 32))


# --- free text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ann@example.com now", "mail {ann} now"),
        ("mail ANN@Example.COM now", "mail {ann} now"),  # one mailbox, one pseudonym
        ("?to=ann@example.com&x=1", "?to={ann}&x=1"),  # the kept prefix stays outside
        ("card 4111 1111 1111 1111 exp 2027", "card {card} exp 2027"),
        ("card 4111-1111-1111-1111.", "card {card}."),  # separators do not matter
        ("Bearer abc123.def and " + JWT_EXAMPLE, "Bearer [REDACTED] and [JWT]"),
        ("order 4111111111111112 shipped", "order 4111111111111112 shipped"),
    ],
)
def test_mask_text_pseudonymises_addresses_and_cards(text: str, expected: str) -> None:
    ann = pseudonym(KEY_A, "EMAIL", "ann@example.com")
    card = pseudonym(KEY_A, "CARD", "4111111111111111")

    assert mask_text(text, pseudonymising()) == expected.format(ann=ann, card=card)


def test_only_the_pseudonymised_kind_changes() -> None:
    text = "ann@example.com 4111111111111111"
    emails_only = MaskingRules(DEFAULT_SECRET_KEYS, pseudonymise_emails=True, pseudonym_key=KEY_A)

    assert mask_text(text, emails_only) == f"{pseudonym(KEY_A, 'EMAIL', 'ann@example.com')} [CARD]"


@given(texts, keys)
def test_pseudonymising_masks_exactly_what_redacting_masks(text: str, key: bytes) -> None:
    assume(not PSEUDONYM.search(text))  # text that already reads like a pseudonym

    assert as_placeholders(mask_text(text, pseudonymising(key))) == mask_text(text)


@given(texts)
def test_pseudonymised_text_is_idempotent(text: str) -> None:
    once = mask_text(text, pseudonymising())

    assert mask_text(once, pseudonymising()) == once
    assert mask_text(once) == once  # and the default rules see nothing in it either


@given(st.emails())
def test_no_generated_address_survives_pseudonymisation(email: str) -> None:
    masked = mask_text(f"contact {email} today", pseudonymising())

    local_part = email.rpartition("@")[0]
    assert email not in masked
    assert "@" not in masked
    assert f"{local_part}[EMAIL:" not in masked
    assert "[EMAIL:" in masked


@given(realistic_emails, realistic_emails)
def test_equal_addresses_read_alike_and_different_ones_differ(email: str, other: str) -> None:
    masked = mask_text(f"from {email} to {other}, cc {email.upper()}", pseudonymising())

    found = [match.group() for match in PSEUDONYM.finditer(masked)]
    assert masked == f"from {found[0]} to {found[1]}, cc {found[2]}"
    assert found[0] == found[2]
    assert (found[0] == found[1]) == (email.lower() == other.lower())


@given(email=st.emails(), key=keys, other_key=keys)
def test_one_address_reads_differently_for_two_tenants(
    email: str, key: bytes, other_key: bytes
) -> None:
    assume(key != other_key)

    mine = mask_text(email, pseudonymising(key))
    theirs = mask_text(email, pseudonymising(other_key))

    assert mine != theirs
    assert email not in mine + theirs


@given(data=st.data(), digits=card_digits(valid=True))
def test_a_card_gets_one_pseudonym_whatever_its_separators(
    data: st.DataObject, digits: str
) -> None:
    separators = data.draw(st.lists(st.sampled_from(["", " ", "-"]), min_size=18, max_size=18))
    card = with_separators(digits, separators)

    masked = mask_text(f"paid with {card}, thanks", pseudonymising())

    assert masked == f"paid with {pseudonym(KEY_A, 'CARD', digits)}, thanks"
    assert digits not in masked.replace(" ", "").replace("-", "")


# --- JSON and exempt keys ----------------------------------------------------------------


@given(json_values(any_keys), keys)
def test_pseudonymised_json_masks_exactly_what_redacted_json_masks(
    value: JsonValue, key: bytes
) -> None:
    assume(not PSEUDONYM.search(exact(value)))

    masked = mask_json(value, pseudonymising(key))

    assert exact(as_placeholders_json(masked)) == exact(mask_json(value))
    assert exact(mask_json(masked, pseudonymising(key))) == exact(masked)


@pytest.mark.parametrize("key", ["support_email", "supportEmail", "SUPPORT-EMAIL", "support email"])
def test_exempt_keys_match_across_case_and_separators(key: str) -> None:
    rules = MaskingRules(DEFAULT_SECRET_KEYS, exempt_keys=("Support_Email",))

    assert is_exempt_key(key, rules)
    assert not is_exempt_key("support_emails", rules)  # matched whole, unlike secret keys
    assert not is_exempt_key("email", rules)


def test_exempt_keys_lift_only_the_pii_detectors_at_any_depth() -> None:
    rules = pseudonymising(exempt_keys=("support",))
    document: JsonValue = {
        "support": {
            "to": "help@acme.io",
            "card": "4111 1111 1111 1111",
            "password": "hunter2",
            "auth": None,
            "note": f"Bearer abc123 {JWT_EXAMPLE}",
            "list": ["help@acme.io", {"token": "t"}],
        },
        "to": "help@acme.io",
    }

    assert mask_json(document, rules) == {
        "support": {
            "to": "help@acme.io",
            "card": "4111 1111 1111 1111",
            "password": REDACTED,
            "auth": None,
            "note": "Bearer [REDACTED] [JWT]",
            "list": ["help@acme.io", {"token": REDACTED}],
        },
        "to": pseudonym(KEY_A, "EMAIL", "help@acme.io"),
    }


@given(
    value=json_values(any_keys),
    # No secret fragment can be built from these letters (as in test_masking's safe_keys).
    name=st.text(alphabet="qxyz_-", min_size=2, max_size=6).filter(
        lambda k: sum(c.isalnum() for c in k) >= 1
    ),
    sibling=texts,
)
def test_an_exempt_subtree_is_masked_by_the_rules_without_pii_detectors(
    value: JsonValue, name: str, sibling: str
) -> None:
    rules = pseudonymising(exempt_keys=(name,))
    no_pii = MaskingRules(DEFAULT_SECRET_KEYS, mask_emails=False, mask_card_numbers=False)

    masked = mask_json({name: value, "note": sibling}, rules)

    assert exact(masked) == exact(
        {name: mask_json(value, no_pii), "note": mask_text(sibling, rules)}
    )


# --- prepared events ---------------------------------------------------------------------


@given(old=realistic_emails, new=realistic_emails, key=keys)
def test_a_changed_address_is_listed_and_reads_differently_without_being_revealed(
    old: str, new: str, key: bytes
) -> None:
    assume(old.lower() != new.lower())
    draft = EventDraft(
        action="UPDATE", before={"email": old, "plan": "pro"}, after={"email": new, "plan": "pro"}
    )
    now = datetime(2025, 6, 1, tzinfo=UTC)

    (event,) = prepare_events(
        TenantId("acme"), [draft], limits=IngestSettings(), now=now, rules=pseudonymising(key)
    )

    assert event.changed_fields == ["email"]
    assert event.before is not None
    assert event.after is not None
    assert event.before["email"] != event.after["email"]
    assert PSEUDONYM.fullmatch(event.before["email"])
    assert PSEUDONYM.fullmatch(event.after["email"])
    stored = exact(event.before) + exact(event.after)
    assert old not in stored
    assert new not in stored
