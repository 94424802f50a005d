"""Open-loop load at a fixed offered rate, for latency under a known load.

wrk is closed-loop: a slow response delays the next request, which hides queueing delay
(coordinated omission). Here request *i* is due at ``start + i / rate`` whatever happened
before, and its latency is measured from that due time, so waiting for a free connection
counts against the server, as it would for a real client.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass, field


@dataclass
class OpenLoopResult:
    offered_rps: float
    achieved_rps: float
    latencies_ms: list[float]
    errors: int
    statuses: list[int] = field(default_factory=list)  # one per latency, same order
    # When each answered request was due, seconds after ``started`` (same order): for
    # latency per time window (bench/growth.py)
    due_s: list[float] = field(default_factory=list)
    started: float = 0.0  # time.perf_counter() when the first request was due

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def by_due(self, width: float, offset: float = 0.0) -> dict[int, list[float]]:
        """Latencies grouped by the window of *width* seconds their request was due in,
        counted from ``started`` less *offset* (window i holds i * width <= due < ...)."""
        windows: dict[int, list[float]] = {}
        for due, ms in zip(self.due_s, self.latencies_ms, strict=True):
            windows.setdefault(int((due + offset) // width), []).append(ms)
        return windows

    def split(self, refused: int = 503) -> tuple[list[float], list[float]]:
        """Latencies of the requests answered (2xx) and of those refused with *refused*."""
        answered = [ms for ms, s in zip(self.latencies_ms, self.statuses, strict=True) if s < 300]
        shed = [ms for ms, s in zip(self.latencies_ms, self.statuses, strict=True) if s == refused]
        return answered, shed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def run(
    host: str,
    port: int,
    path: str,
    bodies: list[bytes],
    token: str,
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
    method: str = "POST",
) -> OpenLoopResult:
    """Offer requests at *rate* per second for *seconds*, round-robin from *bodies*: JSON
    bodies POSTed to *path*, or with *method* GET, paths (and queries) to request."""
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(_Connection(*await asyncio.open_connection(host, port)))
    headers = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n".encode()
    if method == "GET":
        requests = [b"GET %s HTTP/1.1\r\n%s\r\n" % (p, headers) for p in bodies]
    else:
        head = f"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\n".encode() + headers
        requests = [head + b"Content-Length: %d\r\n\r\n" % len(b) + b for b in bodies]
    latencies: list[float] = []
    statuses: list[int] = []
    due_s: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal errors
        due = start + i / rate
        conn = await idle.get()
        try:
            status = await conn.send(requests[i % len(requests)])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            return
        latencies.append((time.perf_counter() - due) * 1000)
        statuses.append(status)
        due_s.append(i / rate)
        if status >= 300:
            errors += 1
        idle.put_nowait(conn)

    # The generator's own garbage collections (thousands of live tasks) paused it for up
    # to 90 ms, which counted against the server: no collection while measuring.
    gc.disable()
    try:
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    finally:
        gc.enable()
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().writer.close()
    return OpenLoopResult(rate, len(latencies) / elapsed, latencies, errors, statuses, due_s, start)
