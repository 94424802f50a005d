"""Schemathesis with every check against our own OpenAPI document, over HTTP to a real
``auditline serve``.

All four phases (examples, coverage, fuzzing, stateful), positive and negative data, every
check (``--checks all``): no server error; every status, content type, header field and body
as documented; every request the schema allows accepted and every one it forbids refused;
405 with the right ``Allow`` for a method a path does not have; authentication enforced;
what a POST created readable afterwards; and every read that succeeded for one tenant, sent
again by another tenant's admin, a documented 404 (``another_tenant_gets_a_documented_404``).
A fixed seed and example budget keep the run
reproducible and bounded (about a minute on two cores).

What the document cannot say is excluded below by name, each with its reason (``EXCLUSIONS``,
applied by schemathesis's ``filter_failure`` hook, which this module provides to the run);
any other failure fails the test with schemathesis's report. Exclusions match a check's
failure code *and* the problem type the server answered with, so that a new way of
failing the same check is not hidden by an old reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis

from tests.e2e.test_serve_process import Server, free_port, run_cli

pytestmark = pytest.mark.slow

SEED = 22
MAX_EXAMPLES = 20


def _problem(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _answered(*kinds: str) -> Callable[[Any, Any], bool]:
    """The answer is a problem of one of these types (after ``/problems/``)."""
    uris = {"https://auditline.dev/problems/" + kind for kind in kinds}
    return lambda case, response: _problem(response).get("type") in uris


_REFUSALS: list[str] = []
"""Every phrase an exclusion below refuses for (``_refused_for`` adds them)."""


def _refused_for(*phrases: str) -> Callable[[Any, Any], bool]:
    """The answer is a 422 whose every error says one of these phrases: a refusal for
    that rule and no other."""
    _REFUSALS.extend(phrases)
    return _every_error_says(*phrases)


def _every_error_says(*phrases: str) -> Callable[[Any, Any], bool]:
    def applies(case: Any, response: Any) -> bool:
        problem = _problem(response)
        errors = problem.get("errors") or [{"detail": problem.get("detail", "")}]
        return problem.get("type") == "https://auditline.dev/problems/validation" and all(
            any(phrase in str(error.get("detail")) for phrase in phrases) for error in errors
        )

    return applies


@dataclass(frozen=True)
class Exclusion:
    name: str
    code: str  # schemathesis's failure code (ST202: a schema-valid request was refused)
    reason: str
    applies: Callable[[Any, Any], bool]  # (case, response)


EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion(
        "query grammar",
        "ST202",
        "`q` is a query language with nesting (parentheses); no JSON Schema pattern can "
        "state its grammar, so a schema-valid string may not parse (400 query-syntax). The "
        "grammar is tested by tests/unit/test_query_parser.py.",
        _answered("query-syntax"),
    ),
    Exclusion(
        "signed cursors",
        "ST202",
        "A cursor is valid only if the server issued it (HMAC-signed, bound to the tenant "
        "and the query); the schema states its shape, not its signature (400 "
        "invalid-cursor). Paging is tested by tests/integration/test_search_paging.py.",
        _answered("invalid-cursor"),
    ),
    Exclusion(
        "times relative to now",
        "ST202",
        "An event's timestamp within 5 minutes ahead and 3,660 days back, an API key's "
        "expires_at in the future, a cleanup's before at least min_age_hours ago: JSON "
        "Schema has no 'now'. Each bound is in its description and tested by "
        "tests/unit/test_validation.py, tests/integration/test_api_keys.py and "
        "test_retention.py.",
        _refused_for("in the future", "days old", "must be within", "hours ago"),
    ),
    Exclusion(
        "ranges across parameters",
        "ST202",
        "start before end, a statistics range of at most stats_max_buckets buckets, a "
        "consistency proof's from <= to, relate two query parameters; OpenAPI gives each "
        "parameter its own schema. Tested by tests/integration/test_stats_api.py and "
        "test_integrity_api.py.",
        lambda case, response: (
            _answered("invalid-search", "invalid-range")(case, response)
            or _refused_for("start must be before end")(case, response)
        ),
    ),
    Exclusion(
        "one tenant per request",
        "ST202",
        "A tenant_id in the body must be the tenant_id parameter's, and every event of a bulk "
        "request must name the same tenant: a rule across the body and the query, or across "
        "array items, which JSON Schema cannot relate. Tested by "
        "tests/integration/test_probe_findings.py.",
        _refused_for("differs from the tenant_id parameter", "need the same tenant"),
    ),
    Exclusion(
        "integers spelled as floats",
        "ST202",
        "JSON Schema counts 30.0 as an integer; retention_days and archive_after_days take "
        "JSON integers only (30.0, true and '30' are refused, docs/api.md), as I-JSON "
        "readers may not keep 30.0 an integer. Tested by test_tenants_settings.py.",
        _refused_for("Input should be a valid integer"),
    ),
    Exclusion(
        "proofs need JSON",
        "ST202",
        "include_proofs=true needs format json or ndjson: two parameters again. Tested by "
        "tests/integration/test_export_proofs.py.",
        _refused_for("include_proofs needs format json or ndjson"),
    ),
    Exclusion(
        "JSON rules below the first level",
        "ST202",
        "Numbers within ±(2^53-1), text without NUL and the depth limit hold at every level "
        "of a JSON field; the schema states them for the field's members only, because "
        "stated level by level they made the coverage phase twenty times longer (22,201 "
        "cases instead of 1,086). The descriptions state them; tests/unit/test_validation.py "
        "tests them.",
        _refused_for("is outside the range", "nests deeper than", "NUL characters"),
    ),
    Exclusion(
        "the service's own resource type",
        "ST202",
        "resource_type audit_log is reserved for the service's records of reads "
        "(docs/search.md); the stateful phase copies it into new events from search answers "
        "that include those records (include_access=true), which the schema of an event "
        "cannot know. Tested by tests/integration/test_access_records_hidden.py.",
        _refused_for("is reserved for the service's records of reads"),
    ),
    Exclusion(
        "JSON totals",
        "ST202",
        "The size in bytes and the number of keys across a whole JSON field (metadata, "
        "before, after, settings) are not properties of any one object JSON Schema can "
        "bound; the depth, integers and text are in the schema. Tested by "
        "tests/unit/test_validation.py.",
        _refused_for("keys in total", "is larger than"),
    ),
)


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure no exclusion names (runs in the schemathesis process)."""
    if response is None:
        return True
    if failure.code == "ST202" and _every_error_says(*_REFUSALS)(case, response):
        return False  # each error is one excluded rule or another (a bulk body breaks several)
    return not any(
        failure.code == exclusion.code and exclusion.applies(case, response)
        for exclusion in EXCLUSIONS
    )


