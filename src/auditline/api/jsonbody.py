"""Reading a JSON request body: fast when it is fine, strict and exact when it is not.

``read_body`` lets pydantic validate a body straight from its bytes (``api.routing``).
What pydantic's parser does not check, every body must still be: I-JSON (RFC 7493) text.

* **Repeated keys.** Pydantic keeps the last of ``{"action": "CREATE", "action":
  "DELETE"}``; RFC 8259 says names SHOULD be unique and I-JSON says MUST, and an audit
  log must not store one reading of a request when a proxy or a signature checker may have
  seen the other. Proving a validated body free of them costs a count, not a parse
  (:func:`repeats_excluded`); only a body the count cannot clear is parsed again.
* **Unpaired UTF-16 surrogates** (``"\\ud800"``): pydantic's parser refuses them, so they
  arrive here with every other body it refused.

A body pydantic refused, or whose count did not clear it, is parsed again here, slowly and
once, to point at what breaks I-JSON; anything else wrong with it is left to FastAPI's own
validation of the document, as before.
"""

from __future__ import annotations

import json
from functools import cache
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from auditline.domain.validation import SURROGATE_MESSAGE, has_surrogate

Path = tuple[str | int, ...]

_SURROGATE, _REPEATED = "unpaired_surrogate", "repeated_key"

REPEATED_KEY_MESSAGE = "repeats a key of its object (names must be unique: RFC 8259, RFC 7493)"


def read_body(model: type[BaseModel], body: bytes) -> Any:
    """*body* validated as *model*, or, if pydantic refuses it, the JSON document it holds
    for FastAPI to validate (and report on) as it always did.

    Raises ``RequestValidationError`` with pointers if the body breaks I-JSON.
    """
    try:
        validated = model.model_validate_json(body)
    except ValidationError:
        return parse_body(body)
    if not repeats_excluded(body, validated):
        parse_body(body)  # raises if a key is repeated; otherwise the count was cautious
    return validated


def repeats_excluded(body: bytes, validated: BaseModel) -> bool:
    """True only if no object in *body* (which validated as *validated*) repeats a key.

    Every member of an object is a string, optional whitespace and a colon, so with the
    four JSON whitespace bytes deleted each member leaves one ``":`` in the text, and
    deleting bytes never takes one away: the count of ``":`` is at least the number of
    members in the text. That number is at least the number of distinct keys per object
    summed over the document, with equality exactly when no key repeats, and the validated
    model holds at least as many as :func:`_members` counts. So when the count equals
    :func:`_members`, all of them are equal and no key repeats. A ``\\":`` inside a string,
    or a member :func:`_members` does not see, only makes the count larger: a false alarm,
    which costs a second parse, never a repeat let through. About 0.8 + 1 ms per 1,000
    events, against 3.6-4.1 ms for the cheapest second parse (``jiter`` with
    ``catch_duplicate_keys``) and 4.7 for ``json.loads(object_pairs_hook=...)``
    (docs/benchmarks/ingest-notes.md).
    """
    return body.translate(None, b" \t\n\r").count(b'":') == _members(validated)


def _members(value: object) -> int:
    """The object members *value* (a validated body) holds: every model's fields that were
    given, and every key of the JSON objects given in them. Defaults are not looked into
    (a default's keys were never in the text), and no validator here adds keys."""
    count = 0
    stack: list[Any] = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            count += len(item)
            for child in item.values():
                if type(child) is dict or type(child) is list:
                    push(child)
        elif kind is list:
            stack.extend(item)
        elif issubclass(kind, BaseModel):
            given = item.__pydantic_fields_set__
            count += len(given)
            for name in _nested_fields(kind):
                if name in given and (child := getattr(item, name)) is not None:
                    push(child)
    return count


@cache
def _nested_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of *model* whose values may hold object members (models, dicts, lists).

    Leaving one out would only make :func:`repeats_excluded` cautious, never wrong.
    """
    return tuple(name for name, field in model.model_fields.items() if _may_nest(field.annotation))


def _may_nest(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _may_nest(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return any(_may_nest(arg) for arg in get_args(annotation))
    if hasattr(annotation, "__value__"):  # a type alias (pydantic's JsonValue is one)
        return _may_nest(annotation.__value__)
    if origin in (dict, list, tuple, set, frozenset):
        return True
    return annotation is Any or (isinstance(annotation, type) and issubclass(annotation, BaseModel))


def parse_body(body: bytes) -> Any:
    """The JSON document *body* holds, or the error a client gets for it.

    Malformed JSON gets FastAPI's own answer (a ``json_invalid`` error at the offset), and a
    body nested too deeply to parse FastAPI's 400, so the answers to those do not change;
    bytes that are not UTF-8 a 415 (the content, inspected, is not a type we read).
    """
    try:
        text = body.decode()  # strictly UTF-8: json.loads would take UTF-16 and UTF-32 too
    except UnicodeDecodeError as exc:
        raise HTTPException(
            415, f"The body is not UTF-8 (byte {exc.start}): JSON is UTF-8 (RFC 8259); "
            "nothing was stored.",
        ) from exc  # fmt: skip
    try:
        document = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
              "input": {}, "ctx": {"error": exc.msg}}],
            body=exc.doc,
        ) from exc  # fmt: skip
    except RecursionError as exc:  # a depth Python's parser cannot follow
        raise HTTPException(400, "There was an error parsing the body") from exc
    errors = [
        {"type": kind, "loc": ("body", *path), "msg": message, "input": None}
        for path, kind, message in _problems(document)
    ]
    if errors:
        raise RequestValidationError(errors)
    return document


class _Repeated(dict[str, Any]):
    """An object that repeated keys: these, in the order they came again."""

    def __init__(self, pairs: list[tuple[str, Any]], repeated: list[str]) -> None:
        super().__init__(pairs)
        self.repeated = repeated


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A parsed object, marked if a key came twice (the pointer is made later, top down)."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    repeated: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    return _Repeated(pairs, repeated)


def _problems(document: Any) -> list[tuple[Path, str, str]]:
    """What in *document* breaks I-JSON, with where; in document order.

    Iterative, so no depth the parser accepted can exhaust the stack here. A key holding a
    surrogate is reported at its object (no pointer can spell it) and not entered.
    """
    problems: list[tuple[Path, str, str]] = []
    stack: list[tuple[Path, Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if type(value) is str:
            if has_surrogate(value):
                problems.append((path, _SURROGATE, SURROGATE_MESSAGE))
        elif isinstance(value, dict):
            if isinstance(value, _Repeated):
                problems.extend(
                    ((*path, key), _REPEATED, REPEATED_KEY_MESSAGE)
                    for key in value.repeated
                    if not has_surrogate(key)
                )
            children = []
            for key, child in value.items():
                if has_surrogate(key):
                    problems.append((path, _SURROGATE, "a key " + SURROGATE_MESSAGE))
                else:
                    children.append(((*path, key), child))
            stack.extend(reversed(children))
        elif type(value) is list:
            stack.extend(reversed([((*path, i), child) for i, child in enumerate(value)]))
    return problems
