"""Masking of secrets and personal data: concrete cases plus hypothesis properties."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import string
from collections.abc import Iterator

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from auditline.domain.masking import (
    _CARD_HINT,
    _TOKEN_HINT,
    DEFAULT_RULES,
    REDACTED,
    JsonValue,
    MaskingRules,
    _may_hold_card,
    _may_hold_token,
    is_secret_key,
    mask_json,
    mask_text,
)

# --- helpers and strategies --------------------------------------------------------------

JWT_EXAMPLE = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"


def luhn_valid(digits: str) -> bool:
    """Textbook Luhn check, independent of the production implementation."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def luhn_check_digit(body: str) -> str:
    return next(d for d in string.digits if luhn_valid(body + d))


def render_key(words: list[str], style: str) -> str:
    if style == "camel":
        return words[0] + "".join(word.capitalize() for word in words[1:])
    if style == "pascal":
        return "".join(word.capitalize() for word in words)
    if style == "train":
        return "-".join(word.capitalize() for word in words)
    if style == "upper":
        return "_".join(word.upper() for word in words)
    return style.join(words)


KEY_STYLES = st.sampled_from(["_", "-", ".", " ", "camel", "pascal", "train", "upper"])

SECRET_WORDS = st.sampled_from(
    [
        ["password"],
        ["passwd"],
        ["api", "key"],
        ["client", "secret"],
        ["refresh", "token"],
        ["access", "token"],
        ["authorization"],
        ["access", "key"],
        ["private", "key"],
        ["session", "id"],
        ["cookie"],
        ["credentials"],
        ["auth"],
    ]
)

ORDINARY_WORDS = st.sampled_from(
    [
        ["author"],
        ["authority"],
        ["author", "name"],
        ["tokenizer", "name"],
        ["secretary"],
        ["passwordless", "login"],
        ["session", "timeout"],
        ["primary", "key"],
        ["idempotency", "key"],
        ["keyboard", "layout"],
    ]
)


@st.composite
def secret_keys(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from([[], ["x"], ["db"], ["aws"], ["user"]]))
    suffix = draw(st.sampled_from([[], ["value"], ["hash"]]))
    return render_key(prefix + draw(SECRET_WORDS) + suffix, draw(KEY_STYLES))


@st.composite
def ordinary_keys(draw: st.DrawFn) -> str:
    return render_key(draw(ORDINARY_WORDS), draw(KEY_STYLES))


# Keys no secret fragment can be built from (every fragment needs a letter not in "qxyz").
safe_keys = ordinary_keys() | st.text(alphabet="qxyz_-", min_size=1, max_size=6)
any_keys = safe_keys | secret_keys() | st.text(max_size=8)

# Text assembled from pieces that trigger every masker and their interactions.
TEXT_PIECES = st.sampled_from(
    [
        "Bearer ",
        "basic ",
        "eyJ",
        JWT_EXAMPLE,
        "ann",
        "@",
        "example.com",
        ".",
        " ",
        "-",
        "=",
        "'",
        "/",
        "4111",
        "1111",
        "5",
        "0",
        "Ab1",
        "[EMAIL]",
        "[CARD]",
        "[JWT]",
        REDACTED,
    ]
)
texts = st.text() | st.lists(
    TEXT_PIECES | st.text(alphabet="aZ09 .-@'=_/+", max_size=4), max_size=12
).map("".join)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[JsonValue]:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=20,
    )


def expected_masking(value: JsonValue) -> JsonValue:
    """The obvious recursive definition of mask_json, as an oracle for the iterative one."""
    if isinstance(value, dict):
        return {
            key: REDACTED if item is not None and is_secret_key(key) else expected_masking(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [expected_masking(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def containers(value: JsonValue) -> Iterator[JsonValue]:
    if isinstance(value, dict | list):
        yield value
        for item in value.values() if isinstance(value, dict) else value:
            yield from containers(item)


def exact(value: JsonValue) -> str:
    """Serialisation that tells key order, 1 from 1.0 and True from 1 apart."""
    return json.dumps(value)


# --- secret keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "Password",
        "X-Api-Key",
        "clientSecret",
        "refresh_token",
        "AUTHORIZATION",
        "APIKey",
        "OAuth",
        "csrftoken",
        "PHPSESSID",
        "Set-Cookie",
        "aws_secret_access_key",
        "password_hash",
        "credentials",
        "db.password",
        "api key",
    ],
)
def test_secret_key_spellings_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "author",
        "authority",
        "tokenizer_name",
        "authorName",
        "secretary",
        "passwordless",
        "session_timeout",
        "primary_key",
        "key",
        "cwd",
        "",
    ],
)
def test_keys_merely_containing_a_fragment_mid_word_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


