"""The strict reading of a JSON request body, for the bodies the fast path refuses.

``api.routing.ModelBodyRoute`` lets pydantic validate a body straight from its bytes. When
that fails, the body is read again here, slowly and once, to say exactly what is wrong
with it as JSON before its fields are looked at: I-JSON (RFC 7493) text, which is what
every stored value must be. A string holding an unpaired UTF-16 surrogate (``"\\ud800"``)
is refused with a pointer to it, here rather than as a crash of the leaf hash's encoder.

Anything else is left to FastAPI's own validation of the document, as before.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from auditline.domain.validation import SURROGATE_MESSAGE, has_surrogate

Path = tuple[str | int, ...]


def parse_body(body: bytes) -> Any:
    """The JSON document *body* holds, or the error a client gets for it.

    Malformed JSON gets FastAPI's own answer (a ``json_invalid`` error at the offset), and a
    body nested too deeply to parse FastAPI's 400, so the answers to those do not change.
    """
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
              "input": {}, "ctx": {"error": exc.msg}}],
            body=exc.doc,
        ) from exc  # fmt: skip
    except (ValueError, RecursionError) as exc:  # undecodable bytes; a depth Python cannot parse
        raise HTTPException(400, "There was an error parsing the body") from exc
    errors = [
        {"type": "unpaired_surrogate", "loc": ("body", *path), "msg": message, "input": None}
        for path, message in _problems(document)
    ]
    if errors:
        raise RequestValidationError(errors)
    return document


def _problems(document: Any) -> list[tuple[Path, str]]:
    """What in *document* breaks I-JSON, with where; in document order.

    Iterative, so no depth the parser accepted can exhaust the stack here. A key holding a
    surrogate is reported at its object (no pointer can spell it) and not entered.
    """
    problems: list[tuple[Path, str]] = []
    stack: list[tuple[Path, Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if type(value) is str:
            if has_surrogate(value):
                problems.append((path, SURROGATE_MESSAGE))
        elif type(value) is dict:
            children = []
            for key, child in value.items():
                if has_surrogate(key):
                    problems.append((path, "a key " + SURROGATE_MESSAGE))
                else:
                    children.append(((*path, key), child))
            stack.extend(reversed(children))
        elif type(value) is list:
            stack.extend(reversed([((*path, i), child) for i, child in enumerate(value)]))
    return problems
