"""The SDK's proof code (``auditline_client.proofs``), pure: published RFC 9162 vectors, and
agreement with the server's own hashing, trees and signed notes (imported here, never by the
client), byte for byte."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from auditline.api.schemas import EventOut
from auditline.domain.events import Event, StoredEvent
from auditline.domain.normalise import canonical_ip, rfc3339
from auditline.integrity import merkle
from auditline.integrity.checkpoint import Checkpoint as ServerCheckpoint
from auditline.integrity.checkpoint import sign_checkpoint
from auditline.integrity.leaf import leaf_hash as server_leaf_hash
from auditline.integrity.note import Ed25519Signer, sign_note
from auditline.tenancy.scope import for_system
from auditline_client import (
    AlteredEvent,
    Checkpoint,
    CheckpointKey,
    InconsistentLog,
    UntrustedCheckpoint,
)
from auditline_client.proofs import (
    EMPTY_ROOT,
    _rfc3339,
    check_consistency,
    check_event,
    consistency_roots,
    inclusion_root,
    leaf_hash,
)
from tests.unit.test_merkle import CT_CONSISTENCY, CT_INCLUSION, CT_LEAVES, CT_ROOTS

TENANT = for_system("acme", reason="the SDK's unit tests hash acme events")
SIGNER = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))), "audit.test")
KEY = CheckpointKey.parse(SIGNER.verifier.vkey)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# -- RFC 9162 vectors ---------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_inclusion_vectors_lead_to_the_published_roots(
    index: int, size: int, path: list[str]
) -> None:
    proof = [bytes.fromhex(p) for p in path]
    assert inclusion_root(CT_LEAVES[index], index, size, proof) == bytes.fromhex(CT_ROOTS[size])
    assert inclusion_root(CT_LEAVES[index], index + 1, size, proof) != bytes.fromhex(CT_ROOTS[size])


@pytest.mark.parametrize(("m", "n", "path"), [v for v in CT_CONSISTENCY if v[0] < v[1]])
def test_consistency_vectors_lead_to_both_published_roots(m: int, n: int, path: list[str]) -> None:
    first, second = bytes.fromhex(CT_ROOTS[m]), bytes.fromhex(CT_ROOTS[n])
    proof = [bytes.fromhex(p) for p in path]
    assert consistency_roots(m, n, first, proof) == (first, second)
    assert consistency_roots(m, n, second, proof) != (second, second)
    assert consistency_roots(m, n, first, proof[:-1]) != (first, second)


def test_every_proof_of_every_small_server_tree_verifies_and_tampering_does_not() -> None:
    leaves = [merkle.hash_leaf(str(i).encode()) for i in range(40)]
    for n in range(1, len(leaves) + 1):
        root = merkle.root(leaves[:n])
        for i in range(n):
            path = merkle.inclusion_proof(leaves[:n], i)
            assert inclusion_root(leaves[i], i, n, path) == root
            assert inclusion_root(leaves[(i + 1) % n], i, n, path) != root or n == 1
            assert inclusion_root(leaves[i], i, n, [*path, leaves[0]]) is None
        for m in range(1, n):
            path = merkle.consistency_proof(leaves[:n], m)
            first = merkle.root(leaves[:m])
            assert consistency_roots(m, n, first, path) == (first, root)
            flipped = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
            assert consistency_roots(m, n, first, flipped) != (first, root)


# -- leaves: the server's bytes, from the API's JSON ---------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.sampled_from('aZé\uffff\U0001f600\x00\n"\\'), max_size=4),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(lambda t: t.replace(tzinfo=UTC))


def stored_event(**fields: Any) -> StoredEvent:
    event = Event(
        tenant_id=TENANT, id=UUID(int=fields.pop("n", 7)),
        timestamp=fields.pop("timestamp", datetime(2026, 11, 30, 9, 15, tzinfo=UTC)),
        received_at=fields.pop("received_at", datetime(2026, 11, 30, 9, 15, 1, 5, tzinfo=UTC)),
        action=fields.pop("action", "UPDATE"), severity=fields.pop("severity", "INFO"),
        metadata=fields.pop("metadata", {}), leaf_hash=b"", **fields,
    )  # fmt: skip
    return StoredEvent(dataclasses.replace(event, leaf_hash=server_leaf_hash(event)), seq=0)


def as_api_returns(stored: StoredEvent) -> dict[str, Any]:
    """The event as ``GET /api/v1/logs/{id}`` sends it, read back as the client reads it."""
    loaded: dict[str, Any] = json.loads(EventOut.of(stored).model_dump_json())
    return loaded


@settings(max_examples=300, deadline=None)
@given(
    metadata=json_objects,
    before=st.none() | json_objects,
    after=st.none() | json_objects,
    timestamp=instants,
    offset=offsets,
    ip=st.none() | st.ip_addresses().map(str),
    message=st.none() | st.text(max_size=40),
)
def test_the_client_hashes_every_event_as_the_server_did(
    metadata: dict[str, Any],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    timestamp: datetime,
    offset: timezone,
    ip: str | None,
    message: str | None,
) -> None:
    stored = stored_event(
        metadata=metadata, before=before, after=after, timestamp=timestamp.astimezone(offset),
        ip_address=canonical_ip(ip), message=message, user_id="ann", actor_type="user",
        changed_fields=sorted((before or {}).keys() ^ (after or {}).keys()) or None,
    )  # fmt: skip
    assert leaf_hash(as_api_returns(stored)) == stored.event.leaf_hash


def test_floats_and_keys_beyond_the_bmp_hash_as_the_server_did() -> None:
    stored = stored_event(
        metadata={"\U0001f600": 1.5, "\uffff": [1e21, 1e-7, -0.0, 5e-324], "n": 2**53 - 1},
        received_at=datetime(1000, 1, 1, 23, 59, tzinfo=timezone(timedelta(hours=-1))),
    )
    assert leaf_hash(as_api_returns(stored)) == stored.event.leaf_hash


@pytest.mark.parametrize(
    "moment",
    [datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(5, 6, 7, 8, 9, tzinfo=UTC),
     datetime(1000, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
)  # fmt: skip
def test_instants_before_the_year_1000_are_spelled_and_hashed_as_the_server_does(
    moment: datetime,
) -> None:
    """The server writes such a year unpadded (``999-01-02T...``, reachable when
    ``ingest.max_past_days`` is that large); the API sends it padded (``0999-...``)."""
    assert _rfc3339(moment.isoformat()) == rfc3339(moment)
    stored = stored_event(timestamp=moment, received_at=moment)
    sent = as_api_returns(stored)
    assert leaf_hash(sent) == stored.event.leaf_hash


# -- checkpoints and whole answers ---------------------------------------------------------


def signed(size: int, root: bytes, *, tenant: str = "acme", signer: Ed25519Signer = SIGNER) -> str:
    return sign_checkpoint(ServerCheckpoint(f"audit.test/{tenant}", size, root), signer)


def test_the_key_string_round_trips_and_a_wrong_id_is_refused() -> None:
    assert str(KEY) == SIGNER.verifier.vkey
    name, hex_id, encoded = SIGNER.verifier.vkey.split("+", 2)
    with pytest.raises(ValueError, match="does not match"):
        CheckpointKey.parse(f"{name}+{int(hex_id, 16) ^ 1:08x}+{encoded}")
    with pytest.raises(ValueError, match="not a checkpoint key"):
        CheckpointKey.parse("audit.test")


def test_a_checkpoint_opens_only_with_its_key_intact_and_for_its_tenant() -> None:
    note = signed(3, CT_LEAVES[0])
    opened = Checkpoint.open(note, KEY, tenant_id="acme")
    assert (opened.origin, opened.size, opened.root_hash) == ("audit.test/acme", 3, CT_LEAVES[0])
    other = Ed25519Signer(Ed25519PrivateKey.generate(), "audit.test")
    with pytest.raises(UntrustedCheckpoint, match="not signed by the pinned key"):
        Checkpoint.open(signed(3, CT_LEAVES[0], signer=other), KEY)
    with pytest.raises(UntrustedCheckpoint, match="does not verify"):
        Checkpoint.open(note.replace("\n3\n", "\n4\n"), KEY)
    with pytest.raises(UntrustedCheckpoint, match="not of tenant 'globex'"):
        Checkpoint.open(note, KEY, tenant_id="globex")
    with pytest.raises(UntrustedCheckpoint, match="not a signed note"):
        Checkpoint.open("audit.test/acme\n3\n", KEY)


def test_a_co_signature_by_another_key_is_ignored() -> None:
    witness = Ed25519Signer(Ed25519PrivateKey.generate(), "witness.test")
    text = ServerCheckpoint("audit.test/acme", 1, CT_LEAVES[1]).text()
    note = sign_note(text, witness, SIGNER)
    assert Checkpoint.open(note, KEY).size == 1


def answers(events: list[StoredEvent], index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The event and its proof as the API returns them, for a log of *events*."""
    leaves = [e.event.leaf_hash for e in events]
    event = as_api_returns(StoredEvent(events[index].event, index))
    proof = {
        "leaf_index": index, "tree_size": len(leaves), "leaf_hash": b64(leaves[index]),
        "inclusion_path": [b64(h) for h in merkle.inclusion_proof(leaves, index)],
        "root_hash": b64(merkle.root(leaves)),
        "checkpoint": signed(len(leaves), merkle.root(leaves)),
    }  # fmt: skip
    return event, proof