@given(secret_keys())
def test_secret_keys_match_in_every_case_and_separator_style(key: str) -> None:
    assert is_secret_key(key), key


@given(ordinary_keys())
def test_ordinary_keys_do_not_match_in_any_case_and_separator_style(key: str) -> None:
    assert not is_secret_key(key), key


def test_custom_rules_normalise_fragments_and_replace_the_defaults() -> None:
    rules = MaskingRules(secret_keys=("Social_Security-Number", "socialsecuritynumber"))

    assert rules.secret_keys == ("socialsecuritynumber",)
    assert is_secret_key("socialSecurityNumber", rules)
    assert not is_secret_key("password", rules)


def test_empty_secret_fragment_is_rejected_because_it_would_match_every_key() -> None:
    with pytest.raises(ValueError, match="at least one letter or digit"):
        MaskingRules(secret_keys=("password", "-_"))


def test_rules_are_equal_and_hash_alike_when_they_mask_alike() -> None:
    rules = MaskingRules(secret_keys=("api_key", "pin"))
    same = MaskingRules(secret_keys=("APIKey", "PIN"))
    other = dataclasses.replace(rules, mask_emails=False)

    assert rules == same
    assert hash(rules) == hash(same)
    assert other != rules
    assert other.secret_keys == rules.secret_keys
    assert mask_json({"to": "ann@example.com"}, other) == {"to": "ann@example.com"}


# --- free text: concrete cases -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ann.lee+audit@example.co.uk now", "mail [EMAIL] now"),
        ("quoted 'o'brien@example.com'.", "quoted '[EMAIL]'."),
        ("odd ''@example.com and to=''@example.com", "odd [EMAIL] and to=[EMAIL]"),
        (
            "https://app.example.com/?to=ann@example.com&x=1",
            "https://app.example.com/?to=[EMAIL]&x=1",
        ),
        ("card 4111 1111 1111 1111 exp 2027", "card [CARD] exp 2027"),
        ("card 4111-1111-1111-1111 2027", "card [CARD] 2027"),
        ("amex 378282246310005.", "amex [CARD]."),
        ("ref 7 5555-5555-5555-4444", "ref 7 [CARD]"),
        # "12 5555 5555 5555" passes Luhn too; overlapping candidates are masked together.
        ("ref 12 5555-5555-5555-4444", "ref [CARD]"),
        ("Authorization: Bearer abc123.def", "Authorization: Bearer [REDACTED]"),
        ("header basic YWxhZGRpbjpvcGVuc2VzYW1l", "header basic [REDACTED]"),
        (f"Bearer {JWT_EXAMPLE}", "Bearer [REDACTED]"),
        ("Bearer ann1@example.com", "Bearer [EMAIL]"),
        (f"session {JWT_EXAMPLE}, renewed", "session [JWT], renewed"),
        (f"jwe {JWT_EXAMPLE}.iv.tag end", "jwe [JWT] end"),
    ],
)
def test_mask_text_replaces_secrets_and_pii_with_placeholders(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # fails Luhn
        "id 123456789012",  # 12 digits: too short for a card
        "id 41111111111111111115",  # passes Luhn, but 20 digits is too long for a card
        "sha256 a4111111111111111b",  # digits glued to letters are part of an identifier
        "pi 3.4111111111111111",  # fraction of a decimal number
        "total 4111111111111111.50",  # integer part of a decimal number
        "id 4111111111111111abc",
        "Upgraded to the Basic plan",
        "Bearer of bad news",
        "root@localhost",
        "eyJhbGciOiJIUzI1NiJ9 alone",
    ],
)
def test_mask_text_keeps_text_that_only_resembles_a_secret(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            MaskingRules(secret_keys=(), mask_emails=False),
            "ann@example.com [CARD] Bearer [REDACTED] [JWT]",
        ),
        (
            MaskingRules(secret_keys=(), mask_card_numbers=False),
            "[EMAIL] 4111111111111111 Bearer [REDACTED] [JWT]",
        ),
        (
            MaskingRules(secret_keys=(), mask_tokens=False),
            f"[EMAIL] [CARD] Bearer abc123 {JWT_EXAMPLE}",
        ),
    ],
)
def test_each_text_masker_can_be_switched_off_alone(rules: MaskingRules, expected: str) -> None:
    text = f"ann@example.com 4111111111111111 Bearer abc123 {JWT_EXAMPLE}"

    assert mask_text(text, rules) == expected


