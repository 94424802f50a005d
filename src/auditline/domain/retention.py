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
"""Sequence ranges one removal record names at most, its own and those it carries together
(at most about 21 KiB of JSON with 19-digit numbers, within a record's 64 KiB). A removal
that names more writes more records, in the same transaction (:func:`record_parts`): every
removed number is named by a record inside the signed log, never only by a count."""


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


def uncovered(merged: list[tuple[int, int]], first: int, last: int) -> list[tuple[int, int]]:
    """The parts of the inclusive range ``first..last`` that none of *merged*'s ranges (as
    :func:`merge_ranges` returns them) contains, in order."""
    out: list[tuple[int, int]] = []
    at = first
    index = max(0, bisect.bisect_right(merged, first, key=lambda r: r[0]) - 1)
    for a, b in merged[index:]:
        if a > last:
            break
        if b < at:
            continue
        if a > at:
            out.append((at, a - 1))
        at = b + 1
        if at > last:
            return out
    out.append((at, last))
    return out


@dataclass(frozen=True, slots=True)
class Named:
    """What the removal records of a log name: the ranges, merged, and the records written
    before records were split (:data:`RECORD_MAX_RANGES`) that listed only part of theirs."""

    ranges: list[tuple[int, int]]
    partial: bool


def removal_ranges(after: object) -> Named | None:
    """The ranges a removal record's ``after`` names, its own and those it carries (see
    :func:`carried_ranges`); None if *after* is not a removal record's
    (``lifecycle.retention`` writes them).

    ``partial``: the record lists fewer ranges than its ``seq_ranges_total`` or
    ``carried_ranges_total`` says there were. Records are no longer written so (a removal
    writes as many as it needs); one from before says so, and what it leaves out is not
    named: the verifier reports those numbers rather than trust a count."""
    if not isinstance(after, dict) or not isinstance(after.get("seq_ranges"), list):
        return None
    named: list[tuple[int, int]] = []
    partial = False
    for key in ("seq_ranges", "carried_ranges"):
        listed = [(int(r[0]), int(r[1])) for r in after.get(key) or []]
        named += listed
        total = after.get(f"{key}_total", len(listed))  # None: unknown (an old record)
        partial = partial or total is None or int(total) > len(listed)
    return Named(merge_ranges(named), partial)


def carried_ranges(records: list[object]) -> list[tuple[int, int]]:
    """What the removal records among removed events named, for the records of their own
    removal to name again, merged.

    Without this, the evidence that a range was removed on purpose would go with the record
    that named it, one retention period later, and the verifier could no longer tell that
    old gap from a deletion (``evidence.verify``). Only what a record lists is carried: the
    part an old partial record left out was never named, and is not named now."""
    named: list[tuple[int, int]] = []
    for after in records:
        found = removal_ranges(after)
        if found is not None:
            named += found.ranges
    return merge_ranges(named)


@dataclass(frozen=True, slots=True)
class RecordPart:
    """What one removal record names: its share of a removal's own ranges and of those it
    carries."""

    seq_ranges: list[tuple[int, int]]
    carried_ranges: list[tuple[int, int]]

    @property
    def events(self) -> int:
        """How many removed events this record's own ranges name."""
        return sum(last - first + 1 for first, last in self.seq_ranges)


def record_parts(
    own: list[tuple[int, int]], carried: list[tuple[int, int]], limit: int
) -> list[RecordPart]:
    """Split what a removal names into records of at most *limit* ranges each, own ranges
    first, so that together they name every one of *own* and *carried* (none if both are
    empty). One removal's records are written in one transaction with the removal itself:
    either all of them are in the log or the removal did not happen."""
    if limit < 1:
        raise ValueError("a record must be able to name at least one range")
    tagged = [(True, r) for r in own] + [(False, r) for r in carried]
    parts: list[RecordPart] = []
    for start in range(0, len(tagged), limit):
        chunk = tagged[start : start + limit]
        parts.append(RecordPart([r for o, r in chunk if o], [r for o, r in chunk if not o]))
    return parts