OTHER_TOKEN = "AUDITLINE_CONTRACT_OTHER_TENANT_TOKEN"
"""An admin token of a second tenant, for :func:`another_tenant_gets_a_documented_404`."""
REPLAYS = "AUDITLINE_CONTRACT_REPLAYS"
"""A file where that check notes each replay, so the test can tell it ran."""


@schemathesis.check
def another_tenant_gets_a_documented_404(ctx: Any, response: Any, case: Any) -> None:
    """A read that succeeded for the first tenant's admin, sent again by another tenant's
    admin, must be a 404 the operation documents, with a documented problem type: another
    tenant's object (or the tenant itself) is indistinguishable from a missing one, never a
    403 that would confirm it exists (docs/api.md, security.md).

    Only reads that name something (a path parameter, or ``tenant_id``) are replayed: a
    search without ``tenant_id`` is the other tenant's own search. Reads only: replaying a
    write would change the owner's data.
    """
    token = os.environ.get(OTHER_TOKEN)
    names_something = bool(case.path_parameters) or "tenant_id" in (case.query or {})
    if token is None or case.method != "GET" or not 200 <= response.status_code < 300:
        return
    if not names_something or case.operation.path == "/api/v1/tenants":
        return  # listing tenants: an admin sees its own, whatever tenant_id says
    other = httpx.get(response.request.url, headers={"Authorization": f"Bearer {token}"})
    if REPLAYS in os.environ:
        with open(os.environ[REPLAYS], "a") as replays:
            replays.write(f"{case.operation.label} {other.status_code}\n")
    label = f"{case.operation.label} as another tenant's admin"
    assert other.status_code == 404, f"{label}: {other.status_code}, not 404: {other.text[:300]}"
    documented = case.operation.definition.raw.get("responses", {}).get("404")
    assert documented is not None, f"{label}: 404 is not among the documented answers"
    schema = documented["content"]["application/problem+json"]["schema"]
    types = schema.get("properties", {}).get("type", {}).get("enum", [])
    assert _problem(other).get("type") in types, f"{label}: type {_problem(other).get('type')}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    srv = Server(tmp_path_factory.mktemp("contract") / "data", free_port())
    srv.start()
    admin = (srv.data_dir / "bootstrap-admin.jwt").read_text().strip()
    tokens = []
    for tenant in ("acme", "globex"):
        created = httpx.post(
            srv.base + "/api/v1/tenants",
            json={"id": tenant, "name": tenant.title()},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert created.status_code == 201
        tokens.append(run_cli("token", "--tenant", tenant, "--role", "admin", "--ttl", "3600",
                              data_dir=srv.data_dir).stdout.strip())  # fmt: skip
    yield srv, tokens[0], tokens[1]
    srv.stop(signal.SIGTERM)


def run_schemathesis(
    base: str, token: str, report: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", base + "/openapi.json",
        "--checks", "all", "--mode", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--generation-database", "none", "--workers", "1", "--no-color",
        "--header", f"Authorization: Bearer {token}",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    env = {**os.environ, **env, "SCHEMATHESIS_HOOKS": __name__}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, env=env,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip


def test_api_honours_its_contract(server: tuple[Server, str, str], tmp_path: Path) -> None:
    srv, token, other_token = server
    report, replays = tmp_path / "schemathesis.json", tmp_path / "replays.txt"
    env = {OTHER_TOKEN: other_token, REPLAYS: str(replays)}
    run = run_schemathesis(srv.base, token, report, env)
    summary = json.loads(report.read_text())
    print(json.dumps({k: summary[k] for k in ("test_cases", "failures", "filtered")}))
    assert summary["operations"]["tested"] >= 20  # the document lists every endpoint
    assert summary["errors"] == [], run.stdout[-20000:]
    assert summary["failures"] == [], run.stdout[-20000:]
    assert run.returncode == 0, run.stdout[-20000:]
    # The other tenant's replays ran (and each was a documented 404, or the run failed above),
    # on reads of single resources, not only on searches naming acme.
    lines = replays.read_text().splitlines()
    replayed = {line.rsplit(" ", 1)[0] for line in lines}
    print(sorted(replayed))
    assert all(line.endswith(" 404") for line in lines), lines
    assert "GET /api/v1/logs/{event_id}" in replayed, replayed
    assert len(replayed) >= 5, replayed