# --- free text: properties ---------------------------------------------------------------


@given(texts)
@example("BEARER 0/eyJ0.0.0@")  # a JWT cut from a refused token left an accepted one
def test_mask_text_is_idempotent(text: str) -> None:
    once = mask_text(text)

    assert mask_text(once) == once


# Letters of the hint words in both cases, and the non-ASCII letters the regex engine's
# case-insensitive matching equates with some of them (long s, dotless i, Kelvin sign).
HINT_LETTERS = "bearsicyJBEARSICY \u017f\u0131\u212a\u0130é"


@given(st.text(alphabet=HINT_LETTERS) | texts)
def test_the_token_hint_without_regex_answers_as_the_regex(text: str) -> None:
    assert _may_hold_token(text) == (_TOKEN_HINT.search(text) is not None)


@given(st.text(alphabet="0123456789 -x.\u0663é\ud800", max_size=40) | texts)
def test_the_card_hint_after_a_run_check_answers_as_the_regex(text: str) -> None:
    assert _may_hold_card(text) == (_CARD_HINT.search(text) is not None)


@pytest.mark.parametrize(
    ("text", "token", "card"),
    [
        ("Basic plan", True, False),
        ("BEARER x", True, False),
        ("ba\u017fic x", True, False),  # long s: the regex's case-insensitive match applies
        ("eyJhbGciOi", True, False),
        ("order 4111 1111 1111 1111", False, True),
        ("Chrome/130.0 537.36 x86_64 1111", False, False),  # 13 digits, never 13 in a row
        ("plain words", False, False),
    ],
)
def test_hints_see_what_each_masker_needs(text: str, token: bool, card: bool) -> None:
    assert (_may_hold_token(text), _may_hold_card(text)) == (token, card)


@given(st.text(alphabet=string.ascii_lowercase + " ,;:!?()"))
def test_mask_text_leaves_ordinary_prose_unchanged(text: str) -> None:
    assert mask_text(text) == text


@given(st.emails())
def test_no_generated_email_address_survives(email: str) -> None:
    masked = mask_text(f"contact {email} today")

    local_part = email.rpartition("@")[0]
    assert email not in masked
    assert "@" not in masked
    assert f"{local_part}[EMAIL]" not in masked
    assert "[EMAIL]" in masked


PLAIN_WORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
SURROUNDING = st.text(alphabet=string.ascii_letters + " ,;:()<>", max_size=10)


@given(
    local=st.lists(PLAIN_WORD, min_size=1, max_size=3).flatmap(
        lambda words: st.sampled_from(".-_+").map(lambda sep: sep.join(words))
    ),
    labels=st.lists(PLAIN_WORD, min_size=1, max_size=3),
    tld=st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=6),
    before=SURROUNDING,
    after=SURROUNDING,
)
def test_realistic_email_is_replaced_exactly_and_surroundings_kept(
    local: str, labels: list[str], tld: str, before: str, after: str
) -> None:
    email = f"{local}@{'.'.join([*labels, tld])}"

    assert mask_text(f"{before} {email} {after}") == f"{before} [EMAIL] {after}"


@st.composite
def card_digits(draw: st.DrawFn, *, valid: bool) -> str:
    body = draw(st.text(alphabet=string.digits, min_size=12, max_size=18))
    check = int(luhn_check_digit(body))
    if not valid:
        check = (check + draw(st.integers(min_value=1, max_value=9))) % 10
    return body + str(check)


