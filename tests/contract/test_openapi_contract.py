"""Schemathesis against our own OpenAPI document, over HTTP to a real ``auditline serve``.

Generated requests (valid and invalid, per the schema) must never produce a server error,
and every response must match the documented status codes, content types and schemas.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.e2e.test_serve_process import Server, free_port, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    srv = Server(tmp_path_factory.mktemp("contract") / "data", free_port())
    srv.start()
    admin = (srv.data_dir / "bootstrap-admin.jwt").read_text().strip()
    created = httpx.post(
        srv.base + "/api/v1/tenants",
        json={"id": "acme", "name": "Acme"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert created.status_code == 201
    token = run_cli("token", "--tenant", "acme", "--role", "admin", "--ttl", "3600",
                    data_dir=srv.data_dir).stdout.strip()  # fmt: skip
    yield srv, token
    srv.stop(signal.SIGTERM)


def test_api_honours_its_contract(server: tuple[Server, str]) -> None:
    srv, token = server
    api = schemathesis.openapi.from_url(srv.base + "/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10  # the document lists every endpoint

    for operation in operations:

        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            # A `q` can be a valid string and still break the query grammar (a 400 is right);
            # auth is tested by its own corpus (our header is always sent here).
            case.call_and_validate(
                headers=headers, excluded_checks=[positive_data_acceptance, ignored_auth]
            )

        check()
