"""Masking of secrets and personal data before an audit event is stored.

An audit log is append-only and tamper-evident: whatever reaches storage can never be
taken back out. Masking therefore runs on the way in and errs on the side of hiding too
much. Guarantees:

* **Pure.** No I/O, no global state; inputs are never mutated. A pseudonym depends only on
  the value and the key the rules carry.
* **Idempotent.** Masking already-masked data changes nothing, so re-ingesting, replaying
  or exporting and re-importing events is safe and yields byte-identical payloads. This
  holds for pseudonyms too: ``[EMAIL:3f9a1c2e5b7d]`` holds no ``@``, no run of 13 digits
  and nothing a credential pattern starts with.
* **Structure-preserving.** :func:`mask_json` keeps every key, the nesting and the length
  of every list; only leaf values are replaced.
* **Linear time.** A match can only start at the beginning of a run (a look-behind
  rejects every other position) or at a fixed word, repetitions are possessive, and the
  card search does constant work per digit group, so a hostile payload cannot trigger
  catastrophic backtracking.
"""

from __future__ import annotations

import hmac
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import accumulate
from typing import Final, TypeAlias

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
"""A value as produced by a JSON parser: a tree of objects, arrays and scalars."""

REDACTED: Final = "[REDACTED]"
EMAIL_PLACEHOLDER: Final = "[EMAIL]"
CARD_PLACEHOLDER: Final = "[CARD]"
JWT_PLACEHOLDER: Final = "[JWT]"

PSEUDONYM_HEX_CHARS: Final = 12
"""Hex digits of the HMAC kept in a pseudonym: 48 bits.

Long enough that two different values of one tenant share a pseudonym only by a rare
accident (about one pair in 560 among a million distinct addresses; 32 bits would already
collide around 77,000), and that a change goes unseen with probability 2^-48. Short
enough to read, and to stay under 13 digits, so a pseudonym can never be taken for a card
number, which keeps masking idempotent. A longer digest would reveal nothing more without
the key; with the key, any length lets one test guesses (see docs/security.md).
"""
MIN_PSEUDONYM_KEY_BYTES: Final = 16


def pseudonym(key: bytes, label: str, value: str) -> str:
    """``[LABEL:<12 hex digits>]``: a truncated HMAC-SHA256 of *value* under *key*.

    Equal values give equal pseudonyms under one key, different keys give unrelated ones,
    and without the key a pseudonym says nothing about the value. The label is part of the
    MAC input, so an address and a card number with the same text never share one.
    """
    return _Pseudonyms(key, label)(value)


class _Pseudonyms:
    """:func:`pseudonym` for one key and label, with the HMAC's key schedule and the label
    absorbed once: each value then costs one copy, one update and one digest (about half
    the time of a one-shot HMAC)."""

    __slots__ = ("_label", "_mac")

    def __init__(self, key: bytes, label: str) -> None:
        self._label = label
        self._mac = hmac.new(key, label.encode() + b"\x00", "sha256")

    def __call__(self, value: str) -> str:
        mac = self._mac.copy()
        mac.update(value.encode("utf-8", "surrogatepass"))
        return f"[{self._label}:{mac.digest()[: PSEUDONYM_HEX_CHARS // 2].hex()}]"


# --- secret keys -------------------------------------------------------------------------

