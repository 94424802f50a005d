"""Sealing, checkpoints and proofs through the API, checked with an independent verifier.

The verifier below is RFC 9162's algorithms (sections 2.1.3.2 and 2.1.4.2) re-typed from
the RFC, not the product's ``integrity.merkle``: a bug shared by the prover and its own
verifier would otherwise go unseen.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from auditline.config import IntegritySettings, Settings
from auditline.domain.tenants import TenantId
from auditline.evidence.sealer import Sealer, seal_all
from auditline.integrity.checkpoint import open_checkpoint
from auditline.integrity.note import parse_verifier_key
from auditline.services import Services
from auditline.storage.database import tenant_transaction
from auditline.storage.integrity import try_lock_sealing
from auditline.tenancy.scope import for_system
from tests.conftest import TokenFactory, bearer


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def rfc_root(leaves: list[bytes]) -> bytes:
    """MTH (RFC 9162 2.1.1) over leaf hashes, by the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _node(rfc_root(leaves[:k]), rfc_root(leaves[k:]))


def rfc_verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root the path leads to (raises if the path is malformed)."""
    assert index < size
    fn, sn, r = index, size - 1, leaf
    for p in path:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


def rfc_verify_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2."""
    if m == n:
        return not proof and old_root == new_root
    if m == 0:
        return not proof
    path = list(proof)
    if m & (m - 1) == 0:  # m is a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Sealing only when a test asks for it (the loop's first round runs at start-up).
    settings.integrity = IntegritySettings(seal_interval_seconds=3600, max_leaves_per_seal=100)
    return settings


def services_of(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


async def _post(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[str]:
    body = {"events": [{"action": "UPDATE", "message": f"change {i}"} for i in range(n)]}
    response = await client.post("/api/v1/logs/bulk", json=body, headers=headers)
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def stored_leaves(database_url: str, tenant: str) -> list[bytes]:
    """Leaf hashes in seq order, read as the superuser: what the sealer must have sealed."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT e.leaf_hash FROM event_ids i JOIN events e
                 ON e.tenant_id = i.tenant_id AND e.timestamp = i.timestamp AND e.id = i.id
                WHERE i.tenant_id = %s ORDER BY i.seq""",
            (tenant,),
        ).fetchall()
    return [bytes(r[0]) for r in rows]


async def _seal(app: FastAPI) -> None:
    await seal_all(services_of(app).sealer)


async def test_checkpoint_is_signed_by_the_published_key_and_states_the_stored_log(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory,
    database_url: str,
) -> None:  # fmt: skip
    admin = bearer(make_token("admin", "acme"))
    await _post(client, admin, 7)
    await _seal(app)
    key = await client.get("/.well-known/auditline-checkpoint-key")
    assert key.status_code == 200
    assert key.headers["content-type"].startswith("text/plain")
    verifier = parse_verifier_key(key.text.strip())

    got = await client.get("/api/v1/integrity/checkpoint", headers=admin)
    assert got.status_code == 200, got.text
    body = got.json()
    signed = open_checkpoint(body["checkpoint"], [verifier])
    assert signed.checkpoint.origin == "auditline.localhost/acme"
    leaves = stored_leaves(database_url, "acme")
    # The seal covered the 7 events; reading the checkpoint was recorded after it.
    assert signed.checkpoint.size == body["tree_size"] == len(leaves) - 1
    assert signed.checkpoint.root_hash == _b64(body["root_hash"])
    assert signed.checkpoint.root_hash == rfc_root(leaves[: body["tree_size"]])


async def test_every_event_has_an_inclusion_proof_to_the_checkpoint_root(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory
) -> None:
    auditor = bearer(make_token("auditor", "acme"))
    ids = await _post(client, bearer(make_token("admin", "acme")), 300)  # > one tile, 3 rounds
    await _seal(app)
    seen = set()
    for event_id in [*ids[::37], ids[-1]]:
        got = await client.get(f"/api/v1/logs/{event_id}/proof", headers=auditor)
        assert got.status_code == 200, got.text
        proof = got.json()
        root = rfc_verify_inclusion(
            proof["leaf_index"], proof["tree_size"], _b64(proof["leaf_hash"]),
            [_b64(p) for p in proof["inclusion_path"]],
        )  # fmt: skip
        assert root == _b64(proof["root_hash"])
        assert f"\n{proof['tree_size']}\n{proof['root_hash']}\n" in proof["checkpoint"]
        seen.add(proof["leaf_index"])
    assert len(seen) == len(ids[::37]) + 1


async def test_an_event_not_yet_sealed_is_409_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory
) -> None:
    admin = bearer(make_token("admin", "acme"))
    (event_id,) = await _post(client, admin, 1)
    got = await client.get(f"/api/v1/logs/{event_id}/proof", headers=admin)
    assert got.status_code == 409, got.text
    assert got.headers["retry-after"] == "3600"
    assert got.json()["type"].endswith("/not-sealed")
    await _seal(app)
    assert (await client.get(f"/api/v1/logs/{event_id}/proof", headers=admin)).status_code == 200


