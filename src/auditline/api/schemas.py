"""Request and response bodies. Pydantic lives here, at the edge, and nowhere deeper."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv6Address
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    IPvAnyAddress,
    JsonValue,
    PlainValidator,
    Strict,
    StrictBool,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from auditline.domain.events import ActorType, Outcome, Severity, StoredEvent
from auditline.domain.normalise import is_canonical_ipv4
from auditline.domain.tenants import TENANT_ID_PATTERN, Tenant
from auditline.domain.validation import CONTROL_CHARACTERS, MAX_SAFE_INTEGER, RFC3339_PATTERN

TenantSlug = Annotated[
    str, Field(pattern=TENANT_ID_PATTERN, description="Tenant id: lower-case slug, 1-63 chars")
]
Action = Annotated[
    str,
    Field(
        pattern=r"^[A-Z][A-Z0-9_]{0,63}$",
        description="CREATE, READ, VIEW, UPDATE, DELETE, LOGIN, LOGOUT, EXPORT, ... "
        "or a custom upper-case verb",
        examples=["UPDATE"],
    ),
]


def not_nullable(schema: dict[str, Any]) -> None:
    """Take the ``null`` alternative out of *schema* (in place), and its ``default: null``.

    For an optional field or parameter whose None means "absent": null is not a value a
    client may send (a query string cannot even spell it), so the document does not offer
    it. As a field's ``json_schema_extra``, or on a whole document (``api.openapi``).
    """
    alternatives = schema.get("anyOf")
    if not isinstance(alternatives, list) or {"type": "null"} not in alternatives:
        return
    kept = [a for a in alternatives if a != {"type": "null"}]
    del schema["anyOf"]
    if schema.get("default", ...) is None:
        del schema["default"]
    if len(kept) == 1:
        schema.update({k: v for k, v in kept[0].items() if k not in schema})
    else:
        schema["anyOf"] = kept


class TextRule:
    """A string of *min_length* to *max_length* characters holding none of *forbidden* (a
    regular-expression character class body), refused with *message*.

    All of it runs in pydantic-core (lengths, then a pattern; no Python call per value), and
    the pattern is in the OpenAPI document, so clients can see the rule.
    """

    def __init__(
        self, forbidden: str, message: str, *, min_length: int = 1, max_length: int | None = None
    ) -> None:
        self.pattern = f"^[^{forbidden}]*$"
        self.message = message
        self.min_length = min_length
        self.max_length = max_length

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.chain_schema(
            [
                core_schema.str_schema(min_length=self.min_length, max_length=self.max_length),
                core_schema.custom_error_schema(
                    core_schema.str_schema(pattern=self.pattern),
                    custom_error_type="string_characters",
                    custom_error_message=self.message,
                ),
            ]
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(
            core_schema.str_schema(
                min_length=self.min_length, max_length=self.max_length, pattern=self.pattern
            )
        )


NO_CONTROLS_MESSAGE = "must not contain control characters or line breaks"

Identifier = Annotated[str, TextRule(CONTROL_CHARACTERS, NO_CONTROLS_MESSAGE)]
"""An id an auditor searches by and a log viewer prints on one line (user, session,
resource, request): a CR/LF in one forges a line of whatever prints it, a NUL cannot be
stored. Its length is an ingest limit (``ingest.max_field_chars``)."""

Name = Annotated[str, TextRule(CONTROL_CHARACTERS, NO_CONTROLS_MESSAGE, max_length=200)]
"""A display name (a tenant's, an API key's), under the rules of an identifier."""


class _Rfc3339:
    """RFC 3339 text (``domain.validation.RFC3339_PATTERN``), then pydantic's own parse.

    Both steps run in pydantic-core, in a body and in a query parameter alike. Pydantic's
    datetime alone also takes Unix times (``1700000000``, as a number or as text) and ISO
    8601 forms RFC 3339 does not have; the API documents RFC 3339 with an offset only.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.chain_schema(
            [
                core_schema.custom_error_schema(
                    core_schema.str_schema(pattern=RFC3339_PATTERN),
                    custom_error_type="datetime_rfc3339",
                    custom_error_message="Input should be an RFC 3339 date-time with seconds "
                    "and an offset, e.g. 2026-11-30T09:15:00+01:00",
                ),
                core_schema.datetime_schema(
                    tz_constraint="aware",
                    ge=datetime.min.replace(tzinfo=UTC),
                    le=datetime.max.replace(tzinfo=UTC),
                ),
            ]
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}


