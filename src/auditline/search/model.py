"""What a search asks for and what it returns: plain typed objects shared by every backend.

The API turns query parameters into these, the PostgreSQL backend (and the OpenSearch one
to come) answers them, and the export and statistics code consumes them. Nothing here
knows about HTTP or SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.events import ActorType, Outcome, Severity, StoredEvent
from auditline.search.query import Match, Node, to_query, walk

Order = Literal["desc", "asc"]
Interval = Literal["minute", "hour", "day"]
INTERVAL_SECONDS: Final[dict[Interval, int]] = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Structured filters; every one that is set must hold (AND).

    ``start`` is inclusive and ``end`` exclusive. ``actions`` and ``severities`` match any
    of their values. ``ip_network`` is a normalised CIDR network (a single address is a
    ``/32`` or ``/128``).
    """

    start: datetime | None = None
    end: datetime | None = None
    user_id: str | None = None
    session_id: str | None = None
    actions: tuple[str, ...] = ()
    resource_type: str | None = None
    resource_id: str | None = None
    severities: tuple[Severity, ...] = ()
    min_severity: Severity | None = None
    ip_network: str | None = None
    request_id: str | None = None
    outcome: Outcome | None = None
    actor_type: ActorType | None = None

    def describe(self) -> dict[str, Any]:
        """The filters that are set, as JSON values (for access records and cursor binding)."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            out[name] = (
                value.isoformat() if isinstance(value, datetime) else
                list(value) if isinstance(value, tuple) else value
            )  # fmt: skip
        return out

    @property
    def only_time(self) -> bool:
        """True when nothing but the time range is set."""
        return not {k for k in self.describe() if k not in ("start", "end")}


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Filters, the parsed ``q``, the caller's row restriction, and whether access records
    are searched too.

    ``only_user`` is not a filter the caller chose: it is the access rule for the ``user``
    role (only events whose ``user_id`` is the caller's subject), applied by every backend.
    """

    filters: SearchFilters = field(default_factory=SearchFilters)
    q: Node | None = None
    only_user: str | None = None
    include_access: bool = False

    @property
    def access_included(self) -> bool:
        """Whether the service's records of reads (``ACCESS_RESOURCE``) may match.

        Only when asked: ``include_access``, or a query that names their resource type
        (the ``resource_type`` filter, or a ``resource_type:audit_log`` term anywhere in
        ``q``). Every backend leaves them out otherwise.
        """
        if self.include_access or self.filters.resource_type == ACCESS_RESOURCE:
            return True
        return self.q is not None and any(
            isinstance(n, Match) and n.field == "resource_type" and n.value == ACCESS_RESOURCE
            for n in walk(self.q)
        )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.filters.describe())
        if self.q is not None:
            out["q"] = to_query(self.q)
        if self.only_user is not None:
            out["only_user"] = self.only_user
        if self.include_access:
            out["include_access"] = True
        return out


@dataclass(frozen=True, slots=True)
class Position:
    """A place in the (timestamp, id) order: paging continues strictly after it."""

    timestamp: datetime
    id: UUID


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page: at most *limit* events strictly after *after* in *order*.

    *watermark*, when set, limits the result to events with ``seq < watermark``: the events
    that were committed when the first page was read (see ``docs/search.md``).
    """

    limit: int
    order: Order = "desc"
    after: Position | None = None
    watermark: int | None = None
    include_total: bool = False


Relation = Literal["eq", "gte", "approx"]
"""How a count relates to the truth: ``eq`` exact, ``gte`` a lower bound (at least this
many), ``approx`` an estimate (see docs/search.md for how each backend estimates and its
measured error)."""


@dataclass(frozen=True, slots=True)
class Total:
    """A count of matches, labelled with how far it can be trusted."""

    value: int
    relation: Relation = "eq"

    @property
    def exact(self) -> bool:
        return self.relation == "eq"


FacetField = Literal["action", "user_id", "resource_type", "severity", "outcome"]
FACET_FIELDS: Final[tuple[FacetField, ...]] = (
    "action", "user_id", "resource_type", "severity", "outcome",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FacetRequest:
    """The top *size* values of each of *fields* among the matches."""

    fields: tuple[FacetField, ...]
    size: int = 10


@dataclass(frozen=True, slots=True)
class Facet:
    """The top values of one field, most frequent first (ties by value; ``None``: not set).

    ``relation`` labels every count: ``eq`` exact; ``gte`` counted over part of the
    matches only (each count is a lower bound, and the order may differ from the full
    result set's).
    """

    field: FacetField
    values: list[Count]
    relation: Relation = "eq"


@dataclass(frozen=True, slots=True)
class Facets:
    """Facets of a result set. ``partial`` when the time budget ran out before every match
    was counted (every facet is then ``gte``). On PostgreSQL the counts are then over the
    newest ``sampled`` matches; on OpenSearch over whatever the shards counted before the
    search timeout, and ``sampled`` is None (it is not reported)."""

    facets: list[Facet]
    partial: bool = False
    sampled: int | None = None


@dataclass(frozen=True, slots=True)
class Highlight:
    """An event's matched words, marked: HTML-escaped text with ``<mark>``/``</mark>``
    around each match. ``message`` is None when no word matched there; ``metadata`` holds
    the values that matched, each with its path of keys (array positions left out)."""

    message: str | None
    metadata: list[tuple[tuple[str, ...], str]]


@dataclass(frozen=True, slots=True)
class Page:
    items: list[StoredEvent]
    next: Position | None
    """Where the next page starts, or None when this page is the last."""
    watermark: int
    total: Total | None = None


@dataclass(frozen=True, slots=True)
class Count:
    key: str | None
    count: int


def ranked(counts: list[Count]) -> list[Count]:
    """Most frequent first; ties by value in code-point order, unset (None) last: the
    order every backend answers facets in, so their answers compare."""
    return sorted(counts, key=lambda c: (-c.count, c.key is None, c.key or ""))


@dataclass(frozen=True, slots=True)
class ResourceCount:
    resource_type: str | None
    resource_id: str | None
    count: int


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    count: int


@dataclass(frozen=True, slots=True)
class Stats:
    start: datetime
    end: datetime
    interval: Interval
    total: int
    by_action: list[Count]
    by_severity: list[Count]
    by_resource_type: list[Count]
    by_outcome: list[Count]
    top_users: list[Count]
    top_resources: list[ResourceCount]
    timeline: list[Bucket]
    source: Literal["rollup", "events"]
    """Where the answer came from: hourly pre-aggregates (plus raw edges) or the events."""


class InvalidSearch(ValueError):
    """A search parameter that is well-formed but cannot be answered (400)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message
