"""Growth: why one API process's p99 at 1,000 single events/s rises as the database grows.

``make bench`` runs its ingest suite three times on one data dir; each run stores about
1 M events (bulk over HTTP, raw COPY, direct writes, each followed by VACUUM ANALYZE) and
then offers 1,000 single events/s to ``auditline serve --workers 1``. That p99 rose run over
run (45 → 111 → 250 ms in one report, 23.8 → 73.6 → 131.9 ms in the next) while two
processes showed no trend (issue #17). Here the same growth is repeated in rounds on a
fresh data dir, and every fixed-rate window is measured second by second beside what
could explain a slow second: the cores each side used (PostgreSQL by kind of process),
checkpoints, WAL bytes and full-page images, buffers read against hit for ``events`` and
the service's own tables, backend writes and evictions, autovacuum, GIN pending lists,
dirty buffers, and the kernel's dirty and writeback memory and disk writes.

A candidate fix is tested as an A/B, because machine speed drifts by ~25 % between
sessions: with ``--variant`` (plus ``--checkpoint``, ``--pg-setting``, ``--env`` or
``--sql``) a second data dir is grown identically and the two are measured in turn within
each round, the order alternating (AB, BA, ...), so drift cannot decide it.

Each round mirrors one run of the suite's one-process configuration: a new ``auditline
serve --workers 1`` (and so a freshly started PostgreSQL), bulk bodies over HTTP into the
tenant the fixed-rate window writes to, VACUUM ANALYZE, raw COPY of the same rows into
another tenant (4 clients, a commit per 1,000 rows), VACUUM ANALYZE, the direct writes,
VACUUM ANALYZE, then the window. Every body's timestamps were fixed when it was generated,
so, as in the suite, every round lands in the same hours and partition.

``python -m bench.growth [--events N] [--rounds R] [--seconds S] [--variant NAME ...]``
writes ``bench/results/growth.json`` (``--out`` to choose) and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg import sql
from uuid_utils.compat import uuid7

from auditline.api.schemas import EventIn
from auditline.config import Settings
from auditline.domain.tenants import TenantId
from auditline.ingest.prepare import prepare_events
from auditline.storage.embedded import EmbeddedPostgres
from auditline.storage.events import COLUMNS, copy_row
from bench import openloop, report
from bench.ingest import (
    _EVENT_TYPES,
    _IP,
    TENANT,
    _ingest_load,
    direct_write,
    ensure_tenant,
    settle,
    token_for,
)
from bench.servers import Process, start_auditline
from bench.workload import write_bodies

ROOT = Path(__file__).resolve().parents[1]
COPY_TENANT = "bench-copy"  # the tenant the suite's raw COPY writes to
# The service's own tables a single event touches besides ``events``
SERVICE_TABLES = ("event_ids", "event_rollups", "event_rollup_heavy", "tenant_log_heads",
                  "merkle_tiles", "checkpoints")  # fmt: skip


@dataclass
class Side:
    """One data dir grown in rounds: the base, or the base plus a candidate fix."""

    name: str
    data_dir: Path
    checkpoint: bool = False  # CHECKPOINT after the last VACUUM, before the window
    pg_settings: dict[str, str] = field(default_factory=dict)  # ALTER SYSTEM, from the start
    env: dict[str, str] = field(default_factory=dict)  # the service's environment
    sql: list[str] = field(default_factory=list)  # run before each window (superuser)

    @property
    def url(self) -> str:
        return EmbeddedPostgres(self.data_dir).url()


@contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    """*extra* in ``os.environ`` while the block runs (the service copies it at start)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _start(side: Side, log: Path) -> Process:
    with _environment(side.env):
        return start_auditline(side.data_dir, workers=1, log=log)


# -- growth ------------------------------------------------------------------------------


def _copy_batches(bulk: Path) -> list[list[tuple[Any, ...]]]:
    """The bulk bodies as the raw COPY of the suite sends them (bench/ingest.py raw_copy)."""
    now = datetime.now(UTC)
    batches = []
    for line in bulk.read_text().splitlines():
        drafts = [EventIn.model_validate(e) for e in json.loads(line)["events"]]
        events = prepare_events(TenantId(COPY_TENANT), drafts, limits=Settings().ingest, now=now)
        rows = [copy_row(e, n) for n, e in enumerate(events)]
        batches.append(
            [(*r[:_IP], r[_IP] and ipaddress.ip_address(r[_IP]), *r[_IP + 1 :]) for r in rows]
        )
    return batches