def with_separators(digits: str, separators: list[str]) -> str:
    pairs = zip(separators[: len(digits) - 1], digits[1:], strict=True)
    return digits[0] + "".join(sep + digit for sep, digit in pairs)


@given(data=st.data(), digits=card_digits(valid=True))
def test_luhn_valid_card_numbers_are_masked_whatever_the_separators(
    data: st.DataObject, digits: str
) -> None:
    separators = data.draw(st.lists(st.sampled_from(["", " ", "-"]), min_size=18, max_size=18))
    card = with_separators(digits, separators)

    assert mask_text(f"paid with {card}, thanks") == "paid with [CARD], thanks"


SHORT_GROUPS = st.lists(st.text(alphabet=string.digits, min_size=1, max_size=6), max_size=4)


@given(data=st.data(), digits=card_digits(valid=True), before=SHORT_GROUPS, after=SHORT_GROUPS)
def test_card_numbers_next_to_other_digit_groups_do_not_leak(
    data: st.DataObject, digits: str, before: list[str], after: list[str]
) -> None:
    separators = data.draw(st.lists(st.sampled_from(["", " ", "-"]), min_size=18, max_size=18))
    card = with_separators(digits, separators)
    joiner = data.draw(st.sampled_from([" ", "-"]))

    masked = mask_text(f"ref {joiner.join([*before, card, *after])} ok")

    assert card not in masked
    assert "[CARD]" in masked


@given(
    body=st.text(alphabet=string.digits, max_size=11)
    | st.text(alphabet=string.digits, min_size=19, max_size=30)
)
def test_luhn_valid_numbers_shorter_or_longer_than_cards_are_kept(body: str) -> None:
    text = f"id {body + luhn_check_digit(body)} ok"

    assert mask_text(text) == text


@given(digits=card_digits(valid=False))
def test_luhn_invalid_digit_runs_are_kept(digits: str) -> None:
    text = f"order {digits} shipped"

    assert mask_text(text) == text


@given(data=st.data(), digits=card_digits(valid=False))
def test_luhn_invalid_numbers_with_separators_are_kept_when_no_part_is_a_card(
    data: st.DataObject, digits: str
) -> None:
    separators = data.draw(st.lists(st.sampled_from(["", " ", "-"]), min_size=18, max_size=18))
    number = with_separators(digits, separators)
    groups = number.replace("-", " ").split(" ")
    assume(
        not any(
            13 <= len(span) <= 19 and luhn_valid(span)
            for span in (
                "".join(groups[i:j])
                for i in range(len(groups))
                for j in range(i + 1, len(groups) + 1)
            )
        )
    )
    text = f"order {number} shipped"

    assert mask_text(text) == text


def base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@given(
    claims=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=10)),
    signature=st.binary(max_size=64),
)
def test_jwts_are_masked(claims: dict[str, int | str], signature: bytes) -> None:
    header = base64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = base64url(json.dumps(claims).encode())
    jwt = f"{header}.{payload}.{base64url(signature)}"

    assert mask_text(f"got {jwt} from idp") == "got [JWT] from idp"


TOKEN_CHARS = string.ascii_letters + string.digits + "-_~+/"


@given(
    scheme=st.sampled_from(["Bearer", "Basic", "bearer", "BASIC"]),
    head=st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20),
    marker=st.sampled_from(string.digits + string.ascii_uppercase + "_~+/"),
    tail=st.text(alphabet=TOKEN_CHARS, max_size=40),
    padding=st.sampled_from(["", "=", "=="]),
)
def test_bearer_and_basic_credentials_are_redacted_keeping_the_scheme(
    scheme: str, head: str, marker: str, tail: str, padding: str
) -> None:
    text = f"Authorization: {scheme} {head}{marker}{tail}{padding}; retry"

    assert mask_text(text) == f"Authorization: {scheme} [REDACTED]; retry"


# --- JSON documents ----------------------------------------------------------------------


