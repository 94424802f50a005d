"""A tenant's masking settings: the strict check (every problem, with its path) and what
the settings compile to."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditline.domain.masking import (
    DEFAULT_RULES,
    DEFAULT_SECRET_KEYS,
    REDACTED,
    MaskingRules,
    is_secret_key,
    mask_json,
    mask_text,
    pseudonym,
)
from auditline.domain.masking_settings import (
    DEFAULT_SETTINGS,
    MAX_NAMES,
    InvalidSettings,
    MaskingSettings,
    masking_settings,
)

KEY = b"k" * 32


def errors_of(masking: Any) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(InvalidSettings) as raised:
        masking_settings({"masking": masking})
    return [(error.path, error.message) for error in raised.value.errors]


# --- accepted ----------------------------------------------------------------------------


def test_absent_masking_gives_the_defaults() -> None:
    assert masking_settings({}) is DEFAULT_SETTINGS
    assert masking_settings({"region": "eu"}) is DEFAULT_SETTINGS
    assert masking_settings({"masking": {}}) == DEFAULT_SETTINGS


def test_a_full_setting_is_read_as_written() -> None:
    settings = masking_settings(
        {
            "masking": {
                "email": "pseudonymise",
                "card": "keep",
                "redact_keys": ["national_id", "IBAN"],
                "exempt_keys": ["support_email"],
            }
        }
    )

    assert settings == MaskingSettings(
        email="pseudonymise",
        card="keep",
        redact_keys=("national_id", "IBAN"),
        exempt_keys=("support_email",),
    )
    assert settings.pseudonymises


def test_settings_compile_to_rules_that_do_what_they_say() -> None:
    rules = masking_settings(
        {"masking": {"email": "pseudonymise", "card": "keep", "redact_keys": ["national_id"],
                     "exempt_keys": ["support_email"]}}
    ).rules(KEY)  # fmt: skip

    masked = mask_json(
        {
            "email": "ann@example.com",
            "card": "4111 1111 1111 1111",
            "nationalId": "AB123",
            "password": "x",
            "support_email": "help@acme.io",
        },
        rules,
    )

    assert masked == {
        "email": pseudonym(KEY, "EMAIL", "ann@example.com"),
        "card": "4111 1111 1111 1111",
        "nationalId": REDACTED,
        "password": REDACTED,  # the built-in keys stay
        "support_email": "help@acme.io",
    }


def test_without_a_key_pseudonymised_kinds_are_redacted() -> None:
    rules = masking_settings({"masking": {"email": "pseudonymise"}}).rules(None)

    assert mask_text("ann@example.com", rules) == "[EMAIL]"
    assert rules.pseudonym_key is None


def test_a_key_is_kept_only_when_something_is_pseudonymised() -> None:
    redacting = masking_settings({"masking": {"card": "keep"}}).rules(KEY)

    assert redacting.pseudonym_key is None
    assert masking_settings({"masking": {"card": "pseudonymise"}}).rules(KEY).pseudonym_key == KEY


def test_added_redact_keys_extend_the_built_in_ones() -> None:
    rules = masking_settings({"masking": {"redact_keys": ["iban"]}}).rules(None)

    assert rules.secret_keys == (*DEFAULT_SECRET_KEYS, "iban")
    assert is_secret_key("customer_IBAN", rules)
    assert not is_secret_key("customer_IBAN", DEFAULT_RULES)


def test_the_change_record_of_masking_settings_is_not_redacted() -> None:
    # A settings change is recorded with the default rules; names under keys that look
    # secret would vanish from the record auditors read.
    settings: dict[str, Any] = {
        "masking": {"email": "keep", "redact_keys": ["iban"], "exempt_keys": ["memo"]}
    }

    assert mask_json(settings) == settings


# --- refused, with a path ----------------------------------------------------------------


M = ("settings", "masking")
MODE = "must be one of 'redact', 'pseudonymise', 'keep'"
UNKNOWN = "unknown setting; expected one of card, email, exempt_keys, redact_keys"
FEW = "needs at least 2 letters or digits (names are matched ignoring case and separators)"
CONTROL = "must not contain control or unassigned characters"
SECRET = "is a secret key: values under it are always redacted"


@pytest.mark.parametrize(
    ("masking", "expected"),
    [
        (None, [(M, "must be an object")]),
        ([], [(M, "must be an object")]),
        ("pseudonymise", [(M, "must be an object")]),
        ({"emails": "redact"}, [((*M, "emails"), UNKNOWN)]),
        ({"email": "hash"}, [((*M, "email"), MODE)]),
        ({"email": "pseudonymize"}, [((*M, "email"), MODE)]),
        ({"card": None}, [((*M, "card"), MODE)]),
        ({"card": True}, [((*M, "card"), MODE)]),
        ({"redact_keys": "iban"}, [((*M, "redact_keys"), "must be an array of key names")]),
        ({"exempt_keys": {"a": 1}}, [((*M, "exempt_keys"), "must be an array of key names")]),
        ({"redact_keys": ["iban", 7]}, [((*M, "redact_keys", 1), "must be a string")]),
        ({"redact_keys": [""]}, [((*M, "redact_keys", 0), "must be 1 to 64 characters")]),
        ({"redact_keys": ["x" * 65]}, [((*M, "redact_keys", 0), "must be 1 to 64 characters")]),
        ({"redact_keys": ["a"]}, [((*M, "redact_keys", 0), FEW)]),
        ({"exempt_keys": ["-_-"]}, [((*M, "exempt_keys", 0), FEW)]),
        ({"exempt_keys": ["a\u200bb"]}, [((*M, "exempt_keys", 0), CONTROL)]),
        ({"redact_keys": ["a\nb"]}, [((*M, "redact_keys", 0), CONTROL)]),
        (
            {"redact_keys": [f"k{i}" for i in range(MAX_NAMES + 1)]},
            [((*M, "redact_keys"), "at most 64 names")],
        ),
        (
            {"exempt_keys": ["memo", "api_token"]},
            [((*M, "exempt_keys", 1), f"'api_token' {SECRET}")],
        ),
        (
            {"redact_keys": ["iban"], "exempt_keys": ["customerIban"]},
            [((*M, "exempt_keys", 0), f"'customerIban' {SECRET}")],
        ),
        (
            {"email": "x", "card": "y", "extra": 1, "redact_keys": [1]},
            [
                ((*M, "extra"), UNKNOWN),
                ((*M, "email"), MODE),
                ((*M, "card"), MODE),
                ((*M, "redact_keys", 0), "must be a string"),
            ],
        ),
    ],
)
def test_invalid_masking_settings_name_every_offending_field(
    masking: Any, expected: list[tuple[tuple[str | int, ...], str]]
) -> None:
    assert errors_of(masking) == expected


def test_at_most_the_limit_of_names_is_accepted() -> None:
    names = [f"key{i}" for i in range(MAX_NAMES)]

    settings = masking_settings({"masking": {"redact_keys": names, "exempt_keys": ["memo"]}})

    assert len(settings.redact_keys) == MAX_NAMES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
masking_like = st.fixed_dictionaries(
    {},
    optional={
        "email": st.sampled_from(["redact", "pseudonymise", "keep"]) | json_values,
        "card": st.sampled_from(["redact", "pseudonymise", "keep"]) | json_values,
        "redact_keys": st.lists(st.text(max_size=70) | json_values, max_size=5) | json_values,
        "exempt_keys": st.lists(st.text(max_size=70) | json_values, max_size=5) | json_values,
        "other": json_values,
    },
)


@given(masking_like | json_values)
def test_any_json_is_either_accepted_and_compiles_or_refused_with_paths(masking: Any) -> None:
    errors: list[Any] = []
    try:
        settings = masking_settings({"masking": masking})
    except InvalidSettings as exc:
        errors = exc.errors
    if errors:
        assert all(error.path[:2] == M for error in errors)
    else:
        rules = settings.rules(KEY)  # compiles: no ValueError escapes as a 500
        assert isinstance(rules, MaskingRules)
        assert json.dumps(mask_json({"k": "ann@example.com"}, rules))
