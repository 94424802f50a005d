"""Processes the benchmarks drive: the real service, the bare ceiling, and the load tool."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


@dataclass
class Process:
    """A server process and the RSS samples taken while it ran."""

    proc: subprocess.Popen[bytes]
    base: str
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    _sampling: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def tree_rss(self) -> int:
        """RSS of the server process and its children (uvicorn workers), in bytes."""
        try:
            parent = psutil.Process(self.proc.pid)
            procs = [parent, *parent.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs if p.name() != "postgres")
        except psutil.NoSuchProcess:
            return 0

    def cpu_seconds(self) -> float:
        parent = psutil.Process(self.proc.pid)
        total = 0.0
        for p in [parent, *parent.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
        return total

    def request_buckets(self, method: str, route: str) -> dict[float, float]:
        """The service's own request-duration histogram for one route, as it stands:
        cumulative counts by bucket bound in seconds, its processes added up (``/metrics``
        runs in multiprocess mode). Times from the edge middleware's first look at the
        request to its answer: a request waiting in a socket for a busy event loop, or in
        the load generator, is not in them."""
        text = httpx.get(self.base + "/metrics", timeout=10).text
        buckets: dict[float, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name != "auditline_http_request_duration_seconds_bucket":
                    continue
                if labels.get("method") == method and labels.get("route") == route:
                    bound = float(labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
        return buckets

    def sample_rss(self, interval: float = 1.0) -> threading.Thread:
        start = time.monotonic()

        def loop() -> None:
            while not self._sampling.wait(interval):
                self.rss_samples.append((time.monotonic() - start, self.tree_rss()))

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._sampling.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def served_within(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """From two :meth:`Process.request_buckets` readings, what the service itself saw in
    between: the share of requests it answered within 100 ms, and the smallest bucket
    bound its p99 fell within (milliseconds; the buckets are coarse: 50, 100, 250, ...)."""
    bounds = sorted(after)
    counts = {b: after[b] - before.get(b, 0.0) for b in bounds}
    total = counts[bounds[-1]]
    if not total:
        return {"requests": 0, "within_100ms": float("nan"), "p99_at_most_ms": float("nan")}
    p99 = next(b for b in bounds if counts[b] >= 0.99 * total)
    return {"requests": total, "within_100ms": counts[0.1] / total, "p99_at_most_ms": p99 * 1000}


def _postmaster(data_dir: Path) -> psutil.Process:
    return psutil.Process(int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]))


def postgres_cpu_seconds(data_dir: Path) -> float:
    """CPU seconds the embedded PostgreSQL under *data_dir* has used so far, all processes."""
    own, exited, children = _sample(_postmaster(data_dir))
    return own + exited + sum(cpu for _, cpu in children.values())


def _sample(postmaster: psutil.Process) -> tuple[float, float, dict[int, tuple[str, float]]]:
    """The postmaster's own CPU seconds, those of its children that have exited (its
    reaped-children times), and each live child's kind and CPU seconds, read together."""
    times = postmaster.cpu_times()
    own, exited = times.user + times.system, times.children_user + times.children_system
    return own, exited, _children(postmaster)


def _children(postmaster: psutil.Process) -> dict[int, tuple[str, float]]:
    """Each live PostgreSQL child process: its kind (see ``_kind``) and CPU seconds so far."""
    found = {}
    for child in postmaster.children():
        try:
            with child.oneshot():
                times, title = child.cpu_times(), " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        found[child.pid] = (_kind(title), times.user + times.system)
    return found


def _kind(title: str) -> str:
    """What a PostgreSQL process does, from the title PostgreSQL gives it."""
    if "autovacuum worker" in title:
        return "autovacuum"
    if "parallel worker" in title:
        return "parallel query"
    if "127.0.0.1(" in title or "[local]" in title:
        return "connections"
    return "background"  # checkpointer, WAL writer, background writer, launchers, ...