def test_mask_json_masks_a_realistic_event() -> None:
    event: JsonValue = {
        "user": {"email": "ann@example.com", "password": "hunter2", "apiKey": None},
        "headers": {"Authorization": "Bearer abc123", "X-Request-Id": "r-1"},
        "payment": {"card": "4111 1111 1111 1111", "order": "4111111111111112", "amount": 12.5},
        "tokens": ["t1", "t2"],
        "secrets": {"nested": [1, 2]},
        "note": f"contact ann@example.com, session {JWT_EXAMPLE}",
        "author": "ann",
        "count": 3,
        "active": True,
    }

    assert exact(mask_json(event)) == exact(
        {
            "user": {"email": "[EMAIL]", "password": REDACTED, "apiKey": None},
            "headers": {"Authorization": REDACTED, "X-Request-Id": "r-1"},
            "payment": {"card": "[CARD]", "order": "4111111111111112", "amount": 12.5},
            "tokens": REDACTED,
            "secrets": REDACTED,
            "note": "contact [EMAIL], session [JWT]",
            "author": "ann",
            "count": 3,
            "active": True,
        }
    )


@pytest.mark.parametrize("value", [None, True, 0, 1.5, "ann@example.com", 4111111111111111])
def test_scalars_at_the_top_level_are_masked_like_nested_ones(value: JsonValue) -> None:
    assert exact(mask_json(value)) == exact(expected_masking(value))


def test_null_under_a_secret_key_stays_null_so_absence_of_a_secret_remains_visible() -> None:
    assert mask_json({"password": None, "token": [None]}) == {"password": None, "token": REDACTED}


def test_masking_rules_reach_json_string_values_and_secret_keys() -> None:
    rules = MaskingRules(secret_keys=("pin",), mask_emails=False)

    assert mask_json({"pin": 1234, "password": "x", "to": "ann@example.com"}, rules) == {
        "pin": REDACTED,
        "password": "x",
        "to": "ann@example.com",
    }


def test_deeply_nested_documents_do_not_hit_the_recursion_limit() -> None:
    document: JsonValue = "ann@example.com"
    for _ in range(5_000):
        document = {"level": [document]}

    masked = mask_json(document)

    for _ in range(5_000):
        assert isinstance(masked, dict)
        inner = masked["level"]
        assert isinstance(inner, list)
        masked = inner[0]
    assert masked == "[EMAIL]"


@given(json_values(any_keys))
def test_mask_json_is_idempotent(value: JsonValue) -> None:
    once = mask_json(value)

    assert exact(mask_json(once)) == exact(once)


@given(json_values(any_keys))
def test_mask_json_agrees_with_the_recursive_definition(value: JsonValue) -> None:
    assert exact(mask_json(value)) == exact(expected_masking(value))


@given(json_values(safe_keys))
def test_without_secret_keys_structure_and_non_string_values_are_preserved(
    value: JsonValue,
) -> None:
    def shape(item: JsonValue) -> object:
        if isinstance(item, dict):
            return [(key, shape(child)) for key, child in item.items()]
        if isinstance(item, list):
            return [shape(child) for child in item]
        if isinstance(item, str):
            return str
        return (type(item), item)

    assert shape(mask_json(value)) == shape(value)


@given(value=json_values(any_keys), data=st.data())
def test_input_is_never_mutated_nor_shared_with_the_result(
    value: JsonValue, data: st.DataObject
) -> None:
    rules = data.draw(st.sampled_from([DEFAULT_RULES, MaskingRules(secret_keys=())]))
    before = copy.deepcopy(value)

    masked = mask_json(value, rules)

    assert exact(value) == exact(before)
    assert not {id(c) for c in containers(value)} & {id(c) for c in containers(masked)}


@given(
    key=secret_keys(),
    secret=json_values(any_keys).filter(lambda v: v is not None),
    path=st.lists(st.sampled_from(["list", "object"]), max_size=6),
    sibling=texts,
)
def test_values_under_secret_keys_are_redacted_at_any_depth(
    key: str, secret: JsonValue, path: list[str], sibling: str
) -> None:
    document: JsonValue = {key: secret, "note": sibling}
    for step in path:
        document = [document] if step == "list" else {"data": document}

    masked = mask_json(document)

    for step in reversed(path):
        if step == "list":
            assert isinstance(masked, list)
            masked = masked[0]
        else:
            assert isinstance(masked, dict)
            masked = masked["data"]
    assert masked == {key: REDACTED, "note": mask_text(sibling)}
