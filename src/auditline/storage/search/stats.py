"""SQL for statistics: totals, counts per dimension, top users and resources, the timeline;
and the counts per value that facets of a time range alone read (``value_counts``).

Where the numbers come from (design notes in ``docs/search.md``, figures in
``docs/benchmarks/search.md``):

* With any filter besides the time range: one grouped pass over the matching events.
* With the time range alone: whole UTC hours from the hourly rollups (migration 0003) and
  only the partial hours at the edges from the events. A trailing partial hour is counted
  either from its events before the end, or as its rollup minus its events from the end
  on, whichever spans less time that can hold events (``_end_from_rollup``): for a range
  ending now (the default) the second way, as only events dated in the future (clock
  skew) remain to subtract. Counting the current hour from its events cost 92-99 ms of
  PostgreSQL CPU per request when it held 100 k of them, against 7 ms from its rollup.
* Top users and resources over the rollups are ranked without adding up every (hour,
  key) row of the range: users and resources are long-tailed, so a week of a large
  tenant holds hundreds of thousands of such rows, nearly all counting one or two
  events. Instead the heavy-hitter rows (migration 0004: every rollup row counting at
  least ``auditline_heavy_min()``) name the candidates, the remaining light hours bound
  how far any other key can reach, and the best candidates are counted exactly. When
  that bound cannot prove the ranking (small tenants, flat distributions), the
  dimension is summed in full, which is then cheap because there are few rows.
  Both ways give identical answers; the tests compare them.
* The rollup and heavy-hitter primary keys carry the counts (``INCLUDE (n)``, migration
  0005), so every rollup read here is an index-only scan: a tenant's week is contiguous
  in the key but scattered over the heap (46 k heap pages for one 7-day answer before).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

from psycopg import sql

from auditline.domain.events import SEVERITIES
from auditline.domain.tenants import TenantId
from auditline.search.model import Bucket, Count, Interval, ResourceCount, SearchQuery, Stats
from auditline.storage.database import Connection
from auditline.storage.search.compiler import Compiler, where_all

_DIMS: Final = ("action", "severity", "resource_type", "outcome")
_RANKED: Final = ("user", "resource")
# A ranked key must be non-empty: events without a user (or a resource) are not ranked.
_KEYED: Final = {"user": "k1 <> ''", "resource": "k2 <> ''"}
# Below this many events in the range's whole hours, adding up every user and resource
# row is about as cheap as the heavy-hitter proof, which there often fails anyway (on the
# 10 M benchmark, 7 days: summing 28 ms against 49 ms for the proof at 40 k events; at
# 76 k, 62 ms against 23 ms the other way; docs/benchmarks/search.md).
_PRUNE_FROM_EVENTS: Final = 60_000
_TRUNC: Final[dict[Interval, str]] = {"minute": "minute", "hour": "hour", "day": "day"}


def _hour_ceil(ts: datetime) -> datetime:
    floor = ts.replace(minute=0, second=0, microsecond=0)
    return floor if floor == ts else floor + timedelta(hours=1)


def _hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _end_from_rollup(end: datetime, now: datetime) -> bool:
    """Whether the partial hour a range ends in is cheaper counted as its rollup minus its
    events from *end* on than as its events before *end*.

    The second part of the hour can hold events only up to *now* (later ones are dated in
    the future, which only clock skew does), so the rule compares the time before *end*
    with the time from *end* to *now* or the hour's end, whichever comes first. A range
    that ends now, as the API's default end does (a moment before this runs), is counted
    from its rollup however little of the hour has passed.
    """
    hour = _hour_floor(end)
    before = end - hour
    after = min(hour + timedelta(hours=1), max(end, now)) - end
    return before > after


def _raw_parts(c: Compiler, where: Sequence[sql.Composable], bucket_unit: str) -> sql.Composable:
    """One pass over the matching events, grouped by every dimension at once."""
    return sql.SQL(
        """SELECT CASE WHEN GROUPING(e.action) = 0 THEN 'action'
                       WHEN GROUPING(e.severity) = 0 THEN 'severity'
                       WHEN GROUPING(e.outcome) = 0 THEN 'outcome'
                       WHEN GROUPING(e.user_id) = 0 THEN 'user'
                       WHEN GROUPING(e.resource_id) = 0 THEN 'resource'
                       WHEN GROUPING(e.resource_type) = 0 THEN 'resource_type'
                       ELSE 'total' END AS dim,
                  coalesce(CASE WHEN GROUPING(e.action) = 0 THEN e.action
                                WHEN GROUPING(e.severity) = 0 THEN e.severity::text
                                WHEN GROUPING(e.outcome) = 0 THEN e.outcome
                                WHEN GROUPING(e.user_id) = 0 THEN e.user_id
                                WHEN GROUPING(e.resource_type) = 0 THEN e.resource_type
                           END, '') AS k1,
                  CASE WHEN GROUPING(e.resource_id) = 0 THEN coalesce(e.resource_id, '')
                       ELSE '' END AS k2,
                  CASE WHEN GROUPING(b.bucket) = 0 THEN b.bucket END AS bucket,
                  count(*) AS n
             FROM events e
             CROSS JOIN LATERAL (SELECT date_trunc({unit}, e.timestamp, 'UTC') AS bucket) b
            WHERE {where}
            GROUP BY GROUPING SETS ((e.action), (e.severity), (e.resource_type), (e.outcome),
                                    (e.user_id), (e.resource_type, e.resource_id),
                                    (b.bucket))"""
    ).format(unit=sql.Literal(bucket_unit), where=where_all(where))


@dataclass(frozen=True)
class _Ranked:
    dim: str
    k1: str
    k2: str
    n: int


@dataclass(frozen=True)
class _Request:
    """What one stats answer asks for, and which way it is answered."""

    tenant: TenantId
    query: SearchQuery
    start: datetime
    end: datetime
    interval: Interval
    top: int
    end_from_rollup: bool = False

    @property
    def h0(self) -> datetime:
        """The first whole hour of the range."""
        return _hour_ceil(self.start)

    @property
    def h1(self) -> datetime:
        """The end of the last whole hour of the range."""
        return _hour_floor(self.end)

    @property
    def rollup(self) -> bool:
        """Whole hours from the rollups: only a time range, hourly or coarser, an hour long."""
        q = self.query
        only_time = q.filters.only_time and q.q is None and q.only_user is None
        # The rollups do not count access records (migration 0009).
        return (
            only_time and not q.access_included and self.interval != "minute" and self.h0 < self.h1
        )

    @property
    def verify(self) -> int:
        """Candidates counted exactly per ranked dimension: enough beyond ``top`` that
        the proof usually succeeds at once."""
        return 2 * self.top


class _Statement:
    """One SQL statement of a stats answer, built from named parts.

    Every part yields rows of one shape, (kind, dim, k1, k2, bucket, n, upper); only
    ``bound`` rows use ``upper``. The edges (or, without rollups, all matching events)
    are grouped once, in the ``raw`` CTE; with rollups, the ``hours`` CTE holds each
    whole hour that has events with its *capacity*: the most a light (hour, key) row of
    it can count.
    """

    def __init__(self, request: _Request, parts: Sequence[str]) -> None:
        self.r = request
        c = self.c = Compiler("e")
        if request.rollup:
            raw = self._edges()
        else:
            where = [
                *c.base(request.tenant, request.query),
                sql.SQL("e.timestamp >= {}").format(c.param(request.start)),
                sql.SQL("e.timestamp < {}").format(c.param(request.end)),
            ]
            if request.query.q is not None:
                where.append(c.node(request.query.q))
            raw = _raw_parts(c, where, _TRUNC[request.interval])
        self.t, self.lo, self.hi = c.param(request.tenant), c.param(request.h0), c.param(request.h1)
        ctes = [sql.SQL("raw AS MATERIALIZED ({})").format(raw)]
        if request.rollup:
            ctes.append(
                sql.SQL(
                    # An hour whose events were all removed but not yet folded still
                    # has folded rows to probe: it stays, with no capacity left.
                    """hours AS MATERIALIZED (
                         SELECT r.bucket,
                                greatest(least(sum(r.n), auditline_heavy_min() - 1), 0)
                                  AS capacity
                           FROM event_rollup_rows r
                          WHERE r.tenant_id = {t}::text AND r.dim = 'total'
                            AND r.bucket >= {lo} AND r.bucket < {hi}
                          GROUP BY r.bucket HAVING bool_or(r.n <> 0))"""
                ).format(t=self.t, lo=self.lo, hi=self.hi)
            )
        builders: dict[str, Callable[[], sql.Composable]] = {
            "dims": self._dims,
            "timeline": self._timeline,
            **{f"top {d}": partial(self._full_top, d) for d in _RANKED},
            **{f"candidates {d}": partial(self._candidates, d) for d in _RANKED},
            "unset user": self._unset_user,
        }
        self.sql = sql.SQL(
            "WITH {ctes} SELECT * FROM ({body}) AS x (kind, dim, k1, k2, bucket, n, upper)"
        ).format(
            ctes=sql.SQL(", ").join(ctes),
            body=sql.SQL(" UNION ALL ").join(builders[p]() for p in parts),
        )

    def _edges(self) -> sql.Composable:
        """Rows of the partial hours at the range's edges, shaped as ``_raw_parts`` makes them.

        With ``end_from_rollup`` the trailing hour is its rollup rows (bucketed only for
        ``total``, as event rows are) minus its events from the end on, in one snapshot.
        """
        r, c = self.r, self.c

        def within(lo: datetime, hi: datetime) -> sql.Composable:
            return sql.SQL("({ts} >= {lo} AND {ts} < {hi})").format(
                ts=c.col("timestamp"), lo=c.param(lo), hi=c.param(hi)
            )

        def events(where: sql.Composable) -> sql.Composable:
            return _raw_parts(c, [*c.base(r.tenant, SearchQuery()), where], "hour")

        if not r.end_from_rollup:
            return events(sql.SQL("({} OR {})").format(within(r.start, r.h0), within(r.h1, r.end)))
        return sql.SQL(
            """SELECT dim, k1, k2, bucket, sum(n)::bigint AS n
                 FROM ({lead}
                       UNION ALL
                       SELECT r.dim, r.k1, r.k2, CASE WHEN r.dim = 'total' THEN r.bucket END, r.n
                         FROM event_rollup_rows r
                        WHERE r.tenant_id = {t}::text AND r.dim = ANY({dims}) AND r.bucket = {h1}
                       UNION ALL
                       SELECT dim, k1, k2, bucket, -n FROM ({rest}) rest) x
                GROUP BY dim, k1, k2, bucket HAVING sum(n) <> 0"""
        ).format(
            lead=events(within(r.start, r.h0)), t=c.param(r.tenant), h1=c.param(r.h1),
            # Every dimension named, so each key index is probed once per dimension.
            dims=sql.Literal(["total", *_DIMS, *_RANKED]),
            rest=events(within(r.end, r.h1 + timedelta(hours=1))),
        )  # fmt: skip

    async def rows(self, conn: Connection) -> list[dict[str, Any]]:
        return await (await conn.execute(self.sql, self.c.params)).fetchall()

    def _source(self, *dims: str, keyed: str = "true") -> sql.Composable:
        """Rows (dim, k1, k2, bucket, n) of *dims*: raw edges plus whole-hour rollups,
        folded and not (several rows per key until folded: callers add them up).

        Each rollup dimension is one range of each rollup table's key index.
        """
        wanted = sql.Literal(list(dims))
        out = sql.SQL("SELECT dim, k1, k2, bucket, n FROM raw WHERE dim = ANY({d}) AND {k}").format(
            d=wanted, k=sql.SQL(keyed)
        )
        if self.r.rollup:
            out = sql.SQL(
                """{raw} UNION ALL
                   SELECT r.dim, r.k1, r.k2, r.bucket, r.n FROM event_rollup_rows r
                    WHERE r.tenant_id = {t}::text AND r.dim = ANY({d})
                      AND r.bucket >= {lo} AND r.bucket < {hi} AND {k}"""
            ).format(raw=out, t=self.t, d=wanted, lo=self.lo, hi=self.hi, k=sql.SQL(keyed))
        return out

    def _dims(self) -> sql.Composable:
        return sql.SQL(
            """SELECT 'dim', dim, k1, k2, NULL::timestamptz, sum(n)::bigint, NULL::bigint
                 FROM ({rows}) x GROUP BY dim, k1, k2 HAVING sum(n) > 0"""
        ).format(rows=self._source(*_DIMS, "total"))

    def _timeline(self) -> sql.Composable:
        unit = sql.Literal(_TRUNC[self.r.interval])
        return sql.SQL(
            """SELECT 'timeline', 'total', '', '', s.bucket, coalesce(t.n, 0)::bigint,
                      NULL::bigint
                 FROM generate_series(date_trunc({unit}, {start}::timestamptz, 'UTC'),
                                      {end}::timestamptz - interval '1 microsecond',
                                      {step}::interval) s(bucket)
                 LEFT JOIN (SELECT date_trunc({unit}, p.bucket, 'UTC') AS bucket, sum(p.n) AS n
                              FROM ({total}) p GROUP BY 1) t ON t.bucket = s.bucket"""
        ).format(
            unit=unit, start=self.c.param(self.r.start), end=self.c.param(self.r.end),
            step=sql.Literal(f"1 {self.r.interval}"), total=self._source("total"),
        )  # fmt: skip

    def _full_top(self, dim: str) -> sql.Composable:
        """The exact top of *dim*, by adding up every row of the range.

        Ties are broken by key in code-point order (``COLLATE "C"``), the order Python
        sorts strings in, whatever the database's collation.
        """
        return sql.SQL(
            """(SELECT 'top', {d}, k1, k2, NULL::timestamptz, sum(n)::bigint, NULL::bigint
                  FROM ({rows}) x GROUP BY k1, k2 HAVING sum(n) > 0
                 ORDER BY sum(n) DESC, k1 COLLATE "C", k2 COLLATE "C" LIMIT {top})"""
        ).format(d=sql.Literal(dim), rows=self._source(dim, keyed=_KEYED[dim]),
                 top=self.c.param(self.r.top))  # fmt: skip

    def _unset_user(self) -> sql.Composable:
        """How many events of the range have no user (the ``''`` key): the one count the
        user top lists leave out, which facets rank with the others.

        The whole hours are one probe of each rollup table's key each (the ``''`` row
        comes first in its hour), not a scan of every user row of the range.
        """
        rows: sql.Composable = sql.SQL("SELECT n FROM raw WHERE dim = 'user' AND k1 = ''")
        if self.r.rollup:
            rows = sql.SQL(
                """{edges} UNION ALL
                   SELECT r.n FROM hours h CROSS JOIN LATERAL (
                          SELECT sum(r.n) AS n FROM event_rollup_rows r
                           WHERE r.tenant_id = {t}::text AND r.dim = 'user'
                             AND r.bucket = h.bucket AND r.k1 = '' AND r.k2 = '') r"""
            ).format(edges=rows, t=self.t)
        return sql.SQL(
            """SELECT 'dim', 'user', '', '', NULL::timestamptz, sum(n)::bigint, NULL::bigint
                 FROM ({rows}) x HAVING sum(n) > 0"""
        ).format(rows=rows)

    def _candidates(self, dim: str) -> sql.Composable:
        """The best candidates of *dim*, counted exactly, and the bound every other key is under.

        A candidate is a key with a heavy row in the range, events in the edges or rollup
        deltas not yet folded (migration 0021: the heavy rows and the threshold describe
        folded counts): ``counted`` is exact for those hours and deltas, and each of its
        other whole hours adds at most that hour's capacity. Candidates are ranked by the
        coarser upper bound counted + min(all capacity, (heavy_min - 1) x hours not heavy); the best
        ``verify`` of them are counted exactly, one primary-key probe per light hour, but
        only when the ``top``-th of them could still beat everything below them.
        The ``bound`` row carries the best upper bound left: of the other candidates,
        and of keys with no heavy row at all (the range's whole capacity).
        """
        d = sql.Literal(dim)
        return sql.SQL(
            """(WITH cand AS (
                    SELECT k1, k2, coalesce(h.counted, 0) + coalesce(e.n, 0) AS counted,
                           coalesce(h.hours, '{{}}') AS heavy
                      FROM (SELECT k1, k2, sum(n) AS counted, array_agg(bucket) AS hours
                              FROM event_rollup_heavy
                             WHERE tenant_id = {t}::text AND dim = {d}
                               AND bucket >= {lo} AND bucket < {hi}
                             GROUP BY k1, k2) h
                      FULL JOIN (SELECT k1, k2, sum(n) AS n
                                   FROM (SELECT k1, k2, n FROM raw WHERE dim = {d} AND {k}
                                         UNION ALL
                                         SELECT k1, k2, n FROM event_rollup_deltas
                                          WHERE tenant_id = {t}::text AND dim = {d}
                                            AND bucket >= {lo} AND bucket < {hi} AND {k}) x
                                  GROUP BY k1, k2) e
                     USING (k1, k2)),
                cap AS (SELECT coalesce(sum(capacity), 0) AS total, count(*) AS hours FROM hours),
                ranked AS MATERIALIZED (
                    SELECT k1, k2, counted, heavy, upper,
                           row_number() OVER (ORDER BY upper DESC, k1 COLLATE "C", k2 COLLATE "C")
                             AS rank
                      FROM (SELECT k1, k2, counted, heavy,
                                   counted + least(cap.total, (auditline_heavy_min() - 1)
                                                   * (cap.hours - cardinality(heavy))) AS upper
                              FROM cand, cap) c),
                bound AS MATERIALIZED (
                    SELECT greatest((SELECT max(upper) FROM ranked WHERE rank > {m}),
                                    (SELECT total FROM cap)) AS upper,
                           coalesce((SELECT upper FROM ranked WHERE rank = {top}), 0) AS kth),
                best AS MATERIALIZED (
                    SELECT k1, k2, counted, heavy FROM ranked
                     WHERE rank <= {m} AND (SELECT kth > upper FROM bound)),
                light AS (
                    SELECT b.k1, b.k2, sum(r.n) AS n
                      FROM best b JOIN hours h ON h.bucket <> ALL (b.heavy)
                     CROSS JOIN LATERAL (
                           -- One primary-key probe per light hour of the folded rows (the
                           -- key's deltas are in its count already): the key is unique, and
                           -- LIMIT keeps the planner from turning the probes into a scan
                           -- of the whole range (it cannot estimate how few they are).
                           SELECT r.n FROM event_rollups r
                            WHERE r.tenant_id = {t}::text AND r.dim = {d}
                              AND r.bucket = h.bucket AND r.k1 = b.k1 AND r.k2 = b.k2
                            LIMIT 1) r
                     GROUP BY b.k1, b.k2)
               SELECT 'candidate', {d}, b.k1, b.k2, NULL::timestamptz,
                      (b.counted + coalesce(l.n, 0))::bigint, NULL::bigint
                 FROM best b LEFT JOIN light l USING (k1, k2)
               UNION ALL
               SELECT 'bound', {d}, '', '', NULL, NULL, upper::bigint FROM bound)"""
        ).format(t=self.t, lo=self.lo, hi=self.hi, d=d, k=sql.SQL(_KEYED[dim]),
                 m=self.c.param(self.r.verify), top=self.c.param(self.r.top))  # fmt: skip


async def stats(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    *,
    start: datetime,
    end: datetime,
    interval: Interval,
    top: int,
    prune: bool | None = None,
    end_from_rollup: bool | None = None,
) -> Stats:
    """Counts over [start, end).

    *prune* chooses how top lists over rollups are ranked: from the heavy hitters
    whenever that provably gives the same answer (True), by adding up every row
    (False), or by the range's size (None, the default; see ``_PRUNE_FROM_EVENTS``).
    *end_from_rollup* chooses how a trailing partial hour is counted, by default the
    cheaper way (``_end_from_rollup``). Every choice gives the same answer.
    """
    request = _request(tenant, query, start, end, interval, top, end_from_rollup)
    rows, _ = await _rows(conn, request, ["dims", "timeline"], _RANKED, prune)
    return _stats_from_rows(rows, request)


def _request(
    tenant: TenantId,
    query: SearchQuery,
    start: datetime,
    end: datetime,
    interval: Interval,
    top: int,
    end_from_rollup: bool | None,
) -> _Request:
    # Rollups are UTC hours: in any other offset (+05:30, say) the range's own hour
    # boundaries would fall inside them.
    request = _Request(tenant, query, start.astimezone(UTC), end.astimezone(UTC), interval, top)
    if end_from_rollup is None:
        end_from_rollup = _end_from_rollup(request.end, datetime.now(UTC))
    return replace(request, end_from_rollup=request.rollup and end_from_rollup)


async def _rows(
    conn: Connection,
    request: _Request,
    parts: Sequence[str],
    ranked: Sequence[str],
    prune: bool | None,
) -> tuple[list[dict[str, Any]], frozenset[str]]:
    """The rows of *parts*, and ``top`` rows of each dimension in *ranked* (exact top
    lists, proven from the heavy hitters when *prune* says so, else summed in full); and
    the dimensions of *ranked* whose top list the heavy hitters proved.

    The range's size decides *prune* (None) only when there is something to rank: the
    statement that reads it would otherwise be wasted."""
    if request.rollup and prune is None and ranked:
        cur = await conn.execute(
            """SELECT coalesce(sum(n), 0) AS n FROM event_rollup_rows
                WHERE tenant_id = %s AND dim = 'total' AND bucket >= %s AND bucket < %s""",
            (request.tenant, request.h0, request.h1),
        )
        row = await cur.fetchone()
        prune = row is not None and row["n"] >= _PRUNE_FROM_EVENTS
    if not (prune and request.rollup):
        rows = await _Statement(request, [*parts, *(f"top {d}" for d in ranked)]).rows(conn)
        return rows, frozenset()
    rows = await _Statement(request, [*parts, *(f"candidates {d}" for d in ranked)]).rows(conn)
    proven = _proven_tops(request, rows, ranked)
    unproven = [f"top {d}" for d in ranked if d not in proven]
    if unproven:
        rows += await _Statement(request, unproven).rows(conn)
    rows = [r for r in rows if r["kind"] not in ("candidate", "bound")]
    rows += [
        {"kind": "top", "dim": x.dim, "k1": x.k1, "k2": x.k2, "n": x.n}
        for tops in proven.values() for x in tops
    ]  # fmt: skip
    return rows, frozenset(proven)


def _proven_tops(
    request: _Request, rows: list[dict[str, Any]], dims: Sequence[str]
) -> dict[str, list[_Ranked]]:
    """The top lists the heavy hitters prove, per ranked dimension of *dims*.

    The top *k* of the exactly counted candidates is the answer when its last count
    beats the bound every other key is under. A tie with the bound is not accepted (the
    key order could differ), nor is a list shorter than *k* (light keys could fill it).
    """
    exact: dict[str, list[_Ranked]] = {d: [] for d in dims}
    bound: dict[str, int] = {}
    for r in rows:
        if r["kind"] == "candidate":
            exact[r["dim"]].append(_Ranked(r["dim"], r["k1"], r["k2"], int(r["n"])))
        elif r["kind"] == "bound":
            bound[r["dim"]] = int(r["upper"])
    proven: dict[str, list[_Ranked]] = {}
    for dim, ranked in exact.items():
        ranked.sort(key=lambda x: (-x.n, x.k1, x.k2))
        if len(ranked) >= request.top and ranked[request.top - 1].n > bound[dim]:
            proven[dim] = ranked[: request.top]
    return proven


@dataclass(frozen=True, slots=True)
class ValueCounts:
    """What :func:`value_counts` found."""

    counts: dict[str, list[Count]]
    """Per dimension asked for, its counts per value (unordered)."""
    proven: frozenset[str] = frozenset()
    """The ranked dimensions whose top list the heavy hitters proved, with no sum over
    every row of the range (empty when none was tried or the proof failed): which way
    answered, for the tests; the counts are the same either way."""


async def value_counts(
    conn: Connection,
    tenant: TenantId,
    query: SearchQuery,
    *,
    dims: Sequence[str],
    top: int,
    prune: bool | None = None,
    end_from_rollup: bool | None = None,
) -> ValueCounts:
    """Exact counts per value of *dims* among the events in the query's time range,
    which may be open at either end (the query must hold nothing else; see
    ``pages.rollups_apply``): what facets of such a query report.

    Each of ``action``, ``severity``, ``resource_type`` and ``outcome`` gets every value
    it has; ``user`` the top *top* users and the count of events without one, so the
    top *top* of all values is among them. Unset values (``''`` in the rollups, NULL in
    the events) are None. *prune* and *end_from_rollup* as for :func:`stats`;
    ``ValueCounts.proven`` says whether the heavy hitters proved the users' top list.
    A tenant without rollup rows (no event they count) gets an empty list per dimension.

    An open start is the tenant's first rollup hour and an open end the hour after its
    last: every event the rollups count lies in between, on whole hours, so neither adds
    an edge. Like every rollup read this counts every event committed in the snapshot,
    whatever its ``seq``: facets below an older watermark take the later ones away
    themselves (``facets.rollup_facets``).
    """
    start, end = query.filters.start, query.filters.end
    if start is None or end is None:
        cur = await conn.execute(
            """SELECT min(bucket) AS first, max(bucket) AS last FROM event_rollup_rows
                WHERE tenant_id = %s AND dim = 'total'""",
            (tenant,),
        )
        row = await cur.fetchone()
        if row is None or row["first"] is None:  # no rollups: no event they would count
            return ValueCounts({d: [] for d in dims})
        start = row["first"] if start is None else start
        end = row["last"] + timedelta(hours=1) if end is None else end
    end = max(start, end)
    request = _request(tenant, query, start, end, "hour", top, end_from_rollup)
    plain = [d for d in dims if d in _DIMS]
    ranked = [d for d in dims if d in _RANKED]
    parts = (["dims"] if plain else []) + (["unset user"] if "user" in ranked else [])
    rows, proven = await _rows(conn, request, parts, ranked, prune)
    out: dict[str, list[Count]] = {d: [] for d in dims}
    for row in rows:
        if row["dim"] in out and row["kind"] in ("dim", "top"):
            out[row["dim"]].append(Count(_key(row["k1"]), int(row["n"])))
    return ValueCounts(out, proven)


def _key(value: str) -> str | None:
    return value or None


def _stats_from_rows(rows: list[dict[str, Any]], request: _Request) -> Stats:
    dims: dict[str, list[Count]] = {d: [] for d in _DIMS}
    total = 0
    users: list[Count] = []
    resources: list[ResourceCount] = []
    timeline: list[Bucket] = []
    for row in rows:
        kind, dim = row["kind"], row["dim"]
        n = int(row["n"])
        if kind == "timeline":
            timeline.append(Bucket(row["bucket"], n))
        elif kind == "top" and dim == "user":
            users.append(Count(_key(row["k1"]), n))
        elif kind == "top":
            resources.append(ResourceCount(_key(row["k1"]), _key(row["k2"]), n))
        elif dim == "total":
            total += n
        else:
            dims[dim].append(Count(_key(row["k1"]), n))
    severity_rank: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
    for dim, counts in dims.items():
        if dim == "severity":
            counts.sort(key=lambda x: severity_rank.get(x.key or "", 99))
        else:
            counts.sort(key=lambda x: (-x.count, x.key or ""))
    users.sort(key=lambda x: (-x.count, x.key or ""))
    resources.sort(key=lambda x: (-x.count, x.resource_type or "", x.resource_id or ""))
    timeline.sort(key=lambda b: b.start)
    return Stats(
        start=request.start, end=request.end, interval=request.interval, total=total,
        by_action=dims["action"], by_severity=dims["severity"],
        by_resource_type=dims["resource_type"], by_outcome=dims["outcome"],
        top_users=users, top_resources=resources, timeline=timeline,
        source="rollup" if request.rollup else "events",
    )  # fmt: skip
