"""Ingest beside an old snapshot: what one long-open transaction does to ingest latency.

``python -m bench.horizon`` (issue #17). One server (``auditline serve``, two API
processes, embedded PostgreSQL) takes single events at a fixed offered rate (open loop,
``bench.openloop``) while, in some rounds, another session keeps one ``REPEATABLE READ``
transaction open for the whole window: what ``pg_dump`` (``auditline backup``) does for
its whole run, and what any long export, report or idle-in-transaction client does.
Nothing else runs, so the snapshot costs no CPU of its own. Conditions, alternating
round by round on one server:

* ``no snapshot``: ingest alone, the baseline;
* ``snapshot held``: the old snapshot open from the window's first second to its last;
* ``snapshot held, no rollups``: the same with the hourly rollups' triggers disabled, for
  attribution only (the rollups then count nothing; they are re-enabled afterwards).

Per round: p50 and p99, and the p99 of each slice of ``--slice`` seconds, which shows
whether latency grows with the snapshot's age. An old snapshot stops PostgreSQL from
pruning the row versions every commit leaves behind; a row updated by every commit
(a rollup counter of the current hour) then grows a chain of versions that each later
update must walk. Results go to ``bench/results/horizon.json``; with ``--base REV
[--head REV]`` both versions run in turns on fresh servers, as ``bench.ab`` alternates
them, into ``horizon-base.json`` and ``horizon-head.json``. Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from auditline.storage.embedded import EmbeddedPostgres
from bench import openloop
from bench.ab import alternating, checkouts
from bench.ingest import TENANT, ensure_tenant, token_for
from bench.report import environment
from bench.servers import start_auditline
from bench.workload import write_bodies

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONDITIONS = ("no snapshot", "snapshot held", "snapshot held, no rollups")


def _rollups(url: str, *, enabled: bool) -> None:
    """Enable or disable the rollups' insert triggers on ``events`` (by name, so that
    revisions with different triggers compare: before migration 0021 there were two)."""
    verb = "ENABLE" if enabled else "DISABLE"
    with psycopg.connect(url, autocommit=True) as conn:
        names = conn.execute(
            """SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass
                 AND tgname LIKE 'events\\_rollup\\_%insert' AND tgparentid = 0"""
        ).fetchall()
        for (name,) in names:
            conn.execute(
                sql.SQL("ALTER TABLE events {} TRIGGER {}").format(
                    sql.SQL(verb), sql.Identifier(name)
                )
            )


def _window(
    port: int, bodies: list[bytes], token: str, *, rate: float, seconds: int, slice_s: int
) -> dict[str, Any]:
    result = asyncio.run(
        openloop.run("127.0.0.1", port, "/api/v1/logs", bodies, token, rate=rate, seconds=seconds)
    )
    windows = result.by_due(slice_s)
    slices = [windows.get(i, []) for i in range(-(-seconds // slice_s))]
    return {
        "achieved_rps": result.achieved_rps,
        "errors": result.errors,
        "p50_ms": result.percentile(50),
        "p99_ms": result.percentile(99),
        "slice_p99_ms": [openloop.percentile(part, 99) for part in slices],
    }


def run(work: Path, *, rounds: int, seconds: int, rate: float, slice_s: int) -> dict[str, Any]:
    """*rounds* windows of each condition, alternating, on one fresh server."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data_dir = work / "data"
    bodies = write_bodies(work / "single.ndjson", count=5000, events_per_body=1, seed=1)
    lines = bodies.read_bytes().splitlines()
    server = start_auditline(data_dir, workers=2, log=work / "server.log")
    windows: dict[str, list[dict[str, Any]]] = {c: [] for c in CONDITIONS}
    try:
        ensure_tenant(server, data_dir, TENANT)
        token = token_for(data_dir, "user", TENANT)
        url = EmbeddedPostgres(data_dir).url()
        _window(server.port, lines, token, rate=rate, seconds=10, slice_s=10)  # warm-up
        for round_ in range(rounds):
            order = CONDITIONS if round_ % 2 == 0 else CONDITIONS[::-1]
            for condition in order:
                rollups = condition != "snapshot held, no rollups"
                _rollups(url, enabled=rollups)
                with psycopg.connect(url) as old:
                    if condition != "no snapshot":
                        old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        old.execute("SELECT count(*) FROM tenant_log_heads").fetchone()
                    window = _window(server.port, lines, token, rate=rate, seconds=seconds,
                                     slice_s=slice_s)  # fmt: skip
                    old.rollback()
                _rollups(url, enabled=True)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM")  # the versions the snapshot kept go before the next
                windows[condition].append(window)
                by_slice = " ".join(f"{v:.0f}" for v in window["slice_p99_ms"])
                print(f"round {round_ + 1} {condition:<26} p50 {window['p50_ms']:7.1f}  "
                      f"p99 {window['p99_ms']:8.1f} ms  by {slice_s} s: {by_slice}",
                      flush=True)  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rate": rate, "seconds": seconds, "slice_seconds": slice_s, "rounds": rounds,
        "workers": 2, "windows": windows,
        "environment": environment(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.horizon")
    parser.add_argument("--rounds", type=int, default=2, help="windows of each condition")
    parser.add_argument("--seconds", type=int, default=30, help="seconds per window")
    parser.add_argument("--rate", type=float, default=1000, help="single events per second")
    parser.add_argument("--slice", type=int, default=5, dest="slice_s", help="p99 slices (s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "horizon.json")
    parser.add_argument("--base", help="git revision to compare with: both sides run, in turn "
                        "(bench/results/horizon-base.json and horizon-head.json)")  # fmt: skip
    parser.add_argument("--head", help="with --base: the other revision (default: working tree)")
    parser.add_argument("--passes", type=int, default=1, help="with --base: turns per side")
    args = parser.parse_args()
    work = ROOT / "bench" / ".work-horizon"
    measure = partial(run, work, rounds=args.rounds, seconds=args.seconds, rate=args.rate,
                      slice_s=args.slice_s)  # fmt: skip
    if args.base is None:
        _write(args.out, measure())
        return
    sides: dict[str, dict[str, Any]] = {}
    revisions = {"base": args.base, "head": args.head or "working tree"}
    with checkouts(work.parent / ".work-horizon-trees", args.base, args.head) as sources:
        for _, side in alternating(args.passes):
            os.environ["PYTHONPATH"] = str(sources[side])  # the server's code
            print(f"{side} ({revisions[side]})", flush=True)
            result = measure()
            if side in sides:  # a later pass: its windows join the first's
                for condition, windows in result["windows"].items():
                    sides[side]["windows"][condition] += windows
            else:
                sides[side] = result | {"label": f"{side}: {revisions[side]}"}
    for side, result in sides.items():
        _write(RESULTS / f"horizon-{side}.json", result)


def _write(path: Path, result: dict[str, Any]) -> None:
    """*result* with each condition's median p99, over every window it ran."""
    medians = {c: statistics.median(w["p99_ms"] for w in ws) for c, ws in result["windows"].items()}
    path.write_text(json.dumps(result | {"median_p99_ms": medians}, indent=2) + "\n")


if __name__ == "__main__":
    main()