# Separators are anything that is neither a letter nor a digit; camelCase boundaries are a
# lower-case letter or digit followed by an upper-case letter ("clientSecret"), or the last
# capital of an acronym that starts a new word ("APIKey" -> "API", "Key").
_WORD_BREAK: Final = re.compile(r"[\W_]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_ALNUM: Final = re.compile(r"[\W_]+")


def _normalise_fragment(fragment: str) -> str:
    return _NOT_ALNUM.sub("", fragment).lower()


@dataclass(frozen=True)
class MaskingRules:
    """What to mask and how. Immutable, so one instance can be shared by every request.

    ``secret_keys`` holds key fragments; they are normalised on construction (lower-cased,
    separators removed), so ``"api_key"`` and ``"apikey"`` are the same fragment. An empty
    fragment would match every key and is rejected.

    ``mask_tokens`` covers both ``Bearer``/``Basic`` credentials and JWTs in free text.

    ``exempt_keys`` names JSON keys (normalised like fragments, but matched whole) whose
    values, at any depth, the e-mail and card detectors leave alone. Secret keys and
    credentials inside them are still masked.

    With ``pseudonymise_emails`` / ``pseudonymise_cards``, a detected address or card becomes
    a keyed pseudonym (:func:`pseudonym`) under ``pseudonym_key`` instead of a fixed
    placeholder, so a change of value stays visible. The key is kept only while one of
    them is on, and never shown by ``repr``.
    """

    secret_keys: tuple[str, ...]
    mask_emails: bool = True
    mask_card_numbers: bool = True
    mask_tokens: bool = True
    exempt_keys: tuple[str, ...] = ()
    pseudonymise_emails: bool = False
    pseudonymise_cards: bool = False
    pseudonym_key: bytes | None = field(default=None, repr=False)
    _hash: int = field(init=False, repr=False, compare=False)
    _email_name: Callable[[str], str] | None = field(init=False, repr=False, compare=False)
    _card_name: Callable[[str], str] | None = field(init=False, repr=False, compare=False)
    _exempt: frozenset[str] = field(init=False, repr=False, compare=False)
    _exempt_view: MaskingRules | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        normalised = tuple(dict.fromkeys(_normalise_fragment(f) for f in self.secret_keys))
        if "" in normalised:
            raise ValueError("secret key fragments must contain at least one letter or digit")
        exempt = tuple(dict.fromkeys(_normalise_fragment(k) for k in self.exempt_keys))
        if "" in exempt:
            raise ValueError("exempt keys must contain at least one letter or digit")
        if (self.pseudonymise_emails and not self.mask_emails) or (
            self.pseudonymise_cards and not self.mask_card_numbers
        ):
            raise ValueError("only a masked kind can be pseudonymised")
        pseudonymising = self.pseudonymise_emails or self.pseudonymise_cards
        key = self.pseudonym_key if pseudonymising else None
        if pseudonymising and (key is None or len(key) < MIN_PSEUDONYM_KEY_BYTES):
            raise ValueError(f"pseudonyms need a key of at least {MIN_PSEUDONYM_KEY_BYTES} bytes")
        set_ = partial(object.__setattr__, self)
        set_("secret_keys", normalised)
        set_("exempt_keys", exempt)
        set_("pseudonym_key", key)
        set_(
            "_hash",
            hash((normalised, self.mask_emails, self.mask_card_numbers, self.mask_tokens, exempt,
                  self.pseudonymise_emails, self.pseudonymise_cards, key)),
        )  # fmt: skip
        # How a detected address or card is named: None for the fixed placeholder.
        email_name = card_name = None
        if key is not None:
            email_name = _Pseudonyms(key, "EMAIL") if self.pseudonymise_emails else None
            card_name = _Pseudonyms(key, "CARD") if self.pseudonymise_cards else None
        set_("_email_name", email_name)
        set_("_card_name", card_name)
        set_("_exempt", frozenset(exempt))
        set_(
            "_exempt_view",
            MaskingRules(normalised, mask_emails=False, mask_card_numbers=False,
                         mask_tokens=self.mask_tokens)
            if exempt
            else None,
        )  # fmt: skip

    def __hash__(self) -> int:
        # The rules are part of the cache key of every secret-key lookup: hashing all the
        # fragments each time would cost more than the cached lookup itself.
        return self._hash


DEFAULT_SECRET_KEYS: Final[tuple[str, ...]] = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "secretkey",
    "token",
    "jwt",
    "apikey",
    "accesskey",
    "privatekey",
    "sessionkey",
    "sessionid",
    "sessid",
    "authorization",
    "auth",
    "cookie",
    "credential",
    "creds",
    "connectionstring",
    "dsn",
    "cvv",
    "cvc",
)

DEFAULT_RULES: Final = MaskingRules(secret_keys=DEFAULT_SECRET_KEYS)


