"""``python -m bench.mixed``: the mixed scenario alone, at a chosen scale (issue #17).

1,000 single events/s and 50 searches/s offered together (open loop), then the same with
20 concurrent exports running, on a fresh data dir; prints the ingest p99 and errors and
the searches split into answered (p99) and refused (count, p99 of the refusal). ``make
bench`` runs the same scenario within the ingest suite, after its other phases; this entry
point is for checking it quickly, and for comparing settings
(``AUDITLINE_READS__*`` in the environment reaches the server).
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ingest import run_mixed

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mixed")
    parser.add_argument("--workers", type=int, default=2, help="API processes")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per phase")
    parser.add_argument("--batches", type=int, default=100, help="1,000-event batches seeded")
    parser.add_argument("--runs", type=int, default=1, help="repetitions, each on a fresh dir")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="write the runs as JSON (bench/results/mixed.json is what the report reads)",
    )  # fmt: skip
    args = parser.parse_args()
    work = ROOT / "bench" / ".work-mixed"
    runs = []
    for _ in range(args.runs):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            result = run_mixed(work, workers=args.workers, seconds=args.seconds,
                               batches=args.batches)  # fmt: skip
        finally:
            shutil.rmtree(work / "mixed-data", ignore_errors=True)
        runs.append(result)
        for line in summary_lines(result):
            print(line, flush=True)
    if args.out:
        finished = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.write_text(json.dumps({"runs": runs, "finished_at": finished}, indent=2))


def summary_lines(run: dict[str, Any]) -> list[str]:
    def side(name: str, s: dict[str, float]) -> str:
        return (
            f"{name:<26} p99 {s['p99_ms']:8.1f} ms  errors {s['errors']:5.0f}  "
            f"answered {s['answered']:5.0f} (p99 {s['answered_p99_ms']:8.1f} ms)  "
            f"refused {s['refused']:5.0f} (p99 {s['refused_p99_ms']:6.1f} ms)"
        )

    x = run["exports"]
    return [
        side("ingest alone", run["ingest_alone"]),
        side("ingest with searches", run["ingest_mixed"]),
        side("searches with ingest", run["search_mixed"]),
        side("ingest, + 20 exports", x["ingest"]),
        side("searches, + 20 exports", x["search"]),
        f"exports: {x['exports']}",
    ]


if __name__ == "__main__":
    main()
