"""Exports with ``include_proofs=true``, verified offline with only the file and the key."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditline.config import IntegritySettings, Settings
from auditline.evidence.offline import verify_export
from auditline.integrity.leaf import entry_hash, record_entry
from auditline.integrity.note import Ed25519Signer, Verifier, parse_verifier_key
from tests.conftest import TokenFactory, bearer

EVENTS = 40


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.integrity = IntegritySettings(seal_interval_seconds=3600)
    settings.search.export_batch_size = 16  # several batches, several tile reads
    return settings


@pytest.fixture
async def auditor(
    client: httpx.AsyncClient, tenants: list[str], make_token: TokenFactory
) -> dict[str, str]:
    events = [{"action": "UPDATE", "message": f"change {i}", "ip_address": "2001:db8::1",
               "metadata": {"n": i, "s": "é"}, "before": {"a": i}, "after": {"a": i + 1}}
              for i in range(EVENTS)]  # fmt: skip
    response = await client.post(
        "/api/v1/logs/bulk", json={"events": events}, headers=bearer(make_token("admin", "acme"))
    )
    assert response.status_code == 201, response.text
    return bearer(make_token("auditor", "acme"))


async def key(client: httpx.AsyncClient) -> Verifier:
    return parse_verifier_key(
        (await client.get("/.well-known/auditline-checkpoint-key")).text.strip()
    )


async def export(client: httpx.AsyncClient, headers: dict[str, str], fmt: str) -> bytes:
    response = await client.get(
        "/api/v1/logs/export", params={"format": fmt, "include_proofs": "true"}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_an_export_with_proofs_verifies_offline(
    client: httpx.AsyncClient, auditor: dict[str, str], fmt: str
) -> None:
    data = await export(client, auditor, fmt)
    report = verify_export(data, await key(client))
    assert report.ok, [str(f) for f in report.findings]
    # The export seals first, so every exported event is covered by its checkpoint.
    assert report.proven == EVENTS
    assert report.unproven == []
    assert report.origin == "auditline.localhost/acme"


async def test_exported_records_hash_to_their_leaves(
    client: httpx.AsyncClient, auditor: dict[str, str]
) -> None:
    document = orjson.loads(await export(client, auditor, "json"))
    for record in document["events"]:
        assert entry_hash(record_entry(record)).hex() == record["leaf_hash"]


async def test_an_edited_event_in_the_file_is_caught_with_or_without_its_hash_redone(
    client: httpx.AsyncClient, auditor: dict[str, str]
) -> None:
    verifier = await key(client)
    lines = (await export(client, auditor, "ndjson")).splitlines()
    record = orjson.loads(lines[5])
    record["message"] = "nothing happened"
    edited = [*lines[:5], orjson.dumps(record), *lines[6:]]
    report = verify_export(b"\n".join(edited), verifier)
    seq = record["seq"]
    assert [(f.seq, f.what.split(":")[0]) for f in report.findings] == [
        (seq, "the event's fields do not hash to its leaf_hash"),
        (seq, "the inclusion proof does not lead to the checkpoint's root"),
    ]

    record["leaf_hash"] = entry_hash(record_entry(record)).hex()  # the forger redoes the hash
    edited = [*lines[:5], orjson.dumps(record), *lines[6:]]
    report = verify_export(b"\n".join(edited), verifier)
    assert [(f.seq, "does not lead" in f.what) for f in report.findings] == [(record["seq"], True)]


async def test_a_checkpoint_signed_by_another_key_is_refused(
    client: httpx.AsyncClient, auditor: dict[str, str]
) -> None:
    data = await export(client, auditor, "json")
    stranger = Ed25519Signer(Ed25519PrivateKey.generate(), "auditline.localhost").verifier
    report = verify_export(data, stranger)
    assert len(report.findings) == 1
    assert "does not verify" in report.findings[0].what
    assert report.proven == 0


async def test_proofs_need_json_or_ndjson(
    client: httpx.AsyncClient, auditor: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/logs/export", params={"format": "csv", "include_proofs": "true"}, headers=auditor
    )
    assert response.status_code == 422
    assert "json or ndjson" in response.text


async def test_the_cli_verifies_a_file_without_a_server_or_database(
    client: httpx.AsyncClient, auditor: dict[str, str], tmp_path: Path
) -> None:
    export_file = tmp_path / "acme.ndjson"
    export_file.write_bytes(await export(client, auditor, "ndjson"))
    key_file = tmp_path / "auditline.vkey"
    key_file.write_text((await client.get("/.well-known/auditline-checkpoint-key")).text.strip())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITLINE_")}
    env |= {"AUDITLINE_DATA_DIR": str(tmp_path / "no-such-dir"),
            "PYTHONPATH": str(Path(__file__).parents[2] / "src")}  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "auditline",
        "verify",
        str(export_file),
        "--key",
        str(key_file),
    ]
    ok = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{EVENTS} events proven" in ok.stdout
    assert not (tmp_path / "no-such-dir").exists()  # no server was started, no data dir made
    export_file.write_bytes(export_file.read_bytes().replace(b"change 7", b"change 8", 1))
    bad = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert "FAIL" in bad.stdout
