"""What removing events from a tenant's log means, without I/O: the refusals and the result.

Events leave a log in three ways, all through one deletion primitive
(``lifecycle.retention.RetentionService.delete_events``): an admin's cleanup, the daily
retention task, and archival once an archive is written and verified. Each removal is
recorded in the tenant's own log with the sequence numbers removed, so that a gap in the
numbers is either listed or tampering.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal
from uuid import UUID

from auditline.domain.tenants import TenantId

Reason = Literal["cleanup", "retention", "archive"]

RECORD_MAX_RANGES: Final = 500
"""Sequence ranges listed in one deletion record at most (about 10 KiB of JSON, well within
a record's limits); beyond, the record says how many there were and ``removed_ranges``
holds them all."""


class LegalHold(Exception):
    """The tenant is under legal hold: nothing of its log may be removed (409)."""

    def __init__(self, tenant: TenantId) -> None:
        super().__init__(f"tenant '{tenant}' is under legal hold; no event may be removed")
        self.tenant = tenant


class TooRecent(ValueError):
    """The bound is younger than the minimum age events must reach before removal (422)."""

    def __init__(self, before: datetime, newest_allowed: datetime, min_age_hours: float) -> None:
        super().__init__(
            f"'before' must be at least {min_age_hours:g} hours ago "
            f"(at most {newest_allowed.isoformat()}); got {before.isoformat()}"
        )
        self.before = before
        self.newest_allowed = newest_allowed


@dataclass(slots=True)
class Deletion:
    """What one call of the deletion primitive removed from one tenant's log."""

    tenant: TenantId
    before: datetime
    reason: Reason
    deleted: int = 0
    batches: int = 0
    partitions: list[str] = field(default_factory=list)
    seq_ranges: list[tuple[int, int]] = field(default_factory=list)
    stopped: Literal["legal_hold"] | None = None
    """Set when a legal hold placed while the deletion ran stopped it after some batches."""
    job_id: UUID | None = None


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges with adjacent and overlapping ones joined."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def covers(merged: list[tuple[int, int]], first: int, last: int) -> bool:
    """Whether the inclusive range ``first..last`` lies inside one of *merged*'s ranges
    (as :func:`merge_ranges` returns them: sorted, disjoint, not adjacent)."""
    index = bisect.bisect_right(merged, first, key=lambda r: r[0]) - 1
    return index >= 0 and merged[index][0] <= first and last <= merged[index][1]


def removal_ranges(after: object) -> tuple[list[tuple[int, int]], bool] | None:
    """The ranges a removal record's ``after`` names, its own and those it carries (see
    :func:`carried_ranges`), and whether it names them all; None if *after* is not a
    removal record's (``lifecycle.retention`` writes them)."""
    if not isinstance(after, dict) or not isinstance(after.get("seq_ranges"), list):
        return None
    named: list[tuple[int, int]] = []
    complete = True
    for key in ("seq_ranges", "carried_ranges"):
        listed = [(int(r[0]), int(r[1])) for r in after.get(key) or []]
        named += listed
        total = after.get(f"{key}_total", len(listed))  # None: unknown (see lifecycle)
        complete = complete and total is not None and int(total) <= len(listed)
    return merge_ranges(named), complete


def carried_ranges(records: list[object]) -> tuple[list[tuple[int, int]], bool]:
    """What the removal records among removed events named, for the record of their own
    removal to name again, merged; and whether that is all of it.

    Without this, the evidence that a range was removed on purpose would go with the record
    that named it, one retention period later, and the verifier could no longer tell that
    old gap from a deletion (``evidence.verify``)."""
    named: list[tuple[int, int]] = []
    complete = True
    for after in records:
        found = removal_ranges(after)
        if found is not None:
            named += found[0]
            complete = complete and found[1]
    return merge_ranges(named), complete