Instant = Annotated[datetime, _Rfc3339]
"""A time as RFC 3339 text with an offset, whose instant exists in UTC within years 1-9999.

``0001-01-01T00:00:00+01:00`` is a valid spelling of an instant in year 0: PostgreSQL
would store it, and then no read of it could return it (Python has no year 0)."""
JSON_TEXT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^[^\\x00]*$"}
"""Text PostgreSQL can hold: no NUL (refused everywhere, with a pointer)."""


JSON_MEMBER_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
        JSON_TEXT_SCHEMA,
        {"type": "array"},
        {"type": "object", "propertyNames": JSON_TEXT_SCHEMA},
    ]
}
"""A member of a JSON field: its rules are stated one level down only. Stated level by
level down to ``ingest.max_json_depth``, the schema made schemathesis's coverage phase
twenty times longer (22,201 cases instead of 1,086) for rules the description states and
the server enforces with pointers (422)."""


def _json_object_schema(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "propertyNames": JSON_TEXT_SCHEMA,
        "additionalProperties": JSON_MEMBER_SCHEMA,
        "description": description,
    }


JsonObject = Annotated[
    dict[str, JsonValue],
    WithJsonSchema(
        _json_object_schema(
            "A JSON object: at most `ingest.max_json_depth` (8) levels deep, "
            "`ingest.max_json_keys` (256) keys in all and `ingest.max_json_bytes` (64 KiB); "
            "numbers within ±(2^53-1), no NUL characters",
        )
    ),
]
"""A JSON field of an event (``before``, ``after``, ``metadata``). The schema states the
depth, the integers and the text; the size and the total number of keys it cannot (422)."""

SettingsObject = Annotated[
    dict[str, JsonValue],
    WithJsonSchema(
        _json_object_schema(
            "A JSON object under the rules of `metadata`, one level shallower, at most 16 KiB "
            "and 252 keys in all (docs/api.md); `masking` holds the masking settings",
        )
    ),
]
"""A tenant's settings: one level less than an event's JSON (``domain.validation``)."""

FreeText = Annotated[str, Field(json_schema_extra={"pattern": JSON_TEXT_SCHEMA["pattern"]})]
"""Free text (``message``, ``user_agent``): anything but NUL; its length is an ingest limit
(``api.openapi`` puts the configured one in the document)."""

_ANY_IP_ADDRESS: TypeAdapter[IPvAnyAddress] = TypeAdapter(IPvAnyAddress)

ZONE_MESSAGE = "must not carry a zone (the %... suffix of an IPv6 address)"


def _ip_address_text(value: object) -> str:
    """``IPvAnyAddress`` validation (same texts, same errors), returning the address's text.

    The text is all the domain keeps, and parsing a dotted quad in Python is a large part of
    validating an event: one already spelled canonically is its own text. Only text is an
    address (``IPvAnyAddress`` also reads numbers and booleans as IPv4). An IPv6 address
    with a zone (``fe80::1%eth0``) is refused: PostgreSQL's ``inet`` cannot hold one, and a
    zone names an interface of the client's host, which means nothing here.
    """
    if type(value) is not str:  # ipaddress would read 167772161 or true as an IPv4 address
        raise PydanticCustomError("ip_any_address", "value is not a valid IPv4 or IPv6 address")
    if is_canonical_ipv4(value):
        return value
    address = _ANY_IP_ADDRESS.validate_python(value)
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        raise PydanticCustomError("ip_zone", ZONE_MESSAGE)
    return str(address)


IP_ADDRESS_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}],
    "description": "IPv4 or IPv6 text, without a zone (`%eth0`)",
}
"""JSON Schema's own formats: what ``ipaddress`` reads, and what JSON Schema validators and
client generators know (``ipvanyaddress``, pydantic's name, is neither)."""

IpAddressText = Annotated[str, PlainValidator(_ip_address_text), WithJsonSchema(IP_ADDRESS_SCHEMA)]


