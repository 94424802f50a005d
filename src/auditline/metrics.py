"""What an operator can watch: the service's Prometheus metrics, in one place.

Every metric the service exports is declared here, on one :class:`Metrics` object per
process (built by ``services.open_services``), so its names, labels and meaning can be read
in one file and ``docs/operations.md`` and the alert rules (``deploy/prometheus/alerts.yml``)
can be checked against it. Code elsewhere is handed the object and calls it; nothing
creates a metric anywhere else.

**Several API processes add up.** ``auditline serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a
directory under the data dir, emptied at start (:func:`prepare_multiprocess_dir`); each
process then keeps its values in memory-mapped files there, and a scrape, whichever process
answers it, reads all of them (prometheus-client's multiprocess mode). Gauges add the live
processes' values (``livesum``): the files of a process that stopped are removed when it
stops. Without the variable (tests, CLI commands) each :class:`Metrics` has its own registry,
so two applications in one process never mix their counts.

**Labels stay bounded.** Routes are labelled by their template (``/api/v1/logs/{event_id}``,
never the id), statuses by code; a path no route matches is ``unmatched``. Tenant ids appear
only for the tenants listed in ``metrics.tenant_labels``; every other tenant is ``_other``.

**Where the next metrics go.** Queue depth and age (jobs), stream subscribers and drops
(streams) and index lag (search) are to be declared in
:meth:`Metrics.__init__` under "added by other parts", with a sampling callback registered
through :meth:`Metrics.add_sampler` when the value is read rather than counted.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

# Request latency: from well under a millisecond (a cached read) to the read statement
# timeout and beyond; the ingest targets (p99 <= 50-100 ms) fall between buckets.
_LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_GROUP_EVENTS_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
_GROUP_WAIT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Sealing lag: about one sealing interval (1 s) normally, the 2 s p99 target, then how far
# behind a stuck or slow sealer has fallen.
_SEALING_LAG_BUCKETS: Final = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

ReadKind = Literal["read", "heavy", "export"]
PoolName = Literal["write", "read"]
WitnessFailure = Literal["error", "conflict"]
UNMATCHED: Final = "unmatched"


def multiprocess_dir(data_dir: Path) -> Path:
    return data_dir / "metrics"


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """Empty (or create) the data dir's metrics directory and point this process and its
    children at it. Called once by ``auditline serve`` before any API process starts, so
    the counts of a previous run never add to this one's."""
    path = multiprocess_dir(data_dir)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path.resolve())
    return path


