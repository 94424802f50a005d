"""``auditline bench seed`` writes data that satisfies every invariant of the event store."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from auditline.bench.seed import tenant_sizes
from auditline.cli import main
from auditline.domain.events import Event
from auditline.domain.tenants import TenantId
from auditline.integrity.leaf import leaf_hash
from auditline.storage.events import COLUMNS


def test_tenant_sizes_are_skewed_and_add_up() -> None:
    sizes = tenant_sizes(10_000_000, 100)
    assert sum(sizes) == 10_000_000
    assert sizes == sorted(sizes, reverse=True)
    assert 0.17 < sizes[0] / 10_000_000 < 0.22  # one large tenant, as in DESIGN.md
    assert sizes[-1] < sizes[0] / 50


def test_seeded_events_keep_the_event_store_invariants(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("AUDITLINE_DATABASE__URL", database_url)
    args = ["bench", "seed", "--events", "1200", "--tenants", "4", "--days", "3",
            "--no-progress", "--batch-size", "250", "--data-dir", str(tmp_path / "d")]  # fmt: skip
    assert main(args) == 0
    assert "wrote 1200 events to 4 tenants" in capsys.readouterr().out
    with psycopg.connect(database_url) as conn:
        per_tenant = conn.execute(
            """SELECT e.tenant_id, count(*), min(e.seq), max(e.seq), count(DISTINCT e.seq),
                      (SELECT next_seq FROM tenant_log_heads h WHERE h.tenant_id = e.tenant_id),
                      (SELECT count(*) FROM event_ids i WHERE i.tenant_id = e.tenant_id),
                      (SELECT sum(n) FROM event_rollups r
                        WHERE r.tenant_id = e.tenant_id AND r.dim = 'total')
                 FROM events e WHERE e.tenant_id LIKE 'bench-%' GROUP BY e.tenant_id
                ORDER BY e.tenant_id"""
        ).fetchall()
        assert [r[0] for r in per_tenant] == ["bench-000", "bench-001", "bench-002", "bench-003"]
        assert sum(r[1] for r in per_tenant) == 1200
        for _tenant, n, lo, hi, distinct, head, ids, rolled in per_tenant:
            assert (lo, hi, distinct, head, ids, rolled) == (0, n - 1, n, n, n, n)
        # seq follows time order, as if the events had been ingested as they happened
        disorder = conn.execute(
            """SELECT count(*) FROM (
                 SELECT timestamp < lag(timestamp)
                            OVER (PARTITION BY tenant_id ORDER BY seq) AS back
                   FROM events WHERE tenant_id LIKE 'bench-%') x WHERE back"""
        ).fetchone()
        assert disorder == (0,)
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        rows = cur.execute(
            f"SELECT {', '.join(COLUMNS)} FROM events WHERE tenant_id = 'bench-001' LIMIT 50"  # noqa: S608
        ).fetchall()
    for row in rows:
        fields = {k: v for k, v in row.items() if k not in ("seq", "leaf_hash")}
        fields["ip_address"] = str(fields["ip_address"])
        fields["tenant_id"] = TenantId(fields["tenant_id"])
        event = Event(leaf_hash=b"", **fields)
        assert leaf_hash(event) == bytes(row["leaf_hash"])