@lru_cache(maxsize=8192)
def is_secret_key(key: str, rules: MaskingRules = DEFAULT_RULES) -> bool:
    """Tell whether values stored under ``key`` must be redacted.

    Cached: the keys of customer metadata repeat from event to event, and the answer
    depends only on the key and the (immutable, hashable) rules.

    The key is split into words at separators (anything but letters and digits, so ``-``,
    ``_``, ``.`` and spaces) and at camelCase boundaries, lower-cased and joined back.
    A fragment matches when it occurs in that joined form **and ends exactly where a word
    ends** (a plural ``s`` is allowed before the word end). Where the fragment starts does
    not matter. So:

    * ``Password``, ``X-Api-Key``, ``clientSecret``, ``refresh_token``, ``AUTHORIZATION``,
      ``oauth``, ``csrftoken``, ``password_hash``, ``credentials`` match;
    * ``author``, ``authority``, ``tokenizer_name``, ``secretary``, ``passwordless`` do not,
      because the fragment ends in the middle of a word.

    The rule errs towards redaction: keys that merely describe a secret, such as
    ``password_changed_at`` or ``max_tokens``, are redacted too. A fragment glued to a
    following word with no separator or case change (``passwordhash``) is not detected.
    """
    words = [word.lower() for word in _WORD_BREAK.split(key) if word]
    joined = "".join(words)
    word_ends: set[int] = set()
    position = 0
    for word in words:
        position += len(word)
        word_ends.add(position)
    for fragment in rules.secret_keys:
        start = joined.find(fragment)
        while start != -1:
            end = start + len(fragment)
            if end in word_ends or (joined[end : end + 1] == "s" and end + 1 in word_ends):
                return True
            start = joined.find(fragment, start + 1)
    return False


@lru_cache(maxsize=8192)
def is_exempt_key(key: str, rules: MaskingRules) -> bool:
    """Tell whether ``key`` is one of the rules' exempt keys, across case and separators
    (``supportEmail``, ``support-email`` and ``SUPPORT_EMAIL`` are one key). Cached like
    :func:`is_secret_key`."""
    return _normalise_fragment(key) in rules._exempt


# --- free text ---------------------------------------------------------------------------

# `Bearer <token68>` / `Basic <token68>` (RFC 9110 section 11). To leave prose such as
# "Basic plan" or "Bearer of bad news" alone, the credential must contain a digit, one of
# `_ ~ + / =`, or an upper-case letter after its first character, which real tokens and
# base64 almost always do. Dots are allowed only between characters, so a sentence's full
# stop is not swallowed.
_TOKEN68_CHARS: Final = r"[A-Za-z0-9_~+/-]"
_BEARER: Final = re.compile(
    r"(?<![A-Za-z0-9])(?P<scheme>(?i:bearer|basic))[ \t]++"
    rf"(?={_TOKEN68_CHARS}[a-z.-]*+[A-Z0-9_~+/=])"
    rf"{_TOKEN68_CHARS}++(?:\.{_TOKEN68_CHARS}++)*+=*+(?!@)"
)

# A JWS (three base64url segments) or JWE (five); the header is a JSON object, so its
# base64url encoding starts with "eyJ". The signature may be empty (`alg: none`).
_B64URL: Final = r"[A-Za-z0-9_-]"
_JWT: Final = re.compile(rf"(?<!{_B64URL})eyJ{_B64URL}++\.{_B64URL}++(?:\.{_B64URL}*+){{1,3}}")

