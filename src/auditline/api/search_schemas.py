"""Query parameters and response bodies of search, export and statistics."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from auditline.api.schemas import (
    IP_ADDRESS_SCHEMA,
    NO_CONTROLS_MESSAGE,
    Action,
    EventOut,
    Instant,
    TenantSlug,
    TextRule,
)
from auditline.domain.events import ActorType, Outcome, Severity, StoredEvent
from auditline.domain.normalise import IPV4_PATTERN, IPV6_PATTERN
from auditline.domain.validation import CONTROL_CHARACTERS
from auditline.search.export import ExportFormat
from auditline.search.model import (
    FACET_FIELDS,
    Count,
    FacetRequest,
    Facets,
    Highlight,
    Interval,
    Order,
    Relation,
    SearchFilters,
    Stats,
    Total,
)

_V4_PREFIX, _V6_PREFIX = "(?:3[0-2]|[12]?[0-9])", "(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])"
_NETWORK_FORMS = (f"{IPV4_PATTERN}/{_V4_PREFIX}", f"{IPV6_PATTERN}/{_V6_PREFIX}")
_NETWORK = re.compile("|".join([IPV4_PATTERN, IPV6_PATTERN, *_NETWORK_FORMS]))

IpNetworkText = Annotated[
    str,
    WithJsonSchema(
        {
            "anyOf": [
                *IP_ADDRESS_SCHEMA["anyOf"],
                *({"type": "string", "pattern": f"^{form}$"} for form in _NETWORK_FORMS),
            ],
            "description": "An IP address, or a CIDR network: an address, `/`, and a prefix "
            "length (0-32 for IPv4, 0-128 for IPv6, no leading zeros); no zone",
        }
    ),
]

Text = Annotated[str, TextRule(CONTROL_CHARACTERS, NO_CONTROLS_MESSAGE, max_length=256)]
"""An identifier to match, under the rules of the identifiers events hold."""


class SearchParams(BaseModel):
    """Filters shared by search, export and statistics; all that are given must hold."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: TenantSlug | None = Field(
        default=None, description="Required when the token grants several tenants"
    )
    start: Instant | None = Field(default=None, description="Inclusive, RFC 3339")
    end: Instant | None = Field(default=None, description="Exclusive, RFC 3339")
    user_id: Text | None = None
    session_id: Text | None = None
    action: list[Action] = Field(default_factory=list, description="Repeatable: any of them")
    resource_type: Text | None = None
    resource_id: Text | None = None
    severity: list[Severity] = Field(default_factory=list, description="Repeatable: any of them")
    min_severity: Severity | None = Field(default=None, description="This severity or worse")
    ip_address: IpNetworkText | None = Field(
        default=None, description="An address, or a CIDR network (10.0.0.0/8, 2001:db8::/32)"
    )
    request_id: Text | None = None
    outcome: Outcome | None = None
    actor_type: ActorType | None = None
    include_access: bool = Field(
        default=False,
        description="Also match the service's own records of reads (resource_type "
        "`audit_log`: every get, search, export and statistics request is recorded as one). "
        "Left out by default, so searches and statistics show the tenant's own activity; a "
        "`resource_type=audit_log` filter or `resource_type:audit_log` term includes them too.",
    )
    q: str | None = Field(
        default=None,
        max_length=2000,
        json_schema_extra={"pattern": "^[^\\x00]*$"},  # the validator below says why
        description='Query language (docs/search.md): words, "phrases", field:value, '
        "field:prefix*, NOT/-, AND, OR, ( ), severity>=WARNING, timestamp>2026-01-01, "
        "metadata.key:value",
    )

    @field_validator("q")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL; found by the schemathesis contract test (a 500).
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("ip_address")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        # The document's spellings only: ipaddress alone also reads netmasks
        # (10.0.0.0/255.0.0.0), prefixes with leading zeros, and zones (fe80::1%eth0),
        # which PostgreSQL's cidr cannot hold.
        if value is None:
            return None
        if _NETWORK.fullmatch(value) is None:
            raise ValueError("an IP address or a CIDR network (address/prefix length)")
        return str(ipaddress.ip_network(value, strict=False))

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def filters(self) -> SearchFilters:
        return SearchFilters(
            start=self.start,
            end=self.end,
            user_id=self.user_id,
            session_id=self.session_id,
            actions=tuple(dict.fromkeys(self.action)),
            resource_type=self.resource_type,
            resource_id=self.resource_id,
            severities=tuple(dict.fromkeys(self.severity)),
            min_severity=self.min_severity,
            ip_network=self.ip_address,
            request_id=self.request_id,
            outcome=self.outcome,
            actor_type=self.actor_type,
        )


