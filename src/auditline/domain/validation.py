"""Ingest rules that depend on configuration or on the clock.

Type and format checks (UUIDs, IP addresses, the action pattern, unknown fields) happen at
the API edge; the rules here bound what one event may cost to store and index, and keep out
what PostgreSQL would refuse later (NUL characters) or what would not round-trip through
canonical JSON (non-finite floats, integers beyond I-JSON's 2**53, unpaired UTF-16
surrogates, which no UTF-8 encoder can write and so no leaf hash can cover).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Protocol
from uuid import UUID

import orjson

from auditline.config import IngestSettings
from auditline.domain.events import DraftFields, FieldError
from auditline.domain.tenants import UPDATABLE

MAX_SAFE_INTEGER = 2**53 - 1

_WALK_GUARD = 64

_SHORT_FIELDS = ("user_id", "session_id", "resource_type", "resource_id", "request_id")

_SURROGATE = re.compile("[\ud800-\udfff]")

CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
"""Unicode's control characters (category Cc: C0, DEL, C1) and its line and paragraph
separators, as the body of a character class (Python's and pydantic-core's regex syntax
alike): what an identifier or a name must not hold. A CR/LF in an id forges a line in
whatever prints it one per line; a NUL cannot be stored."""

_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""RFC 3339's date-time (section 5.6), the one spelling of a time the API takes: seconds
and an offset required, ``T`` and ``Z`` in either case. Not ISO 8601's other forms (no
seconds, ``+0100``, a space for the ``T``, week dates) nor a Unix time in any spelling.
The ranges of the fields (month 01-12, ...) are the parser's to check."""


def has_control_character(text: str) -> bool:
    """Whether *text* holds one of :data:`CONTROL_CHARACTERS`."""
    return not text.isprintable() and _CONTROL.search(text) is not None


SURROGATE_MESSAGE = "must not contain unpaired UTF-16 surrogates (RFC 7493)"


def has_surrogate(text: str) -> bool:
    """Whether *text* holds a lone UTF-16 surrogate (as ``"\\ud800"`` in JSON spells one).

    Python strings can hold them, UTF-8 cannot: orjson, the leaf hash and PostgreSQL all
    refuse such text. A pair of surrogate escapes decodes to one real character, so any
    surrogate left in a decoded string is unpaired.
    """
    return not text.isascii() and _SURROGATE.search(text) is not None


class JsonLimits(Protocol):
    """The bounds of one JSON field (``IngestSettings`` has them for events)."""

    @property
    def max_json_bytes(self) -> int: ...

    @property
    def max_json_depth(self) -> int: ...

    @property
    def max_json_keys(self) -> int: ...


@dataclass(frozen=True, slots=True)
class JsonBounds:
    max_json_bytes: int
    max_json_depth: int
    max_json_keys: int


MAX_SETTINGS_BYTES = 16 * 1024

_RECORD_ROOM_BYTES = 1536
"""What a tenant change record holds beside the settings: a name of at most 200
characters (1,200 bytes if every one is written as a \\u escape), two numbers, the legal
hold, the keys."""


def settings_limits(events: JsonLimits) -> JsonBounds:
    """The JSON rules for a tenant's settings: an event's, so that the record of a change,
    which copies the settings one level down beside the tenant's other fields, is itself
    an event the ingest rules accept (at most 16 KiB in any case)."""
    return JsonBounds(
        max_json_bytes=max(0, min(MAX_SETTINGS_BYTES, events.max_json_bytes - _RECORD_ROOM_BYTES)),
        max_json_depth=events.max_json_depth - 1,
        max_json_keys=max(0, events.max_json_keys - len(UPDATABLE)),
    )


