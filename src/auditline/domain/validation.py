"""Ingest rules that depend on configuration or on the clock.

Type and format checks (UUIDs, IP addresses, the action pattern, unknown fields) happen at
the API edge; the rules here bound what one event may cost to store and index, and keep out
what PostgreSQL would refuse later (NUL characters) or what would not round-trip through
canonical JSON (non-finite floats, integers beyond I-JSON's 2**53).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta

import orjson

from auditline.config import IngestSettings
from auditline.domain.events import EventDraft, FieldError

MAX_SAFE_INTEGER = 2**53 - 1

_SHORT_FIELDS = ("user_id", "session_id", "resource_type", "resource_id", "request_id")


def check_event(draft: EventDraft, limits: IngestSettings, now: datetime) -> list[FieldError]:
    """Every rule *draft* breaks, as field errors (empty when it may be stored)."""
    errors: list[FieldError] = []

    if draft.timestamp is not None:
        if draft.timestamp > now + timedelta(seconds=limits.max_future_skew_seconds):
            errors.append(
                FieldError(
                    ("timestamp",),
                    f"is more than {limits.max_future_skew_seconds} s in the future",
                )
            )
        elif draft.timestamp < now - timedelta(days=limits.max_past_days):
            errors.append(
                FieldError(("timestamp",), f"is more than {limits.max_past_days} days old")
            )

    bounded = [(name, limits.max_field_chars) for name in _SHORT_FIELDS]
    bounded += [("message", limits.max_message_chars), ("user_agent", limits.max_user_agent_chars)]
    for name, limit in bounded:
        value = getattr(draft, name)
        if value is None:
            continue
        if len(value) > limit:
            errors.append(FieldError((name,), f"is longer than {limit} characters"))
        if "\x00" in value:
            errors.append(FieldError((name,), "must not contain NUL characters"))

    for name in ("metadata", "before", "after"):
        value = getattr(draft, name)
        if value is not None:
            errors.extend(_check_json(name, value, limits))
    return errors


def _check_json(name: str, value: object, limits: IngestSettings) -> list[FieldError]:
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
        elif isinstance(item, str) and "\x00" in item:
            errors.append(FieldError(path, "must not contain NUL characters"))
        elif isinstance(item, float) and not math.isfinite(item):
            errors.append(FieldError(path, "must be a finite number"))
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
    """Yield (path, depth, value) for *value* and everything inside it, depth-first."""
    yield path, depth, value
    if depth > 64:  # the caller stops at its own (smaller) limit; this guards the recursion
        return
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _walk(child, (*path, key), depth + 1)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, (*path, index), depth + 1)
