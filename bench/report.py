"""Turn ``bench/results/*.json`` into ``docs/BENCHMARKS.md`` and its plots."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

SECTIONS = ["ingest-notes.md", "search.md", "search-totals.md"]


def environment() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk = shutil.which("wrk")  # only the ingest and stack suites need it
    wrk_version = (
        subprocess.run(
            [wrk, "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[:1]
        if wrk
        else []
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "wrk": wrk_version[0] if wrk_version else "n/a",
    }


_PROCESSES = {"group_commit": "one API process", "group_commit_2_workers": "two API processes"}


def _fmt(summary: dict[str, float], digits: int = 0, unit: str = "") -> str:
    f = f"{{:,.{digits}f}}"
    return (
        f"{f.format(summary['median'])}{unit} "
        f"({f.format(summary['min'])}-{f.format(summary['max'])})"
    )


def _row(*cells: object) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _head(*cells: object) -> list[str]:
    """A Markdown table's header row and the separator under it."""
    return [_row(*cells), "|" + "---|" * len(cells)]


def _cpu(parts: dict[str, dict[str, float]]) -> str:
    """A CPU cost split as "total (client + PostgreSQL)", medians in milliseconds."""
    client, postgres = parts["client"]["median"], parts["postgres"]["median"]
    return f"{parts['total']['median']:,.0f} ({client:,.0f} + {postgres:,.0f})"


def _spread(values: list[float], digits: int = 1) -> str:
    """Median (min-max) of *values*, "-" if none; NaN (nothing refused in a run) is left out."""
    values = [v for v in values if v == v]
    if not values:
        return "-"
    return _fmt({"median": statistics.median(values), "min": min(values),
                 "max": max(values)}, digits)  # fmt: skip


def _mixed_section(runs: list[dict[str, Any]]) -> list[str]:
    """Ingest while searching: each side alone and together, medians over the runs."""
    lines = [
        "## Mixed: ingest while searching",
        "",
        "Auditor searches over the last 24 hours of a tenant holding 100 k events, offered at",
        "50/s (tenant and window; + user; + action and resource; a word; statistics; each",
        "search is itself recorded as an access event) alone, then together with 1,000",
        "single events/s to another tenant, both open loop from one generator. Every heavy",
        "phase before (bulk, raw `COPY`) is followed by VACUUM ANALYZE, so its autovacuum is",
        "not measured here. Milliseconds, medians over the runs (min-max).",
        "",
        "| API processes | ingest p99 alone | ingest p99 with searches | search p50 alone "
        "| search p50 with ingest | search p99 alone | search p99 with ingest |",
        "|---|---|---|---|---|---|---|",
    ]
    for workers in sorted({run["workers"] for run in runs}):
        mine = [run for run in runs if run["workers"] == workers]

        def cell(side: str, key: str, mine: list[dict[str, Any]] = mine) -> str:
            values = [run[side][key] for run in mine]
            return _fmt({"median": statistics.median(values), "min": min(values),
                         "max": max(values)}, 1)  # fmt: skip

        lines.append(
            f"| {workers} | {cell('ingest_alone', 'p99_ms')} | {cell('ingest_mixed', 'p99_ms')} "
            f"| {cell('search_alone', 'p50_ms')} | {cell('search_mixed', 'p50_ms')} "
            f"| {cell('search_alone', 'p99_ms')} | {cell('search_mixed', 'p99_ms')} |"
        )
    errors = sum(run[side]["errors"] for run in runs for side in ("ingest_mixed", "search_mixed"))
    lines += [
        "",
        f"Errors (failed or non-2xx requests) while mixed, all runs: {errors}.",
        "",
        "Cores each side used (medians over the runs; the machine has 2):",
        "",
        "| API processes | phase | API | PostgreSQL | generator | total |",
        "|---|---|---|---|---|---|",
    ]
    phases = {
        "ingest alone": lambda run: run["ingest_alone"]["cores"],
        "searches alone": lambda run: run["search_alone"]["cores"],
        "both": lambda run: run["mixed_cores"],
    }
    for workers in sorted({run["workers"] for run in runs}):
        mine = [run for run in runs if run["workers"] == workers]
        for phase, cores_of in phases.items():
            parts = {
                side: statistics.median(cores_of(run)[side] for run in mine)
                for side in ("api", "postgres", "generator")
            }
            lines.append(
                f"| {workers} | {phase} | {parts['api']:.2f} | {parts['postgres']:.2f} "
                f"| {parts['generator']:.2f} | {sum(parts.values()):.2f} |"
            )
    return lines + _postgres_kinds(runs, phases)


