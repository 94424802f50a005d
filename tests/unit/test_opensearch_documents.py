"""The OpenSearch documents and queries, as pure functions: what a document holds, that it
gives back the stored event exactly, and that every query starts with the tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from auditline.config import IngestSettings
from auditline.domain.events import EventDraft, StoredEvent
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.opensearch.compiler import search_filter, term
from auditline.opensearch.documents import SEPARATOR, from_document, micros, to_document
from auditline.search.model import SearchFilters, SearchQuery
from tests.unit.test_query_parser import _asts

ACME = TenantId("acme")
NOW = datetime(2026, 11, 5, 12, 30, 15, 123456, tzinfo=UTC)


def stored(metadata: dict[str, object], **fields: object) -> StoredEvent:
    draft = EventDraft(action="UPDATE", id=uuid.uuid4(), timestamp=NOW, metadata=metadata,
                       **fields)  # type: ignore[arg-type]  # fmt: skip
    [event] = prepare_events(ACME, [draft], limits=IngestSettings(), now=NOW)
    return StoredEvent(event=event, seq=41)


def test_a_document_gives_back_the_stored_event_exactly() -> None:
    original = stored(
        {"geo": {"country": "DE"}, "tags": ["a", "b"], "n": 180.5, "ok": True, "x y": {"k": 1}},
        user_id="alice", ip_address="2001:db8::10", message="Card declined",
        before={"total": 10}, after={"total": 12}, user_agent="curl/8", request_id="r-1",
        outcome="failure", severity="ERROR",
    )  # fmt: skip
    assert from_document(to_document(original)) == original


def test_metadata_becomes_a_fixed_set_of_fields_whatever_its_keys() -> None:
    doc = to_document(stored({"geo": {"country": "DE", "zip": 10115}, "tags": ["x", "y"],
                              "flag": False, "odd key": {"inner": "v"}}))  # fmt: skip
    assert sorted(doc["meta_str"]) == [f"geo.country{SEPARATOR}DE", f"tags{SEPARATOR}x",
                                       f"tags{SEPARATOR}y"]  # fmt: skip
    assert doc["meta_num"] == [{"k": "geo.zip", "v": 10115.0}]
    assert doc["meta_bool"] == [f"flag{SEPARATOR}false"]
    # A key the query language cannot name is searchable as text, never by a path.
    assert sorted(doc["meta"]) == ["10115", "DE", "v", "x", "y"]
    assert doc["ts_us"] == micros(NOW)
    assert set(doc) == {
        "tenant_id", "id", "seq", "ts_us", "timestamp", "action", "severity", "severity_rank",
        "user_id", "actor_type", "session_id", "resource_type", "resource_id", "request_id",
        "outcome", "ip_address", "msg", "meta", "meta_str", "meta_bool", "meta_num", "event",
    }  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(node=_asts, only=st.sampled_from([None, "bob"]))
def test_every_query_filters_on_the_tenant_first(node: object, only: str | None) -> None:
    query = SearchQuery(filters=SearchFilters(user_id="u"), q=node, only_user=only)  # type: ignore[arg-type]
    compiled = search_filter(ACME, query, watermark=10)
    assert compiled["bool"]["filter"][0] == term("tenant_id", "acme")
    assert {"range": {"seq": {"lt": 10}}} in compiled["bool"]["filter"]