_FACET = f"({'|'.join(FACET_FIELDS)})"


class ListParams(SearchParams):
    limit: int | None = Field(
        default=None, ge=1, le=1000, description="Page size; default 50 (search.default_limit)"
    )
    order: Order = Field(default="desc", description="By (timestamp, id)")
    cursor: str | None = Field(
        default=None,
        max_length=128,
        # The shape of what search.cursor issues (49 bytes, base64url, unpadded); its
        # signature is checked by the search (400 invalid-cursor, as for any other string).
        json_schema_extra={"pattern": "^[A-Za-z0-9_-]{66}$"},
        description="next_cursor of the previous page (signed: no other value is valid)",
    )
    include_total: bool = Field(
        default=False,
        description="Count the matches: exact when cheap, else an estimate or a lower bound, "
        "labelled by `relation` (docs/search.md)",
    )
    facets: str | None = Field(
        default=None,
        max_length=200,
        # The values the validator below accepts, for clients and the contract test.
        json_schema_extra={"pattern": f"^ *{_FACET} *(, *{_FACET} *)*$"},
        description="Comma-separated fields to count the top values of among all matches: "
        f"any of {', '.join(FACET_FIELDS)}",
        examples=["action,user_id"],
    )
    facet_size: int | None = Field(
        default=None, ge=1, le=100, description="Values per facet; default 10 (search.facet_size)"
    )
    highlight: bool = Field(
        default=False,
        description="Mark the matched words of this page's messages and metadata values "
        "(HTML-escaped, `<mark>`...`</mark>`)",
    )

    @field_validator("facets")
    @classmethod
    def _facet_fields(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [n.strip() for n in value.split(",")]
        unknown = [n for n in names if n not in FACET_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown facet field {unknown[0]!r}: choose from {', '.join(FACET_FIELDS)}"
            )
        return ",".join(dict.fromkeys(names))

    def facet_request(self, default_size: int) -> FacetRequest | None:
        if self.facets is None:
            return None
        fields = tuple(f for f in FACET_FIELDS if f in self.facets.split(","))
        return FacetRequest(fields=fields, size=self.facet_size or default_size)


class ExportParams(SearchParams):
    format: ExportFormat = "csv"
    order: Order = Field(default="asc", description="By (timestamp, id); oldest first")
    include_proofs: bool = Field(
        default=False,
        description="JSON and NDJSON only: the signed checkpoint at the head of the file and "
        "each event's inclusion proof in it, for `auditline verify FILE` (docs/integrity.md)",
    )

    @model_validator(mode="after")
    def _proofs_need_json(self) -> ExportParams:
        if self.include_proofs and self.format == "csv":
            raise ValueError("include_proofs needs format json or ndjson")
        return self


class StatsParams(SearchParams):
    interval: Interval = Field(default="hour", description="Timeline bucket size (UTC)")


class TotalOut(BaseModel):
    value: int
    relation: Relation = Field(
        description="eq: exact; gte: at least this many (counting stopped at the threshold); "
        "approx: an estimate (counting would have taken too long; docs/search.md)"
    )

    @classmethod
    def of(cls, total: Total) -> TotalOut:
        return cls(value=total.value, relation=total.relation)


class FacetOut(BaseModel):
    relation: Relation = Field(
        description="eq: exact counts; gte: counted over part of the matches (lower bounds)"
    )
    values: list[CountOut] = Field(description="Most frequent first; ties by value; null: unset")


class FacetsOut(BaseModel):
    partial: bool = Field(
        description="The time budget ran out before every match was counted, and every "
        "facet is `gte`. From PostgreSQL the counts are then over the newest `sampled` "
        "matches; from OpenSearch they are what the shards counted before the search "
        "timeout, and `sampled` is null (OpenSearch does not say how many)"
    )
    sampled: int | None = Field(
        description="Matches counted when PostgreSQL's answer is partial; null otherwise "
        "(and for a partial answer from OpenSearch)"
    )
    fields: dict[str, FacetOut]

    @classmethod
    def of(cls, facets: Facets) -> FacetsOut:
        return cls(
            partial=facets.partial,
            sampled=facets.sampled,
            fields={
                f.field: FacetOut(
                    relation=f.relation,
                    values=[CountOut(key=v.key, count=v.count) for v in f.values],
                )
                for f in facets.facets
            },
        )


class MetadataHighlightOut(BaseModel):
    path: list[str] = Field(description="Keys from the metadata's root (arrays left out)")
    value: str = Field(description="The value, HTML-escaped, matches in `<mark>`")


class HighlightOut(BaseModel):
    id: UUID
    message: str | None = Field(
        description="The message, HTML-escaped, matches in `<mark>`; null: no match there"
    )
    metadata: list[MetadataHighlightOut]


class SearchOut(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )
    total: TotalOut | None = Field(default=None, description="Only with include_total=true")
    facets: FacetsOut | None = Field(default=None, description="Only with facets=...")
    highlights: list[HighlightOut] | None = Field(
        default=None,
        description="Only with highlight=true: the page's events with a matched word, in "
        "page order",
    )

    @classmethod
    def highlights_of(
        cls, items: list[StoredEvent], marked: list[Highlight | None] | None
    ) -> list[HighlightOut] | None:
        if marked is None:
            return None
        return [
            HighlightOut(
                id=item.event.id,
                message=h.message,
                metadata=[MetadataHighlightOut(path=list(p), value=v) for p, v in h.metadata],
            )
            for item, h in zip(items, marked, strict=True)
            if h is not None
        ]


class CountOut(BaseModel):
    key: str | None
    count: int


class ResourceCountOut(BaseModel):
    resource_type: str | None
    resource_id: str | None
    count: int


class BucketOut(BaseModel):
    start: datetime
    count: int


class StatsOut(BaseModel):
    start: datetime
    end: datetime
    interval: Interval
    total: int
    by_action: list[CountOut]
    by_severity: list[CountOut]
    by_resource_type: list[CountOut]
    by_outcome: list[CountOut]
    top_users: list[CountOut]
    top_resources: list[ResourceCountOut]
    timeline: list[BucketOut] = Field(description="Every bucket of the range, zero-filled")
    source: Literal["rollup", "events"] = Field(
        description="rollup: whole hours from pre-aggregates, edges from events"
    )

    @classmethod
    def of(cls, stats: Stats) -> StatsOut:
        def counts(items: list[Count]) -> list[CountOut]:
            return [CountOut(key=c.key, count=c.count) for c in items]

        return cls(
            start=stats.start,
            end=stats.end,
            interval=stats.interval,
            total=stats.total,
            by_action=counts(stats.by_action),
            by_severity=counts(stats.by_severity),
            by_resource_type=counts(stats.by_resource_type),
            by_outcome=counts(stats.by_outcome),
            top_users=counts(stats.top_users),
            top_resources=[
                ResourceCountOut(
                    resource_type=r.resource_type, resource_id=r.resource_id, count=r.count
                )
                for r in stats.top_resources
            ],
            timeline=[BucketOut(start=b.start, count=b.count) for b in stats.timeline],
            source=stats.source,
        )
