"""The SDK's proof verification against a real ``auditline serve``: a genuine event verifies,
one altered in the database by a superuser does not, nor a checkpoint under another key, and
the log's consistency with a kept checkpoint holds unless the checkpoint was forged."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditline.integrity.checkpoint import Checkpoint as ServerCheckpoint
from auditline.integrity.checkpoint import sign_checkpoint
from auditline.integrity.leaf import entry_hash, record_entry
from auditline.integrity.note import Ed25519Signer
from auditline.integrity.signer import local_signer
from auditline.storage.embedded import EmbeddedPostgres
from auditline_client import (
    AlteredEvent,
    AsyncClient,
    Checkpoint,
    CheckpointKey,
    Client,
    InconsistentLog,
    UntrustedCheckpoint,
)
from tests.clients.conftest import unique
from tests.conftest import TokenFactory
from tests.e2e.test_serve_process import Server

pytestmark = pytest.mark.slow

TENANT = "initech"  # a log of its own: the tampering below touches no other test's events
ORIGIN = "auditline.localhost"  # the server's default integrity origin, its key's name


@pytest.fixture(scope="module")
def signer(server: Server) -> Ed25519Signer:
    """The server's checkpoint key, read from its data directory (what only the server has)."""
    key, _ = local_signer(server.data_dir / "checkpoint-key.pem", ORIGIN)
    return key


@pytest.fixture(scope="module")
def pinned(signer: Ed25519Signer) -> CheckpointKey:
    """The key an application pins: the verifier key, obtained out of band."""
    return CheckpointKey.parse(signer.verifier.vkey)


@pytest.fixture(scope="module")
def initech(server: Server, admin_token: str, make_token: TokenFactory) -> Iterator[Client]:
    with Client(server.base, admin_token) as admin:
        admin.create_tenant(TENANT, "Initech")
    with Client(server.base, make_token("admin", TENANT)) as client:
        yield client


@pytest.fixture
def superuser(server: Server) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The attacker of docs/integrity.md: a superuser of the database, triggers off."""
    url = EmbeddedPostgres(server.data_dir).url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn


def test_a_stored_event_verifies_against_the_pinned_key(
    initech: Client, pinned: CheckpointKey
) -> None:
    stored = initech.create(
        action="UPDATE", user_id="ann", resource_type="invoice", resource_id="inv-7",
        ip_address="2001:DB8::7", before={"total": 10.5}, after={"total": 12.25},
        metadata={"ratio": 0.1, "big": 2**53 - 1, "\U0001f600": "é", "n": {"b": [1e-7, 1.25]}},
        message=f"genuine {unique()}",
    )  # fmt: skip
    verified = initech.verify_event(stored["id"], key=pinned)
    assert verified.event == initech.get(stored["id"])
    assert verified.checkpoint.origin == f"{ORIGIN}/{TENANT}"
    assert verified.checkpoint.size > verified.event["seq"]


def test_the_key_fetched_on_first_use_is_the_servers(
    initech: Client, pinned: CheckpointKey
) -> None:
    assert initech.fetch_checkpoint_key() == pinned


@pytest.mark.parametrize("rehash", [False, True], ids=["field-edited", "leaf-hash-recomputed"])
def test_an_event_altered_in_the_database_fails_verification(
    initech: Client, pinned: CheckpointKey,
    superuser: psycopg.Connection[tuple[object, ...]], rehash: bool,
) -> None:  # fmt: skip
    stored = initech.create(action="DELETE", user_id="mallory", message="deleted the invoice")
    initech.verify_event(stored["id"], key=pinned)  # sealed, and genuine so far
    superuser.execute(
        "UPDATE events SET user_id = 'ann' WHERE tenant_id = %s AND id = %s",
        (TENANT, stored["id"]),
    )
    if rehash:  # the attacker recomputes the row's hash; the signed tree still has the old one
        altered = {**initech.get(stored["id"]), "user_id": "ann"}
        superuser.execute(
            "UPDATE events SET leaf_hash = %s WHERE tenant_id = %s AND id = %s",
            (entry_hash(record_entry(altered)), TENANT, stored["id"]),
        )
    assert initech.get(stored["id"])["user_id"] == "ann"  # what the server now says
    with pytest.raises(AlteredEvent, match=str(stored["id"])):
        initech.verify_event(stored["id"], key=pinned)


def test_a_checkpoint_under_another_key_is_not_trusted(
    initech: Client, pinned: CheckpointKey
) -> None:
    stored = initech.create(action="LOGIN", user_id="ann")
    impostor = Ed25519Signer(Ed25519PrivateKey.generate(), ORIGIN).verifier.vkey
    with pytest.raises(UntrustedCheckpoint, match="not signed by the pinned key"):
        initech.verify_event(stored["id"], key=CheckpointKey.parse(impostor))
    with pytest.raises(UntrustedCheckpoint):
        initech.checkpoint(key=CheckpointKey.parse(impostor))
    initech.verify_event(stored["id"], key=pinned)  # the right key still verifies it


def test_the_log_extends_a_kept_checkpoint_and_a_forged_one_is_caught(
    initech: Client, pinned: CheckpointKey, signer: Ed25519Signer
) -> None:
    first = initech.create(action="LOGIN", user_id="ann")
    kept = initech.verify_event(first["id"], key=pinned).checkpoint
    kept = Checkpoint.open(kept.note, pinned, tenant_id=TENANT)  # as read back from storage
    later = initech.create_many([{"action": "VIEW", "user_id": "ann"}] * 5)
    sealed = initech.verify_event(later["ids"][-1], key=pinned, trusted=kept).checkpoint
    assert sealed.size > kept.size
    newest = initech.verify_consistency(kept, key=pinned)
    assert newest.size >= sealed.size
    assert initech.verify_consistency(sealed, key=pinned, newer=newest) == newest

    def forged(size: int, root: bytes) -> Checkpoint:
        """A checkpoint signed with the server's own key: a log that was forked, or that
        showed this application another history before."""
        note = sign_checkpoint(ServerCheckpoint(kept.origin, size, root), signer)
        return Checkpoint.open(note, pinned)

    other_root = bytes(b ^ 0xFF for b in kept.root_hash)
    with pytest.raises(InconsistentLog, match="forked"):
        initech.verify_consistency(forged(kept.size, other_root), key=pinned)
    with pytest.raises(InconsistentLog, match="rolled back"):
        initech.verify_consistency(forged(newest.size + 1000, kept.root_hash), key=pinned)
    with pytest.raises(InconsistentLog):
        initech.verify_event(first["id"], key=pinned, trusted=forged(kept.size, other_root))
    with pytest.raises(InconsistentLog, match="same tree size"):
        initech.verify_consistency(newest, key=pinned, newer=forged(newest.size, other_root))


def test_the_async_client_verifies_the_same_way(
    server: Server, make_token: TokenFactory, initech: Client, pinned: CheckpointKey
) -> None:
    async def run() -> tuple[int, int]:
        async with AsyncClient(server.base, make_token("auditor", TENANT)) as auditor:
            kept = await auditor.checkpoint(key=pinned, tenant_id=TENANT)
            stored = initech.create(action="EXPORT", user_id="ann")
            verified = await auditor.verify_event(stored["id"], key=pinned, trusted=kept)
            assert base64.b64encode(verified.checkpoint.root_hash)
            newest = await auditor.verify_consistency(kept, key=pinned)
            return kept.size, newest.size

    old, new = asyncio.run(run())
    assert new > old