def copy_events(url: str, batches: list[list[tuple[Any, ...]]], *, events: int) -> float:
    """COPY *events* rows (whole 1,000-row batches, fresh ids) with 4 clients, one durable
    commit per batch, as the suite's raw COPY does for its 20 s; events/s."""
    copy_sql = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    clients = 4
    per_client = max(1, events // len(batches[0]) // clients)

    def load(client: int) -> None:
        with psycopg.connect(url) as conn:
            conn.execute("SET synchronous_commit = on")
            for n in range(per_client):
                batch = batches[(client + n * clients) % len(batches)]
                with conn.cursor().copy(copy_sql) as copy:  # type: ignore[arg-type]
                    copy.set_types(_EVENT_TYPES)
                    for row in batch:
                        copy.write_row((row[0], uuid7(), *row[2:]))
                conn.commit()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(load, range(clients)))
    return per_client * clients * len(batches[0]) / (time.perf_counter() - started)


async def _post_bulk(server: Process, token: str, bodies: list[bytes], requests: int) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    todo = iter(range(requests))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in todo:
            response = await client.post("/api/v1/logs/bulk", content=bodies[i % len(bodies)])
            response.raise_for_status()

    async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=120) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(4)))


def grow(
    side: Side, server: Process, *, bulk: Path, batches: list[list[tuple[Any, ...]]],
    http_events: int, copy_events_n: int,
) -> dict[str, float]:  # fmt: skip
    """One run's worth of the suite's writes before its fixed-rate window; seconds taken."""
    url, took = side.url, {}
    bodies = bulk.read_bytes().splitlines()
    token = token_for(side.data_dir, "user", TENANT)
    started = time.perf_counter()
    asyncio.run(_post_bulk(server, token, bodies, http_events // 1000))
    took["bulk_http_s"] = time.perf_counter() - started
    took["bulk_http_events_per_s"] = http_events / took["bulk_http_s"]
    for phase, action in (
        ("vacuum_1_s", lambda: settle(url)),
        ("raw_copy_s", lambda: took.__setitem__(
            "raw_copy_events_per_s", copy_events(url, batches, events=copy_events_n))),
        ("vacuum_2_s", lambda: settle(url)),
        ("direct_s", lambda: direct_write(url, bulk)),
        ("vacuum_3_s", lambda: settle(url)),
    ):  # fmt: skip
        started = time.perf_counter()
        action()
        took[phase] = time.perf_counter() - started
    return took


# -- attribution ---------------------------------------------------------------------------

_LEAVES = "SELECT relid FROM pg_partition_tree('events') WHERE isleaf"

# Counters read every second during the window; their per-second differences are kept.
_COUNTERS = f"""
SELECT c.num_timed, c.num_requested, c.num_done, c.buffers_written AS ckpt_buffers_written,
       c.write_time AS ckpt_write_ms, c.sync_time AS ckpt_sync_ms,
       b.buffers_clean AS bgwriter_buffers, b.buffers_alloc,
       w.wal_records, w.wal_fpi, w.wal_bytes, w.wal_buffers_full,
       (SELECT coalesce(sum(heap_blks_read), 0) FROM pg_statio_all_tables
         WHERE relid IN ({_LEAVES})) AS events_heap_read,
       (SELECT coalesce(sum(heap_blks_hit), 0) FROM pg_statio_all_tables
         WHERE relid IN ({_LEAVES})) AS events_heap_hit,
       (SELECT coalesce(sum(idx_blks_read), 0) FROM pg_statio_all_indexes
         WHERE relid IN ({_LEAVES})) AS events_idx_read,
       (SELECT coalesce(sum(idx_blks_hit), 0) FROM pg_statio_all_indexes
         WHERE relid IN ({_LEAVES})) AS events_idx_hit,
       (SELECT coalesce(sum(heap_blks_read + coalesce(idx_blks_read, 0)), 0)
          FROM pg_statio_user_tables WHERE relname = ANY(%(service)s)) AS service_read,
       (SELECT coalesce(sum(heap_blks_hit + coalesce(idx_blks_hit, 0)), 0)
          FROM pg_statio_user_tables WHERE relname = ANY(%(service)s)) AS service_hit,
       (SELECT coalesce(sum(writes), 0) FROM pg_stat_io
         WHERE backend_type = 'client backend' AND object = 'relation') AS backend_writes,
       (SELECT coalesce(sum(evictions), 0) FROM pg_stat_io
         WHERE backend_type = 'client backend' AND object = 'relation') AS backend_evictions,
       (SELECT coalesce(sum(reads), 0) FROM pg_stat_io
         WHERE backend_type = 'client backend' AND object = 'relation') AS backend_reads,
       (SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_io WHERE object = 'wal') AS wal_fsyncs,
       (SELECT coalesce(sum(fsync_time), 0) FROM pg_stat_io WHERE object = 'wal')
           AS wal_fsync_ms,
       (SELECT coalesce(sum(writes), 0) FROM pg_stat_io WHERE object = 'wal') AS wal_writes
  FROM pg_stat_checkpointer c, pg_stat_bgwriter b, pg_stat_wal w"""  # noqa: S608

# Levels read every second: their value at the sample, not a difference.
_LEVELS = """
SELECT (SELECT count(*) FROM pg_stat_progress_vacuum) AS vacuums,
       (SELECT string_agg(relid::regclass::text || ':' || phase, ',')
          FROM pg_stat_progress_vacuum) AS vacuuming"""

_GIN = f"""
SELECT c.oid, c.relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
  JOIN pg_am a ON a.oid = c.relam
 WHERE a.amname = 'gin' AND i.indrelid IN ({_LEAVES})"""  # noqa: S608

_WAITS = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'running') AS kind, count(*) AS n
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
 GROUP BY 1"""

_LEVEL_KEYS = ("vacuums", "gin_pending_pages", "gin_pending_tuples", "buffers_dirty",
               "dirty_mb", "writeback_mb")  # fmt: skip
_DIFFED = (
    "api_cpu",
    "gen_cpu",
    "machine_busy",
    "iowait",
    "steal",
    "disk_write_mb",
    "disk_write_ms",
    "disk_read_mb",
)


def _pg_kind(title: str) -> str:
    for needle, kind in (("autovacuum worker", "autovacuum"), ("checkpointer", "checkpointer"),
                         ("background writer", "bgwriter"), ("walwriter", "walwriter"),
                         ("127.0.0.1(", "connections"), ("[local]", "connections")):  # fmt: skip
        if needle in title:
            return kind
    return "other"


def _cpu_stat() -> dict[str, float]:
    """The machine's CPU seconds so far: busy (all processes, ours and anyone's), waiting
    for I/O, and stolen by the hypervisor (a noisy neighbour)."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + t.irq + t.softirq
    return {"machine_busy": busy, "iowait": t.iowait, "steal": t.steal}