class InvalidInput(ValueError):
    """A request breaks input rules (other than an event's); nothing was changed."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


def storable_text(text: str) -> str:
    """*text* with NUL characters and unpaired surrogates written as escapes (``\\x00``).

    For what the service records about a request without validating it first (the header
    of a token it refused): a record that says what was sent, readably, rather than one
    that cannot be stored, which would leave the attempt unrecorded.
    """
    if "\x00" in text or has_surrogate(text):
        return text.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
    return text


def repeated_ids(drafts: Sequence[DraftFields]) -> list[FieldError]:
    """An error for each draft whose id an earlier draft of the same request has, naming both.

    A bulk request that sends one id twice is a client's mistake whichever version it
    meant: storing the first and counting the second as a duplicate (what idempotency
    does across requests) would silently drop the other's contents.
    """
    first: dict[UUID, int] = {}
    errors: list[FieldError] = []
    for index, draft in enumerate(drafts):
        if draft.id is not None and (seen := first.setdefault(draft.id, index)) != index:
            errors.append(
                FieldError((index, "id"), f"is also the id of event {seen}: ids must be unique")
            )
    return errors


def check_event(draft: DraftFields, limits: IngestSettings, now: datetime) -> list[FieldError]:
    """Every rule *draft* breaks, as field errors (empty when it may be stored)."""
    return EventChecker(limits, now).check(draft)


class EventChecker:
    """:func:`check_event` for the many drafts of one request, all checked against one clock.

    The timestamp window is computed once per request instead of once per event. Each bound
    is computed on first use, as the per-event check did: a configured window the calendar
    cannot hold (``OverflowError``) still fails only a draft that carries a timestamp.
    """

    def __init__(self, limits: IngestSettings, now: datetime) -> None:
        self._limits = limits
        self._now = now

    @cached_property
    def _latest(self) -> datetime:
        return self._now + timedelta(seconds=self._limits.max_future_skew_seconds)

    @cached_property
    def _earliest(self) -> datetime:
        return self._now - timedelta(days=self._limits.max_past_days)

    def check(self, draft: DraftFields) -> list[FieldError]:
        """Every rule *draft* breaks, as field errors (empty when it may be stored)."""
        limits = self._limits
        errors: list[FieldError] = []

        if draft.timestamp is not None:
            if draft.timestamp > self._latest:
                errors.append(
                    FieldError(
                        ("timestamp",),
                        f"is more than {limits.max_future_skew_seconds} s in the future",
                    )
                )
            elif draft.timestamp < self._earliest:
                errors.append(
                    FieldError(("timestamp",), f"is more than {limits.max_past_days} days old")
                )

        for name in _SHORT_FIELDS:
            _check_text(errors, name, getattr(draft, name), limits.max_field_chars)
        _check_text(errors, "message", draft.message, limits.max_message_chars)
        _check_text(errors, "user_agent", draft.user_agent, limits.max_user_agent_chars)

        for name in ("metadata", "before", "after"):
            value = getattr(draft, name)
            if value is not None:
                errors.extend(_check_json(name, value, limits))
        return errors


def _check_text(errors: list[FieldError], name: str, value: str | None, limit: int) -> None:
    if value is None:
        return
    if len(value) > limit:
        errors.append(FieldError((name,), f"is longer than {limit} characters"))
    if "\x00" in value:
        errors.append(FieldError((name,), "must not contain NUL characters"))
    if has_surrogate(value):
        errors.append(FieldError((name,), SURROGATE_MESSAGE))


def check_json(name: str, value: object, limits: JsonLimits) -> list[FieldError]:
    """The rules JSON *value* breaks (paths start with *name*): size, depth, keys, NUL
    characters, unpaired surrogates, I-JSON numbers (finite, within ±(2**53-1))."""
    return _check_json(name, value, limits)


def _check_json(name: str, value: object, limits: JsonLimits) -> list[FieldError]:
    """The rules *value* breaks, from the cheap pre-check when it can vouch for the value."""
    try:
        if _json_is_clearly_within(value, limits):
            return []
    except orjson.JSONEncodeError:
        pass  # a lone surrogate, an integer beyond 64 bits: the exact check reports it
    return _check_json_exactly(name, value, limits)


def _json_is_clearly_within(value: object, limits: JsonLimits) -> bool:
    """A cheap sufficient condition for :func:`_check_json_exactly` finding nothing.

    Almost every document passes, so its cost is what ingest pays; the exact check, which
    builds a path for every node to point at the offending one, runs only when this says
    no. One pass over the tree, level by level (so the depth needs no bookkeeping per
    node) and without paths; NUL characters in keys and strings are found in the
    serialised bytes, which the size rule needs anyway: JSON spells NUL ``\\u0000``, and a
    false alarm (a literal backslash followed by ``u0000``) only costs the exact check.
    Anything unexpected (a depth beyond the exact walk's own guard, a type other than
    the plain JSON ones) also says no.
    """
    encoded = orjson.dumps(value)
    if len(encoded) > limits.max_json_bytes or b"\\u0000" in encoded:
        return False
    max_depth = min(limits.max_json_depth, _WALK_GUARD)
    keys = 0
    level = [value]
    depth = 0
    while level:
        if depth > max_depth:
            return False
        below: list[object] = []
        for item in level:
            if type(item) is str or item is None or type(item) is bool:
                continue
            if type(item) is dict:
                keys += len(item)
                below.extend(item.values())
            elif type(item) is list:
                below.extend(item)
            elif type(item) is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    return False
            elif type(item) is not float or not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return False  # NaN, infinities and subclasses of the JSON types included
        level = below
        depth += 1
    return keys <= limits.max_json_keys


def _check_json_exactly(name: str, value: object, limits: JsonLimits) -> list[FieldError]:
    errors: list[FieldError] = []
    keys = 0
    for path, depth, item in _walk(value, (name,), 0):
        if depth > limits.max_json_depth:
            errors.append(FieldError(path, f"nests deeper than {limits.max_json_depth} levels"))
            return errors
        if isinstance(item, dict):
            keys += len(item)
            for key in item:
                if "\x00" in key:
                    errors.append(FieldError((*path, key), "key must not contain NUL characters"))
                if has_surrogate(key):  # pointed at from its object: no pointer can spell it
                    errors.append(FieldError(path, "a key " + SURROGATE_MESSAGE))
        elif isinstance(item, str):
            if "\x00" in item:
                errors.append(FieldError(path, "must not contain NUL characters"))
            if has_surrogate(item):
                errors.append(FieldError(path, SURROGATE_MESSAGE))
        elif isinstance(item, float) and not math.isfinite(item):
            errors.append(FieldError(path, "must be a finite number"))
        elif isinstance(item, float) and abs(item) > MAX_SAFE_INTEGER:
            # jsonb keeps 1e300 as a 301-digit integer, which then breaks the integer rule
            # wherever the value is read back and written again (a change record).
            errors.append(FieldError(path, "number is outside the range -(2**53-1)..2**53-1"))
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_SAFE_INTEGER:
            errors.append(FieldError(path, "integer is outside the range -(2**53-1)..2**53-1"))
    if keys > limits.max_json_keys:
        errors.append(FieldError((name,), f"has more than {limits.max_json_keys} keys in total"))
    if not errors:
        size = len(orjson.dumps(value))
        if size > limits.max_json_bytes:
            errors.append(FieldError((name,), f"is larger than {limits.max_json_bytes} bytes"))
    return errors


def _walk(
    value: object, path: tuple[str | int, ...], depth: int
) -> Iterator[tuple[tuple[str | int, ...], int, object]]:
    """Yield (path, depth, value) for *value* and everything inside it, depth-first.

    Nothing under a key holding a surrogate is visited: its path could not be reported.
    """
    yield path, depth, value
    if depth > _WALK_GUARD:  # the caller stops at its own (smaller) limit; this guards recursion
        return
    if isinstance(value, dict):
        for key, child in value.items():
            if not has_surrogate(key):
                yield from _walk(child, (*path, key), depth + 1)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, (*path, index), depth + 1)
