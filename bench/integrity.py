"""``python -m bench.integrity``: what tamper evidence costs and how fast it answers.

* **Ingest with sealing vs without**, alternating in one run: single events (wrk, 32
  connections) and bulk requests of 1,000 events (wrk, 4 connections), each side on its own
  data dir; sealing off is ``AUDITLINE_INTEGRITY__SEAL_INTERVAL_SECONDS=86400`` (the loop's
  first round runs at start-up, then never again during the run).
* **Sealing lag** at 1,000 single events/s offered (open loop): for each event, the time
  from its ``received_at`` (before its commit, so the figure is an upper bound) to the
  creation of the first checkpoint covering its ``seq``.
* **Proofs at scale**: one tenant of ``--proof-leaves`` events (``auditline bench seed``),
  sealed; then inclusion proofs (``GET /api/v1/logs/{id}/proof``) and consistency proofs
  offered at 50/s open loop, and the proof sizes.
* **Verification rate**: ``auditline verify --tenant`` over that tenant (leaves/s).

Results go to ``bench/results/integrity.json``; nothing here runs in ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from auditline.storage.embedded import EmbeddedPostgres
from bench import openloop
from bench.ingest import TENANT, ensure_tenant, settle, token_for
from bench.servers import Process, start_auditline, wrk
from bench.workload import write_bodies

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work-integrity"
RESULTS = ROOT / "bench" / "results" / "integrity.json"
SEALING_OFF = "86400"


def _start(data_dir: Path, *, sealing: bool, log: Path) -> Process:
    os.environ["AUDITLINE_INTEGRITY__SEAL_INTERVAL_SECONDS"] = "1" if sealing else SEALING_OFF
    try:
        return start_auditline(data_dir, log=log)
    finally:
        os.environ.pop("AUDITLINE_INTEGRITY__SEAL_INTERVAL_SECONDS", None)


def ingest_cost(rounds: int, seconds: int) -> dict[str, Any]:
    single, bulk = WORK / "single.ndjson", WORK / "bulk.ndjson"
    runs: dict[str, list[dict[str, float]]] = {"sealing": [], "no sealing": []}
    for round_ in range(rounds):
        sides = ["sealing", "no sealing"] if round_ % 2 == 0 else ["no sealing", "sealing"]
        for side in sides:
            data_dir = WORK / f"data-{side.replace(' ', '-')}"
            server = _start(data_dir, sealing=side == "sealing", log=WORK / f"{side}.log")
            try:
                ensure_tenant(server, data_dir, TENANT)
                token = token_for(data_dir, "admin", TENANT)
                if round_:  # analyzed while nearly empty, the planner's estimates stay
                    settle(EmbeddedPostgres(data_dir).url())  # far too low (operations.md)
                one = wrk(server.base + "/api/v1/logs", bodies=single, token=token,
                          connections=32, seconds=seconds, server=server)  # fmt: skip
                many = wrk(server.base + "/api/v1/logs/bulk", bodies=bulk, token=token,
                           connections=4, seconds=seconds, server=server)  # fmt: skip
            finally:
                server.stop()
            figures = {"single_rps": one.rps, "bulk_events_per_s": many.rps * 1000}
            runs[side].append(figures)
            print(f"round {round_ + 1} {side}: {figures}", flush=True)
    medians = {
        side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in runs.items()
    }
    ratio = {k: medians["sealing"][k] / medians["no sealing"][k] for k in medians["sealing"]}
    return {"runs": runs, "median": medians, "sealing_over_none": ratio}


def sealing_lag(seconds: int, rate: float) -> dict[str, Any]:
    data_dir = WORK / "data-lag"
    server = _start(data_dir, sealing=True, log=WORK / "lag.log")
    try:
        ensure_tenant(server, data_dir, TENANT)
        token = token_for(data_dir, "admin", TENANT)
        bodies = [line.encode() for line in
                  (WORK / "single.ndjson").read_text().splitlines()]  # fmt: skip
        started = datetime.now(UTC)
        load = asyncio.run(openloop.run("127.0.0.1", server.port, "/api/v1/logs", bodies, token,
                                        rate=rate, seconds=seconds))  # fmt: skip
        time.sleep(3)  # the last events' checkpoints
        with psycopg.connect(EmbeddedPostgres(data_dir).url(), autocommit=True) as conn:
            lags = [float(r[0]) for r in conn.execute(
                """SELECT extract(epoch FROM
                          (SELECT min(c.created_at) FROM checkpoints c
                            WHERE c.tenant_id = e.tenant_id AND c.tree_size > e.seq)
                          - e.received_at)
                     FROM events e
                    WHERE e.tenant_id = %s AND e.received_at >= %s""",
                (TENANT, started),
            ).fetchall() if r[0] is not None]  # fmt: skip
    finally:
        server.stop()
    lags.sort()
    lag_ms = {name: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000
              for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}  # fmt: skip
    return {
        "offered_rps": rate, "achieved_rps": load.achieved_rps, "errors": load.errors,
        "events": len(lags), "lag_ms": lag_ms,
    }  # fmt: skip


def proofs_at_scale(
    leaves: int, seconds: int, data_dir: Path | None = None, *, seed_only: bool = False
) -> dict[str, Any]:
    """With *data_dir* the tenant is seeded there, or reused if it was (seeding 10 M events
    takes half an hour, and need not happen on a quiet machine)."""
    tenant = "proof-000"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    seeded = None
    if data_dir is None or not data_dir.exists():
        data_dir = data_dir or WORK / "data-proofs"
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "auditline", "bench", "seed", "--events", str(leaves),
             "--tenants", "1", "--prefix", "proof", "--data-dir", str(data_dir),
             "--no-progress"], check=True, env=env,
        )  # fmt: skip
        seeded = time.monotonic() - started
    if seed_only:
        return {"seed_seconds": seeded}
    server = _start(data_dir, sealing=True, log=WORK / "proofs.log")
    url = EmbeddedPostgres(data_dir).url()
    try:
        started = time.monotonic()
        while True:  # the sealing loop catches up in rounds of max_leaves_per_seal
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT max(tree_size) FROM checkpoints WHERE tenant_id = %s",
                                   (tenant,)).fetchone()  # fmt: skip
            if row and row[0] is not None and row[0] >= leaves:
                break
            time.sleep(1)
        sealed = time.monotonic() - started
        settle(url)
        token = token_for(data_dir, "auditor", tenant)
        with psycopg.connect(url) as conn:
            ids = [str(r[0]) for r in conn.execute(
                "SELECT id FROM events WHERE tenant_id = %s ORDER BY random() LIMIT 2000",
                (tenant,)).fetchall()]  # fmt: skip
        paths = [f"/api/v1/logs/{i}/proof".encode() for i in ids]
        inclusion = asyncio.run(openloop.run("127.0.0.1", server.port, "", paths, token,
                                             rate=50, seconds=seconds, method="GET"))  # fmt: skip
        rng = random.Random(7)
        consistency_paths = [
            f"/api/v1/integrity/consistency?from={rng.randrange(1, leaves)}&to={leaves}".encode()
            for _ in range(500)
        ]
        consistency = asyncio.run(openloop.run(
            "127.0.0.1", server.port, "", consistency_paths, token, rate=50, seconds=seconds,
            method="GET"))  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        sample = httpx.get(server.base + paths[0].decode(), headers=headers).json()
        sample_c = httpx.get(server.base + consistency_paths[0].decode(), headers=headers).json()
    finally:
        server.stop()
    started = time.monotonic()
    verified = subprocess.run(
        [sys.executable, "-m", "auditline", "verify", "--tenant", tenant, "--data-dir",
         str(data_dir)], capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    verify_seconds = time.monotonic() - started
    return {
        "leaves": leaves, "seed_seconds": seeded, "seal_seconds": sealed,
        "seal_leaves_per_s": leaves / sealed,
        "inclusion_ms": {"p50": inclusion.percentile(50), "p99": inclusion.percentile(99),
                         "errors": inclusion.errors, "requests": len(inclusion.latencies_ms)},
        "consistency_ms": {"p50": consistency.percentile(50), "p99": consistency.percentile(99),
                           "errors": consistency.errors},
        "inclusion_path_hashes": len(sample["inclusion_path"]),
        "inclusion_proof_bytes": len(json.dumps(sample)),
        "consistency_path_hashes": len(sample_c["consistency_path"]),
        "verify_seconds": verify_seconds, "verify_leaves_per_s": leaves / verify_seconds,
        "verify_ok": verified.returncode == 0, "verify_output": verified.stdout[-500:],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.integrity", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--lag-rate", type=float, default=1000)
    parser.add_argument("--proof-leaves", type=int, default=10_000_000)
    parser.add_argument("--parts", default="ingest,lag,proofs")
    parser.add_argument(
        "--proof-data", type=Path, default=None,
        help="data dir of the proofs tenant: seeded there if missing, else reused (and kept)",
    )  # fmt: skip
    parser.add_argument("--seed-only", action="store_true", help="seed --proof-data and stop")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if args.seed_only:
        print(proofs_at_scale(args.proof_leaves, args.seconds, args.proof_data, seed_only=True))
        return
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    write_bodies(WORK / "single.ndjson", count=5000, events_per_body=1, seed=1)
    write_bodies(WORK / "bulk.ndjson", count=20, events_per_body=1000, seed=2)
    result: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    try:
        if "ingest" in parts:
            result["ingest"] = ingest_cost(args.rounds, args.seconds)
        if "lag" in parts:
            result["lag"] = sealing_lag(args.seconds, args.lag_rate)
        if "proofs" in parts:
            result["proofs"] = proofs_at_scale(args.proof_leaves, args.seconds, args.proof_data)
    finally:
        for data_dir in WORK.glob("data-*"):
            if (data_dir / "postgres" / "postmaster.pid").exists():
                EmbeddedPostgres(data_dir).stop(force=True, mode="fast")
        result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        RESULTS.write_text(json.dumps(result, indent=2))
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