def _admission_section(runs: list[dict[str, Any]]) -> list[str]:
    """Reads under admission (#17): searches answered or refused, with and without 20
    concurrent exports; medians over the runs (min-max)."""
    lines = [
        "### Reads never starve writes: searches answered and refused",
        "",
        "The same mixed load (1,000 single events/s and 50 searches/s offered), then again with",
        "20 auditors exporting the searched tenant's last 24 hours (NDJSON) one export after",
        "another, waiting `Retry-After` when refused. A search is either answered (its p99) or",
        "refused with a 503 by read admission (count, and the p99 of the time the refusal",
        "took). Targets: ingest p99 <= 100 ms and no ingest error; searches answered with",
        "p99 <= 500 ms or refused within 50 ms. Milliseconds, medians over the runs (min-max).",
        "",
        "| API processes | load | ingest p99 | ingest errors | searches answered | answered p99 "
        "| searches refused | refusal p99 | exports done / refused |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for workers in sorted({run["workers"] for run in runs}):
        lines += _admission_rows([run for run in runs if run["workers"] == workers], str(workers))
    return lines


def _admission_rows(runs: list[dict[str, Any]], first: str) -> list[str]:
    """The admission table's two rows (without and with exports) for *runs*, the first
    cell *first*."""

    variants = {
        "ingest + searches": [(run["ingest_mixed"], run["search_mixed"], None) for run in runs],
        "+ 20 exports": [
            (run["exports"]["ingest"], run["exports"]["search"], run["exports"]["exports"])
            for run in runs
        ],
    }
    lines = []
    for name, triples in variants.items():
        exports = "-"
        if triples[0][2] is not None:
            done = statistics.median(t[2]["completed"] for t in triples)
            refused = statistics.median(t[2]["refused"] for t in triples)
            exports = f"{done:.0f} / {refused:.0f}"
        lines.append(
            f"| {first} | {name} | {_spread([t[0]['p99_ms'] for t in triples])} "
            f"| {sum(t[0]['errors'] for t in triples)} "
            f"| {_spread([t[1]['answered'] for t in triples], 0)} "
            f"| {_spread([t[1]['answered_p99_ms'] for t in triples])} "
            f"| {_spread([t[1]['refused'] for t in triples], 0)} "
            f"| {_spread([t[1]['refused_p99_ms'] for t in triples])} | {exports} |"
        )
    return lines


def _mixed_ab_section(result: dict[str, Any]) -> list[str]:
    """The admission table for two revisions measured alternately in one run."""
    runs = result["runs"]
    command = result.get("command") or (
        f"python -m bench.mixed --base {result['base']} --head {result['head']} "
        f"--runs {len(runs['base'])}"
    )
    label = "settings" if "command" in result else "revisions"
    return [
        f"### Same run, alternating: `{_side(result, 'base')}` and `{_side(result, 'head')}`",
        "",
        f"`{command}`: the same scenario and targets as the table above, the two "
        f"{label} alternating round by round, each round on a fresh data dir (finished "
        f"{result['finished_at']}). Milliseconds, medians over the rounds (min-max).",
        "",
        "| version | load | ingest p99 | ingest errors | searches answered | answered p99 "
        "| searches refused | refusal p99 | exports done / refused |",
        "|---|---|---|---|---|---|---|---|---|",
        *_admission_rows(runs["base"], _row_label(result, "base")),
        *_admission_rows(runs["head"], _row_label(result, "head")),
    ]


def _mixed_loads_section(result: dict[str, Any]) -> list[str]:
    """The mixed scenario at shares of its offered load (``bench.mixed --loads``): every
    round's ingest p99, so the spread shows, and where the targets held in every round."""
    lines = [
        "### The mixed scenario at a share of its load: what two cores carry",
        "",
        f"`{result['command']}`: the scenario above with the offered ingest and search",
        "rates scaled (the exports stay at 20 clients), the loads taking turns round by round,",
        f"each round on a fresh data dir (finished {result['finished_at']}). Ingest p99 of",
        "every round as the load generator saw it, sorted, and the bucket of the service's",
        "own request-duration histogram its p99 fell in (`/metrics`: from the request's",
        "first look to its answer, so neither the generator's wait for one of its 64",
        "connections nor a request waiting in a socket for a busy event loop is in it). The",
        "other cells are medians over the rounds (min-max); cores in use count the API,",
        "PostgreSQL and the load generator, which share the 2 cores.",
        "",
        *_head(
            "offered",
            "phase",
            "ingest p99, each round (ms)",
            "rounds ≤ 100 ms",
            "the service's own p99 is within (ms), each round",
            "ingest errors",
            "searches answered p99",
            "refused",
            "refusal p99",
            "cores in use",
        ),
    ]

    for load in result["loads"]:
        rounds = result["runs"][str(load)]
        phases = {
            "ingest + searches": [(r["ingest_mixed"], r["search_mixed"], r["mixed_cores"])
                                  for r in rounds],
            "+ 20 exports": [(r["exports"]["ingest"], r["exports"]["search"],
                              r["exports"]["cores"]) for r in rounds],
        }  # fmt: skip
        offered = f"{round(1000 * load):,} events/s + {round(50 * load)} searches/s"
        for phase, triples in phases.items():
            p99s = sorted(t[0]["p99_ms"] for t in triples)
            served = sorted(t[0]["served"]["p99_at_most_ms"] for t in triples if "served" in t[0])
            busy = [sum(t[2][k] for k in ("api", "postgres", "generator")) for t in triples]
            lines.append(_row(
                offered, phase, ", ".join(f"{v:,.0f}" for v in p99s),
                f"{sum(v <= 100 for v in p99s)} of {len(p99s)}",
                ", ".join(f"{v:,.0f}" for v in served) or "-",
                sum(t[0]["errors"] for t in triples),
                _spread([t[1]["answered_p99_ms"] for t in triples]),
                _spread([t[1]["refused"] for t in triples], 0),
                _spread([t[1]["refused_p99_ms"] for t in triples]), _spread(busy, 2),
            ))  # fmt: skip
    return lines


def _side(result: dict[str, Any], side: str) -> str:
    """A side's name in an A/B table: a revision's short hash, or a setting as given."""
    name: str = result[side]
    return name if "command" in result else name[:7]


def _row_label(result: dict[str, Any], side: str) -> str:
    if "command" in result:  # two settings: neither is "before"
        return f"`{_side(result, side)}`"
    return f"{'before' if side == 'base' else 'after'} (`{_side(result, side)}`)"


_KINDS = ("connections", "parallel query", "autovacuum", "background", "unattributed")


def _postgres_kinds(
    runs: list[dict[str, Any]], phases: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]
) -> list[str]:
    """PostgreSQL's cores in each mixed phase by kind of process (``bench.servers.PostgresCpu``)."""
    if not all("postgres_by_kind" in cores_of(run) for run in runs for cores_of in phases.values()):
        return []  # results from before the split was recorded
    lines = [
        "",
        "PostgreSQL's cores by kind of process (medians over the runs): connections serve the",
        "API, parallel query workers help them, autovacuum and the background processes",
        "(checkpointer, WAL and background writers) are PostgreSQL's own upkeep;",
        "unattributed is the part of exited processes that no poll (every 0.25 s) saw.",
        "",
        *_head("API processes", "phase", *_KINDS),
    ]
    for workers in sorted({run["workers"] for run in runs}):
        mine = [run for run in runs if run["workers"] == workers]
        for phase, cores_of in phases.items():
            cells = [
                statistics.median(cores_of(run)["postgres_by_kind"].get(kind, 0.0) for run in mine)
                for kind in _KINDS
            ]
            lines.append(_row(workers, phase, *(f"{c:.2f}" for c in cells)))
    return lines