class _Poller:
    """Calls ``_poll`` every *interval* seconds in a thread while the ``with`` block runs;
    subclasses take their first reading in ``_begin`` and their last in ``_end``."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._stop = threading.Event()

    def _begin(self) -> None:
        pass

    def _poll(self) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        pass

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._poll()

    def __enter__(self) -> Self:
        self._begin()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._end()


class PostgresCpu(_Poller):
    """CPU seconds PostgreSQL spends while the ``with`` block runs, by kind of process.

    A total alone cannot say whether a window's PostgreSQL time went to the load or to
    autovacuum or the checkpointer. Processes are polled every *interval* seconds, so one
    that starts and exits inside the window is still attributed up to its last poll; what
    no poll saw is ``unattributed`` (from the postmaster's reaped-children total).
    """

    def __init__(self, data_dir: Path, interval: float = 0.25) -> None:
        super().__init__(interval)
        self._postmaster = _postmaster(data_dir)
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self.seconds: dict[str, float] = {}

    def _record(self, children: dict[int, tuple[str, float]]) -> None:
        for pid, (kind, cpu) in children.items():
            self._first.setdefault(pid, 0.0)  # started inside the window: all of it counts
            self._last[pid] = (kind, cpu)

    def _begin(self) -> None:
        self._own0, self._exited0, children = _sample(self._postmaster)
        self._first = {pid: cpu for pid, (_, cpu) in children.items()}

    def _poll(self) -> None:
        self._record(_children(self._postmaster))

    def _end(self) -> None:
        own, exited, children = _sample(self._postmaster)
        live0 = sum(self._first.values())  # processes started since count 0 here
        self._record(children)
        total = own + exited + sum(cpu for _, cpu in children.values())
        total -= self._own0 + self._exited0 + live0
        seconds = {"background": own - self._own0}
        for pid, (kind, cpu) in self._last.items():
            seconds[kind] = seconds.get(kind, 0.0) + cpu - self._first[pid]
        seconds["unattributed"] = total - sum(seconds.values())
        self.seconds = seconds


# What each connection in a transaction is doing, by the wait PostgreSQL reports for it.
_ACTIVITY = """
SELECT CASE WHEN state = 'idle in transaction' THEN 'idle in transaction'
            WHEN wait_event_type IS NULL THEN 'running'
            WHEN wait_event_type = 'Lock' THEN 'waiting for a lock'
            WHEN wait_event_type = 'IO' THEN 'I/O'
            WHEN wait_event_type = 'Client' THEN 'waiting for the client'
            ELSE 'other' END AS kind,
       count(*)
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
   AND state IN ('active', 'idle in transaction')
 GROUP BY 1"""

WAIT_KINDS = ("running", "waiting for a lock", "I/O", "waiting for the client",
              "idle in transaction", "other")  # fmt: skip


class PostgresWaits(_Poller):
    """How many of PostgreSQL's connections, on average, were running or waiting (and on
    what) while the ``with`` block ran, from ``pg_stat_activity`` every *interval* seconds.

    CPU figures say how much work a load costs; these say where its requests queue. A
    tenant's writes take turns on its log head, and "waiting for a lock" shows how many
    of them wait for another's transaction at any moment.
    """

    def __init__(self, url: str, interval: float = 0.05) -> None:
        super().__init__(interval)
        self._url = url
        self._counts = dict.fromkeys(WAIT_KINDS, 0)
        self._samples = 0
        self.mean: dict[str, float] = {}

    def _begin(self) -> None:
        self._conn = psycopg.connect(self._url, autocommit=True)  # used by the thread only

    def _poll(self) -> None:
        for kind, count in self._conn.execute(_ACTIVITY).fetchall():
            self._counts[kind] += count
        self._samples += 1

    def _end(self) -> None:
        self._conn.close()
        self.mean = {kind: n / max(self._samples, 1) for kind, n in self._counts.items()}


def _service_env(*, group_commit: bool = True) -> dict[str, str]:
    """The service's environment in every benchmark."""
    env = {
        **os.environ,
        "AUDITLINE_INGEST__GROUP_COMMIT": str(group_commit).lower(),
        "AUDITLINE_LOG_LEVEL": "warning",
        "AUDITLINE_DATABASE__POOL_MAX_SIZE": "20",
        # Rate limits stay on (their cost is part of every request) but far above the load,
        # so they never answer 429 during a benchmark.
        "AUDITLINE_RATE_LIMITS__INGEST_PER_TENANT__RATE": "1000000",
        "AUDITLINE_RATE_LIMITS__INGEST_PER_TENANT__BURST": "1000000",
        "AUDITLINE_RATE_LIMITS__INGEST_PER_PRINCIPAL__RATE": "1000000",
        "AUDITLINE_RATE_LIMITS__INGEST_PER_PRINCIPAL__BURST": "1000000",
        "AUDITLINE_RATE_LIMITS__READ_PER_TENANT__RATE": "1000000",
        "AUDITLINE_RATE_LIMITS__READ_PER_TENANT__BURST": "1000000",
        "AUDITLINE_RATE_LIMITS__READ_PER_PRINCIPAL__RATE": "1000000",
        "AUDITLINE_RATE_LIMITS__READ_PER_PRINCIPAL__BURST": "1000000",
    }
    env.pop("AUDITLINE_DATABASE__URL", None)
    return env


