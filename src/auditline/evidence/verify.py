"""Verifying a tenant's log in a live database against signed checkpoints.

Nothing the database says is taken on trust but the event rows themselves, which are what
is being checked: every row's fields are hashed again (RFC 8785 + RFC 9162 leaf), the tree
is rebuilt from those hashes in ``seq`` order, and its root at every checkpointed size must
equal the root that checkpoint signs. Checkpoints are trusted only through their signature
under the verifier key the caller supplies, and they come from three places: the database,
the witness (a directory or an S3 bucket: :func:`from_witness`), and any the caller kept
(``--since-checkpoint``), so a database rolled back together with its checkpoint table is
still caught by the others.

What each kind of tampering looks like here (tests/integration/test_tamper.py):

* a field edited, ``leaf_hash`` left alone: the row no longer hashes to its stored leaf;
* a field edited and every stored hash recomputed: the rebuilt root differs from the first
  checkpoint signed after it;
* rows deleted, swapped or inserted: a gap or a duplicate in ``seq``, or a root mismatch;
* rows deleted and the gap dressed up as a removal (a ``removed_ranges`` row written by
  hand): no removal record in the signed log itself names those numbers;
* the newest rows deleted with the log head: a signed checkpoint larger than the log;
* a forged checkpoint, or one signed by another key: its signature does not verify;
* an older checkpoint presented as current: smaller than a witnessed or kept one.

Removals are not tampering. Retention, cleanup and archival delete events through one
primitive that lists the numbers it removed in ``removed_ranges`` and in removal records
appended to the tenant's own log in the same transaction (as many as it takes to list every
range), and only once they are sealed. A gap is accepted when both say so, number by
number: a record stands for the ranges it lists and nothing more, so the part of a gap no
record lists is reported however many removals the log holds (a record written before
removals were split, which lists only its first ranges and a count, is named in those
findings as a possible explanation, not trusted). The leaves' hashes of an accepted gap then
come from the stored level-0 tiles, which the signed roots check as they check every other
hash. What a removal leaves
is evidence that it happened (the record, in the signed log, with who and why), not the
removed events: their fields can be checked only against an archive (``auditline archive
verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from psycopg import IsolationLevel
from psycopg_pool import AsyncConnectionPool

from auditline.domain.access import ACCESS_RESOURCE
from auditline.domain.retention import covers, merge_ranges, removal_ranges, uncovered
from auditline.domain.tenants import TenantId
from auditline.evidence.sealer import origin_of
from auditline.evidence.witness import WitnessReader
from auditline.integrity.checkpoint import CheckpointError, open_checkpoint
from auditline.integrity.leaf import leaf_hash
from auditline.integrity.merkle import EMPTY_ROOT, MemoryTreeHashes, integrate
from auditline.integrity.note import NoteError, Verifier, encode_base64
from auditline.storage import integrity as store
from auditline.storage import retention as removals
from auditline.storage.database import Connection, set_tenant

Progress = Callable[[int, int], None]
"""Called with (leaves checked, leaves in the log) as verification goes."""

_CHUNK = 10_000


@dataclass(frozen=True)
class Finding:
    """One thing wrong, and where: a ``seq``, an event id, a checkpoint's tree size."""

    what: str
    seq: int | None = None
    event_id: str | None = None
    checkpoint: int | None = None

    def __str__(self) -> str:
        where = [
            f"seq {self.seq}" if self.seq is not None else "",
            f"id {self.event_id}" if self.event_id else "",
            f"checkpoint {self.checkpoint}" if self.checkpoint is not None else "",
        ]
        located = ", ".join(w for w in where if w)
        return f"{self.what}" + (f" ({located})" if located else "")


@dataclass
class Report:
    tenant: str
    leaves: int = 0
    log_head: int = 0
    checkpoints: dict[int, bytes] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    removed: list[tuple[int, int]] = field(default_factory=list)
    """The ranges of ``seq`` removed by retention, cleanup or archival (inclusive)."""

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class Source:
    """Where a checkpoint came from, for the report."""

    name: str
    note: str


async def from_witness(witness: WitnessReader, tenant: str) -> list[Source]:
    """Every checkpoint *witness* holds for *tenant*, as sources for :func:`verify_log`."""
    return [
        Source(f"the witness (size {size})", note)
        for size, note in await witness.checkpoints(tenant)
    ]