class EventIn(BaseModel):
    """One audit event as a client sends it. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    id: UUID | None = Field(
        default=None, description="Client id for idempotent retries; the server makes a UUIDv7"
    )
    tenant_id: TenantSlug | None = Field(
        default=None, description="May be omitted when the token grants exactly one tenant"
    )
    timestamp: Instant | None = Field(
        default=None,
        description="RFC 3339 with seconds and a zone offset; at most "
        "`ingest.max_future_skew_seconds` (300) in the future and `ingest.max_past_days` "
        "(3660) days in the past (else 422); defaults to receipt time",
    )
    user_id: Identifier | None = None
    actor_type: ActorType | None = None
    session_id: Identifier | None = None
    action: Action
    resource_type: Identifier | None = None
    resource_id: Identifier | None = None
    ip_address: IpAddressText | None = None
    user_agent: FreeText | None = None
    before: JsonObject | None = None
    after: JsonObject | None = None
    metadata: JsonObject | None = None
    severity: Severity = "INFO"
    message: FreeText | None = None
    request_id: Identifier | None = None
    outcome: Outcome | None = None


class DuplicateOut(BaseModel):
    """The answer to a retry: an event with this id is already stored. Its contents are not
    shown (the retrying caller may not be allowed to read them; ``GET`` it to see them)."""

    id: UUID
    seq: int = Field(description="Its position in the tenant's log")
    duplicate: Literal[True] = True


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


class EventOut(BaseModel):
    """A stored event."""

    id: UUID
    tenant_id: str
    seq: int = Field(description="Position in the tenant's log (its Merkle leaf index)")
    timestamp: datetime
    received_at: datetime
    user_id: str | None
    actor_type: ActorType | None
    session_id: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    ip_address: str | None
    user_agent: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_fields: list[str] | None
    metadata: dict[str, Any]
    severity: Severity
    message: str | None
    request_id: str | None
    outcome: Outcome | None
    leaf_hash: str = Field(description="Hex SHA-256 RFC 9162 leaf hash of the event")

    @classmethod
    def of(cls, stored: StoredEvent) -> EventOut:
        e = stored.event
        return cls(
            id=e.id,
            tenant_id=e.tenant_id,
            seq=stored.seq,
            timestamp=e.timestamp,
            received_at=e.received_at,
            user_id=e.user_id,
            actor_type=e.actor_type,
            session_id=e.session_id,
            action=e.action,
            resource_type=e.resource_type,
            resource_id=e.resource_id,
            ip_address=e.ip_address,
            user_agent=e.user_agent,
            before=e.before,
            after=e.after,
            changed_fields=e.changed_fields,
            metadata=e.metadata,
            severity=e.severity,
            message=e.message,
            request_id=e.request_id,
            outcome=e.outcome,
            leaf_hash=e.leaf_hash.hex(),
        )


class BulkOut(BaseModel):
    inserted: int
    duplicates: int
    ids: list[UUID] = Field(description="The id of every event in request order")


Days = Annotated[int, Strict(), Field(ge=1, le=36500)]
"""A number of days: a JSON integer. Pydantic alone reads ``true`` as 1 and ``"30"`` and
``30.0`` as 30; ``Strict()`` on the field, not a strict model, because a body pydantic
refuses is validated again as Python objects (``api.routing``), where a strict model would
refuse the strings that UUIDs and times arrive as, while a strict integer is the same there."""


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: TenantSlug
    name: Name
    retention_days: Days = 90
    archive_after_days: Days | None = None
    legal_hold: StrictBool = Field(
        default=False, description="while true, no event of the tenant's log may be removed"
    )
    settings: SettingsObject = Field(default_factory=dict)


class TenantOut(BaseModel):
    id: str
    name: str
    retention_days: int
    archive_after_days: int | None
    legal_hold: bool
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            id=tenant.id,
            name=tenant.name,
            retention_days=tenant.retention_days,
            archive_after_days=tenant.archive_after_days,
            legal_hold=tenant.legal_hold,
            settings=tenant.settings,
            created_at=tenant.created_at,
            updated_at=tenant.updated_at,
        )


class ProblemError(BaseModel):
    """One offending value: where it is (a body ``pointer``, or a ``parameter`` and where
    it was given, ``in``) and what is wrong with it."""

    detail: str
    pointer: str | None = Field(default=None, description="RFC 6901 JSON Pointer into the body")
    index: int | None = Field(default=None, description="the event's index in a bulk request")
    parameter: str | None = Field(default=None, description="the query or path parameter")
    in_: str | None = Field(
        default=None, alias="in", description="where the parameter was: query, path, header"
    )
    position: int | None = Field(default=None, description="where in `q` it failed to parse")


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries."""

    type: str = Field(description="A stable URI naming the problem (docs/api.md#errors)")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="the request's path")
    request_id: str | None = Field(default=None, description="also in `X-Request-ID`")
    errors: list[ProblemError] | None = None