# An address is matched from the start of a run of RFC 5322 local-part characters (plus the
# dot), so the match cannot begin mid-run and the scan stays linear; the domain needs at
# least two dot-separated labels. Several of those characters (`= / ? { | }` and backquote)
# more often delimit the surrounding text than belong to an address, as in
# "?to=ann@example.com", and a leading apostrophe is usually a quote: `_EMAIL_KEPT_PREFIX`
# hands that text back. It always stops before the last character of the local part, so no
# address survives whole, however odd its local part. Addresses that directly follow one
# another ("a@b.io=c@d.io") are masked as one; otherwise the second would escape the first
# pass (its local part starts mid-run) but not the next, breaking idempotence.
_EMAIL_LOCAL_CHAR: Final = r"[\w.!#$%&'*+/=?^`{|}~-]"
_EMAIL_DOMAIN: Final = r"@[\w-]++(?:\.[\w-]++)++"
_EMAIL: Final = re.compile(
    rf"(?<!{_EMAIL_LOCAL_CHAR}){_EMAIL_LOCAL_CHAR}++{_EMAIL_DOMAIN}"
    rf"(?:{_EMAIL_LOCAL_CHAR}*+{_EMAIL_DOMAIN})*+"
)
_EMAIL_KEPT_PREFIX: Final = re.compile(r"(?:[^']*[=/?{|}`](?=[^=/?{|}`]))?(?:'+(?=[^']))?")


def _mask_email(match: re.Match[str], name: Callable[[str], str] | None = None) -> str:
    """The placeholder, or with *name* the pseudonym of the address (lower-cased: the
    pseudonym names the mailbox, not its spelling), after the kept prefix."""
    address = match.group()
    kept = _EMAIL_KEPT_PREFIX.match(address.partition("@")[0])
    prefix = kept.group() if kept else ""
    if name is None:
        return prefix + EMAIL_PLACEHOLDER
    return prefix + name(address[len(prefix) :].lower())


# A run of digit groups joined by single spaces or dashes, not glued to a word on the left
# and not the fraction of a decimal number. Which part of the run is a card is decided by
# `_mask_cards_in_run`, because a Luhn check cannot be expressed as a regular expression.
_DIGIT_RUN: Final = re.compile(r"(?<!\w)(?<![0-9]\.)[0-9]++(?:[ -][0-9]++)*+")
_DIGIT_GROUP: Final = re.compile(r"[0-9]+")
_GLUED_AFTER: Final = re.compile(r"\w|\.[0-9]")
_CARD_MIN_DIGITS: Final = 13
_CARD_MAX_DIGITS: Final = 19


# Luhn value of a doubled digit: 2 * d, minus 9 when that has two digits.
_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


class _LuhnSums:
    """Luhn checksum of any span of a digit string in constant time.

    Luhn doubles every second digit counting from the right, so which digits are doubled
    depends on where the span ends. Two prefix sums, one doubling the digits at odd
    positions and one doubling those at even positions, cover both cases; without them an
    adversarial run of single-digit groups would cost a full checksum per candidate span.
    """

    def __init__(self, digits: str) -> None:
        values = [int(char) for char in digits]
        self._odd_doubled = [
            0,
            *accumulate(_DOUBLED[v] if p % 2 else v for p, v in enumerate(values)),
        ]
        self._even_doubled = [
            0,
            *accumulate(v if p % 2 else _DOUBLED[v] for p, v in enumerate(values)),
        ]

    def valid(self, start: int, end: int) -> bool:
        """Whether ``digits[start:end]`` passes the Luhn check."""
        sums = self._odd_doubled if (end - 1) % 2 == 0 else self._even_doubled
        return (sums[end] - sums[start]) % 10 == 0