def _meminfo() -> dict[str, float]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Dirty", "Writeback"):
            out[name.lower() + "_mb"] = int(rest.split()[0]) / 1024
    return out


class Sampler:
    """Every second of a window: the differences of the counters above, the levels, the
    cores each side used, and what the active connections waited on (sampled 10 times a
    second). Its own connection is left out of the CPU and wait figures."""

    def __init__(self, side: Side, server: Process) -> None:
        self._url, self._server = side.url, server
        self._postmaster = psutil.Process(
            int((side.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        )
        self._stop = threading.Event()
        self.seconds: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def _pg_cpu(self) -> dict[int, tuple[str, float]]:
        found = {}
        for child in self._postmaster.children():
            try:
                with child.oneshot():
                    t, title = child.cpu_times(), " ".join(child.cmdline())
            except psutil.NoSuchProcess:
                continue
            if child.pid != self._own_pid:
                found[child.pid] = (_pg_kind(title), t.user + t.system)
        return found

    def _api_threads(self) -> tuple[float, float]:
        """CPU seconds of the API processes' main threads (the event loops) and of their
        other threads (``asyncio.to_thread`` work: sealing, witness writes, ...)."""
        main = other = 0.0
        try:
            parent = psutil.Process(self._server.proc.pid)
            for proc in [parent, *parent.children(recursive=True)]:
                if proc.name() == "postgres":
                    continue
                for t in proc.threads():
                    if t.id == proc.pid:
                        main += t.user_time + t.system_time
                    else:
                        other += t.user_time + t.system_time
        except psutil.NoSuchProcess:
            pass
        return main, other

    def _read(self, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        row: dict[str, Any] = dict(
            conn.execute(_COUNTERS, {"service": list(SERVICE_TABLES)}).fetchone() or {}
        )
        row = {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
        row |= dict(conn.execute(_LEVELS).fetchone() or {})
        pending_pages = pending_tuples = 0
        for oid, _ in self._gin:
            r = conn.execute(
                "SELECT pending_pages, pending_tuples FROM pgstatginindex(%s)", [oid]
            ).fetchone()
            if r:
                pending_pages += r["pending_pages"]
                pending_tuples += r["pending_tuples"]
        row |= {"gin_pending_pages": pending_pages, "gin_pending_tuples": pending_tuples}
        summary = conn.execute("SELECT buffers_dirty FROM pg_buffercache_summary()").fetchone()
        row["buffers_dirty"] = summary["buffers_dirty"] if summary else None
        disk = psutil.disk_io_counters()
        row |= _meminfo() | _cpu_stat() | {
            "api_cpu": self._server.cpu_seconds(), "gen_cpu": time.process_time(),
            "disk_write_mb": disk.write_bytes / 2**20 if disk else 0.0,
            "disk_write_ms": disk.write_time if disk else 0.0,
            "disk_read_mb": disk.read_bytes / 2**20 if disk else 0.0,
        }  # fmt: skip
        row["api_main_cpu"], row["api_threads_cpu"] = self._api_threads()
        row["_pg"] = self._pg_cpu()
        return row

    def _loop(self) -> None:
        with psycopg.connect(self._url, autocommit=True, row_factory=psycopg.rows.dict_row) as c:
            self._own_pid = c.info.backend_pid
            self._gin = [(r["oid"], r["relname"]) for r in c.execute(_GIN).fetchall()]
            prev = self._read(c)
            self.t0 = time.perf_counter()
            self._ready.set()
            tick = self.t0
            waits: dict[str, int] = {}
            polls = 0
            while not self._stop.is_set():
                tick += 0.1
                time.sleep(max(0.0, tick - time.perf_counter()))
                for r in c.execute(_WAITS).fetchall():
                    waits[r["kind"]] = waits.get(r["kind"], 0) + r["n"]
                polls += 1
                if polls % 10:
                    continue
                try:
                    now = self._read(c)
                except psycopg.Error as exc:  # a sample lost is not a window lost
                    self.errors.append(str(exc))
                    continue
                self.seconds.append(self._second(prev, now, waits, polls // 10))
                prev, waits = now, {}

    def _second(
        self, prev: dict[str, Any], now: dict[str, Any], waits: dict[str, int], second: int
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"second": second - 1}
        for key, value in now.items():
            if key == "_pg":
                continue
            if key in _DIFFED or (key in prev and isinstance(value, int | float)
                                  and key not in _LEVEL_KEYS):  # fmt: skip
                out[key] = float(value - prev[key])
            else:
                out[key] = value
        pg: dict[str, float] = {}
        for pid, (kind, cpu) in now["_pg"].items():
            pg[kind] = pg.get(kind, 0.0) + cpu - prev["_pg"].get(pid, (kind, 0.0))[1]
        out["pg_cpu"] = pg
        out["waits"] = {k: n / 10 for k, n in sorted(waits.items(), key=lambda kv: -kv[1])}
        return out

    def __enter__(self) -> Sampler:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _metrics(server: Process) -> dict[str, float]:
    """Group-commit wait sum and count from the service's /metrics."""
    out = {}
    try:
        text = httpx.get(server.base + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    for line in text.splitlines():
        for name in ("auditline_group_commit_wait_seconds", "auditline_group_commit_events",
                     "auditline_sealing_lag_seconds"):  # fmt: skip
            for suffix in ("_sum", "_count"):
                if line.startswith(name + suffix):
                    out[name + suffix] = out.get(name + suffix, 0.0) + float(line.split()[-1])
    return out


_SIZES = f"""
SELECT (SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('events')) AS events_heap,
       (SELECT sum(pg_indexes_size(relid)) FROM pg_partition_tree('events')) AS events_indexes,
       (SELECT sum(c.reltuples)::bigint FROM pg_class c
         WHERE c.oid IN ({_LEAVES})) AS events_rows,
       (SELECT reltuples::bigint FROM pg_class WHERE relname = 'event_ids') AS event_ids_rows,
       (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
         WHERE c.relname = ANY(%(service)s)) AS service_tables,
       pg_database_size(current_database()) AS database,
       (SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')
           AS shared_buffers,
       (SELECT json_object_agg(c.relname, pg_relation_size(c.oid)) FROM pg_class c
          JOIN pg_index i ON i.indexrelid = c.oid WHERE i.indrelid IN ({_LEAVES}))
           AS index_bytes"""  # noqa: S608


def window(side: Side, server: Process, bodies: Path, seconds: int) -> dict[str, Any]:
    """1,000 single events/s offered for *seconds*, with the attribution of every second."""
    token = token_for(side.data_dir, "user", TENANT)
    with psycopg.connect(side.url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        sizes = conn.execute(_SIZES, {"service": list(SERVICE_TABLES)}).fetchone() or {}
    metrics0 = _metrics(server)
    with Sampler(side, server) as sampler:
        result: openloop.OpenLoopResult = asyncio.run(_ingest_load(server, bodies, token, seconds))
    metrics1 = _metrics(server)
    # each answered request into the second (of the sampler) in which it was due
    per = result.by_due(1.0, offset=result.started - sampler.t0)
    rows = []
    for s in sampler.seconds:
        lat = per.get(s["second"], [])
        rows.append({"n": len(lat), "p50_ms": openloop.percentile(lat, 50),
                     "p99_ms": openloop.percentile(lat, 99), "max_ms": max(lat, default=0.0)}
                    | s)  # fmt: skip
    waited = {k: metrics1.get(k, 0.0) - metrics0.get(k, 0.0) for k in metrics1}
    return {
        "offered_rps": result.offered_rps, "achieved_rps": result.achieved_rps,
        "errors": result.errors, "p50_ms": result.percentile(50),
        "p99_ms": result.percentile(99), "p999_ms": result.percentile(99.9),
        "max_ms": max(result.latencies_ms, default=0.0),
        "sizes": dict(sizes), "group_commit": waited, "sampler_errors": sampler.errors,
        "per_second": rows,
    }  # fmt: skip


# -- summary of a window ------------------------------------------------------------------------


def _total(rows: list[dict[str, Any]], key: str) -> float:
    return float(sum(r.get(key) or 0.0 for r in rows))


def attribution(w: dict[str, Any]) -> dict[str, Any]:
    """The window's totals, and its slow seconds (p99 above twice the median second's)
    against the others: what the spikes coincided with."""
    rows = [r for r in w["per_second"] if r["n"]]
    if not rows:
        return {}
    wall = len(rows)
    pg: dict[str, float] = {}
    for r in rows:
        for kind, cpu in r["pg_cpu"].items():
            pg[kind] = pg.get(kind, 0.0) + cpu
    waits: dict[str, float] = {}
    for r in rows:
        for kind, n in r["waits"].items():
            waits[kind] = waits.get(kind, 0.0) + n / wall
    hit = _total(rows, "events_idx_hit") + _total(rows, "events_heap_hit")
    read = _total(rows, "events_idx_read") + _total(rows, "events_heap_read")
    totals = {
        "api_cores": _total(rows, "api_cpu") / wall,
        "api_event_loop_cores": _total(rows, "api_main_cpu") / wall,
        "api_other_threads_cores": _total(rows, "api_threads_cpu") / wall,
        "postgres_cores": sum(pg.values()) / wall,
        "postgres_cores_by_kind": {k: v / wall for k, v in sorted(pg.items())},
        "generator_cores": _total(rows, "gen_cpu") / wall,
        "machine_busy_cores": _total(rows, "machine_busy") / wall,
        "steal_cores": _total(rows, "steal") / wall,
        "iowait_cores": _total(rows, "iowait") / wall,
        "checkpoints_timed": _total(rows, "num_timed"),
        "checkpoints_requested": _total(rows, "num_requested"),
        "checkpoint_buffers_written": _total(rows, "ckpt_buffers_written"),
        "checkpoint_write_ms": _total(rows, "ckpt_write_ms"),
        "checkpoint_sync_ms": _total(rows, "ckpt_sync_ms"),
        "seconds_checkpointer_busy": sum(1 for r in rows
                                         if r["pg_cpu"].get("checkpointer", 0) > 0.02),
        "wal_mb": _total(rows, "wal_bytes") / 2**20,
        "wal_fpi": _total(rows, "wal_fpi"),
        "wal_records": _total(rows, "wal_records"),
        "wal_fpi_per_record": _total(rows, "wal_fpi") / max(_total(rows, "wal_records"), 1),
        "wal_fsync_ms": _total(rows, "wal_fsync_ms"),
        "events_blocks_read": read, "events_blocks_hit": hit,
        "events_read_per_event": read / max(sum(r["n"] for r in rows), 1),
        "service_blocks_read": _total(rows, "service_read"),
        "backend_writes": _total(rows, "backend_writes"),
        "backend_evictions": _total(rows, "backend_evictions"),
        "bgwriter_buffers": _total(rows, "bgwriter_buffers"),
        "seconds_autovacuum": sum(1 for r in rows if r.get("vacuums")),
        "vacuumed": sorted({v for r in rows if r.get("vacuuming")
                            for v in r["vacuuming"].split(",")}),
        "gin_pending_pages_max": max(r.get("gin_pending_pages") or 0 for r in rows),
        "kernel_dirty_mb_max": max(r.get("dirty_mb") or 0 for r in rows),
        "kernel_writeback_mb_max": max(r.get("writeback_mb") or 0 for r in rows),
        "disk_write_mb": _total(rows, "disk_write_mb"),
        "disk_write_ms": _total(rows, "disk_write_ms"),
        "waits": dict(sorted(waits.items(), key=lambda kv: -kv[1])[:6]),
    }  # fmt: skip
    median = statistics.median(r["p99_ms"] for r in rows)
    slow = [r for r in rows if r["p99_ms"] > 2 * median]
    calm = [r for r in rows if r["p99_ms"] <= 2 * median]
    keys = ("api_cpu", "api_main_cpu", "api_threads_cpu", "ckpt_buffers_written", "wal_fpi",
            "wal_bytes", "events_idx_read", "events_heap_read", "backend_writes",
            "backend_evictions", "disk_write_mb", "disk_write_ms", "dirty_mb", "writeback_mb",
            "vacuums", "gin_pending_pages", "wal_fsync_ms", "buffers_dirty", "machine_busy",
            "steal", "iowait")  # fmt: skip

    def mean(group: list[dict[str, Any]], key: str) -> float | None:
        return statistics.fmean(r.get(key) or 0.0 for r in group) if group else None

    def pg_kind(group: list[dict[str, Any]], kind: str) -> float | None:
        return statistics.fmean(r["pg_cpu"].get(kind, 0.0) for r in group) if group else None

    spikes = {
        "median_second_p99_ms": median, "slow_seconds": [r["second"] for r in slow],
        "slow": {k: mean(slow, k) for k in keys}
        | {f"pg_{k}": pg_kind(slow, k) for k in ("connections", "checkpointer", "autovacuum")},
        "calm": {k: mean(calm, k) for k in keys}
        | {f"pg_{k}": pg_kind(calm, k) for k in ("connections", "checkpointer", "autovacuum")},
    }  # fmt: skip
    return totals | {"spikes": spikes}


# -- driver -----------------------------------------------------------------------------------


def prepare(side: Side, log: Path) -> None:
    """Create the data dir (and its tenants), the extensions the sampler reads, and the
    side's PostgreSQL settings, which the next start picks up."""
    server = _start(side, log)
    try:
        ensure_tenant(server, side.data_dir, TENANT)
        ensure_tenant(server, side.data_dir, COPY_TENANT)
        with psycopg.connect(side.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_buffercache")
            for key, value in side.pg_settings.items():
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(key),
                                                              sql.Literal(value))
                )  # fmt: skip
    finally:
        server.stop()


def one_round(
    side: Side, *, work: Path, bulk: Path, single: Path, batches: list[list[tuple[Any, ...]]],
    http_events: int, copy_events_n: int, seconds: int,
) -> dict[str, Any]:  # fmt: skip
    server = _start(side, work / f"{side.name}.log")
    try:
        took = grow(side, server, bulk=bulk, batches=batches, http_events=http_events,
                    copy_events_n=copy_events_n)  # fmt: skip
        with psycopg.connect(side.url, autocommit=True) as conn:
            for statement in side.sql:
                conn.execute(statement.encode())
            if side.checkpoint:
                started = time.perf_counter()
                conn.execute("CHECKPOINT")
                took["checkpoint_s"] = time.perf_counter() - started
        w = window(side, server, single, seconds)
    finally:
        server.stop()
    return {"growth": took, "window": w, "attribution": attribution(w)}


def _rounded(value: Any) -> Any:
    """*value* with floats to 3 decimals: the per-second rows are most of the file."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _write(path: Path, out: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_rounded(out), default=str, separators=(",", ":")))


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="events added per round")
    parser.add_argument("--http-share", type=float, default=0.2,
                        help="share of them as bulk bodies over HTTP into the window's tenant "
                        "(the rest: raw COPY into another tenant, as the suite)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=60, help="fixed-rate window per round")
    parser.add_argument("--variant", help="name of the candidate fix; with it, an A/B")
    parser.add_argument(
        "--checkpoint",
        action="store_true",
        help="variant: CHECKPOINT after the last VACUUM, before the window",
    )
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="K=V",
        help="variant: ALTER SYSTEM SET k = v (from the first start)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="variant: the service's environment",
    )
    parser.add_argument(
        "--sql", action="append", default=[], help="variant: a statement run before each window"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work-growth")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "growth.json")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    single = write_bodies(args.work / "single.ndjson", count=5000, events_per_body=1, seed=1)
    bulk = write_bodies(args.work / "bulk.ndjson", count=20, events_per_body=1000, seed=2)
    batches = _copy_batches(bulk)
    http_events = int(args.events * args.http_share) // 1000 * 1000
    copy_n = args.events - http_events
    sides = [Side("base", args.work / "base")]
    if args.variant:
        sides.append(Side(args.variant, args.work / "variant", checkpoint=args.checkpoint,
                          pg_settings=_pairs(args.pg_setting), env=_pairs(args.env),
                          sql=args.sql))  # fmt: skip
    for side in sides:
        prepare(side, args.work / f"{side.name}.log")
    out: dict[str, Any] = {
        "events_per_round": args.events, "http_events": http_events, "copy_events": copy_n,
        "seconds": args.seconds, "rounds": args.rounds,
        "sides": {s.name: {"checkpoint": s.checkpoint, "pg_settings": s.pg_settings,
                           "env": s.env, "sql": s.sql, "rounds": []} for s in sides},
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    try:
        for r in range(args.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                res = one_round(side, work=args.work, bulk=bulk, single=single, batches=batches,
                                http_events=http_events, copy_events_n=copy_n,
                                seconds=args.seconds)  # fmt: skip
                res["round"] = r + 1
                out["sides"][side.name]["rounds"].append(res)
                print(_line(side.name, r + 1, res), flush=True)
                _write(args.out, out)
    finally:
        out["environment"] = report.environment()
        out["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        _write(args.out, out)
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    print(f"wrote {args.out}")


def _line(name: str, r: int, res: dict[str, Any]) -> str:
    w, a, s = res["window"], res["attribution"], res["window"]["sizes"]
    sp = a.get("spikes", {})
    return (
        f"{name:>10} round {r}: rows {s.get('events_rows', 0):,} "
        f"(heap {s.get('events_heap', 0) / 2**20:,.0f} MiB, indexes "
        f"{s.get('events_indexes', 0) / 2**20:,.0f} MiB) | p50 {w['p50_ms']:.1f} "
        f"p99 {w['p99_ms']:.1f} p99.9 {w['p999_ms']:.1f} max {w['max_ms']:.0f} ms, "
        f"{w['achieved_rps']:.0f}/s, errors {w['errors']} | api {a.get('api_cores', 0):.2f} "
        f"pg {a.get('postgres_cores', 0):.2f} cores | ckpt {a.get('checkpoints_timed', 0):.0f}+"
        f"{a.get('checkpoints_requested', 0):.0f} ({a.get('checkpoint_buffers_written', 0):,.0f}"
        f" buf) | WAL {a.get('wal_mb', 0):.0f} MiB FPI {a.get('wal_fpi', 0):,.0f} | reads "
        f"{a.get('events_blocks_read', 0):,.0f} | autovac {a.get('seconds_autovacuum', 0)} s | "
        f"disk {a.get('disk_write_mb', 0):,.0f} MiB | slow s {sp.get('slow_seconds')}"
    )


if __name__ == "__main__":
    main()
