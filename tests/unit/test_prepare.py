"""Prepared events: what the API stores, and a leaf hash over exactly that."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from auditline.api.schemas import EventIn
from auditline.config import IngestSettings
from auditline.domain.events import EventDraft, InvalidEvents
from auditline.domain.masking import REDACTED
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.integrity.leaf import LEAF_PREFIX, leaf_entry, leaf_hash

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TENANT = TenantId("acme")

# Text PostgreSQL can store (no NUL, no lone surrogate); the rest of the limits are lifted.
storable_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(-(2**53) + 1, 2**53 - 1)  # storable numbers (domain.validation)
    | storable_text
)
json_objects = st.dictionaries(
    storable_text,
    st.recursive(
        json_scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(storable_text, children, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)
drafts = st.builds(
    EventDraft,
    action=st.just("UPDATE"),
    timestamp=st.none()
    | st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2025, 6, 1), timezones=st.just(UTC)
    ),
    metadata=st.none() | json_objects,
    before=st.none() | json_objects,
    after=st.none() | json_objects,
    user_agent=st.none() | st.just("curl/8.5 Bearer abc.DEF"),
    message=st.none() | storable_text,
    ip_address=st.none() | st.ip_addresses().map(str),
)


def reference_leaf_hash(entry: dict[str, Any]) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + rfc8785.dumps(entry)).digest()


@given(st.lists(drafts, min_size=1, max_size=4))
def test_every_leaf_hash_is_the_rfc8785_hash_of_the_stored_fields(batch: list[EventDraft]) -> None:
    limits = IngestSettings(max_json_depth=64, max_json_keys=10_000)

    events = prepare_events(TENANT, batch, limits=limits, now=NOW)

    for event in events:
        assert event.leaf_hash == reference_leaf_hash(leaf_entry(event))
        assert event.leaf_hash == leaf_hash(dataclasses.replace(event, leaf_hash=b""))


def test_an_event_is_masked_diffed_and_hashed_as_documented() -> None:
    body = EventIn.model_validate(
        {
            "id": "01890a5d-ac96-774b-bcce-b302099a8057",
            "action": "UPDATE",
            "timestamp": "2025-06-01T13:59:00+02:00",
            "ip_address": "::FFFF:10.0.0.1",
            "message": "mailed ann@example.com",
            "before": {"password": "old", "n": 1.5},
            "after": {"password": "new", "n": 1.5},
            "metadata": {"region": "eu"},
        }
    )

    (event,) = prepare_events(TENANT, [body], limits=IngestSettings(), now=NOW)

    assert event.id == UUID("01890a5d-ac96-774b-bcce-b302099a8057")
    assert event.timestamp == datetime(2025, 6, 1, 11, 59, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC
    assert event.ip_address == "::ffff:10.0.0.1"
    assert event.message == "mailed [EMAIL]"
    assert event.changed_fields == ["password"]
    assert event.before == {"password": REDACTED, "n": 1.5}
    assert event.metadata == {"region": "eu"}
    assert event.leaf_hash == reference_leaf_hash(leaf_entry(event))


def test_one_invalid_draft_rejects_the_request_with_indexed_errors() -> None:
    batch = [
        EventDraft(action="CREATE"),
        EventDraft(action="CREATE", timestamp=NOW + timedelta(days=1)),
        EventDraft(action="CREATE", metadata={"k": "a\x00"}),
    ]

    with pytest.raises(InvalidEvents) as raised:
        prepare_events(TENANT, batch, limits=IngestSettings(), now=NOW)

    assert [e.path for e in raised.value.errors] == [(1, "timestamp"), (2, "metadata", "k")]


def test_timestamps_are_stored_in_utc_whatever_offset_they_came_with() -> None:
    offset = timezone(timedelta(hours=-5))
    draft = EventDraft(action="CREATE", timestamp=datetime(2025, 6, 1, 6, 0, tzinfo=offset))

    (event,) = prepare_events(TENANT, [draft], limits=IngestSettings(), now=NOW)

    assert event.timestamp == datetime(2025, 6, 1, 11, 0, tzinfo=UTC)
    assert leaf_entry(event)["timestamp"] == "2025-06-01T11:00:00.000000Z"


@given(drafts, st.uuids())
def test_a_request_model_prepares_to_the_event_a_draft_of_its_fields_prepares_to(
    draft: EventDraft, event_id: UUID
) -> None:
    # The API hands ingest its request models as they are (DraftFields): nothing it reads
    # may differ from what an EventDraft with the same fields gives.
    draft = dataclasses.replace(draft, id=event_id)
    fields = {f.name: getattr(draft, f.name) for f in dataclasses.fields(EventDraft)}
    body = EventIn.model_construct(tenant_id="acme", **fields)

    (from_body,) = prepare_events(TENANT, [body], limits=IngestSettings(), now=NOW)
    (from_draft,) = prepare_events(TENANT, [draft], limits=IngestSettings(), now=NOW)

    assert from_body == from_draft
