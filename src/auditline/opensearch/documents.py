"""Index design: names, the index template with explicit mappings, and event documents.

* **Shared monthly indices, routed by tenant.** Every tenant's events go to
  ``<prefix>-events-g<N>-<YYYY.MM>`` (the month of the event's ``timestamp``), with
  ``routing = tenant``: a tenant's documents of one month sit on one shard, so a tenant's
  search touches one shard per month instead of all of them, and retention removes whole
  months by dropping an index once every tenant's events there are gone. Searches read
  the alias ``<prefix>-events``, which the live generation's template attaches to each new
  index; a reindex builds a new generation of indices and moves the alias (see
  :class:`IndexNames` and ``docs/architecture.md``).
* **No mapping explosion.** ``dynamic: strict``: a document with a field the template does
  not name is refused, never mapped. Customer ``metadata`` is not an object in the
  mapping: its leaves become ``path=value`` keywords (strings, booleans) and nested
  ``{k, v}`` pairs (numbers), plus full-text values, so a million distinct keys cost
  terms, not fields. The event itself travels as an unindexed ``event`` object and comes
  back exactly as stored.
* **Full text as PostgreSQL does it.** ``search_vector`` is the message under the
  ``english`` configuration (PostgreSQL's stop words, then the Snowball English stemmer)
  and the metadata's string and number values under ``simple`` (lower-cased words). The
  analysers below rebuild both from the same word lists: ``msg`` and ``meta`` hold one
  each, and the compiler asks each of them with both analysers, as PostgreSQL ORs its two
  tsqueries. Where the tokenisers differ is written down in ``docs/search.md``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from auditline.domain.events import SEVERITIES, Event, StoredEvent

SEVERITY_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(SEVERITIES)}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_QUERYABLE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
"""What a metadata key must look like to be named in a query (the parser's rule): leaves
under any other key cannot be asked for by path, so they are not indexed by path."""
SEPARATOR: Final = "\x1f"
"""Between a metadata path and its value in the path keywords: a control character that
no queryable key holds, so ``a.b`` + ``c`` can never read as ``a`` + ``b.c``."""

# PostgreSQL's english.stop (tsearch_data), so both sides drop the same words.
_PG_ENGLISH_STOP_WORDS: Final = (
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his "
    "himself she her hers herself it its itself they them their theirs themselves what "
    "which who whom this that these those am is are was were be been being have has had "
    "having do does did doing a an the and but if or because as until while of at by for "
    "with about against between into through during before after above below to from up "
    "down in out on off over under again further then once here there when where why how "
    "all any both each few more most other some such no nor not only own same so than too "
    "very s t can will just don should now"
)
PG_ENGLISH_STOP: Final = tuple(_PG_ENGLISH_STOP_WORDS.split())

TEMPLATE_PRIORITY: Final = 100
"""Generation *N*'s template has priority ``TEMPLATE_PRIORITY + N`` (see :func:`template`)."""

ENGLISH: Final = "pg_english"
SIMPLE: Final = "pg_simple"


class IndexNames:
    """The names one deployment uses, all under its *prefix* (several deployments, or a
    test run, can share a cluster).

    Indices belong to a *generation*: ``<prefix>-events-g<N>-<YYYY.MM>``, each generation
    with a template of its own (``<prefix>-events-g<N>``). Searches read the alias
    ``<prefix>-events``, which is on the indices of exactly one generation, the live one;
    ``auditline reindex --all`` builds the next generation beside it (with the template of
    the running code, so a mapping change is rolled out that way) and moves the alias in
    one atomic ``_aliases`` request.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @property
    def alias(self) -> str:
        """What searches read: every month's index of the live generation."""
        return f"{self.prefix}-events"

    @property
    def pattern(self) -> str:
        """Every index of every generation."""
        return f"{self.prefix}-events-*"

    @property
    def templates(self) -> str:
        """Every generation's template."""
        return f"{self.prefix}-events-g*"

    def template(self, generation: int) -> str:
        return f"{self.prefix}-events-g{generation}"

    def generation_pattern(self, generation: int) -> str:
        """Every month's index of *generation*."""
        return f"{self.prefix}-events-g{generation}-*"

    def month(self, timestamp: datetime, generation: int) -> str:
        return f"{self.prefix}-events-g{generation}-{timestamp.astimezone(UTC):%Y.%m}"

    def generation_of(self, name: str) -> int | None:
        """The generation of an index or template *name* of this prefix (None: not ours)."""
        found = re.fullmatch(rf"{re.escape(self.prefix)}-events-g([0-9]+)(-.*)?", name)
        return int(found.group(1)) if found else None

    @property
    def legacy_template(self) -> str:
        """The one template of the layout before generations (``<prefix>-events``, for
        ``<prefix>-events-*``, priority 0): removed on upgrade (``ensure_template``)."""
        return f"{self.prefix}-events"

    def is_legacy(self, name: str) -> bool:
        """Whether *name* is a monthly index of the layout before generations
        (``<prefix>-events-<YYYY.MM>``)."""
        return (
            re.fullmatch(rf"{re.escape(self.prefix)}-events-[0-9]{{4}}\.[0-9]{{2}}", name)
            is not None
        )

    def month_of(self, name: str) -> datetime | None:
        """The first instant of the month an index *name* of this prefix holds."""
        found = re.fullmatch(
            rf"{re.escape(self.prefix)}-events-g[0-9]+-([0-9]{{4}})\.([0-9]{{2}})", name
        )
        if found is None:
            return None
        return datetime(int(found.group(1)), int(found.group(2)), 1, tzinfo=UTC)


def template(
    names: IndexNames, generation: int, *, shards: int, replicas: int, live: bool
) -> dict[str, Any]:
    """The composable index template every monthly index of *generation* is created from;
    only the *live* generation's attaches the read alias (a generation being built must
    not be searched: it would double every event it already holds).

    Its priority is ``100 + generation``. OpenSearch refuses a composable template whose
    patterns overlap another's at the same priority, and the pre-generation template
    (``<prefix>-events-*``, priority 0) overlaps every generation's; generations' own
    patterns never overlap one another (``-g1-*`` does not match ``-g10-...``), so any
    distinct priority above 0 would do."""
    keyword = {"type": "keyword"}
    return {
        "index_patterns": [names.generation_pattern(generation)],
        "priority": TEMPLATE_PRIORITY + generation,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                # Searches read after the indexer's refresh (it waits for one), so a
                # periodic refresh only has to bound the lag of other readers.
                "refresh_interval": "1s",
                "analysis": {
                    "filter": {
                        "pg_english_stop": {"type": "stop", "stopwords": list(PG_ENGLISH_STOP)},
                        "pg_english_stem": {"type": "snowball", "language": "English"},
                    },
                    "analyzer": {
                        ENGLISH: {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase", "pg_english_stop", "pg_english_stem"],
                        },
                        SIMPLE: {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase"],
                        },
                    },
                },
            },
            "mappings": {
                "dynamic": "strict",
                "_routing": {"required": True},
                "properties": {
                    "tenant_id": keyword,
                    "id": keyword,
                    "seq": {"type": "long"},
                    "ts_us": {"type": "long"},
                    "timestamp": {"type": "date", "format": "strict_date_optional_time"},
                    "action": keyword,
                    "severity": keyword,
                    "severity_rank": {"type": "byte"},
                    "user_id": keyword,
                    "actor_type": keyword,
                    "session_id": keyword,
                    "resource_type": keyword,
                    "resource_id": keyword,
                    "request_id": keyword,
                    "outcome": keyword,
                    "ip_address": {"type": "ip"},
                    "msg": {"type": "text", "analyzer": ENGLISH},
                    "meta": {"type": "text", "analyzer": SIMPLE},
                    "meta_str": keyword,
                    "meta_bool": keyword,
                    "meta_num": {
                        "type": "nested",
                        "properties": {"k": keyword, "v": {"type": "double"}},
                    },
                    "event": {"type": "object", "enabled": False},
                },
            },
            "aliases": {names.alias: {}} if live else {},
        },
        "_meta": {"generation": generation},
    }