def _signed_heads(
    sources: Iterable[Source], verifier: Verifier, origin: str, report: Report
) -> dict[int, bytes]:
    heads: dict[int, bytes] = {}
    for source in sources:
        try:
            signed = open_checkpoint(source.note, [verifier])
        except (NoteError, CheckpointError) as exc:
            report.findings.append(Finding(
                f"a checkpoint from {source.name} does not verify with the given key "
                f"(forged, altered, or signed by another key): {exc}"))  # fmt: skip
            continue
        head = signed.checkpoint
        if head.origin != origin:
            report.findings.append(Finding(
                f"a checkpoint from {source.name} is for log {head.origin!r}, not {origin!r}",
                checkpoint=head.size))  # fmt: skip
            continue
        known = heads.get(head.size)
        if known is not None and known != head.root_hash:
            report.findings.append(Finding(
                f"two validly signed checkpoints of the same size disagree (the log was "
                f"forked); the one from {source.name} has root {encode_base64(head.root_hash)}",
                checkpoint=head.size))  # fmt: skip
            continue
        heads[head.size] = head.root_hash
    return heads


class _Tree:
    """The tree rebuilt leaf by leaf, keeping only its frontier."""

    def __init__(self) -> None:
        self.size = 0
        self.frontier = MemoryTreeHashes()
        self.pending: list[bytes] = []

    @property
    def count(self) -> int:
        return self.size + len(self.pending)

    def flush(self) -> bytes:
        """The root of everything added so far."""
        if self.pending:
            grown = integrate(self.frontier, self.size, self.pending)
            self.size, self.pending = grown.size, []
            self.frontier = MemoryTreeHashes(dict(grown.frontier))
            return grown.root
        if self.size == 0:
            return EMPTY_ROOT
        return integrate(self.frontier, self.size, []).root


async def verify_log(
    pool: AsyncConnectionPool[Connection],
    tenant: TenantId,
    verifier: Verifier,
    origin: str,
    *,
    extra_checkpoints: Sequence[Source] = (),
    progress: Progress | None = None,
) -> Report:
    """Check *tenant*'s stored events against every validly signed checkpoint found."""
    report = Report(tenant=tenant)
    expected_origin = origin_of(origin, tenant)
    async with pool.connection() as conn:
        # One snapshot for the whole run: the checkpoints, the head and every row agree.
        await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
        try:
            async with conn.transaction():
                await set_tenant(conn, tenant)
                stored = await store.all_checkpoints(conn, tenant)
                report.log_head = await store.log_size(conn, tenant)
                sources = [Source("the database", c.note) for c in stored]
                heads = _signed_heads(
                    [*sources, *extra_checkpoints], verifier, expected_origin, report
                )
                report.checkpoints = heads
                await _check_rows(conn, tenant, heads, report, progress)
        finally:
            await conn.set_isolation_level(None)
    newest_stored = max((c.tree_size for c in stored), default=-1)
    for size in sorted(heads):
        if size > report.leaves:
            report.findings.append(Finding(
                f"a signed checkpoint covers {size} events but the database holds "
                f"{report.leaves}: events were deleted or the log was rolled back",
                checkpoint=size))  # fmt: skip
        elif size > newest_stored:
            report.findings.append(Finding(
                f"the database's newest checkpoint is {newest_stored}, older than a signed "
                f"checkpoint kept elsewhere: the checkpoint table was rolled back",
                checkpoint=size))  # fmt: skip
    if report.log_head != report.leaves:
        report.findings.append(Finding(
            f"the log head says {report.log_head} events but {report.leaves} are stored in "
            "sequence: rows were deleted or inserted at the end of the log"))  # fmt: skip
    return report


