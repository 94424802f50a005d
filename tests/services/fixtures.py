"""Session fixtures for the Java test services: each starts once per run, on demand.

A test that needs SQS asks for ``elasticmq``; one that needs S3 asks for ``s3_server``;
one that needs OpenSearch asks for ``opensearch``. None starts unless some collected test
asks for it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
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


OPENSEARCH_URL_ENV = "AUDITLINE_TEST_OPENSEARCH_URL"


def opensearch_service(workdir: Path) -> JvmService:
    """A single-node OpenSearch 2.19.6 (``maven/opensearch``: the pinned jars and a small
    launcher) with its home under *workdir*, not started yet. It binds a free HTTP port
    itself and reports it in a file, read by :meth:`JvmService.start`."""
    home = workdir / "home"
    port_file = workdir / "http.port"
    return JvmService(
        "opensearch",
        "dev.auditline.testservices.OpenSearchLauncher",
        0,
        args=[str(home), str(port_file)],
        # A small heap is plenty for test indices; JMX and Netty's processor probe are off
        # so that two nodes (the outage test's own) can run in one session.
        jvm_options=[
            "-Xms256m",
            "-Xmx512m",
            "-Dlog4j2.disable.jmx=true",
            "-Dopensearch.set.netty.runtime.available.processors=false",
        ],
        workdir=workdir,
        port_file=port_file,
    )


def wait_for_cluster(url: str, *, timeout: float = 60.0) -> None:
    """Until the cluster answers and is at least yellow (a fresh node elects itself)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            request = f"{url}/_cluster/health?wait_for_status=yellow&timeout=5s"
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                if json.load(answer).get("status") in ("green", "yellow"):
                    return
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise ServiceUnavailable(f"OpenSearch at {url} did not become ready: {last}")


def start_opensearch(workdir: Path) -> tuple[JvmService, Endpoint]:
    """A started node and where it listens (for tests that need a node of their own)."""
    service = opensearch_service(workdir)
    service.start(timeout=180)
    endpoint = Endpoint(url=f"http://127.0.0.1:{service.port}")
    try:
        wait_for_cluster(endpoint.url)
    except ServiceUnavailable:
        service.stop()
        raise
    return service, endpoint


@pytest.fixture(scope="session")
def opensearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """A real OpenSearch node for the whole run, or the cluster ``AUDITLINE_TEST_OPENSEARCH_URL``
    names (tests create their own uniquely prefixed indices, so a shared cluster is fine)."""
    external = os.environ.get(OPENSEARCH_URL_ENV)
    if external:
        try:
            wait_for_cluster(external.rstrip("/"), timeout=30)
        except ServiceUnavailable as exc:
            unavailable(str(exc))
        yield Endpoint(url=external.rstrip("/"))
        return
    try:
        service, endpoint = start_opensearch(tmp_path_factory.mktemp("opensearch"))
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield endpoint
    finally:
        service.stop()
