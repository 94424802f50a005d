"""One real ``auditline serve`` for the client tests, two tenants, and tokens for it.

The server runs one API process, so its per-process rate limits are exact, with a small
read budget per principal: a test that needs a 429 gets one by reading quickly, and every
other test reads as a principal of its own. Streams buffer few events, so that a bulk
request makes a stream lag (and the SDK resume), and are pinged every second.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from auditline.config import Settings
from auditline_client import Client
from tests.clients.faults import FaultyProxy
from tests.conftest import TokenFactory, token_factory
from tests.e2e.test_serve_process import Server, free_port

READ_BUDGET = 5  # reads at once per principal, refilled at this many per second
STREAM_BUFFER = 50  # events queued per stream: a bulk of more makes the stream lag (4408)


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "AUDITLINE_RATE_LIMITS__READ_PER_PRINCIPAL__RATE": str(READ_BUDGET),
        "AUDITLINE_RATE_LIMITS__READ_PER_PRINCIPAL__BURST": str(READ_BUDGET),
        "AUDITLINE_STREAM__BUFFER_EVENTS": str(STREAM_BUFFER),
        "AUDITLINE_STREAM__PING_SECONDS": "1",
    }
    srv = Server(tmp_path_factory.mktemp("clients") / "data", free_port(), env=env)
    srv.start("--workers", "1")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="package")
def admin_token(server: Server) -> str:
    return (server.data_dir / "bootstrap-admin.jwt").read_text().strip()


@pytest.fixture(scope="package")
def tenants(server: Server, admin_token: str) -> list[str]:
    with Client(server.base, admin_token) as admin:
        for tenant_id in ("acme", "globex"):
            admin.create_tenant(tenant_id, tenant_id.title())
    return ["acme", "globex"]


@pytest.fixture(scope="package")
def make_token(server: Server, tenants: list[str]) -> TokenFactory:
    """``make_token(role, *tenants)``: a token signed by the server's key, for a principal
    of its own (its own rate-limit buckets) unless ``sub`` is given."""
    make = token_factory(Settings(data_dir=server.data_dir))

    def make_unique(role: str, *tenant_ids: str, sub: str | None = None) -> str:
        return make(role, *tenant_ids, sub=sub or f"{role}-{uuid.uuid4().hex[:8]}", ttl=3600)

    return make_unique


@pytest.fixture
def acme(server: Server, make_token: TokenFactory) -> Iterator[Client]:
    """An admin of acme (it reads and writes every acme event)."""
    with Client(server.base, make_token("admin", "acme")) as client:
        yield client


@pytest.fixture
def proxy(server: Server) -> Iterator[FaultyProxy]:
    with contextlib.closing(FaultyProxy(server.port)) as faulty:
        yield faulty


def unique() -> str:
    """A value no other test uses: tests share one server and filter by it."""
    return uuid.uuid4().hex
