"""``python -m bench.stream``: what live streams cost ingest, and how fast they deliver.

One ``auditline serve --workers 2`` and one run, three phases at the same offered rate
(open loop, bulk requests of ``--batch`` events):

1. **no watchers**: ingest throughput and request latency (p50/p99);
2. **W watchers** spread over the two processes (the kernel shares connections between
   the workers): the same figures, and per delivered event the commit-to-receive latency
   (from the moment the request was *sent*, so an upper bound that includes the commit
   itself), and per watcher a count by ``seq``: nothing lost, nothing twice;
3. **no watchers** again, so a drift of the machine shows.

Server memory (RSS of the process tree) is sampled before and after the watched phase.

Before those, **the cost of the announcement itself** (the NOTIFY the 0017 trigger sends
inside every writing transaction; PostgreSQL serialises committing transactions that
notified on one lock): closed-loop ingest at saturation with the trigger enabled and
disabled (``ALTER TABLE ... DISABLE TRIGGER`` as the superuser), alternating for
``--rounds``, for single events (group commit) and for bulk requests.
Results go to ``bench/results/stream.json``. The issue's target run is
``--watchers 100 --rate 2000 --batch 20``; on a shared 2-core machine run it small
(``--watchers 10 --rate 200 --seconds 5``) and leave the final figures to a quiet host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import shutil
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from auditline.storage.embedded import EmbeddedPostgres
from bench.ingest import ensure_tenant, token_for
from bench.servers import Process, start_auditline

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work-stream"
RESULTS = ROOT / "bench" / "results" / "stream.json"
TENANT = "bench-stream"


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _ingest(
    server: Process, token: str, *, rate: float, batch: int, seconds: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """Open-loop bulk ingest; returns figures and, per event id, when its request was sent."""
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    failures = 0
    interval = batch / rate
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=server.base, headers=headers, limits=limits,
                                 timeout=60) as http:  # fmt: skip

        async def one(k: int) -> None:
            nonlocal failures
            body = {"events": [{"action": "UPDATE", "message": f"b{k} e{i}",
                                "severity": "INFO"} for i in range(batch)]}  # fmt: skip
            start = time.perf_counter()
            try:
                response = await http.post("/api/v1/logs/bulk", json=body)
            except httpx.TransportError:  # a connection the server closed as it was reused
                failures += 1
                return
            latencies.append(time.perf_counter() - start)
            if response.status_code != 201:
                failures += 1
                return
            sent = time.monotonic() - (time.perf_counter() - start)  # the clock watchers use
            for event_id in response.json()["ids"]:
                sent_at[event_id] = sent

        began = time.perf_counter()
        tasks = []
        k = 0
        while (now := time.perf_counter()) - began < seconds:
            target = began + k * interval
            if target > now:
                await asyncio.sleep(target - now)
            tasks.append(asyncio.create_task(one(k)))
            k += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    figures = {
        "offered_events_per_s": rate,
        "events_per_s": len(sent_at) / elapsed,
        "request_p50_ms": _pct(latencies, 50) * 1000,
        "request_p99_ms": _pct(latencies, 99) * 1000,
        "failed_requests": failures,
    }
    return figures, sent_at


def _api_cpu(server: Process) -> float:
    """CPU seconds of the API processes (PostgreSQL's own processes left out)."""
    parent = psutil.Process(server.proc.pid)
    total = 0.0
    for proc in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.name() != "postgres":
                times = proc.cpu_times()
                total += times.user + times.system
    return total


async def _saturate(
    server: Process, token: str, *, clients: int, batch: int, seconds: float
) -> dict[str, float]:
    """Closed loop: *clients* connections writing as fast as they are answered."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    written = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=clients)) as http:  # fmt: skip

        async def client() -> None:
            nonlocal written
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                if batch == 1:
                    response = await http.post("/api/v1/logs", json={"action": "UPDATE"})
                else:
                    response = await http.post(
                        "/api/v1/logs/bulk", json={"events": [{"action": "UPDATE"}] * batch}
                    )
                latencies.append(time.perf_counter() - start)
                if response.status_code == 201:
                    written += batch

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return {"events_per_s": written / elapsed, "p50_ms": _pct(latencies, 50) * 1000,
            "p99_ms": _pct(latencies, 99) * 1000}  # fmt: skip


def _trigger(data_dir: Path, enabled: bool) -> None:
    url = EmbeddedPostgres(data_dir).url()
    with psycopg.connect(url, autocommit=True) as conn:
        verb = "ENABLE" if enabled else "DISABLE"
        conn.execute(f"ALTER TABLE tenant_log_heads {verb} TRIGGER tenant_log_heads_announce")


async def notify_cost(server: Process, data_dir: Path, token: str, args: argparse.Namespace
                      ) -> dict[str, Any]:  # fmt: skip
    runs: dict[str, list[dict[str, float]]] = {}
    for round_ in range(args.rounds):
        for kind, clients, batch in (("single", 32, 1), ("bulk", 4, args.batch)):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            for enabled in order:
                _trigger(data_dir, enabled)
                figures = await _saturate(server, token, clients=clients, batch=batch,
                                          seconds=args.seconds)  # fmt: skip
                runs.setdefault(f"{kind} notify={'on' if enabled else 'off'}", []).append(figures)
    _trigger(data_dir, True)
    summary = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    for kind in ("single", "bulk"):
        on, off = summary[f"{kind} notify=on"], summary[f"{kind} notify=off"]
        summary[f"{kind} throughput change %"] = {
            "median": 100 * (on["events_per_s"] - off["events_per_s"]) / off["events_per_s"]
        }
    return {"rounds": runs, "summary": summary}


async def _watch(url: str, token: str, ready: asyncio.Event, stop: asyncio.Event,
                 out: list[tuple[str, int, float]], closes: Counter[str]) -> None:  # fmt: skip
    """One watcher, as a well-behaved client: on ``lagged`` or a close it resumes with
    ``since=`` its last cursor, so what it finally lacks is really lost."""
    cursor: str | None = None
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        full = url + (f"&since={cursor}" if cursor is not None else "")
        try:
            async with connect(full, additional_headers=headers, max_queue=None) as ws:
                while not stop.is_set():
                    try:
                        async with asyncio.timeout(0.5):
                            raw = await ws.recv()
                    except TimeoutError:
                        continue
                    message = orjson.loads(raw)
                    kind = message["type"]
                    if kind == "event":
                        cursor = message["cursor"]
                        out.append((message["data"]["id"], int(cursor), time.monotonic()))
                    elif kind == "ready":
                        cursor = cursor or message["cursor"]
                        ready.set()
                    elif kind != "ping":
                        closes[kind] += 1
        except ConnectionClosed as exc:
            closes[f"close {exc.rcvd.code if exc.rcvd else 1006}"] += 1


def _watchers(url: str, token: str, n: int, stop: Any, ready: Any, out: str) -> None:
    """A client process holding *n* watchers (the client side is spread over processes,
    so that it is not the bottleneck being measured)."""

    async def main() -> bytes:
        done = asyncio.Event()
        received: list[list[tuple[str, int, float]]] = [[] for _ in range(n)]
        closes: Counter[str] = Counter()
        readies = [asyncio.Event() for _ in range(n)]
        tasks = [asyncio.create_task(_watch(url, token, readies[i], done, received[i], closes))
                 for i in range(n)]  # fmt: skip
        await asyncio.gather(*(r.wait() for r in readies))
        ready.put(n)
        await asyncio.to_thread(stop.wait)
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return orjson.dumps({"received": received, "closes": closes})

    Path(out).write_bytes(asyncio.run(main()))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    data_dir = WORK / "data"
    server = start_auditline(data_dir, workers=2, log=WORK / "serve.log")
    try:
        ensure_tenant(server, data_dir, TENANT)
        writer, auditor = (
            token_for(data_dir, "admin", TENANT),
            token_for(data_dir, "auditor", TENANT),
        )
        url = f"ws://127.0.0.1:{server.port}/api/v1/logs/stream?tenant_id={TENANT}"
        cost = await notify_cost(server, data_dir, writer, args) if args.rounds else None
        kwargs = {"rate": args.rate, "batch": args.batch, "seconds": args.seconds}
        cpu = _api_cpu(server)
        before, _ = await _ingest(server, writer, **kwargs)
        before["api_cpu_s"] = _api_cpu(server) - cpu

        procs = max(1, min(args.client_procs, args.watchers))
        stop, ready = multiprocessing.Event(), multiprocessing.Queue()
        clients = [
            multiprocessing.Process(target=_watchers, args=(
                url, auditor, args.watchers // procs + (i < args.watchers % procs), stop, ready,
                str(WORK / f"watchers-{i}.json")))
            for i in range(procs)
        ]  # fmt: skip
        for client in clients:
            client.start()
        for _ in clients:
            await asyncio.to_thread(ready.get, True, 120)
        rss_before = server.tree_rss()
        cpu = _api_cpu(server)
        watched, sent_at = await _ingest(server, writer, **kwargs)
        await asyncio.sleep(2)  # the last deliveries
        watched["api_cpu_s"] = _api_cpu(server) - cpu  # the sending included
        stop.set()
        for client in clients:
            await asyncio.to_thread(client.join, 60)
        received: list[list[tuple[str, int, float]]] = []
        closes: Counter[str] = Counter()
        for i in range(procs):
            part = orjson.loads((WORK / f"watchers-{i}.json").read_bytes())
            received += [[tuple(r) for r in w] for w in part["received"]]
            closes.update(part["closes"])
        rss_after = server.tree_rss()
        after, _ = await _ingest(server, writer, **kwargs)
    finally:
        server.stop()

    delays, lost, duplicated = [], 0, 0
    for events in received:
        seqs = Counter(seq for _, seq, _ in events)  # a resume must not repeat one
        duplicated += sum(n - 1 for n in seqs.values() if n > 1)
        ids = {event_id for event_id, _, _ in events}
        lost += len(set(sent_at) - ids)
        delays += [t - sent_at[i] for i, _, t in events if i in sent_at]
    baseline = statistics.mean([before["events_per_s"], after["events_per_s"]])
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "notify_cost": cost,
        "watchers": args.watchers, "batch": args.batch, "seconds": args.seconds,
        "no_watchers_before": before, "watched": watched, "no_watchers_after": after,
        "throughput_change_pct": 100 * (watched["events_per_s"] - baseline) / baseline,
        "delivery_ms": {"p50": _pct(delays, 50) * 1000, "p99": _pct(delays, 99) * 1000,
                        "count": len(delays)},
        "api_cpu_us_per_message": 1e6 * (watched["api_cpu_s"] - before["api_cpu_s"])
        / max(1, len(delays)),
        "lost": lost, "duplicated": duplicated, "resumed_after": dict(closes),
        "server_rss_mb": {"before": rss_before / 2**20, "after": rss_after / 2**20},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=2000, help="events/s offered")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--client-procs", type=int, default=4, help="watcher processes")
    parser.add_argument("--rounds", type=int, default=4, help="notify on/off rounds (0: skip)")
    result = asyncio.run(run(parser.parse_args()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
