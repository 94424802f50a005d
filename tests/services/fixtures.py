"""Session fixtures for the Java test services: each starts once per run, on demand.

A test that needs SQS asks for ``elasticmq``; one that needs S3 asks for ``s3_server``.
Neither starts unless some collected test asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services.jvm import JvmService, ServiceUnavailable, free_port, unavailable

# Fixed, fake credentials: both servers accept any, and the clients must send some.
ACCESS_KEY = "auditline-test"
SECRET_KEY = "auditline-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class Endpoint:
    """Where a started service listens, and the credentials its clients should send."""

    url: str
    region: str = REGION
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY


def elasticmq_service(workdir: Path) -> tuple[JvmService, Endpoint]:
    """An ElasticMQ (SQS API) on a free loopback port, not started yet (the benchmark of
    the queue, ``bench/queue.py``, starts one the same way)."""
    port = free_port()
    config = workdir / "elasticmq.conf"
    config.write_text(
        'include classpath("application.conf")\n'
        'node-address { protocol = http, host = "127.0.0.1",'
        f' port = {port}, context-path = "" }}\n'
        f'rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1",'
        " sqs-limits = strict }\n"
        "rest-stats { enabled = false }\n"
        f'aws {{ region = "{REGION}", accountId = "000000000000" }}\n'
    )
    service = JvmService(
        "elasticmq",
        "org.elasticmq.server.Main",
        port,
        jvm_options=[f"-Dconfig.file={config}", "-Xmx256m"],
        workdir=workdir,
    )
    return service, Endpoint(url=f"http://127.0.0.1:{port}")


@pytest.fixture(scope="session")
def elasticmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """A real ElasticMQ (SQS API) on loopback, in memory, for the whole run."""
    service, endpoint = elasticmq_service(tmp_path_factory.mktemp("elasticmq"))
    try:
        service.start()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield endpoint
    finally:
        service.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """A real S3Proxy (S3 API) on loopback over a filesystem blob store, for the whole run."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("s3proxy")
    blobs = workdir / "blobs"
    blobs.mkdir()
    properties = workdir / "s3proxy.properties"
    properties.write_text(
        f"s3proxy.endpoint=http://127.0.0.1:{port}\n"
        "s3proxy.authorization=aws-v2-or-v4\n"
        f"s3proxy.identity={ACCESS_KEY}\n"
        f"s3proxy.credential={SECRET_KEY}\n"
        "jclouds.provider=filesystem\n"
        f"jclouds.filesystem.basedir={blobs}\n"
    )
    service = JvmService(
        "s3proxy",
        "org.gaul.s3proxy.Main",
        port,
        args=["--properties", str(properties)],
        jvm_options=["-Xmx256m"],
        workdir=workdir,
    )
    try:
        service.start()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield Endpoint(url=f"http://127.0.0.1:{port}")
    finally:
        service.stop()