def _waits_section(waits: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Where the bulk phases' transactions spent their time, from pg_stat_activity."""
    if not waits:
        return []
    names = {**_PROCESSES, "raw_copy": "raw `COPY`"}
    kinds = list(next(iter(waits.values())))  # as bench.servers.WAIT_KINDS orders them
    return [
        "PostgreSQL connections in a transaction during the same phases, on average",
        "(`pg_stat_activity` every 50 ms; medians over the runs). All bulk requests are one",
        "tenant's, and a tenant's transactions take turns on its log head from the moment",
        'they lock it until they commit: a connection "waiting for a lock" waits for another',
        "transaction of the tenant (raw `COPY` takes turns only in the rollup triggers).",
        "Other is PostgreSQL's internal locks, on its buffers and its WAL.",
        "",
        *_head("phase", *kinds),
        *(
            _row(names.get(name, name), *(f"{per[kind]['median']:.2f}" for kind in kinds))
            for name, per in waits.items()
        ),
        "",
    ]


def _stack_section(result: dict[str, Any]) -> list[str]:
    """The same application under uvicorn and granian (``bench/stack.py``)."""
    names = list(result["granian_to_uvicorn"])
    ratios = [ratio["median"] for ratio in result["granian_to_uvicorn"].values()]
    return [
        "## Server stack",
        "",
        f"The same application factory with {result['workers']} worker processes under each",
        "HTTP server, on one database, alternating stacks (uvicorn with the options",
        f"`auditline serve` gives it); events/s, {result['runs']} runs of {result['seconds']} s.",
        "",
        *_head("server", *names),
        *(
            _row(stack, *(_fmt(per[name]) for name in names))
            for stack, per in result["events_per_s"].items()
        ),
        _row("granian / uvicorn", *(_fmt(result["granian_to_uvicorn"][name], 2) for name in names)),
        "",
        f"Median ratio over the scenarios: {statistics.median(ratios):.2f}.",
    ]


def _queue_section(result: dict[str, Any]) -> list[str]:
    """Tasks/s through each queue backend (``python -m bench.queue``)."""
    runs = result["runs"]
    return [
        "## Queue throughput",
        "",
        f"No-op tasks through `Jobs.submit` and one worker (`python -m bench.queue`), "
        f"{runs[0]['tasks']:,} tasks per run; submitting from {result['submitters']} concurrent "
        "callers (each task its own transaction: job row and queue or outbox row), then",
        "draining (receive, run, record the result, delete; SQS adds the outbox relay).",
        "SQS is a local ElasticMQ: the figures show our cost per task, not Amazon SQS's",
        "network round trips.",
        "",
        *_head("backend", "worker concurrency", "submit (tasks/s)", "drain (tasks/s)"),
        *(
            _row(
                r["backend"],
                r["concurrency"],
                f"{r['submit_per_s']:,.0f}",
                f"{r['drain_per_s']:,.0f}",
            )
            for r in runs
        ),
        "",
        f"Measured {result['finished_at']}.",
    ]


def _retention_section(result: dict[str, Any]) -> list[str]:
    """A month removed by batches and by a partition drop beside ingest (``bench.retention``)."""
    base = result["baseline"]
    scenarios = ("batched", "partition drop")
    return [
        "## Retention beside ingest",
        "",
        f"{result['events']:,} events of one month removed (`python -m bench.retention`), by "
        f"batches of {result['batch_size']:,} (working {result.get('duty', 1):g} of the time, "
        f"at least {result['pause_ms']} ms apart) and, another "
        "month, by dropping its partition (records per tenant, rollups forgotten, `event_ids`",
        f"rows after), while single events go to the same tenant at {result['rate']:g}/s "
        "(open loop). Target: ingest p99 at most twice the baseline's.",
        "",
        *_head(
            "removal", "rows/s", "seconds", "ingest p50 (ms)", "ingest p99 (ms)", "p99 / baseline"
        ),
        _row("none (baseline)", "", "", f"{base['p50_ms']:.1f}", f"{base['p99_ms']:.1f}", "1"),
        *(
            _row(
                name,
                f"{result[name]['rows_per_s']:,.0f}",
                f"{result[name]['seconds']:.1f}",
                f"{result[name]['ingest']['p50_ms']:.1f}",
                f"{result[name]['ingest']['p99_ms']:.1f}",
                f"{result[name]['ingest']['p99_vs_baseline']:.2f}",
            )
            for name in scenarios
        ),
        "",
        f"Measured {result['finished_at']}.",
    ]


def _horizon_section(result: dict[str, Any]) -> list[str]:
    """Ingest beside an old snapshot (``bench.horizon``): one row per window."""
    slice_s = result["slice_seconds"]
    rows = [
        _row(
            condition,
            str(i + 1),
            f"{w['p50_ms']:.1f}",
            f"{w['p99_ms']:.1f}",
            " / ".join(f"{v:.0f}" for v in w["slice_p99_ms"]),
            f"{w['errors']:.0f}",
        )
        for condition, windows in result["windows"].items()
        for i, w in enumerate(windows)
    ]
    title = result.get("label", "")
    return [
        f"## Ingest beside an old snapshot{f' ({title})' if title else ''}",
        "",
        f"Single events at {result['rate']:g}/s (open loop, two API processes) for "
        f"{result['seconds']} s per window, while another session holds one `REPEATABLE READ` "
        "transaction open for the whole window (as `pg_dump` does for a backup's whole run), "
        "or not; the conditions alternate on one server (`python -m bench.horizon`). "
        '"No rollups" disables the hourly rollups\' triggers for that window, to attribute '
        "the cost; it is not a configuration.",
        "",
        *_head(
            "condition",
            "window",
            "p50 (ms)",
            "p99 (ms)",
            f"p99 by {slice_s} s slice (ms)",
            "errors",
        ),
        *rows,
        "",
        f"Measured {result['finished_at']}.",
    ]


def _integrity_section(result: dict[str, Any]) -> list[str]:
    """What tamper evidence costs and how fast it answers (``python -m bench.integrity``)."""
    lines = ["## Tamper evidence (sealing, proofs, verification)", ""]
    if "ingest" in result:
        med, ratio = result["ingest"]["median"], result["ingest"]["sealing_over_none"]
        rounds = len(result["ingest"]["runs"]["sealing"])
        lines += [
            "Ingest with the sealing loop (one round a second) and with it idle, alternating, "
            f"{rounds} rounds, each side on its own data dir; one API process. Target: "
            "sealing costs at most 10 %.",
            "",
            *_head("load", "sealing", "no sealing", "sealing / none"),
            _row("single events, 32 connections (requests/s)",
                 f"{med['sealing']['single_rps']:,.0f}", f"{med['no sealing']['single_rps']:,.0f}",
                 f"{ratio['single_rps']:.2f}"),
            _row("bulk of 1,000, 4 connections (events/s)",
                 f"{med['sealing']['bulk_events_per_s']:,.0f}",
                 f"{med['no sealing']['bulk_events_per_s']:,.0f}",
                 f"{ratio['bulk_events_per_s']:.2f}"),
            "",
        ]  # fmt: skip
    if "lag" in result:
        lag = result["lag"]
        lines += [
            f"Sealing lag at {lag['offered_rps']:,.0f} single events/s offered "
            f"({lag['achieved_rps']:,.0f} achieved, {lag['errors']} errors, {lag['events']:,} "
            "events), from `received_at` to the first checkpoint covering the event: "
            f"p50 {lag['lag_ms']['p50']:,.0f} ms, p99 {lag['lag_ms']['p99']:,.0f} ms, max "
            f"{lag['lag_ms']['max']:,.0f} ms (target: p99 at most 2 s).",
            "",
        ]
    if "proofs" in result:
        pr = result["proofs"]
        lines += [
            f"One tenant of {pr['leaves']:,} events ("
            + (f"seeded in {pr['seed_seconds']:,.0f} s, " if pr["seed_seconds"] else "")
            + f"sealed from scratch in {pr['seal_seconds']:,.0f} s: "
            f"{pr['seal_leaves_per_s']:,.0f} leaves/s). Proofs through HTTP at 50/s open "
            "loop (target: p99 at most 20 ms):",
            "",
            *_head("proof", "p50 (ms)", "p99 (ms)", "errors", "hashes", "bytes"),
            _row("inclusion", f"{pr['inclusion_ms']['p50']:.1f}",
                 f"{pr['inclusion_ms']['p99']:.1f}", pr["inclusion_ms"]["errors"],
                 pr["inclusion_path_hashes"],
                 f"{pr['inclusion_proof_bytes']:,}"),
            _row("consistency", f"{pr['consistency_ms']['p50']:.1f}",
                 f"{pr['consistency_ms']['p99']:.1f}", pr["consistency_ms"]["errors"],
                 pr["consistency_path_hashes"], ""),
            "",
            f"`auditline verify --tenant` over it: {pr['verify_seconds']:,.0f} s, "
            f"{pr['verify_leaves_per_s']:,.0f} leaves/s "
            f"({'verified' if pr['verify_ok'] else 'FAILED'}).",
            "",
        ]  # fmt: skip
    return [*lines, f"Measured {result['finished_at']}."]


def _stream_section(result: dict[str, Any]) -> list[str]:
    """Live streams: the NOTIFY's cost and delivery under load (``python -m bench.stream``)."""
    before, watched = result["no_watchers_before"], result["watched"]
    after = result["no_watchers_after"]
    lines = [f"## Live streams ({result['watchers']} watchers)", ""]
    if result["notify_cost"]:
        cost = result["notify_cost"]["summary"]
        lines += [
            "The announcement every writing transaction sends (migration 0017's NOTIFY), "
            "closed-loop ingest at saturation with the trigger on and off, alternating: "
            f"single events {cost['single throughput change %']['median']:+.1f} %, bulk "
            f"{cost['bulk throughput change %']['median']:+.1f} % throughput (medians).",
            "",
        ]
    return [
        *lines,
        f"{before['offered_events_per_s']:,.0f} events/s offered (bulk requests of "
        f"{result['batch']}, open loop, {result['seconds']:g} s per phase) to "
        "`auditline serve --workers 2`, without watchers, with "
        f"{result['watchers']} watchers of the tenant, and without again:",
        "",
        *_head("phase", "events/s stored", "request p50 (ms)", "request p99 (ms)"),
        *(
            _row(name, f"{phase['events_per_s']:,.0f}", f"{phase['request_p50_ms']:,.1f}",
                 f"{phase['request_p99_ms']:,.1f}")
            for name, phase in (("no watchers", before), (f"{result['watchers']} watchers",
                                watched), ("no watchers again", after))
        ),
        "",
        f"Delivered {result['delivery_ms']['count']:,} messages: p50 "
        f"{result['delivery_ms']['p50']:,.0f} ms, p99 {result['delivery_ms']['p99']:,.0f} ms "
        f"from the request's send to the watcher's receipt; lost {result['lost']}, "
        f"duplicated {result['duplicated']}. API CPU per delivered message: "
        f"{result['api_cpu_us_per_message']:.1f} µs. Server RSS "
        f"{result['server_rss_mb']['before']:,.0f} → {result['server_rss_mb']['after']:,.0f} "
        f"MiB. Measured {result['when']}.",
    ]  # fmt: skip


def _archive_section(result: dict[str, Any]) -> list[str]:
    """Archival to Parquet and restore (``python -m bench.archive``)."""
    hot, arc, res = result["hot"], result["archive"], result["restore"]
    ratio = result["compression_ratio"]
    return [
        "## Archival and restore",
        "",
        f"{result['events']:,} events of {result['tenants']} tenants over {result['days']} "
        f"days (`python -m bench.archive`), archived to Parquet (zstd level "
        f"{result['zstd_level']}) in a local directory, then restored.",
        "",
        *_head("", "rows", "seconds", "rows/s"),
        _row("archive (read, encode, upload, verify, remove from hot)", f"{arc['rows']:,}",
             f"{arc['seconds']:.1f}", f"{arc['rows_per_second']:,}"),
        _row("restore (fetch, verify, insert)", f"{res['rows']:,}", f"{res['seconds']:.1f}",
             f"{res['rows_per_second']:,}"),
        "",
        f"Bytes per event: hot table {hot['bytes_per_event_table']:.0f}, with indexes "
        f"{hot['bytes_per_event_with_indexes']:.0f}; Parquet {arc['bytes_per_event']:.0f} "
        f"({ratio['table_vs_parquet']:g}x smaller than the table, "
        f"{ratio['with_indexes_vs_parquet']:g}x with its indexes). JSON columns: "
        f"{hot['json_compression']}. Restored rows identical to the seeded ones: "
        f"{'yes' if res['identical_to_seeded'] else 'NO'}. Measured {result['finished_at']}.",
    ]  # fmt: skip


def _passes(n: int) -> str:
    return (
        "one worker's indexing pass" if n == 1 else f"{n} indexing passes at once (as {n} workers)"
    )


def _opensearch_section(
    result: dict[str, Any], earlier: list[dict[str, Any]] | None = None
) -> list[str]:
    """The OpenSearch tier beside PostgreSQL (``python -m bench.opensearch``); the
    headline figures of *earlier* runs (``opensearch-run*.json``, kept by hand) follow."""
    ix, lag, search = result["indexing"], result["lag"], result["search"]
    pg, os_ = search["postgres"], search["opensearch"]

    def cell(s: dict[str, float]) -> str:
        return f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} / {s['p99_ms']:.1f}"

    lines = [
        "## OpenSearch search tier (issue 21)",
        "",
        f"{result['events']:,} events over {result['tenants']} tenants, 30 days "
        f"({ix['events']:,} seeded with the generator and seed of the search benchmark, the "
        f"rest written by the lag run; largest tenant {result['largest'][1]:,} events), in "
        f"PostgreSQL and in one OpenSearch 2.19 node ({result['heap']} heap, the test "
        f"harness's launcher) on the same machine, measured by `python -m bench.opensearch` "
        f"at {result['finished_at']} (load average at the end "
        f"{result['load_average'][0]:.1f}). {result.get('note', '')}".rstrip(),
        "",
        f"- **Indexing throughput** ({_passes(ix.get('tasks', 1))}, bulk requests of "
        f"{result['batch_size']:,}, tenant by tenant, from an empty index): "
        f"**{ix['events_per_second']:,} events/s** ({ix['events']:,} events in "
        f"{ix['seconds']} s). Index size {result['index_bytes'] / 2**20:.0f} MiB.",
        f"- **Index lag under {lag['rate']:,} events/s of ingest** ({lag['achieved_rate']:,} "
        f"achieved, {lag['seconds']:.0f} s, ten tenants, a pass every "
        f"{lag['interval_seconds']:g} s): from commit to searchable p50 "
        f"**{lag['lag_p50_s']} s**, p99 **{lag['lag_p99_s']} s**, max {lag['lag_max_s']} s. "
        "The pass interval sets the floor (an event waits for the next pass).",
        "",
        "Search latency, the same queries on the same data, each built once and timed on "
        f"both backends in turn (warm, {search['postgres_all']['n'] // len(pg)} runs of each "
        "kind; statistics are PostgreSQL's alone). First pages identical on both: "
        f"{search['first_pages_equal']} of {search['queries']}.",
        "",
        *_head("query", "what", "PostgreSQL p50 / p95 / p99 ms", "OpenSearch p50 / p95 / p99 ms"),
    ]
    for name, what in search["mix"].items():
        lines.append(_row(name, what, cell(pg[name]), cell(os_[name])))
    lines.append(_row("**all**", "the mix", cell(search["postgres_all"]),
                      cell(search["opensearch_all"])))  # fmt: skip
    heavy_pg, heavy_os = pg["word_common_large"]["p50_ms"], os_["word_common_large"]["p50_ms"]
    faster = "OpenSearch" if heavy_os < heavy_pg else "PostgreSQL"
    os_wins = [name for name in search["mix"] if os_[name]["p50_ms"] < pg[name]["p50_ms"]]
    lines += [
        "",
        f"The heaviest full-text query (a common word in the largest tenant, all time): "
        f"PostgreSQL {heavy_pg:.1f} ms p50, OpenSearch {heavy_os:.1f} ms p50: **{faster} is "
        "faster**. " + (
            "Why: PostgreSQL's plan walks the tenant's `(tenant_id, timestamp)` index "
            "newest first and stops after the page's matches (a common word matches within "
            "the first rows), while OpenSearch collects every matching document of the "
            "tenant in every month to sort them by time, and nothing stops early: profiled "
            "(`\"profile\": true`, docs/search.md), a word with 53,769 matches in the "
            "tenant made the query iterate 53,783 documents over the two monthly indices, "
            "most of the time in the top-hits collector (the deep page, which must also "
            "pass every match above its cursor, shows the same). Index sorting by "
            "`(ts_us, id)` descending would let each segment stop after a page, but "
            "OpenSearch refuses it on indices with "
            "`nested` fields (`cannot have nested fields when index sort is activated`), "
            "which the numeric metadata pairs are; a mapping without them (e.g. numbers as "
            "sortable encoded keywords) plus `reindex --all` is the way to that."
            if faster == "PostgreSQL" else
            "OpenSearch answers from its inverted index whatever the word's frequency."
        ),
        "",
        f"A rare word in the largest tenant, where PostgreSQL must look further: p50 "
        f"PostgreSQL {pg['word_rare_large']['p50_ms']:.1f} ms, OpenSearch "
        f"{os_['word_rare_large']['p50_ms']:.1f} ms. OpenSearch was faster at p50 on: "
        f"{', '.join(f'`{n}`' for n in os_wins) or 'none of the mix'}. One OpenSearch node "
        "of 512 MB heap on two cores is far from the cluster the tier is meant for.",
    ]  # fmt: skip
    for run in earlier or []:
        heavy = (run["search"]["postgres"]["word_common_large"]["p50_ms"],
                 run["search"]["opensearch"]["word_common_large"]["p50_ms"])  # fmt: skip
        lines += [
            "",
            f"An earlier run ({run['events']:,} events over {run['tenants']} tenants, "
            f"{run['finished_at']}, load average at the end "
            f"{run['load_average'][0]:.1f}): indexing {run['indexing']['events_per_second']:,} "
            f"events/s; lag p50 {run['lag']['lag_p50_s']} s, p99 {run['lag']['lag_p99_s']} s; "
            f"the mix p50 PostgreSQL {run['search']['postgres_all']['p50_ms']:.1f} ms, "
            f"OpenSearch {run['search']['opensearch_all']['p50_ms']:.1f} ms; common word in "
            f"the largest tenant p50 PostgreSQL {heavy[0]:.1f} ms, OpenSearch {heavy[1]:.1f} ms; "
            f"first pages identical {run['search']['first_pages_equal']} of "
            f"{run['search']['queries']}.",
        ]
    return lines


