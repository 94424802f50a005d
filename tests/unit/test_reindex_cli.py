"""``auditline reindex`` reports what it did in one line: ``--all`` what it replaced (and
nothing on a first build) and what the swap handled while it held every tenant; a repair
what it indexed and deleted for each tenant. Counts of one are singular."""

from __future__ import annotations

from auditline.cli.reindex import rebuilt, repaired
from auditline.domain.tenants import TenantId
from auditline.indexing.service import IndexRun, Rebuild


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
        "the swap caught up 7 events and 1 removed range; generation 2 dropped"
    )


def test_counts_of_one_are_singular_in_the_rebuild_line() -> None:
    line = rebuilt(
        Rebuild(
            generation=2, replaced=1, tenants=1, removed_ranges=1, locked_events=1,
            locked_ranges=0,
        )
    )  # fmt: skip
    assert line == (
        "generation 2 is live (1 tenant, 1 removed range deleted); "
        "the swap caught up 1 event and 0 removed ranges; generation 1 dropped"
    )


def test_a_repair_line_says_what_was_indexed_and_deleted_for_the_tenant() -> None:
    acme = TenantId("acme")
    assert repaired(IndexRun(acme, 1, 1, 2, 0)) == "acme: 1 event indexed, 1 removed range deleted"
    assert repaired(IndexRun(acme, 12, 0, 13, 0)) == (
        "acme: 12 events indexed, 0 removed ranges deleted"
    )