LOG = [stored_event(n=i, message=f"m{i}", metadata={"i": i}) for i in range(6)]


def test_an_event_with_its_proof_verifies_and_any_change_is_caught() -> None:
    event, proof = answers(LOG, 4)
    assert check_event(event, proof, KEY).size == 6
    with pytest.raises(AlteredEvent, match="do not hash to its leaf_hash"):
        check_event({**event, "message": "nothing to see"}, proof, KEY)
    rehashed = {**event, "message": "x"}
    rehashed["leaf_hash"] = leaf_hash(rehashed).hex()  # the row's hash recomputed too
    with pytest.raises(AlteredEvent, match="not the leaf at its position"):
        check_event(rehashed, proof, KEY)
    with pytest.raises(AlteredEvent, match="the proof is for leaf 3"):
        check_event(event, {**proof, "leaf_index": 3}, KEY)
    path = proof["inclusion_path"]
    with pytest.raises(AlteredEvent, match="not the leaf at its position"):
        check_event(event, {**proof, "inclusion_path": path[::-1]}, KEY)
    with pytest.raises(AlteredEvent, match="malformed"):
        check_event(event, {**proof, "inclusion_path": ["not base64!"]}, KEY)
    with pytest.raises(UntrustedCheckpoint):
        check_event(event, {**proof, "checkpoint": signed(6, EMPTY_ROOT, tenant="globex")}, KEY)