def _mask_cards_in_run(match: re.Match[str], name: Callable[[str], str] | None = None) -> str:
    """Mask every card inside one run of digit groups (with *name*: by the pseudonym of
    its digits, so separators do not change it).

    A card is a span of whole groups with 13 to 19 digits in total that passes the Luhn
    check, so a card is found even when the run also holds an order number or an expiry
    year next to it. Overlapping candidate spans are merged and masked as one: when a
    stray Luhn-valid span overlaps the real card, choosing either would leak digits of the
    other. A group glued to the following word or decimal fraction is an identifier, not
    part of a card. Each start group has at most seven candidate ends, each checked in
    constant time, so the work is linear in the length of the run.
    """
    run = match.group()
    groups = [group.span() for group in _DIGIT_GROUP.finditer(run)]
    if _GLUED_AFTER.match(match.string, match.end()):
        groups.pop()
    digit_ends = list(accumulate(end - start for start, end in groups))
    if not digit_ends or digit_ends[-1] < _CARD_MIN_DIGITS:
        return run
    luhn = _LuhnSums("".join(run[start:end] for start, end in groups))
    masked_spans: list[list[int]] = []  # [first group, last group], merged when overlapping
    for first in range(len(groups)):
        digit_start = digit_ends[first - 1] if first else 0
        if digit_ends[-1] - digit_start < _CARD_MIN_DIGITS:
            break
        longest = bisect_right(digit_ends, digit_start + _CARD_MAX_DIGITS) - 1
        shortest = bisect_left(digit_ends, digit_start + _CARD_MIN_DIGITS)
        last = next(
            (i for i in range(longest, shortest - 1, -1) if luhn.valid(digit_start, digit_ends[i])),
            None,
        )
        if last is None:
            continue
        if masked_spans and first <= masked_spans[-1][1]:
            masked_spans[-1][1] = max(masked_spans[-1][1], last)
        else:
            masked_spans.append([first, last])
    pieces: list[str] = []
    cursor = 0
    for first, last in masked_spans:
        if name is None:
            placeholder = CARD_PLACEHOLDER
        else:
            placeholder = name("".join(run[start:end] for start, end in groups[first : last + 1]))
        pieces += (run[cursor : groups[first][0]], placeholder)
        cursor = groups[last][1]
    pieces.append(run[cursor:])
    return "".join(pieces)


# Cheap necessary conditions, checked before the exact (and slower) passes: a credential
# needs its scheme word or a JWT header, an address needs an "@", a card needs 13 digits
# with at most one separator between neighbours. Most text meets none of them.
_TOKEN_HINT: Final = re.compile(r"eyJ|(?i:bearer|basic)")
_CARD_HINT: Final = re.compile(r"[0-9](?:[ -]?[0-9]){12}")
# Bytes of the characters a card hint is made of (ASCII digits, space, dash) become "1",
# every other byte "0". In UTF-8 those bytes never occur inside a multi-byte sequence.
_CARD_BYTES: Final = bytes(0x31 if byte in b"0123456789 -" else 0x30 for byte in range(256))
_CARD_SPAN: Final = b"1" * _CARD_MIN_DIGITS


def _may_hold_token(text: str) -> bool:
    """``_TOKEN_HINT.search(text)``, computed without a regular expression for ASCII text.

    The hint tries its three words at every position; substring searches do the same work
    many times faster. Only for ASCII text is lower-casing the same as the pattern's
    case-insensitive match, which also equates some other letters with ASCII ones (U+017F,
    the long s, with ``s``), so other text keeps the pattern.
    """
    if not text.isascii():
        return _TOKEN_HINT.search(text) is not None
    if "eyJ" in text:
        return True
    lowered = text.lower()
    return "bearer" in lowered or "basic" in lowered


def _may_hold_card(text: str) -> bool:
    """``_CARD_HINT.search(text)``, skipped without a run of 13 digits, spaces or dashes.

    A hint match is such a run. The pattern starts a match attempt at every digit, which
    makes it slow on digit-rich text such as browser user agents; finding the run is two
    C-level passes over the UTF-8 bytes (translate, then a substring search).
    """
    if len(text) < _CARD_MIN_DIGITS:
        return False
    classes = text.encode("utf-8", "surrogatepass").translate(_CARD_BYTES)
    if _CARD_SPAN not in classes:
        return False
    return _CARD_HINT.search(text) is not None