def doc_id(tenant: str, event_id: UUID) -> str:
    """Ids are unique per tenant only (a client may choose them), so the tenant is part."""
    return f"{tenant}:{event_id}"


def micros(ts: datetime) -> int:
    """Microseconds since the epoch: the exact sort key (``date`` keeps milliseconds)."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def _leaves(
    value: Any, path: tuple[str, ...] | None
) -> Iterator[tuple[tuple[str, ...] | None, Any]]:
    """Scalar leaves with their key paths (None: no queryable path leads there); arrays do
    not add a step (PostgreSQL's lax JSON paths unwrap them)."""
    if isinstance(value, dict):
        for key, child in value.items():
            queryable = path is not None and _QUERYABLE_KEY.fullmatch(key)
            yield from _leaves(child, (*path, key) if queryable and path is not None else None)
    elif isinstance(value, list):
        for child in value:
            yield from _leaves(child, path)
    else:
        yield path, value


def _number_text(value: int | float) -> str:
    # As PostgreSQL's numeric prints it for the common cases (120, 180.5).
    return str(value) if isinstance(value, int) else repr(value)


def to_document(stored: StoredEvent) -> dict[str, Any]:
    """The indexed document of one stored event."""
    e = stored.event
    meta_str: list[str] = []
    meta_bool: list[str] = []
    meta_num: list[dict[str, Any]] = []
    meta_text: list[str] = []
    for path, value in _leaves(e.metadata, ()):
        key = ".".join(path) if path else ""
        if isinstance(value, bool):
            if path:
                meta_bool.append(f"{key}{SEPARATOR}{'true' if value else 'false'}")
        elif isinstance(value, int | float):
            meta_text.append(_number_text(value))
            if path:
                meta_num.append({"k": key, "v": float(value)})
        elif isinstance(value, str):
            meta_text.append(value)
            if path:
                meta_str.append(f"{key}{SEPARATOR}{value}")
    return {
        "tenant_id": e.tenant_id,
        "id": str(e.id),
        "seq": stored.seq,
        "ts_us": micros(e.timestamp),
        "timestamp": _iso(e.timestamp),
        "action": e.action,
        "severity": e.severity,
        "severity_rank": SEVERITY_RANK[e.severity],
        "user_id": e.user_id,
        "actor_type": e.actor_type,
        "session_id": e.session_id,
        "resource_type": e.resource_type,
        "resource_id": e.resource_id,
        "request_id": e.request_id,
        "outcome": e.outcome,
        "ip_address": e.ip_address,
        "msg": e.message,
        "meta": meta_text,
        "meta_str": meta_str,
        "meta_bool": meta_bool,
        "meta_num": meta_num,
        "event": {
            "timestamp": _iso(e.timestamp),
            "received_at": _iso(e.received_at),
            "metadata": e.metadata,
            "leaf_hash": base64.b64encode(e.leaf_hash).decode(),
            "user_agent": e.user_agent,
            "before": e.before,
            "after": e.after,
            "changed_fields": e.changed_fields,
            "message": e.message,
        },
    }


def from_document(source: dict[str, Any]) -> StoredEvent:
    """The stored event a document was made from, field for field."""
    kept = source["event"]
    event = Event(
        tenant_id=source["tenant_id"],  # as storage reads it: the tenant filter chose it
        id=UUID(source["id"]),
        timestamp=datetime.fromisoformat(kept["timestamp"]),
        received_at=datetime.fromisoformat(kept["received_at"]),
        action=source["action"],
        severity=source["severity"],
        metadata=kept["metadata"],
        leaf_hash=base64.b64decode(kept["leaf_hash"]),
        user_id=source["user_id"],
        actor_type=source["actor_type"],
        session_id=source["session_id"],
        resource_type=source["resource_type"],
        resource_id=source["resource_id"],
        ip_address=source["ip_address"],
        user_agent=kept["user_agent"],
        before=kept["before"],
        after=kept["after"],
        changed_fields=kept["changed_fields"],
        message=kept["message"],
        request_id=source["request_id"],
        outcome=source["outcome"],
    )
    return StoredEvent(event=event, seq=int(source["seq"]))