def test_consistency_between_checkpoints_and_every_fork_or_rollback() -> None:
    leaves = [e.event.leaf_hash for e in LOG]
    old = Checkpoint.open(signed(3, merkle.root(leaves[:3])), KEY)
    new = Checkpoint.open(signed(6, merkle.root(leaves)), KEY)
    path = [b64(h) for h in merkle.consistency_proof(leaves, 3)]
    check_consistency(old, new, path)
    check_consistency(new, new, [])
    check_consistency(Checkpoint.open(signed(0, EMPTY_ROOT), KEY), new, [])
    forked = Checkpoint.open(signed(3, merkle.root(leaves[1:4])), KEY)
    with pytest.raises(InconsistentLog, match="forked"):
        check_consistency(forked, new, path)
    with pytest.raises(InconsistentLog, match="rolled back"):
        check_consistency(new, old, path)
    same_size = Checkpoint.open(signed(6, merkle.root(leaves[::-1])), KEY)
    with pytest.raises(InconsistentLog, match="same tree size"):
        check_consistency(same_size, new, [])
    with pytest.raises(InconsistentLog, match="empty root"):
        check_consistency(Checkpoint.open(signed(0, leaves[0]), KEY), new, [])
    other_log = Checkpoint.open(signed(3, merkle.root(leaves[:3]), tenant="globex"), KEY)
    with pytest.raises(UntrustedCheckpoint, match="two logs"):
        check_consistency(other_log, new, path)