class Metrics:
    """The process's metrics (see the module's docstring for names and labels)."""

    def __init__(self, *, tenant_labels: Iterable[str] = ()) -> None:
        self.multiprocess_path: str | None = os.environ.get(MULTIPROC_ENV) or None
        if self.multiprocess_path and values.ValueClass is values.MutexValue:
            # The value class is chosen when prometheus_client is imported; serve may set the
            # directory after that, so choose again (read by every metric at creation).
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._tenants = frozenset(tenant_labels)
        self._samplers: list[Callable[[], None]] = []
        r = self.registry

        # -- HTTP --------------------------------------------------------------------------
        self.requests = Counter(
            "auditline_http_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "auditline_http_request_duration_seconds",
            "Time from a request's arrival to its response's start, by route template",
            ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip

        # -- ingest ------------------------------------------------------------------------
        self.events_ingested = Counter(
            "auditline_events_ingested", "Client events durably stored (not duplicates)",
            ["tenant"], registry=r,
        )  # fmt: skip
        self.events_duplicate = Counter(
            "auditline_events_duplicate", "Client events whose id was already stored",
            ["tenant"], registry=r,
        )  # fmt: skip
        self.events_rejected = Counter(
            "auditline_events_rejected", "Client events refused as invalid (nothing stored)",
            ["tenant"], registry=r,
        )  # fmt: skip
        self.group_events = Histogram(
            "auditline_group_commit_events", "Events per shared (group) commit",
            buckets=_GROUP_EVENTS_BUCKETS, registry=r,
        )  # fmt: skip
        self.group_wait_seconds = Histogram(
            "auditline_group_commit_wait_seconds",
            "Time a small write waited for the group-commit flusher to take it",
            buckets=_GROUP_WAIT_BUCKETS, registry=r,
        )  # fmt: skip

        # -- database connections ----------------------------------------------------------
        self.pool_size = Gauge(
            "auditline_db_pool_connections", "Open connections per pool",
            ["pool"], multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.pool_in_use = Gauge(
            "auditline_db_pool_in_use", "Connections lent out per pool",
            ["pool"], multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.pool_waiting = Gauge(
            "auditline_db_pool_waiting", "Requests waiting for a connection per pool",
            ["pool"], multiprocess_mode="livesum", registry=r,
        )  # fmt: skip

        # -- read admission ----------------------------------------------------------------
        self.reads_in_flight = Gauge(
            "auditline_reads_in_flight", "Reads holding an admission slot, by kind",
            ["kind"], multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.reads_refused = Counter(
            "auditline_reads_refused",
            "Reads refused with 503 because no admission slot freed in time, by kind",
            ["kind"], registry=r,
        )  # fmt: skip
        self.reads_timed_out = Counter(
            "auditline_reads_timed_out", "Reads cancelled by their statement timeout",
            registry=r,
        )  # fmt: skip

        # -- integrity (counted by the process that seals: see docs/operations.md) -----------
        self.sealing_lag_seconds = Histogram(
            "auditline_sealing_lag_seconds",
            "Per checkpoint written: seconds from the arrival of the oldest event it newly "
            "covers to the checkpoint's commit (an upper bound on commit-to-sealed)",
            buckets=_SEALING_LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.sealing_failures = Counter(
            "auditline_sealing_failures",
            "Sealing rounds of a tenant that failed (retried next round; the log says why)",
            ["tenant"], registry=r,
        )  # fmt: skip
        self.witness_failures = Counter(
            "auditline_witness_failures",
            "Checkpoints stored but not witnessed: the witness was unreachable (error), or "
            "held a different checkpoint of the same size (conflict: the log was forked)",
            ["reason"], registry=r,
        )  # fmt: skip
        # -- rollups (folded in every process that opens the services: indexing/rollups.py) ---
        self.rollup_deltas_folded = Counter(
            "auditline_rollup_deltas_folded",
            "Rollup deltas the writes appended that a fold moved into the hourly counters",
            registry=r,
        )  # fmt: skip
        self.rollup_fold_failures = Counter(
            "auditline_rollup_fold_failures",
            "Fold passes that failed (retried at the next tick; reads stay exact, and slow "
            "down as deltas pile up; the log says why)",
            registry=r,
        )  # fmt: skip
        # -- search index (OpenSearch) -------------------------------------------------------
        self.index_lag_events = Gauge(
            "auditline_search_index_lag_events",
            "Events committed but not yet searchable in OpenSearch, per tenant (last run)",
            ["tenant"], multiprocess_mode="mostrecent", registry=r,
        )  # fmt: skip
        self.index_lag_seconds = Gauge(
            "auditline_search_index_lag_seconds",
            "Age of the oldest event not yet searchable in OpenSearch, per tenant (last run)",
            ["tenant"], multiprocess_mode="mostrecent", registry=r,
        )  # fmt: skip
        self.search_fallbacks = Counter(
            "auditline_search_fallbacks",
            "Searches PostgreSQL answered because OpenSearch could not, by operation",
            ["operation"], registry=r,
        )  # fmt: skip

        # -- added by other parts ----------------------------------------------------------
        # Queue depth and age (jobs), stream subscribers and drops (streams), index lag
        # (search) are declared here as they land, e.g.
        #   self.queue_depth = Gauge("auditline_queue_depth", ..., ["queue"],
        #                            multiprocess_mode="livesum", registry=r)
        # and, when read rather than counted, kept fresh by a sampler (add_sampler).

    # -- helpers -----------------------------------------------------------------------------
    def tenant_label(self, tenant: str) -> str:
        return tenant if tenant in self._tenants else "_other"

    def add_sampler(self, sample: Callable[[], None]) -> None:
        """Run *sample* before every scrape this process answers and on the periodic tick
        (``sample_now``): for values read from somewhere (pool statistics, queue depth)."""
        self._samplers.append(sample)

    def sample_now(self) -> None:
        for sample in self._samplers:
            sample()

    def render(self) -> tuple[bytes, str]:
        """The exposition text: every process's values in multiprocess mode, else this
        process's."""
        self.sample_now()
        if self.multiprocess_path:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_path)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE
        return generate_latest(self.registry), CONTENT_TYPE

    def process_stopped(self) -> None:
        """Remove this process's live gauges from the shared directory (its counters stay,
        so totals never go backwards)."""
        if self.multiprocess_path:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_path)  # type: ignore[no-untyped-call]
