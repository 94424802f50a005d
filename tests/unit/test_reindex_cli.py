"""``auditline reindex --all`` reports what it replaced, and nothing on a first build, and
what the swap handled while it held every tenant."""

from __future__ import annotations

from auditline.cli.reindex import rebuilt
from auditline.indexing.service import Rebuild


def test_a_first_build_names_no_dropped_generation() -> None:
    line = rebuilt(
        Rebuild(
            generation=1, replaced=0, tenants=3, removed_ranges=0, locked_events=0,
            locked_ranges=0,
        )
    )  # fmt: skip
    assert line == (
        "generation 1 is live (3 tenants, 0 removed ranges deleted); "
        "the swap caught up 0 events and 0 removed ranges"
    )
    assert "dropped" not in line


def test_a_rebuild_names_the_generation_it_dropped_and_what_the_swap_handled() -> None:
    line = rebuilt(
        Rebuild(
            generation=3, replaced=2, tenants=5, removed_ranges=4, locked_events=7,
            locked_ranges=1,
        )
    )  # fmt: skip
    assert line == (
        "generation 3 is live (5 tenants, 4 removed ranges deleted); "
        "the swap caught up 7 events and 1 removed ranges; generation 2 dropped"
    )
