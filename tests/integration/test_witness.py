"""The checkpoint witness: a directory, or an S3 bucket (S3Proxy here), and what the sealer
records about it.

The contract tests run for every backend: the directory, and S3 both ways the S3 witness
can keep its never-overwrite promise (a conditional PUT, when the probe finds the store
honours ``If-None-Match``, and a check before the PUT). S3Proxy 2.6 ignores the header, so
there the probe itself chooses the check (it logs so): the conditional branch is exercised
against a store that honours it only in production. The end-to-end tests run the
service wired to an S3 witness by its settings and roll its database back as an
administrator would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditline.config import IntegritySettings, Settings
from auditline.domain.access import Actor
from auditline.domain.events import EventDraft
from auditline.evidence.sealer import Sealed, seal_all
from auditline.evidence.verify import Report, from_witness, verify_log
from auditline.evidence.witness import (
    ConfiguredWitness,
    DirectoryWitness,
    S3Witness,
    WitnessConflict,
)
from auditline.services import Services, open_services
from auditline.storage.s3 import s3_client
from auditline.tenancy.scope import for_system
from tests.services.fixtures import Endpoint

ACME = for_system("acme", reason="tests witness acme's log")
OPERATOR = Actor("cli:test", "system")
Admin = psycopg.Connection[tuple[object, ...]]


async def new_bucket(endpoint: Endpoint) -> str:
    bucket = f"witness-{uuid.uuid4().hex[:12]}"
    async with s3_client(
        endpoint_url=endpoint.url, region=endpoint.region,
        access_key=endpoint.access_key, secret_key=endpoint.secret_key,
    ) as client:  # fmt: skip
        await client.create_bucket(Bucket=bucket)
    return bucket


# -- the contract, for every backend ---------------------------------------------------------


@pytest.fixture(params=["directory", "s3-probed", "s3-check-then-put"])
async def witness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "directory":
        yield DirectoryWitness(tmp_path / "witness")
        return
    endpoint: Endpoint = request.getfixturevalue("s3_server")
    bucket = await new_bucket(endpoint)
    async with s3_client(
        endpoint_url=endpoint.url, region=endpoint.region,
        access_key=endpoint.access_key, secret_key=endpoint.secret_key,
    ) as client:  # fmt: skip
        conditional = None if request.param == "s3-probed" else False
        yield S3Witness(client, bucket, "checkpoints", conditional_put=conditional)


async def test_appending_the_same_checkpoint_twice_keeps_one_copy(
    witness: ConfiguredWitness,
) -> None:
    await witness.append(ACME, 7, "note of size 7\n")
    await witness.append(ACME, 7, "note of size 7\n")  # a retry, or a second sealer
    assert await witness.checkpoints(ACME) == [(7, "note of size 7\n")]


async def test_a_different_checkpoint_of_the_same_size_is_refused_loudly_and_the_first_kept(
    witness: ConfiguredWitness, caplog: pytest.LogCaptureFixture
) -> None:
    await witness.append(ACME, 7, "the first note\n")
    with pytest.raises(WitnessConflict, match="forked"):
        await witness.append(ACME, 7, "a forked note\n")
    assert await witness.checkpoints(ACME) == [(7, "the first note\n")]
    [record] = [r for r in caplog.records if r.name == "auditline.evidence.witness"
                and r.levelno == logging.CRITICAL]  # fmt: skip
    assert "WITNESS CONFLICT" in record.getMessage()
    assert "a forked note" in record.getMessage()


async def test_checkpoints_are_listed_in_tree_order_for_one_tenant_only(
    witness: ConfiguredWitness,
) -> None:
    for size in (10, 2, 1000, 0, 99):
        await witness.append(ACME, size, f"acme {size}\n")
    other = for_system("acme-2", reason="a tenant whose id extends acme's")
    await witness.append(other, 5, "acme-2 5\n")
    assert await witness.checkpoints(ACME) == [
        (size, f"acme {size}\n") for size in (0, 2, 10, 99, 1000)
    ]
    assert await witness.checkpoints(other) == [(5, "acme-2 5\n")]
    assert await witness.checkpoints("nobody") == []


async def test_the_s3_witness_writes_one_object_per_checkpoint_under_its_prefix(
    s3_server: Endpoint,
) -> None:
    bucket = await new_bucket(s3_server)
    async with s3_client(
        endpoint_url=s3_server.url, region=s3_server.region,
        access_key=s3_server.access_key, secret_key=s3_server.secret_key,
    ) as client:  # fmt: skip
        witness = S3Witness(client, bucket, "audit/cp/")
        await witness.append(ACME, 12, "note\n")
        await witness.append(ACME, 13, "note\n")
        listed = await client.list_objects_v2(Bucket=bucket, Prefix="audit/cp/")
    # The probe of conditional writes leaves one fixed object beside the tenants' folders
    # (S3Proxy's filesystem store also lists folders as keys ending in "/").
    objects = [item["Key"] for item in listed["Contents"] if not item["Key"].endswith("/")]
    assert objects == [
        "audit/cp/.conditional-put-probe",
        "audit/cp/acme/00000000000000000012.checkpoint",
        "audit/cp/acme/00000000000000000013.checkpoint",
    ]


# -- the service with an S3 witness ------------------------------------------------------------


@pytest.fixture
async def s3_settings(
    settings: Settings, s3_server: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The service's settings with the S3 witness; credentials by the standard AWS chain."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    settings.integrity = IntegritySettings(
        seal_interval_seconds=3600,
        witness_backend="s3",
        witness_s3_bucket=await new_bucket(s3_server),
        witness_s3_prefix="auditline/checkpoints/",
        witness_s3_endpoint_url=s3_server.url,
        witness_s3_region=s3_server.region,
    )
    return settings


@pytest.fixture
async def services(s3_settings: Settings) -> AsyncIterator[Services]:
    async with open_services(s3_settings) as services:
        await services.tenants.create(ACME, OPERATOR, name="Acme", retention_days=365)
        yield services


@pytest.fixture
def admin_db(database_url: str) -> Iterator[Admin]:
    """The attacker's connection: superuser, triggers off."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn


async def add_and_seal(services: Services, word: str, count: int = 6) -> Sealed:
    drafts = [EventDraft(action="UPDATE", message=f"{word} {i}") for i in range(count)]
    await services.ingest.create_many(ACME, drafts)
    sealed = await services.sealer.seal_until_current(ACME, wait=True)
    assert sealed is not None
    return sealed


def roll_back(admin_db: Admin, keep: int) -> None:
    """Delete the newest events with the log head and the newer checkpoints."""
    admin_db.execute("DELETE FROM events WHERE tenant_id = 'acme' AND seq >= %s", (keep,))
    admin_db.execute("DELETE FROM event_ids WHERE tenant_id = 'acme' AND seq >= %s", (keep,))
    admin_db.execute("UPDATE tenant_log_heads SET next_seq = %s WHERE tenant_id = 'acme'", (keep,))
    admin_db.execute("DELETE FROM checkpoints WHERE tenant_id = 'acme' AND tree_size > %s", (keep,))


async def verify(services: Services, *, with_witness: bool) -> Report:
    extra = await from_witness(services.witness, ACME) if with_witness else []
    return await verify_log(
        services.pool, ACME, services.checkpoint_verifier, services.settings.integrity.origin,
        extra_checkpoints=extra,
    )  # fmt: skip


def findings(report: Report) -> list[tuple[int | None, str]]:
    return [(f.checkpoint, f.what) for f in report.findings]


async def test_a_rolled_back_log_is_caught_by_the_checkpoints_in_the_bucket(
    services: Services, admin_db: Admin, s3_settings: Settings, database_url: str
) -> None:
    assert isinstance(services.witness, S3Witness)  # wired from the settings
    first = await add_and_seal(services, "first")
    second = await add_and_seal(services, "second")
    witnessed_sizes = [size for size, _ in await services.witness.checkpoints(ACME)]
    assert witnessed_sizes[-2:] == [first.tree_size, second.tree_size]
    assert (await verify(services, with_witness=True)).ok

    roll_back(admin_db, first.tree_size)

    assert (await verify(services, with_witness=False)).ok  # the database alone agrees...
    report = await verify(services, with_witness=True)  # ...the bucket does not
    [(checkpoint, what)] = findings(report)
    assert checkpoint == second.tree_size
    assert "rolled back" in what

    # `auditline verify --tenant` reads the same bucket, configured by the environment.
    integrity = s3_settings.integrity
    env = {**os.environ, "AUDITLINE_DATABASE__URL": database_url,
           "AUDITLINE_DATA_DIR": str(s3_settings.data_dir),
           "AUDITLINE_INTEGRITY__WITNESS_BACKEND": "s3",
           "AUDITLINE_INTEGRITY__WITNESS_S3_BUCKET": str(integrity.witness_s3_bucket),
           "AUDITLINE_INTEGRITY__WITNESS_S3_ENDPOINT_URL": str(integrity.witness_s3_endpoint_url),
           "AUDITLINE_INTEGRITY__WITNESS_S3_REGION": str(integrity.witness_s3_region),
           "PYTHONPATH": str(Path(__file__).parents[2] / "src")}  # fmt: skip
    command = [sys.executable, "-m", "auditline", "verify", "--tenant", "acme"]
    cli = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await cli.communicate()
    assert cli.returncode == 1, (out + err).decode()
    assert f"FAIL a signed checkpoint covers {second.tree_size} events" in out.decode()


