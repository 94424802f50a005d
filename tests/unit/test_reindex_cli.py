"""``auditline reindex --all`` reports what it replaced, and nothing on a first build."""

from __future__ import annotations

from auditline.cli.reindex import rebuilt
from auditline.indexing.service import Rebuild


def test_a_first_build_names_no_dropped_generation() -> None:
    line = rebuilt(Rebuild(generation=1, replaced=0, tenants=3, removed_ranges=0))
    assert line == "generation 1 is live (3 tenants, 0 removed ranges deleted)"
    assert "dropped" not in line


def test_a_rebuild_names_the_generation_it_dropped() -> None:
    line = rebuilt(Rebuild(generation=3, replaced=2, tenants=5, removed_ranges=4))
    assert line == (
        "generation 3 is live (5 tenants, 4 removed ranges deleted); generation 2 dropped"
    )
