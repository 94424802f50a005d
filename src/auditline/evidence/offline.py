"""Verifying an export made with ``include_proofs=true``, with nothing but the file and the
public key: no server, no database.

The file's head is the checkpoint the proofs lead to. It is accepted only if it carries a
valid signature by the given key. Then, for every event: its fields must hash to its
``leaf_hash`` (RFC 8785 canonical JSON, RFC 9162 leaf), and its inclusion path must lead
from that hash, at index ``seq``, to the checkpoint's root. An event without a proof (stored
after the checkpoint was taken) is reported as unproven, not as wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditline.evidence.verify import Finding
from auditline.integrity.checkpoint import CheckpointError, open_checkpoint
from auditline.integrity.leaf import entry_hash, record_entry
from auditline.integrity.merkle import InvalidProof, verify_inclusion
from auditline.integrity.note import NoteError, Verifier, decode_base64


class NotAProofExport(ValueError):
    """The file is not a JSON or NDJSON export made with ``include_proofs=true``."""


@dataclass
class ExportReport:
    origin: str = ""
    tree_size: int = 0
    proven: int = 0
    unproven: list[int] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def _read(data: bytes) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The head and the events of a JSON (``{..., "events": [...]}``) or NDJSON export."""
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("events"), list):
        return whole, iter(whole["events"])
    lines = (line for line in data.splitlines() if line.strip())
    try:
        head = orjson.loads(next(lines))
    except (StopIteration, orjson.JSONDecodeError):
        raise NotAProofExport("the file is neither JSON nor NDJSON") from None
    if not isinstance(head, dict) or "checkpoint" not in head:
        raise NotAProofExport("no checkpoint at the head: export with include_proofs=true")

    def events() -> Iterator[dict[str, Any]]:
        for number, line in enumerate(lines, start=2):
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                raise NotAProofExport(f"line {number} is not JSON") from None

    return head, events()


def verify_export(data: bytes, verifier: Verifier) -> ExportReport:
    """Check every event of an export against the checkpoint at its head."""
    head, events = _read(data)
    report = ExportReport()
    try:
        signed = open_checkpoint(str(head["checkpoint"]), [verifier])
    except (NoteError, CheckpointError) as exc:
        report.findings.append(Finding(
            f"the export's checkpoint does not verify with the given key: {exc}"))  # fmt: skip
        return report
    checkpoint = signed.checkpoint
    report.origin, report.tree_size = checkpoint.origin, checkpoint.size
    for record in events:
        seq, event_id = record.get("seq"), str(record.get("id"))
        try:
            computed = entry_hash(record_entry(record))
        except (KeyError, ValueError, TypeError) as exc:
            report.findings.append(Finding(f"not an event record: {exc!r}", seq, event_id))
            continue
        if record.get("leaf_hash") != computed.hex():
            report.findings.append(Finding(
                "the event's fields do not hash to its leaf_hash: it was changed",
                seq, event_id))  # fmt: skip
        proof = record.get("proof")
        if proof is None:
            report.unproven.append(int(seq) if isinstance(seq, int) else -1)
            continue
        try:
            if proof["leaf_index"] != seq or proof["tree_size"] != checkpoint.size:
                raise InvalidProof("the proof is for another position or tree")
            path = [decode_base64(h) for h in proof["inclusion_path"]]
            verify_inclusion(computed, seq, checkpoint.size, path, checkpoint.root_hash)
        except (InvalidProof, KeyError, TypeError, ValueError) as exc:
            report.findings.append(Finding(
                f"the inclusion proof does not lead to the checkpoint's root: {exc}",
                seq, event_id, checkpoint.size))  # fmt: skip
            continue
        report.proven += 1
    return report