def mask_text(text: str, rules: MaskingRules = DEFAULT_RULES) -> str:
    """Return ``text`` with credentials and personal data replaced by placeholders.

    * ``Bearer <token>`` / ``Basic <token>`` become ``<scheme> [REDACTED]``, keeping the
      scheme word as written;
    * JWTs (``eyJ…`` header, three or five base64url segments) become ``[JWT]``;
    * e-mail addresses (local part, ``@``, a domain with at least one dot) become
      ``[EMAIL]``;
    * payment card numbers, 13 to 19 digits optionally separated by single spaces or
      dashes that pass the Luhn check, become ``[CARD]``; digit runs that fail the check
      (order numbers, timestamps) and digits glued to letters (hashes, identifiers) are
      kept.

    Rules that pseudonymise addresses or cards write ``[EMAIL:<hex>]`` / ``[CARD:<hex>]``
    (:func:`pseudonym`) instead.

    Tokens are masked first so that a JWT after ``Bearer`` is redacted as a credential.
    Placeholders contain no character any pattern can start or continue with, which is
    what makes the function idempotent.
    """
    if rules.mask_tokens and _may_hold_token(text):
        text = _BEARER.sub(rf"\g<scheme> {REDACTED}", text)
        text, jwts = _JWT.subn(JWT_PLACEHOLDER, text)
        if jwts:
            # A JWT cut from a token the first pass refused (one followed by "@", like
            # "Bearer 0/eyJ…@") can leave a token it accepts; mask that too, or masking
            # the result again would change it.
            text = _BEARER.sub(rf"\g<scheme> {REDACTED}", text)
    if rules.mask_emails and "@" in text:
        name = rules._email_name
        text = _EMAIL.sub(_mask_email if name is None else partial(_mask_email, name=name), text)
    if rules.mask_card_numbers and _may_hold_card(text):
        name = rules._card_name
        text = _DIGIT_RUN.sub(
            _mask_cards_in_run if name is None else partial(_mask_cards_in_run, name=name), text
        )
    return text


# --- JSON documents ----------------------------------------------------------------------


def mask_json(value: JsonValue, rules: MaskingRules = DEFAULT_RULES) -> JsonValue:
    """Return a masked copy of a JSON value; the input is left untouched.

    Any value under a secret key (see :func:`is_secret_key`), scalar, array or object,
    becomes the string ``"[REDACTED]"``, except ``null``, which stays ``null`` so that
    "no password set" remains distinguishable. A value under an exempt key (see
    :class:`MaskingRules`) is masked without the e-mail and card detectors. Every other
    string goes through :func:`mask_text`. Keys, numbers, booleans and nulls are kept, as
    are the order of keys and the length of arrays. Keys are never masked: they are schema,
    not data.

    No recursion: containers are created empty, queued, and filled later from an explicit
    work list, so nesting depth is bounded by memory rather than by the interpreter's
    recursion limit, and anything the JSON parser accepted can be masked. The input must be
    a tree (no cycles), which every parsed document is.
    """
    objects: list[tuple[dict[str, JsonValue], dict[str, JsonValue]]] = []
    arrays: list[tuple[list[JsonValue], list[JsonValue]]] = []
    new_object: dict[str, JsonValue]
    new_array: list[JsonValue]
    result: JsonValue
    if isinstance(value, str):
        return mask_text(value, rules)
    if isinstance(value, dict):
        result = new_object = {}
        objects.append((value, new_object))
    elif isinstance(value, list):
        result = new_array = []
        arrays.append((value, new_array))
    else:
        return value
    exempt_view = rules._exempt_view
    # Items are handled inline rather than by a helper per item: this runs for every event
    # with metadata, and the calls alone would cost a fifth of it.
    while objects or arrays:
        if objects:
            source, target = objects.pop()
            for key, item in source.items():
                if item is None:
                    target[key] = None
                elif is_secret_key(key, rules):
                    target[key] = REDACTED
                elif exempt_view is not None and is_exempt_key(key, rules):
                    # One level of recursion at most: the view has no exempt keys.
                    target[key] = mask_json(item, exempt_view)
                elif isinstance(item, str):
                    target[key] = mask_text(item, rules)
                elif isinstance(item, dict):
                    target[key] = new_object = {}
                    objects.append((item, new_object))
                elif isinstance(item, list):
                    target[key] = new_array = []
                    arrays.append((item, new_array))
                else:
                    target[key] = item
        else:
            source_items, target_items = arrays.pop()
            for item in source_items:
                if isinstance(item, str):
                    target_items.append(mask_text(item, rules))
                elif isinstance(item, dict):
                    target_items.append(new_object := {})
                    objects.append((item, new_object))
                elif isinstance(item, list):
                    target_items.append(new_array := [])
                    arrays.append((item, new_array))
                else:
                    target_items.append(item)
    return result
