"""``python -m bench`` (``make bench``): run the benchmark suite and write the report.

Results go to ``bench/results/*.json`` (machine-readable) and ``docs/BENCHMARKS.md`` with
plots in ``docs/img/``. Benchmarks never run in ``make test``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import backup, ingest, report, stack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="one short run, fewer levels")
    parser.add_argument("--runs", type=int, default=3, help="repetitions per scenario")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per load step")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report")
    parser.add_argument(
        "--suites",
        default="ingest,stack,search,stream,queue,retention,archive,backup,horizon,opensearch",
        help="comma-separated: ingest, stack, search, stream, queue, retention, archive, "
        "backup, horizon, opensearch",
    )
    parser.add_argument(
        "--search-events", type=int, default=1_000_000, help="events the search suite seeds"
    )
    parser.add_argument(
        "--backup-events", type=int, default=1_000_000, help="events the backup suite seeds"
    )
    args = parser.parse_args()
    suites = set(args.suites.split(","))
    runs, seconds = (1, 5) if args.quick else (args.runs, args.seconds)

    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report_only and "search" in suites:
        # Its own process and server: the search suite seeds a database of its own.
        events = 100_000 if args.quick else args.search_events
        subprocess.run(
            [sys.executable, "-m", "bench.search", "--events", str(events), "--label", "latest"],
            check=True,
        )
    if not args.report_only and "archive" in suites:
        # Its own process and server too (bench/archive.py): archival and restore rows/s,
        # bytes per event hot and in Parquet.
        events = 100_000 if args.quick else 1_000_000
        subprocess.run(
            [sys.executable, "-m", "bench.archive", "--events", str(events), "--fresh"],
            check=True,
        )
    if not args.report_only and "opensearch" in suites:
        # Its own process, PostgreSQL and OpenSearch node (bench/opensearch.py): indexing
        # throughput, lag under 1,000 events/s, the search mix on both backends.
        events = 100_000 if args.quick else args.search_events
        subprocess.run(
            [sys.executable, "-m", "bench.opensearch", "--events", str(events)], check=True
        )
    if not args.report_only and "ingest" in suites:
        work = ROOT / "bench" / ".work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        result = ingest.run_ingest(work, runs=runs, seconds=seconds, quick=args.quick)
        result["environment"] = report.environment()
        result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2))
    if not args.report_only and "stack" in suites:
        work = ROOT / "bench" / ".work-stack"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        result = stack.run_stack(work, runs=runs, seconds=seconds)
        (RESULTS / "stack.json").write_text(json.dumps(result, indent=2))
    if not args.report_only and "stream" in suites:
        # Its own process and server (bench/stream.py): 100 watchers, 2,000 events/s.
        rounds, stream_seconds = ("1", "5") if args.quick else ("4", "20")
        subprocess.run(
            [sys.executable, "-m", "bench.stream", "--rounds", rounds,
             "--seconds", stream_seconds],
            check=True,
        )  # fmt: skip
    if not args.report_only and "queue" in suites:
        # Its own process: an embedded PostgreSQL and an ElasticMQ of its own.
        tasks = 2_000 if args.quick else 10_000
        subprocess.run([sys.executable, "-m", "bench.queue", "--tasks", str(tasks)], check=True)
    if not args.report_only and "retention" in suites:
        # Its own process and server: a month of events removed twice beside ingest.
        events = 50_000 if args.quick else 1_000_000
        subprocess.run([sys.executable, "-m", "bench.retention", "--events", str(events)],
                       check=True)  # fmt: skip
    if not args.report_only and "backup" in suites:
        events = 100_000 if args.quick else args.backup_events
        result = backup.run(ROOT / "bench" / ".work" / "backup", events=events, tenants=100,
                            levels=[1, 6])  # fmt: skip
        (RESULTS / "backup.json").write_text(json.dumps(result, indent=2) + "\n")
    if not args.report_only and "horizon" in suites:
        # Its own process and server: ingest while an old snapshot is held (bench/horizon.py).
        seconds_held = "10" if args.quick else "30"
        subprocess.run([sys.executable, "-m", "bench.horizon", "--seconds", seconds_held],
                       check=True)  # fmt: skip
    report.write(RESULTS, ROOT / "docs")
    print(f"wrote {ROOT / 'docs' / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