async def test_consistency_proofs_link_every_pair_of_checkpoints(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory
) -> None:
    admin = bearer(make_token("admin", "acme"))
    heads = []
    for n in (1, 2, 5, 250, 3):
        await _post(client, admin, n)
        await _seal(app)
        body = (await client.get("/api/v1/integrity/checkpoint", headers=admin)).json()
        heads.append((body["tree_size"], _b64(body["root_hash"])))
    for i, (m, old_root) in enumerate(heads):
        for n, new_root in heads[i:]:
            got = await client.get(
                "/api/v1/integrity/consistency", params={"from": m, "to": n}, headers=admin
            )
            assert got.status_code == 200, got.text
            body = got.json()
            assert (body["from"], body["to"]) == (m, n)
            proof = [_b64(p) for p in body["consistency_path"]]
            assert rfc_verify_consistency(m, n, old_root, new_root, proof), (m, n)
            if m != n:  # the same proof against another old root fails: the check can fail
                assert not rfc_verify_consistency(m, n, new_root, new_root, proof)


async def test_a_consistency_range_beyond_the_newest_checkpoint_is_400(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory
) -> None:
    admin = bearer(make_token("admin", "acme"))
    await _post(client, admin, 3)
    await _seal(app)
    size = (await client.get("/api/v1/integrity/checkpoint", headers=admin)).json()["tree_size"]
    for params in ({"from": 2, "to": size + 1}, {"from": size, "to": 1}):
        got = await client.get("/api/v1/integrity/consistency", params=params, headers=admin)
        assert got.status_code == 400, got.text
        assert got.json()["type"].endswith("/invalid-range")


async def test_another_tenants_event_is_a_plain_404_and_users_may_not_ask(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory
) -> None:
    (theirs,) = await _post(client, bearer(make_token("admin", "globex")), 1)
    await _seal(app)
    acme = bearer(make_token("admin", "acme"))
    other = await client.get(f"/api/v1/logs/{theirs}/proof", headers=acme)
    missing = await client.get(f"/api/v1/logs/{uuid.uuid4()}/proof", headers=acme)
    assert other.status_code == missing.status_code == 404
    assert other.json()["title"] == missing.json()["title"]
    user = bearer(make_token("user", "acme"))
    assert (await client.get("/api/v1/integrity/checkpoint", headers=user)).status_code == 403


async def test_proof_reads_are_recorded_in_the_tenants_log(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory
) -> None:
    admin = bearer(make_token("admin", "acme", sub="verifier-7"))
    (event_id,) = await _post(client, admin, 1)
    await _seal(app)
    await client.get(f"/api/v1/logs/{event_id}/proof", headers=admin)
    found = await client.get(
        "/api/v1/logs",
        params={"resource_type": "audit_log", "action": "VERIFY"},
        headers=admin,
    )
    items: list[dict[str, Any]] = found.json()["items"]
    assert [(i["user_id"], i["resource_id"]) for i in items] == [("verifier-7", event_id)]


async def test_sealing_in_small_rounds_equals_the_tree_of_all_leaves(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory,
    database_url: str,
) -> None:  # fmt: skip
    """600 leaves in rounds of at most 100 cross tile boundaries (256, 512) mid-round."""
    await _post(client, bearer(make_token("admin", "acme")), 600)
    sealer: Sealer = services_of(app).sealer
    tenant = sealer_tenant("acme")
    while await sealer.seal(tenant) is not None:
        pass
    leaves = stored_leaves(database_url, "acme")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT tree_size, root_hash FROM checkpoints WHERE tenant_id = 'acme' ORDER BY 1"
        ).fetchall()
    sizes = [size for size, _ in rows]
    assert sizes == list(range(100, 601, 100)) == [*sizes[:-1], len(leaves)]
    for size, root in rows:
        assert bytes(root) == rfc_root(leaves[:size]), size


async def test_concurrent_sealers_write_each_checkpoint_once_and_witness_it(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory,
    database_url: str, settings: Settings,
) -> None:  # fmt: skip
    await _post(client, bearer(make_token("admin", "acme")), 50)
    sealer = services_of(app).sealer
    tenant = sealer_tenant("acme")
    results = await asyncio.gather(*(sealer.seal(tenant) for _ in range(4)))
    done = [r for r in results if r is not None]
    assert len({r.tree_size for r in done}) == len(done)
    with psycopg.connect(database_url) as conn:
        notes = dict(
            conn.execute("SELECT tree_size, note FROM checkpoints WHERE tenant_id = 'acme'")
        )
    witnessed = {
        int(p.name.split(".")[0]): p.read_text()
        for p in (settings.data_dir / "witness" / "acme").glob("*.checkpoint")
    }
    assert witnessed == notes


def sealer_tenant(tenant: str) -> TenantId:
    return for_system(tenant, reason="tests seal directly")


async def test_an_export_waits_for_another_sealer_and_covers_every_event(
    app: FastAPI, client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory
) -> None:
    """Another process sealing the tenant must not leave the export's events unproven."""
    ids = await _post(client, bearer(make_token("admin", "acme")), 5)
    services = services_of(app)
    tenant = sealer_tenant("acme")
    async with tenant_transaction(services.pool, tenant) as other_sealer:
        assert await try_lock_sealing(other_sealer, tenant)
        export = asyncio.create_task(services.proofs.for_export(tenant))
        await asyncio.sleep(0.3)
        assert not export.done()  # waiting for the other sealer, not giving up
    proofs = await export
    assert proofs.checkpoint.tree_size >= len(ids)
