"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): a tree head as a signed note.

The note text is at least three non-empty lines::

    <origin>                 a unique name for the log, e.g. auditline.example.com/acme
    <tree size>              ASCII decimal, no sign, no leading zero (0 for the empty tree)
    <root hash>              standard base64 of the 32-byte RFC 9162 root
    [<extension line> ...]   optional, non-empty, opaque

and the signatures follow as ``note.py`` writes them. Transparency-log tooling (Go's
sumdb/note and tlog, Sigsum, witnesses) reads it as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from auditline.integrity.merkle import HASH_SIZE
from auditline.integrity.note import (
    Note,
    Signer,
    Verifier,
    decode_base64,
    encode_base64,
    open_note,
    sign_note,
)

MAX_TREE_SIZE = 2**63 - 1
"""Sizes are leaf counts stored as PostgreSQL bigint; larger ones are refused."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # ASCII digits only: int() takes "+1", "1_0", other scripts


class CheckpointError(ValueError):
    """A note text that is not a well-formed checkpoint; the message says which line."""


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and root hash, and any extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"tree size {self.size} is not in 0..{MAX_TREE_SIZE}")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"root hash is {len(self.root_hash)} bytes, not {HASH_SIZE}")
        for line in self.extensions:
            _check_line(line, "extension line")

    def text(self) -> str:
        """The checkpoint's note text (what is signed), ending in a newline."""
        lines = [self.origin, str(self.size), encode_base64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)


def _check_line(line: str, what: str) -> None:
    if not line:
        raise CheckpointError(f"{what} is empty")
    if any(char < " " for char in line):
        raise CheckpointError(f"{what} contains a newline or another control character")


def parse_checkpoint(text: str) -> Checkpoint:
    """A :class:`Checkpoint` from a note text; :class:`CheckpointError` if malformed."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint has {len(lines)} lines, at least 3 are needed")
    origin, size, root_hash, *extensions = lines
    if not _DECIMAL.fullmatch(size):
        raise CheckpointError(f"tree size {size[:30]!r} is not a decimal without leading zeros")
    if len(size) > len(str(MAX_TREE_SIZE)):  # before int(): no huge conversions
        raise CheckpointError(f"tree size {size[:30]}... is too large")
    try:
        raw_root = decode_base64(root_hash)
    except ValueError as exc:
        raise CheckpointError(f"root hash: {exc}") from None
    return Checkpoint(origin, int(size), raw_root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, *signers: Signer) -> str:
    """The checkpoint as a signed note."""
    return sign_note(checkpoint.text(), *signers)


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: Note


def open_checkpoint(
    note: str | bytes, verifiers: Iterable[Verifier], *, origin: str | None = None
) -> SignedCheckpoint:
    """Verify a signed checkpoint and parse it; with *origin*, also require that origin.

    Raises ``note.NoteError`` for a note that is not trusted and :class:`CheckpointError`
    for a trusted note that is not a checkpoint of the expected origin.
    """
    opened = open_note(note, verifiers)
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint is for origin {checkpoint.origin!r}, not the expected {origin!r}"
        )
    return SignedCheckpoint(checkpoint, opened)
