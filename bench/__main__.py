"""``python -m bench`` (``make bench``): run the benchmark suite and write the report.

Results go to ``bench/results/*.json`` (machine-readable) and ``docs/BENCHMARKS.md`` with
plots in ``docs/img/``. Benchmarks never run in ``make test``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from bench import ingest, report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="one short run, fewer levels")
    parser.add_argument("--runs", type=int, default=3, help="repetitions per scenario")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per load step")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report")
    args = parser.parse_args()
    runs, seconds = (1, 5) if args.quick else (args.runs, args.seconds)

    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        work = ROOT / "bench" / ".work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        result = ingest.run_ingest(work, runs=runs, seconds=seconds, quick=args.quick)
        result["environment"] = report.environment()
        result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2))
    report.write(RESULTS, ROOT / "docs")
    print(f"wrote {ROOT / 'docs' / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
