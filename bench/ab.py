"""``python -m bench.ab --base REV``: the same HTTP scenarios against two versions, alternating.

A claim that a change made nothing slower (or something faster) needs both versions
measured in the same run on the same machine: absolute figures drift here by a quarter
between runs (docs/BENCHMARKS.md). This runs *REV* ("base") and the working tree or
``--head REV`` ("head"; revisions are checked out in temporary worktrees) in turns, each
round starting with the other side, each side on its own data dir, and prints the median
and range of each scenario per side:

* searches: the auditor mix of the ingest suite (search, filters, full text, statistics)
  over a 100 k-event tenant, offered at 50/s open loop (p50 and p99 ms);
* reads by id: ``GET /api/v1/logs/{id}``, closed loop (wrk), 8 connections (requests/s;
  each read also writes its access record);
* single events: ``POST /api/v1/logs``, closed loop, 32 connections (requests/s);
* bulk: ``POST /api/v1/logs/bulk`` of 1,000 events, 4 connections (events/s).

Before each side's scenarios the database is vacuumed and analyzed, so the autovacuum of
the previous writes does not land in the reads.

Results go to ``bench/results/ab.json``; nothing here runs in ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from auditline.storage.embedded import EmbeddedPostgres
from bench import openloop
from bench.ingest import (
    SEARCH_TENANT,
    TENANT,
    ensure_tenant,
    seed_search_tenant,
    settle,
    token_for,
)
from bench.servers import Process, start_auditline, wrk
from bench.workload import write_bodies, write_search_paths

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work-ab"


def _scenarios(
    server: Process, data_dir: Path, files: dict[str, Path], seconds: int
) -> dict[str, float]:
    """The reads first, on the seeded tenant as it is, then the writes."""
    auditor = token_for(data_dir, "auditor", SEARCH_TENANT)
    searches = asyncio.run(openloop.run(
        "127.0.0.1", server.port, "", files["searches"].read_bytes().splitlines(), auditor,
        rate=50, seconds=seconds, connections=16, method="GET",
    ))  # fmt: skip
    reads = wrk(
        server.base + "/api/v1/logs", bodies=files["reads"], token=auditor, connections=8,
        seconds=seconds, server=server, method="GET",
    )  # fmt: skip
    writer = token_for(data_dir, "user", TENANT)
    single = wrk(
        server.base + "/api/v1/logs", bodies=files["single"], token=writer, connections=32,
        seconds=seconds, server=server,
    )  # fmt: skip
    bulk = wrk(
        server.base + "/api/v1/logs/bulk", bodies=files["bulk"], token=writer, connections=4,
        seconds=seconds, server=server,
    )  # fmt: skip
    for result in (single, bulk, reads):
        if result.status_errors or result.socket_errors:
            raise RuntimeError(f"errors under load: {result}")
    if searches.errors:
        raise RuntimeError(f"{searches.errors} search errors")
    return {
        "search_p50_ms": searches.percentile(50),
        "search_p99_ms": searches.percentile(99),
        "read_by_id_rps": reads.rps,
        "single_rps": single.rps,
        "bulk_events_per_s": bulk.rps * 1000,
    }


def _read_paths(server: Process, data_dir: Path, path: Path) -> Path:
    """Paths of 200 events of the searched tenant, one per line, for reads by id."""
    token = token_for(data_dir, "auditor", SEARCH_TENANT)
    response = httpx.get(
        server.base + "/api/v1/logs", params={"limit": 200},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )  # fmt: skip
    response.raise_for_status()
    ids = [item["id"] for item in response.json()["items"]]
    path.write_text("".join(f"/api/v1/logs/{i}\n" for i in ids))
    return path


@contextmanager
def checkouts(work: Path, base: str, head: str | None) -> Iterator[dict[str, Path]]:
    """The ``src`` directory of *base* and of *head* (default: the working tree), each
    revision checked out in a temporary worktree under *work* for the ``with`` block; the
    caller points a server at one side with ``PYTHONPATH``."""
    trees = {"base": work / "base", "head": work / "head" if head else ROOT}
    for side, rev in (("base", base), ("head", head)):
        if rev is not None:
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(trees[side]), rev],
                           cwd=ROOT, check=True)  # fmt: skip
    try:
        yield {side: tree / "src" for side, tree in trees.items()}
    finally:
        os.environ.pop("PYTHONPATH", None)
        for tree in trees.values():
            if tree != ROOT:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                               check=False)  # fmt: skip


def alternating(rounds: int) -> Iterator[tuple[int, str]]:
    """(round, side) in the order the sides are measured: each round starts with the side
    the previous one ended with, so neither side always runs first."""
    for round_ in range(rounds):
        for side in ("base", "head") if round_ % 2 == 0 else ("head", "base"):
            yield round_, side


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--base", required=True, help="git revision to compare with")
    parser.add_argument("--head", help="git revision to compare (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    files = {
        "single": write_bodies(WORK / "single.ndjson", count=5000, events_per_body=1, seed=1),
        "bulk": write_bodies(WORK / "bulk.ndjson", count=20, events_per_body=1000, seed=2),
        "searches": write_search_paths(
            WORK / "searches.txt", count=500, seed=3, tenant=SEARCH_TENANT
        ),
    }
    runs: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    with checkouts(WORK, args.base, args.head) as sources:
        for round_, side in alternating(args.rounds):
            data_dir = WORK / f"data-{side}"
            os.environ["PYTHONPATH"] = str(sources[side])  # the server's code
            server = start_auditline(data_dir, log=WORK / f"{side}.log")
            try:
                ensure_tenant(server, data_dir, TENANT)
                if round_ == 0:
                    seed_search_tenant(server, data_dir, files["bulk"], batches=100)
                settle(EmbeddedPostgres(data_dir).url())  # the last round's writes too
                reads = WORK / f"reads-{side}.txt"
                files["reads"] = reads if reads.exists() else _read_paths(
                    server, data_dir, reads
                )  # fmt: skip
                figures = _scenarios(server, data_dir, files, args.seconds)
            finally:
                server.stop()
            runs[side].append(figures)
            print(f"round {round_ + 1} {side}: {figures}", flush=True)
    summary = {
        side: {
            name: {
                "median": statistics.median(r[name] for r in side_runs),
                "min": min(r[name] for r in side_runs),
                "max": max(r[name] for r in side_runs),
            }
            for name in side_runs[0]
        }
        for side, side_runs in runs.items()
    }
    result: dict[str, Any] = {
        "base": args.base, "head": args.head or "working tree", "rounds": args.rounds,
        "seconds": args.seconds, "runs": runs, "summary": summary,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    (ROOT / "bench" / "results" / "ab.json").write_text(json.dumps(result, indent=2))
    for name in summary["head"]:
        cells = [f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})"
                 for s in (summary["base"][name], summary["head"][name])]  # fmt: skip
        print(f"{name:20} base {cells[0]:>28}   head {cells[1]:>28}")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