async def _check_rows(
    conn: Connection,
    tenant: TenantId,
    heads: dict[int, bytes],
    report: Report,
    progress: Progress | None,
) -> None:
    tree = _Tree()
    sizes = iter(sorted(s for s in heads if s > 0))
    next_size = next(sizes, None)
    good_up_to = 0
    if 0 in heads and heads[0] != EMPTY_ROOT:
        report.findings.append(
            Finding("the checkpoint of the empty log has a wrong root", checkpoint=0)
        )
    recorded = merge_ranges(await removals.removed_ranges(conn, tenant))
    logged = _LoggedRemovals()

    def add(hash_: bytes) -> None:
        nonlocal next_size, good_up_to
        tree.pending.append(hash_)
        if len(tree.pending) >= _CHUNK:
            tree.flush()
        while next_size is not None and tree.count == next_size:
            root = tree.flush()
            if root != heads[next_size]:
                report.findings.append(Finding(
                    f"the events in seq {good_up_to}..{next_size - 1} do not hash to the "
                    f"root this checkpoint signs: one of them was changed, removed, "
                    f"inserted or reordered (with its stored hashes recomputed)",
                    checkpoint=next_size))  # fmt: skip
            good_up_to = next_size
            next_size = next(sizes, None)
        if progress is not None and tree.count % _CHUNK == 0:
            progress(tree.count, report.log_head)

    async def removed_up_to(end: int) -> bool:
        """Account for ``seq`` tree.count..end-1, missing from the rows: True if a removal
        covers them and their leaf hashes are in the tiles (added to the tree)."""
        first = tree.count
        if not covers(recorded, first, end - 1):
            return False
        for hash_ in await store.tile_leaves(conn, tenant, first, end):
            add(hash_)
        if tree.count < end:
            report.findings.append(Finding(
                f"events with seq {tree.count}..{end - 1} were removed but the tiles no "
                "longer hold their hashes: the tree cannot be rebuilt",
                seq=tree.count))  # fmt: skip
            return False
        report.removed.append((first, end - 1))
        return True

    async for stored in store.events_by_seq(conn, tenant):
        event = stored.event
        if stored.seq < tree.count:
            report.findings.append(Finding(
                "a second event claims a seq already taken: a row was inserted",
                seq=stored.seq, event_id=str(event.id)))  # fmt: skip
            continue
        if stored.seq > tree.count and not await removed_up_to(stored.seq):
            report.findings.append(Finding(
                f"events with seq {tree.count}..{stored.seq - 1} are missing: rows were "
                "deleted (no recorded removal covers them)", seq=tree.count))  # fmt: skip
            # The rest of the tree cannot be rebuilt from the rows; every later checkpoint
            # will say so on its own, so stop counting here.
            break
        recomputed = leaf_hash(event)
        if recomputed != event.leaf_hash:
            report.findings.append(Finding(
                "the event's fields no longer hash to its stored leaf hash: it was changed "
                "after it was written", seq=stored.seq, event_id=str(event.id)))  # fmt: skip
        logged.note(stored.seq, event.resource_type, event.action, event.after)
        add(recomputed)
    else:
        if report.log_head > tree.count:  # the newest events removed, nothing after them
            await removed_up_to(report.log_head)
    report.leaves = tree.count
    if tree.pending:
        tree.flush()
    if progress is not None:
        progress(tree.count, report.log_head)
    for first, last in report.removed:
        for a, b in logged.unnamed(first, last):
            report.findings.append(Finding(
                f"events with seq {a}..{b} are gone and listed as removed, but no removal "
                "record in the signed log names them: rows were deleted and the listing was "
                f"written by hand{logged.partial_note()}", seq=a))  # fmt: skip


_COMPACT_SLACK = 4096
"""Ranges :class:`_LoggedRemovals` collects unmerged before merging what it holds."""


class _LoggedRemovals:
    """The ranges the removal records in the log itself list (the records are leaves, so
    an administrator cannot add one to the signed part of the log).

    Only what a record lists counts. A record never stands for more than it lists: every
    removal writes as many records as its ranges need (``domain.retention.record_parts``),
    so a gap no record lists is reported, however many other removals the log holds."""

    def __init__(self) -> None:
        self._listed: list[tuple[int, int]] = []
        """Every range every record lists, as listed (merged once, when first asked)."""
        self._merged: list[tuple[int, int]] | None = None
        self._compacted = 0
        self.partial: list[int] = []
        """The ``seq`` of each record that lists fewer ranges than it counts: written before
        removals were split over several records, so part of what it removed is not named."""

    def note(self, seq: int, resource_type: str | None, action: str, after: object) -> None:
        if resource_type != ACCESS_RESOURCE or action != "DELETE":
            return
        found = removal_ranges(after)
        if found is not None:
            self._listed.extend(found.ranges)
            self._merged = None
            if len(self._listed) > 2 * self._compacted + _COMPACT_SLACK:
                # Records carry earlier removals' ranges again: merged now and then, the
                # list stays near the size of its merged form at amortised O(log) a range.
                self._listed = merge_ranges(self._listed)
                self._compacted = len(self._listed)
            if found.partial:
                self.partial.append(seq)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """The listed ranges, merged (sorted, disjoint, not adjacent). Merged here, not at
        each record: a log holds one record per removal batch, and merging everything
        again at each of them made verification quadratic in the records."""
        if self._merged is None:
            self._merged = merge_ranges(self._listed)
            self._listed = list(self._merged)
            self._compacted = len(self._listed)
        return self._merged

    def unnamed(self, first: int, last: int) -> list[tuple[int, int]]:
        """The parts of a gap no record names (a record may list a run in several pieces:
        one per batch)."""
        return uncovered(self.ranges, first, last)

    def partial_note(self) -> str:
        if not self.partial:
            return ""
        shown = ", ".join(str(s) for s in self.partial[:10])
        more = f" and {len(self.partial) - 10} more" if len(self.partial) > 10 else ""
        return (
            f" (or removed by one of the removal records at seq {shown}{more}, which list "
            "only part of the ranges they removed: written before a removal named every "
            "range in its records, they cannot be told from tampering)"
        )
