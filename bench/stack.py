"""Server stack: the same application under uvicorn and under granian.

``auditline serve`` runs uvicorn (uvloop and httptools). granian serves ASGI from a Rust
HTTP layer; whether that pays depends on how much of a request's time is HTTP handling,
so both serve the same application factory on the same database, alternating, for the
single-event and bulk scenarios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditline.storage.embedded import EmbeddedPostgres
from bench.ingest import TENANT, ensure_tenant, summarize, token_for
from bench.servers import STACKS, start_auditline, start_stack, wrk
from bench.workload import write_bodies

WORKERS = 2  # the recommended stack on two cores (docs/operations.md)
SCENARIOS = {  # name: (path, events per request, connections)
    "single c=32": ("/api/v1/logs", 1, 32),
    "single c=128": ("/api/v1/logs", 1, 128),
    "bulk": ("/api/v1/logs/bulk", 1000, 4),
}


def run_stack(work: Path, *, runs: int, seconds: int) -> dict[str, Any]:
    """Events/s per stack and scenario, and granian's ratio to uvicorn in each run."""
    data_dir, log = work / "stack-data", work / "stack.log"
    bodies = {
        1: write_bodies(work / "single.ndjson", count=5000, events_per_body=1, seed=1),
        1000: write_bodies(work / "bulk.ndjson", count=20, events_per_body=1000, seed=2),
    }
    setup = start_auditline(data_dir, log=log)  # creates the database and the tenant
    try:
        ensure_tenant(setup, data_dir, TENANT)
    finally:
        setup.stop()
    token = token_for(data_dir, "user", TENANT)
    postgres = EmbeddedPostgres(data_dir)
    postgres.start()
    rates: dict[str, dict[str, list[float]]] = {stack: {} for stack in STACKS}
    try:
        for run in range(runs):
            order = list(STACKS) if run % 2 == 0 else list(STACKS)[::-1]
            for stack in order:
                server = start_stack(stack, data_dir, postgres.url(), workers=WORKERS, log=log)
                try:
                    for name, (path, per_request, connections) in SCENARIOS.items():
                        result = wrk(
                            server.base + path, bodies=bodies[per_request], token=token,
                            connections=connections, seconds=seconds, server=server,
                        )  # fmt: skip
                        if result.status_errors or result.socket_errors:
                            raise RuntimeError(f"{stack} {name}: requests failed")
                        rates[stack].setdefault(name, []).append(result.rps * per_request)
                finally:
                    server.stop()
    finally:
        postgres.stop()
    ratios = {
        name: [g / u for g, u in zip(rates["granian"][name], rates["uvicorn"][name], strict=True)]
        for name in SCENARIOS
    }
    return {
        "workers": WORKERS,
        "runs": runs,
        "seconds": seconds,
        "events_per_s": {
            stack: {name: summarize(values) for name, values in per.items()}
            for stack, per in rates.items()
        },
        "granian_to_uvicorn": {name: summarize(values) for name, values in ratios.items()},
    }
