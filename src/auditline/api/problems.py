"""Every problem type the API answers with: its ``type`` URI, its status and what it means.

One table, so that three things cannot drift apart: the status a problem is sent with
(``api.errors.problem`` takes it from here), the error responses the OpenAPI document
declares for each operation (:func:`error_responses`, which names the types a status can
carry) and the table in docs/api.md (:func:`reference_rows`; a test keeps it in step).
``ProblemKind`` is a closed ``Literal``, so mypy refuses a problem of a type not listed.

The URIs are stable identifiers, not pages: clients match on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

PROBLEM_JSON: Final = "application/problem+json"
TYPE_BASE: Final = "https://auditline.dev/problems/"

ProblemKind = Literal[
    "http-400",
    "query-syntax",
    "invalid-search",
    "invalid-cursor",
    "invalid-range",
    "unauthenticated",
    "http-401",
    "forbidden",
    "tenant-not-found",
    "not-found",
    "http-404",
    "http-405",
    "http-408",
    "tenant-exists",
    "legal-hold",
    "not-sealed",
    "api-key-limit",
    "too-large",
    "http-415",
    "validation",
    "tenant-required",
    "rate-limited",
    "internal",
    "unavailable",
    "overloaded",
    "read-timeout",
    "search-unavailable",
    "http-error",
]


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    meaning: str


PROBLEM_TYPES: Final[dict[ProblemKind, ProblemType]] = {
    "http-400": ProblemType(
        400, "The body could not be parsed at all (JSON nested deeper than the parser follows)."
    ),
    "query-syntax": ProblemType(
        400,
        "`q` breaks the query language (docs/search.md); `errors[0].position` is where. A "
        "grammar is more than a JSON Schema pattern can say, so the schema cannot rule it out.",
    ),
    "invalid-search": ProblemType(
        400,
        "Statistics over an empty range (`start` not before `end`) or over more timeline "
        "buckets than `search.stats_max_buckets`; `errors[0].parameter` names which.",
    ),
    "invalid-cursor": ProblemType(
        400,
        "A `cursor` this endpoint did not issue: edited, forged, or from another tenant, "
        "query or order. Cursors are signed; only a `next_cursor` is valid.",
    ),
    "invalid-range": ProblemType(
        400,
        "A consistency proof between sizes the log does not have: `0 <= from <= to <=` the "
        "newest checkpoint's size must hold.",
    ),
    "unauthenticated": ProblemType(
        401,
        "No credential, or one that is malformed, expired, revoked or from an issuer the "
        "server does not trust (`WWW-Authenticate: Bearer`).",
    ),
    "http-401": ProblemType(
        401, "`GET /metrics` without the bearer token `metrics.bearer_token` configures."
    ),
    "forbidden": ProblemType(
        403,
        "The role or the API key's scope does not allow this on the caller's own tenant. "
        "Recorded in the tenant's log.",
    ),
    "tenant-not-found": ProblemType(
        404,
        "No such tenant, or one the credential does not grant: another tenant is "
        "indistinguishable from a missing one.",
    ),
    "not-found": ProblemType(
        404, "The event of a proof request is not in the tenant's log (nor anyone's it may see)."
    ),
    "http-404": ProblemType(
        404,
        "No such path (WebSocket upgrades included), or no such event, API key or job in the "
        "tenant: another tenant's is indistinguishable from a missing one.",
    ),
    "http-405": ProblemType(
        405, "The path exists but not with this method; `Allow` lists the methods it has."
    ),
    "http-408": ProblemType(
        408, "The request body did not arrive within `http.body_timeout_seconds`."
    ),
    "tenant-exists": ProblemType(409, "A tenant with this id exists already."),
    "legal-hold": ProblemType(
        409, "The tenant is under legal hold: a cleanup (or its dry run) removes nothing."
    ),
    "not-sealed": ProblemType(
        409,
        "The log has no checkpoint covering this event (or no checkpoint) yet; `Retry-After` "
        "says when the sealer will have run.",
    ),
    "api-key-limit": ProblemType(
        409, "The tenant has `api_keys.max_active_per_tenant` active keys; revoke one first."
    ),
    "too-large": ProblemType(
        413,
        "The body is larger than `ingest.max_body_bytes` (declared or counted as it "
        "streams); nothing was read.",
    ),
    "http-415": ProblemType(
        415,
        "A body that is not JSON in UTF-8: no `Content-Type`, one other than "
        "`application/json` (or `application/*+json`), another `charset`, or bytes that "
        "are not UTF-8.",
    ),
    "validation": ProblemType(
        422,
        "The request breaks the schema or an input rule; `errors[]` points at every offending "
        "value (`pointer` into the body, with `index` for bulk; or `parameter` and `in`). "
        "Also a body that is not well-formed JSON (`errors[0].detail`: JSON decode error), a "
        "query parameter the endpoint does not take, and rules the schema cannot state (a "
        "time too far in the future or past, `start` before `end`). Without `errors`: a value "
        "the database refused although it passed validation (quote `request_id`).",
    ),
    "tenant-required": ProblemType(
        422, "The credential grants several tenants and the request names none: add `tenant_id`."
    ),
    "rate-limited": ProblemType(
        429,
        "A rate limit is exhausted; nothing was applied. `Retry-After` and the `RateLimit` / "
        "`RateLimit-Policy` headers say when to retry.",
    ),
    "internal": ProblemType(
        500, "An unexpected failure; nothing was acknowledged. Quote `request_id`."
    ),
    "unavailable": ProblemType(
        503,
        "The database is unavailable: a write may or may not have been applied, retry it "
        "with the same event id (idempotent). `Retry-After`.",
    ),
    "overloaded": ProblemType(
        503,
        "The server is running as many reads (or exports and statistics, or exports) as it "
        "admits; this one was not started and nothing was recorded. `Retry-After`.",
    ),
    "read-timeout": ProblemType(
        503,
        "A read ran past its statement timeout and was cancelled: narrow the query or retry "
        "later. `Retry-After`.",
    ),
    "search-unavailable": ProblemType(
        503,
        "OpenSearch serves this search and cannot answer now, and the server is configured "
        "(`search.on_unavailable`) to refuse rather than ask PostgreSQL; nothing was returned "
        "or recorded. `Retry-After`.",
    ),
    "http-error": ProblemType(
        0,
        "Any other HTTP error the web framework raises (none is known to): `status` is its "
        "code. Listed so that no answer has a type this table leaves out.",
    ),
}

HTTP_KINDS: Final[dict[int, ProblemKind]] = {
    400: "http-400",
    401: "http-401",
    404: "http-404",
    405: "http-405",
    408: "http-408",
    413: "too-large",
    415: "http-415",
}
"""The type of an ``HTTPException`` by its status (FastAPI's, Starlette's routing, ours)."""


def http_kind(status: int) -> ProblemKind:
    return HTTP_KINDS.get(status, "http-error")


def type_uri(kind: ProblemKind) -> str:
    return TYPE_BASE + kind


RETRY_AFTER: Final = {
    "description": "Seconds to wait before retrying",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}

_HEADERS: Final[dict[int, dict[str, Any]]] = {
    401: {
        "WWW-Authenticate": {
            "description": '`Bearer`, with `error="invalid_token"` for a bad credential',
            "required": True,
            "schema": {"type": "string"},
        }
    },
    405: {
        "Allow": {
            "description": "The methods the path has",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}

_SUMMARIES: Final[dict[int, str]] = {
    400: "A value the schema cannot judge alone is wrong",
    401: "Not authenticated",
    403: "Not allowed for this role or key scope",
    404: "No such resource or tenant for this caller",
    405: "The path has no such method",
    408: "The body did not arrive in time",
    409: "Conflict with the resource's state",
    413: "The body is too large",
    415: "The body is not JSON in UTF-8",
    422: "Invalid request; nothing was changed",
    429: "Rate limited; nothing was applied",
    503: "Unavailable or overloaded; retry after `Retry-After` seconds",
}


def error_responses(*answers: int | ProblemKind) -> dict[int | str, Any]:
    """The OpenAPI ``responses`` for an operation's error answers, each a status (every
    problem type of that status) or a problem type (only the types named, for their
    status): problem+json whose ``type`` is one of those types, with the header fields
    those answers always carry."""
    whole = {answer for answer in answers if isinstance(answer, int)}
    named: dict[int, list[ProblemKind]] = {status: [] for status in whole}
    for kind, problem in PROBLEM_TYPES.items():
        if problem.status in whole or kind in answers:
            named.setdefault(problem.status, []).append(kind)
    responses: dict[int | str, Any] = {}
    for status, kinds in sorted(named.items()):
        listed = ", ".join(f"`{kind}`" for kind in kinds)
        responses[status] = {
            "description": f"{_SUMMARIES[status]} (problem types {listed}: docs/api.md#errors)",
            "content": {
                PROBLEM_JSON: {
                    "schema": {
                        "allOf": [{"$ref": "#/components/schemas/Problem"}],
                        "properties": {
                            "type": {"enum": [type_uri(kind) for kind in kinds]},
                            "status": {"const": status},
                        },
                    }
                }
            },
        }
        if status in _HEADERS:
            responses[status]["headers"] = _HEADERS[status]
    return responses


def reference_rows() -> list[str]:
    """The table of docs/api.md: one Markdown row per problem type."""
    rows = ["| `type` (after `" + TYPE_BASE + "`) | status | meaning |", "|---|---|---|"]
    for kind in get_args(ProblemKind):
        problem = PROBLEM_TYPES[kind]
        status = str(problem.status) if problem.status else "any"
        meaning = problem.meaning.replace("|", "\\|")
        rows.append(f"| `{kind}` | {status} | {meaning} |")
    return rows


AUTHENTICATED: Final[tuple[ProblemKind, ...]] = (
    "unauthenticated",
    "forbidden",
    "tenant-not-found",
    "validation",
    "tenant-required",
    "rate-limited",
    "unavailable",
)
"""What any authenticated operation may answer: the credential, the role, the tenant, an
unknown or invalid parameter, the rate limit, the database."""

JSON_BODY: Final[tuple[ProblemKind, ...]] = ("http-400", "http-408", "too-large", "http-415")
"""What reading a JSON body may answer besides ``validation``."""

READ: Final[tuple[ProblemKind, ...]] = ("overloaded", "read-timeout", "search-unavailable")
"""What an admitted read (``admission.py``, a statement timeout, an unavailable search
backend) may answer."""
