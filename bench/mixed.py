"""``python -m bench.mixed``: the mixed scenario alone, at a chosen scale (issue #17).

1,000 single events/s and 50 searches/s offered together (open loop), then the same with
20 concurrent exports running, on a fresh data dir; prints the ingest p99 and errors and
the searches split into answered (p99) and refused (count, p99 of the refusal). ``make
bench`` runs the same scenario within the ingest suite, after its other phases; this entry
point is for checking it quickly, for comparing settings (``AUDITLINE_READS__*`` in the
environment reaches the server), and, with ``--base REV [--head REV]``, for comparing two
versions of the service in the same run: the sides alternate round by round, each on a
fresh data dir, as ``bench.ab`` does (``bench/results/mixed-ab.json``); with ``--vary
NAME=A,B`` the two sides are one version with a setting at two values. With ``--loads
0.5,0.75,1`` every offered rate is scaled (the exports stay at 20 clients), the loads taking
turns round by round (``bench/results/mixed-loads.json``): the load this machine carries
within the targets, where the full load does not always.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ab import alternating, checkouts
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
    parser.add_argument("--base", help="git revision to compare with (an A/B)")
    parser.add_argument("--head", help="with --base: the other revision (default: working tree)")
    parser.add_argument(
        "--vary", metavar="NAME=BASE,HEAD",
        help="an A/B of one setting instead of two revisions: the server's environment "
        "variable NAME is BASE on one side and HEAD on the other (the working tree's code)",
    )  # fmt: skip
    parser.add_argument(
        "--loads", metavar="L1,L2,...",
        help="a sweep instead: the offered rates times each of these, taking turns by round",
    )  # fmt: skip
    args = parser.parse_args()
    work = ROOT / "bench" / ".work-mixed"
    if args.loads is not None:
        sweep(args, work, [float(load) for load in args.loads.split(",")])
        return
    if args.base is not None:
        compare(args, work)
        return
    if args.vary is not None:
        vary(args, work)
        return
    runs = [_run(work, args) for _ in range(args.runs)]
    if args.out:
        finished = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.write_text(json.dumps({"runs": runs, "finished_at": finished}, indent=2))


def _run(work: Path, args: argparse.Namespace, load: float = 1.0) -> dict[str, Any]:
    """One run on a fresh data dir, its summary printed."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        result = run_mixed(work, workers=args.workers, seconds=args.seconds,
                           batches=args.batches, load=load)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for line in summary_lines(result):
        print(line, flush=True)
    return result


def compare(args: argparse.Namespace, work: Path) -> None:
    """*args.runs* rounds of both revisions, alternating, and the medians side by side."""
    with checkouts(work.parent / ".work-mixed-trees", args.base, args.head) as sources:
        # each side's server runs its revision's code
        runs = _alternate(
            args, work, {side: {"PYTHONPATH": str(src)} for side, src in sources.items()}
        )
    _report(args, {"base": args.base, "head": args.head or "working tree", "runs": runs})


def vary(args: argparse.Namespace, work: Path) -> None:
    """*args.runs* rounds of the working tree with one environment setting at each of two
    values, alternating as :func:`compare` does (``bench/results/mixed-ab.json``)."""
    name, _, values = args.vary.partition("=")
    sides = dict(zip(("base", "head"), values.split(","), strict=True))
    runs = _alternate(args, work, {side: {name: value} for side, value in sides.items()})
    _report(args, {"base": f"{name}={sides['base']}", "head": f"{name}={sides['head']}",
                   "command": f"python -m bench.mixed --vary {args.vary} --runs {args.runs}",
                   "runs": runs})  # fmt: skip


def sweep(args: argparse.Namespace, work: Path, loads: list[float]) -> None:
    """*args.runs* rounds of each load; each round takes the loads in turn, starting one
    further along than the round before, so no load always runs first."""
    runs: dict[str, list[dict[str, Any]]] = {str(load): [] for load in loads}
    for round_ in range(args.runs):
        for load in loads[round_ % len(loads) :] + loads[: round_ % len(loads)]:
            print(f"round {round_ + 1} load {load}", flush=True)
            runs[str(load)].append(_run(work, args, load))
    out = args.out or ROOT / "bench" / "results" / "mixed-loads.json"
    out.write_text(json.dumps({
        "command": f"python -m bench.mixed --loads {args.loads} --runs {args.runs}",
        "loads": loads, "runs": runs,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, indent=2))  # fmt: skip
    for load, rounds in runs.items():
        mixed = ", ".join(f"{r['ingest_mixed']['p99_ms']:.0f}" for r in rounds)
        exports = ", ".join(f"{r['exports']['ingest']['p99_ms']:.0f}" for r in rounds)
        print(f"load {load}: ingest p99 with searches {mixed} ms; + 20 exports {exports} ms")


def _alternate(
    args: argparse.Namespace, work: Path, environments: dict[str, dict[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    """*args.runs* rounds per side, alternating, each side's server started with its
    environment variables (they reach it: ``bench.servers._service_env``)."""
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    try:
        for round_, side in alternating(args.runs):
            os.environ.update(environments[side])
            shown = " ".join(f"{k}={v}" for k, v in environments[side].items())
            print(f"round {round_ + 1} {side} ({shown})", flush=True)
            runs[side].append(_run(work, args))
    finally:
        for name in environments["base"]:
            os.environ.pop(name, None)
    return runs


def _report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Write the A/B (``bench/results/mixed-ab.json`` unless ``--out``), and print the
    medians side by side."""
    runs = result["runs"]
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = args.out or ROOT / "bench" / "results" / "mixed-ab.json"
    out.write_text(json.dumps(result, indent=2))
    shown = [("ingest_alone", "p99_ms"), ("ingest_mixed", "p99_ms"),
             ("search_mixed", "answered_p99_ms"), ("search_mixed", "refused")]  # fmt: skip
    for phase, field in shown:
        cells = []
        for side in ("base", "head"):
            values = [r[phase][field] for r in runs[side]]
            cells.append(f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"{phase} {field:<16} base {cells[0]:>26}   head {cells[1]:>26}")


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