def _launch(args: list[str], port: int, *, ready: str, log: Path, **popen: Any) -> Process:
    """``python -m *args*`` serving on *port*, once *ready* (a path) answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], stdout=log.open("ab"), stderr=subprocess.STDOUT, **popen
    )
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base + ready, proc)
    return Process(proc, base)


def start_auditline(
    data_dir: Path, *, workers: int = 1, group_commit: bool = True, log: Path
) -> Process:
    port = free_port()
    args = ["auditline", "serve", "--data-dir", str(data_dir), "--port", str(port),
            "--workers", str(workers)]  # fmt: skip
    return _launch(
        args, port, ready="/readyz", log=log, env=_service_env(group_commit=group_commit)
    )


# The application factory under each HTTP server compared by the stack suite. uvicorn's
# options are those ``auditline serve`` passes it.
STACKS = {
    "uvicorn": ["uvicorn", "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"],
    "granian": ["granian", "--interface", "asgi", "--loop", "uvloop", "--http", "1", "--no-ws",
                "--log-level", "warning"],
}  # fmt: skip


def start_stack(stack: str, data_dir: Path, url: str, *, workers: int, log: Path) -> Process:
    """``auditline.app:create_app`` under *stack*, on the running PostgreSQL at *url*."""
    port = free_port()
    env = _service_env() | {"AUDITLINE_DATABASE__URL": url, "AUDITLINE_DATA_DIR": str(data_dir)}
    args = [*STACKS[stack], "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "auditline.app:create_app"]  # fmt: skip
    return _launch(args, port, ready="/readyz", log=log, env=env)


def start_bare(log: Path) -> Process:
    port = free_port()
    return _launch(["bench.bare", "--port", str(port)], port, ready="/docs", log=log, cwd=ROOT)


@dataclass
class WrkResult:
    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    wrk_cpu_share: float  # of one core, while it ran
    server_cpu_share: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk(
    url: str,
    *,
    bodies: Path,
    token: str,
    connections: int,
    seconds: int,
    server: Process,
    method: str = "POST",
) -> WrkResult:
    """Closed-loop load from wrk (C, event-driven): far cheaper per request than the server.

    POST sends the lines of *bodies* to *url*'s path; GET requests the lines as paths.
    """
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    path = "/" + url.split("/", 3)[3]
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_TOKEN": token, "BENCH_PATH": path,
           "BENCH_METHOD": method}  # fmt: skip
    threads = min(2, connections)
    cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
           "-s", str(ROOT / "bench" / "wrk" / "requests.lua"), url.split("/api")[0]]  # fmt: skip
    server_cpu0 = server.cpu_seconds()
    started = time.monotonic()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wrk_cpu = 0.0
    while proc.poll() is None:
        try:
            times = proc.cpu_times()
            wrk_cpu = times.user + times.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.25)
    out = proc.stdout.read().decode() if proc.stdout else ""
    elapsed = time.monotonic() - started
    server_cpu = server.cpu_seconds() - server_cpu0
    match = re.search(r"BENCH (.*)", out)
    if match is None:
        raise RuntimeError(f"wrk failed:\n{out}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in match.group(1).split())}
    return WrkResult(
        requests=v["requests"],
        seconds=v["duration_us"] / 1e6,
        status_errors=v["status_errors"],
        socket_errors=v["socket_errors"],
        p50_ms=v["p50_us"] / 1000,
        p90_ms=v["p90_us"] / 1000,
        p99_ms=v["p99_us"] / 1000,
        p999_ms=v["p999_us"] / 1000,
        max_ms=v["max_us"] / 1000,
        wrk_cpu_share=wrk_cpu / elapsed,
        server_cpu_share=server_cpu / elapsed,
    )