async def test_a_log_rolled_back_and_regrown_to_the_same_size_is_a_fork_the_witness_refuses(
    services: Services, admin_db: Admin
) -> None:
    first = await add_and_seal(services, "first")
    second = await add_and_seal(services, "second")
    witnessed_before = await services.witness.checkpoints(ACME)
    roll_back(admin_db, first.tree_size)

    forged = await add_and_seal(services, "rewritten history")  # sealed again, same size

    assert forged.tree_size == second.tree_size
    assert forged.root_hash != second.root_hash
    # The sealer stored its checkpoint; the witness kept the original and refused the fork.
    assert await services.witness.checkpoints(ACME) == witnessed_before
    failures = services.metrics.registry.get_sample_value(
        "auditline_witness_failures_total", {"reason": "conflict"}
    )
    assert failures == 1
    report = await verify(services, with_witness=True)
    assert any(
        checkpoint == second.tree_size and "forked" in what for checkpoint, what in findings(report)
    ), findings(report)


# -- what the sealer records ------------------------------------------------------------------


@pytest.fixture
async def local_services(settings: Settings) -> AsyncIterator[Services]:
    """The service with the default (directory) witness."""
    settings.integrity = IntegritySettings(seal_interval_seconds=3600)
    async with open_services(settings) as services:
        await services.tenants.create(ACME, OPERATOR, name="Acme", retention_days=365)
        yield services


def sample(services: Services, name: str, **labels: str) -> float:
    return services.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_each_checkpoint_over_new_events_records_its_sealing_lag(
    local_services: Services,
) -> None:
    await local_services.sealer.seal_until_current(ACME, wait=True)  # whatever is there
    before = sample(local_services, "auditline_sealing_lag_seconds_count")

    await add_and_seal(local_services, "lag")
    assert sample(local_services, "auditline_sealing_lag_seconds_count") == before + 1
    assert sample(local_services, "auditline_sealing_lag_seconds_sum") > 0

    assert await local_services.sealer.seal(ACME) is None  # nothing new: nothing observed
    assert sample(local_services, "auditline_sealing_lag_seconds_count") == before + 1


async def test_an_unreachable_witness_is_counted_and_does_not_stop_sealing(
    local_services: Services, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the witness directory should be")
    local_services.sealer.witness = DirectoryWitness(blocked)

    sealed = await add_and_seal(local_services, "unwitnessed")

    assert sample(local_services, "auditline_witness_failures_total", reason="error") >= 1
    report = await verify(local_services, with_witness=False)
    assert report.ok, findings(report)
    assert sealed.tree_size in report.checkpoints  # stored and signed all the same


async def test_a_tenant_whose_sealing_fails_is_counted(
    local_services: Services, admin_db: Admin
) -> None:
    drafts = [EventDraft(action="UPDATE", message=f"gap {i}") for i in range(4)]
    await local_services.ingest.create_many(ACME, drafts)
    admin_db.execute(
        "DELETE FROM event_ids WHERE tenant_id = 'acme' AND seq = "
        "(SELECT max(seq) - 1 FROM event_ids WHERE tenant_id = 'acme')"
    )

    await seal_all(local_services.sealer)  # logs MissingLeaves for acme, goes on

    assert sample(local_services, "auditline_sealing_failures_total", tenant="_other") == 1