def _backup_section(result: dict[str, Any]) -> list[str]:
    """Backup and restore of the embedded database (``python -m bench.backup``)."""
    return [
        "## Backup and restore",
        "",
        f"`auditline backup` and `auditline restore` of {result['events']:,} events of "
        f"{result['tenants']} tenants ({result['database_bytes'] / 2**20:,.0f} MiB on disk; "
        "`python -m bench.backup`).",
        "",
        *_head("compression", "dump bytes/event", "backup (s)", "backup events/s",
               "restore (s)", "restore events/s"),
        *(
            _row(r["compress"], f"{r['dump_bytes_per_event']:.0f}", f"{r['backup_seconds']:.1f}",
                 f"{r['backup_events_per_second']:,}", f"{r['restore_seconds']:.1f}",
                 f"{r['restore_events_per_second']:,}")
            for r in result["runs"]
        ),
        "",
        f"Measured {result['finished_at']}.",
    ]  # fmt: skip


_AB_FIGURES = {
    "search_p50_ms": ("searches at 50/s, p50 (ms)", 1),
    "search_p99_ms": ("searches at 50/s, p99 (ms)", 1),
    "read_by_id_rps": ("reads by id, 8 connections (requests/s)", 0),
    "single_rps": ("single events, 32 connections (requests/s)", 0),
    "bulk_events_per_s": ("bulk, 4 connections (events/s)", 0),
}


