"""Tampering as a database administrator would do it, each kind caught by the verifier.

The attacker here has everything but the checkpoint key: a superuser connection with
``session_replication_role = replica`` (no triggers), free to edit, delete, insert and
reorder rows, to recompute any hash the database stores, and to roll back the checkpoint
table. Each test makes one such change to a sealed log and checks that verification fails
with the finding that names it; the untouched log verifies.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from auditline.config import IntegritySettings, Settings
from auditline.evidence.sealer import seal_all
from auditline.evidence.verify import Report, Source, from_witness, verify_log
from auditline.integrity.checkpoint import Checkpoint, sign_checkpoint
from auditline.integrity.leaf import leaf_hash
from auditline.integrity.note import Ed25519Signer
from auditline.services import Services
from auditline.storage.events import COLUMNS, row_to_stored
from auditline.tenancy.scope import for_system
from tests.conftest import TokenFactory, bearer

ACME = for_system("acme", reason="tests tamper with acme's log")
EVENTS = 12


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.integrity = IntegritySettings(seal_interval_seconds=3600)
    return settings


@pytest.fixture
async def sealed(app: FastAPI, tenants: list[str], make_token: TokenFactory) -> Services:
    """acme's log of EVENTS events, sealed twice (after 6 and after 12)."""
    services: Services = app.state.services
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for half in range(2):
            body = {"events": [{"action": "UPDATE", "message": f"m{half}-{i}",
                                "user_id": f"u{i}", "metadata": {"n": i}}
                               for i in range(EVENTS // 2)]}  # fmt: skip
            response = await http.post(
                "/api/v1/logs/bulk", json=body, headers=bearer(make_token("admin", "acme"))
            )
            assert response.status_code == 201, response.text
            await seal_all(services.sealer)
    return services


@pytest.fixture
def admin_db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The attacker's connection: superuser, triggers off."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn


async def verify(services: Services, *extra: Source) -> Report:
    return await verify_log(
        services.pool, ACME, services.checkpoint_verifier, services.settings.integrity.origin,
        extra_checkpoints=list(extra),
    )  # fmt: skip


def findings(report: Report) -> str:
    return "\n".join(str(f) for f in report.findings)


async def test_the_untouched_log_verifies(sealed: Services) -> None:
    report = await verify(sealed, *await from_witness(sealed.witness, ACME))
    assert report.ok, findings(report)
    assert report.leaves == report.log_head == EVENTS
    assert sorted(report.checkpoints) == [EVENTS // 2, EVENTS]


async def test_an_edited_field_no_longer_hashes_to_its_leaf(
    sealed: Services, admin_db: psycopg.Connection[tuple[object, ...]]
) -> None:
    admin_db.execute(
        "UPDATE events SET message = 'nothing to see' WHERE tenant_id = 'acme' AND seq = 3"
    )
    report = await verify(sealed)
    # The row, then each checkpoint over it (the tree is rebuilt from what the rows say).
    assert [(f.seq, f.checkpoint) for f in report.findings] == [(3, None), (None, 6), (None, 12)]
    assert "no longer hash" in report.findings[0].what


async def test_an_edit_with_every_stored_hash_recomputed_breaks_the_signed_root(
    sealed: Services, admin_db: psycopg.Connection[tuple[object, ...]], database_url: str
) -> None:
    row = admin_db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM events WHERE tenant_id = 'acme' AND seq = 8"  # noqa: S608
    ).fetchone()
    assert row is not None
    stored = row_to_stored(dict(zip(COLUMNS, row, strict=True)))
    forged = dataclasses.replace(stored.event, message="nothing to see")
    admin_db.execute(
        "UPDATE events SET message = %s, leaf_hash = %s WHERE tenant_id = 'acme' AND seq = 8",
        (forged.message, leaf_hash(forged)),
    )
    # The attacker also rewrites the tiles: they are recomputable from the leaves.
    admin_db.execute("DELETE FROM merkle_tiles WHERE tenant_id = 'acme'")
    report = await verify(sealed)
    assert len(report.findings) == 1, findings(report)
    assert report.findings[0].checkpoint == EVENTS
    assert "seq 6..11 do not hash to the root" in report.findings[0].what


@pytest.mark.parametrize("deleted", [[4], [4, 5]])
async def test_deleted_rows_leave_a_gap(
    sealed: Services, admin_db: psycopg.Connection[tuple[object, ...]], deleted: list[int]
) -> None:
    admin_db.execute("DELETE FROM events WHERE tenant_id = 'acme' AND seq = ANY(%s)", (deleted,))
    admin_db.execute("DELETE FROM event_ids WHERE tenant_id = 'acme' AND seq = ANY(%s)", (deleted,))
    report = await verify(sealed)
    gap = [f for f in report.findings if "missing" in f.what]
    assert [f.seq for f in gap] == [4]
    assert f"seq 4..{deleted[-1]}" in gap[0].what


async def test_the_newest_rows_deleted_with_the_head_and_checkpoints_are_caught_by_the_witness(
    sealed: Services, admin_db: psycopg.Connection[tuple[object, ...]]
) -> None:
    keep = EVENTS // 2
    admin_db.execute("DELETE FROM events WHERE tenant_id = 'acme' AND seq >= %s", (keep,))
    admin_db.execute("DELETE FROM event_ids WHERE tenant_id = 'acme' AND seq >= %s", (keep,))
    admin_db.execute("UPDATE tenant_log_heads SET next_seq = %s WHERE tenant_id = 'acme'", (keep,))
    admin_db.execute("DELETE FROM checkpoints WHERE tenant_id = 'acme' AND tree_size > %s", (keep,))
    assert (await verify(sealed)).ok  # the database alone is consistent after a rollback...
    # ...but the witness kept the newer one
    report = await verify(sealed, *await from_witness(sealed.witness, ACME))
    assert [(f.checkpoint, "rolled back" in f.what) for f in report.findings] == [(EVENTS, True)]


async def test_two_swapped_rows_break_the_signed_root(
    sealed: Services, admin_db: psycopg.Connection[tuple[object, ...]]
) -> None:
    admin_db.execute(
        "UPDATE events SET seq = CASE seq WHEN 1 THEN 2 ELSE 1 END "
        "WHERE tenant_id = 'acme' AND seq IN (1, 2)"
    )
    report = await verify(sealed)
    assert [f.checkpoint for f in report.findings] == [EVENTS // 2, EVENTS]


async def test_a_forged_row_is_a_second_claim_on_its_seq(
    sealed: Services, admin_db: psycopg.Connection[tuple[object, ...]]
) -> None:
    admin_db.execute(
        """INSERT INTO events SELECT tenant_id, gen_random_uuid(), seq, timestamp, received_at,
                  user_id, actor_type, session_id, action, resource_type, resource_id,
                  ip_address, user_agent, before, after, changed_fields, metadata, severity,
                  'forged', request_id, outcome, leaf_hash
             FROM events WHERE tenant_id = 'acme' AND seq = 7"""
    )
    report = await verify(sealed)
    assert any(f.seq == 7 and "seq already taken" in f.what for f in report.findings)


async def test_a_forged_checkpoint_and_one_signed_by_another_key_do_not_verify(
    sealed: Services, admin_db: psycopg.Connection[tuple[object, ...]]
) -> None:
    (note,) = admin_db.execute(
        "SELECT note FROM checkpoints WHERE tenant_id = 'acme' AND tree_size = %s", (EVENTS,)
    ).fetchone() or ("",)
    altered = str(note).replace(f"\n{EVENTS}\n", f"\n{EVENTS + 5}\n", 1)
    stranger = Ed25519Signer(Ed25519PrivateKey.generate(), sealed.settings.integrity.origin)
    other_key = sign_checkpoint(Checkpoint("auditline.localhost/acme", 99, b"\0" * 32), stranger)
    report = await verify(sealed, Source("altered", altered), Source("stranger", other_key))
    assert len(report.findings) == 2, findings(report)
    assert all("does not verify" in f.what for f in report.findings)


def test_the_cli_exits_non_zero_and_names_the_problem(
    sealed: Services, admin_db: psycopg.Connection[tuple[object, ...]], settings: Settings,
    database_url: str,
) -> None:  # fmt: skip
    env = {**os.environ, "AUDITLINE_DATABASE__URL": database_url,
           "AUDITLINE_DATA_DIR": str(settings.data_dir),
           "PYTHONPATH": str(Path(__file__).parents[2] / "src")}  # fmt: skip
    command = [sys.executable, "-m", "auditline", "verify", "--tenant", "acme"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{EVENTS} events in sequence" in ok.stdout
    admin_db.execute(
        "UPDATE events SET user_id = 'someone-else' WHERE tenant_id = 'acme' AND seq = 2"
    )
    bad = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "FAIL" in bad.stdout
    assert "seq 2" in bad.stdout