def _ab_section(result: dict[str, Any]) -> list[str]:
    """Two versions measured alternately in one run (``python -m bench.ab``)."""
    base, head = result["summary"]["base"], result["summary"]["head"]
    return [
        "## Two versions, same run (A/B)",
        "",
        f"`python -m bench.ab --base {result['base']}` against {result['head']}, "
        f"{result['rounds']} alternating rounds of {result['seconds']} s per scenario, each "
        f"side on its own data dir (finished {result['finished_at']}). Medians (min-max).",
        "",
        *_head("scenario", "base", "head", "head / base"),
        *(
            _row(
                label,
                _fmt(base[name], digits),
                _fmt(head[name], digits),
                f"{head[name]['median'] / base[name]['median']:.2f}",
            )
            for name, (label, digits) in _AB_FIGURES.items()
        ),
    ]


def _plots(result: dict[str, Any], img: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the report still works without plots
        return []
    img.mkdir(parents=True, exist_ok=True)
    made = []

    def save(name: str, ax: Any, *, height: float = 4, legend: bool = True) -> None:
        """Finish the figure of *ax* the same way for every plot and save it as *name*."""
        if legend:
            ax.legend()
        ax.grid(alpha=0.3)
        ax.figure.set_size_inches(7, height)
        ax.figure.tight_layout()
        ax.figure.savefig(img / name, dpi=110)
        made.append(f"img/{name}")
        plt.close(ax.figure)

    levels = result["levels"]
    _, ax = plt.subplots()
    for name, per in result["single_rps"].items():
        ax.plot(levels, [per[str(lv)]["median"] for lv in levels], marker="o", label=name)
    ax.set(xscale="log", xlabel="concurrent connections", ylabel="requests/s (median)",
           title="Single-event ingest throughput vs concurrency")  # fmt: skip
    save("ingest-throughput.png", ax)

    _, ax = plt.subplots()
    for name, per in result["single"].items():
        p99 = [sorted(x["p99_ms"] for x in per[str(lv)])[len(per[str(lv)]) // 2] for lv in levels]
        ax.plot(levels, p99, marker="o", label=f"{name} p99")
    ax.set(xscale="log", yscale="log", xlabel="concurrent connections", ylabel="ms",
           title="Single-event ingest p99 latency (closed loop)")  # fmt: skip
    save("ingest-latency.png", ax)

    if result.get("rss_samples"):
        _, ax = plt.subplots()
        xs = [t for t, _ in result["rss_samples"]]
        ys = [b / 2**20 for _, b in result["rss_samples"]]
        ax.plot(xs, ys)
        ax.set(xlabel="seconds under load", ylabel="RSS (MiB)", title="API process memory")
        ax.set_ylim(0, max(ys) * 1.3)
        save("ingest-rss.png", ax, height=3, legend=False)
    return made


def write(results: Path, docs: Path) -> None:
    path = results / "ingest.json"
    if not path.exists():
        return
    r = json.loads(path.read_text())
    plots = _plots(r, docs / "img")
    env = r["environment"]
    levels = [str(lv) for lv in r["levels"]]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`) from `bench/results/*.json`; do not edit",
        "by hand. Each figure is the median of the runs, with (min-max); every ratio compares",
        "two figures measured in the same run.",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['memory_gib']} GiB; Python "
        f"{env['python']}; {env['wrk']}. Runs: {r['runs']}, {r['seconds']} s per load step. "
        f"Finished {r['finished_at']}.",
        "",
        "The service, its PostgreSQL (fsync on, `synchronous_commit = on`) and the load",
        "generator share the machine's cores, so every figure includes their contention.",
        "",
        "## Bulk ingest",
        "",
        "1,000-event batches of one tenant, 4 concurrent clients (wrk), against raw `COPY` of",
        "the same rows into the same table and indexes from 4 connections (one commit per",
        f"batch), each for {2 * r['seconds']} s.",
        "",
        "| | events/s | CPU ms per 1,000 events: total (client + PostgreSQL) "
        "| ratio to raw `COPY` (target ≥ 0.6) |",
        "|---|---|---|---|",
        *(
            f"| `POST /api/v1/logs/bulk`, {_PROCESSES[name]} | {_fmt(rate)} "
            f"| {_cpu(r['bulk_cpu_ms_per_1000'][name])} "
            f"| **{_fmt(r['bulk_ratio_to_copy'][name], 2)}** |"
            for name, rate in r["bulk_http_events_per_s"].items()
        ),
        f"| raw `COPY` into `events` | {_fmt(r['raw_copy_events_per_s'])} "
        f"| {_cpu(r['raw_copy_cpu_ms_per_1000'])} | |",
        "",
        "CPU is what the machine spent per 1,000 stored events (medians): the database's",
        "client (the API processes, or the loading threads) and every PostgreSQL process. On",
        "two cores it bounds throughput whatever the overlap, at 2,000 ms of CPU per second.",
        "",
        *_waits_section(r.get("bulk_postgres_waits", {})),
        "## Single-event ingest",
        "",
        "`POST /api/v1/logs`, one event per request, closed loop (wrk), requests/s by number of",
        "concurrent connections. `bare` is the ceiling: the same server stack parsing the same",
        "JSON with the same schema and answering 201 without storing anything.",
        "",
        *_head("server", *(f"c={lv}" for lv in levels)),
    ]
    for name, per in r["single_rps"].items():
        lines.append(_row(name, *(_fmt(per[lv]) for lv in levels)))
    lines += [
        "",
        "Ratio to the bare ceiling at the same concurrency (target ≥ 0.4 with group commit):",
        "",
        *_head("server", *(f"c={lv}" for lv in levels)),
    ]
    for name, per in r["single_ratio_to_bare"].items():
        lines.append(_row(name, *(_fmt(per[lv], 2) for lv in levels)))
    group, single_txn = r["single"].get("group_commit"), r["single"].get("no_group_commit")
    if group and single_txn:
        speedups = []
        for lv in levels:
            pairs = zip(group[lv], single_txn[lv], strict=True)
            values = sorted(g["rps"] / n["rps"] for g, n in pairs)
            speedups.append(f"{values[len(values) // 2]:.1f}x")
        lines += [
            "",
            "Group commit against one transaction per request, same run (median of the",
            "per-run ratios): "
            + ", ".join(f"c={lv}: **{x}**" for lv, x in zip(levels, speedups, strict=True))
            + ".",
        ]
    cpu_rows = []
    for name, per in r["single"].items():
        top = per[levels[-1]]
        cpu_rows.append(
            f"| {name} | {sum(x['wrk_cpu_share'] for x in top) / len(top):.2f} | "
            f"{sum(x['server_cpu_share'] for x in top) / len(top):.2f} |"
        )
    lines += [
        "",
        f"Is the load generator the bottleneck? CPU used at c={levels[-1]}, in cores:",
        "",
        "| server | wrk | API process(es) |",
        "|---|---|---|",
        *cpu_rows,
        "",
    ]
    lines += [f"![{p}]({p})" for p in plots if "rss" not in p]
    micro, direct = r.get("micro"), r.get("direct_write_events_per_s")
    if micro and direct:
        lines += [
            "",
            "## Where ingest time goes",
            "",
            "In-process costs per 1,000 events (best of 5, the load tool idle):",
            "",
            "| step | ms |",
            "|---|---|",
            f"| JSON parse + schema validation | {micro['parse_and_validate_ms']:.1f} |",
            *(
                [
                    "| the same from the body's bytes (pydantic) | "
                    f"{micro['parse_direct_ms']:.1f} |",
                    "| the same with the proof that no key repeats (used) | "
                    f"{micro['parse_direct_checked_ms']:.1f} |",
                    "| a strict second parse, which that proof spares | "
                    f"{micro['strict_second_parse_ms']:.1f} |",
                ]
                if "parse_direct_ms" in micro
                else []
            ),
            f"| prepare: limits, diff, masking, leaf hash | {micro['prepare_ms']:.1f} |",
            f"| canonical JSON, RFC 8785 reference (`rfc8785`) | {micro['jcs_reference_ms']:.1f} |",
            f"| canonical JSON, orjson fast path (used) | {micro['jcs_fast_path_ms']:.1f} |",
            "",
            "The storage path alone (prepared events, the writer without HTTP, one transaction",
            "per batch, group commit off), events/s:",
            "",
            "| events per transaction | events/s |",
            "|---|---|",
            *[f"| {size} | {_fmt(v)} |" for size, v in direct.items()],
        ]
    ol = r["openloop_1000"]
    if ol:
        by_workers: dict[int, list[float]] = {}
        for x in ol:
            by_workers.setdefault(x.get("workers", 1), []).append(x["p99_ms"])
        medians = ", ".join(
            f"{w} API process{'es' if w > 1 else ''}: **{statistics.median(p):.1f} ms**"
            for w, p in sorted(by_workers.items())
        )
        lines += [
            "",
            "## Latency at 1,000 events/s offered",
            "",
            "Open loop (`bench/openloop.py`): request *i* is due at `start + i/1000 s` and its",
            "latency counts from that due time, so queueing is not hidden (no coordinated",
            "omission). Group commit on; one and two API processes.",
            "",
            "| run | API processes | achieved req/s | errors | p50 ms | p99 ms | p99.9 ms |",
            "|---|---|---|---|---|---|---|",
            *[
                f"| {i + 1} | {x.get('workers', 1)} | {x['achieved_rps']:,.0f} | {x['errors']} | "
                f"{x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {x['p999_ms']:.1f} |"
                for i, x in enumerate(ol)
            ],
            "",
            f"Median p99 (target ≤ 50 ms): {medians}.",
        ]
    # ``python -m bench.mixed --out bench/results/mixed.json`` measures the mixed scenario
    # alone; when its runs are newer than the ingest suite's, they are the ones reported.
    mixed_runs, mixed_path = r.get("mixed"), results / "mixed.json"
    if mixed_path.exists():
        mixed = json.loads(mixed_path.read_text())
        if mixed["finished_at"] > r["finished_at"]:
            mixed_runs = mixed["runs"]
    if mixed_runs:
        lines += ["", *_mixed_section(mixed_runs)]
        if all("exports" in run for run in mixed_runs):
            lines += ["", *_admission_section(mixed_runs)]
    # bench.mixed --base writes mixed-ab.json; an A/B kept for the report is renamed
    # mixed-ab-<change>.json, so earlier changes' tables stay beside the latest one.
    mixed_abs = [json.loads(p.read_text()) for p in results.glob("mixed-ab*.json")]
    for mixed_ab in sorted(mixed_abs, key=lambda r: str(r["finished_at"])):
        lines += ["", *_mixed_ab_section(mixed_ab)]
    loads_path = results / "mixed-loads.json"
    if loads_path.exists():
        lines += ["", *_mixed_loads_section(json.loads(loads_path.read_text()))]
    stack_path = results / "stack.json"
    if stack_path.exists():
        lines += ["", *_stack_section(json.loads(stack_path.read_text()))]
    queue_path = results / "queue.json"
    if queue_path.exists():
        lines += ["", *_queue_section(json.loads(queue_path.read_text()))]
    retention_path = results / "retention.json"
    if retention_path.exists():
        lines += ["", *_retention_section(json.loads(retention_path.read_text()))]
    # bench.stream writes stream.json; a run kept for the report is renamed
    # stream-<watchers>.json, so the target's scale and a smaller one show side by side.
    for pattern, section in (("integrity.json", _integrity_section),
                             ("stream-*.json", _stream_section),
                             ("archive.json", _archive_section),
                             ("backup.json", _backup_section),
                             ("horizon*.json", _horizon_section)):  # fmt: skip
        kept = sorted(results.glob(pattern), key=lambda p: (len(p.name), p.name))
        for suite_path in kept:
            lines += ["", *section(json.loads(suite_path.read_text()))]
    opensearch_path = results / "opensearch.json"
    if opensearch_path.exists():
        earlier = [json.loads(p.read_text()) for p in sorted(results.glob("opensearch-run*.json"))]
        lines += ["", *_opensearch_section(json.loads(opensearch_path.read_text()), earlier)]
    ab_path = results / "ab.json"
    if ab_path.exists():
        lines += ["", *_ab_section(json.loads(ab_path.read_text()))]
    if r.get("rss_samples"):
        ys = [b / 2**20 for _, b in r["rss_samples"]]
        lines += [
            "",
            "## Memory under sustained load",
            "",
            "API process RSS sampled each second through the single-event, bulk and fixed-rate",
            f"scenarios of run 1: first {ys[0]:.0f} MiB, last {ys[-1]:.0f} MiB, "
            f"max {max(ys):.0f} MiB over {len(ys)} s.",
            "",
            *[f"![{p}]({p})" for p in plots if "rss" in p],
        ]
    # Sections other suites write (search: bench/search.py); their long per-run reports
    # with every query plan stay beside them and are linked from the section.
    for name in SECTIONS:
        section = docs / "benchmarks" / name
        if section.exists():
            text = section.read_text().strip()
            lines += ["", text.replace("](search-", "](benchmarks/search-")]
    (docs / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")
