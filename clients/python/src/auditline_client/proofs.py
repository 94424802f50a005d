"""Checking what the server proves, with nothing but a key the application pins.

Pure code, no network: the clients fetch the answers and hand them here. Everything is
re-derived from public standards, not taken from the server (this package does not import
it), so a server that lies is caught by the same rules a third party would apply:

* **Checkpoints** are C2SP ``tlog-checkpoint`` texts (origin, tree size, base64 root hash)
  inside a C2SP ``signed-note`` with an Ed25519 signature (https://c2sp.org/signed-note). The
  pinned :class:`CheckpointKey` is the verifier key string the server publishes at
  ``/.well-known/auditline-checkpoint-key``: ``<name>+<key ID>+<base64(0x01 || key)>``.
  Each tenant's log is named ``<key name>/<tenant>``, so one tenant's checkpoint cannot be
  passed off as another's.
* **Leaves** are RFC 9162 leaf hashes, ``SHA-256(0x00 || JCS(entry))``, where *entry* is the
  event's fields as ``GET /api/v1/logs/{id}`` returns them (``leaf_hash`` and ``seq`` left
  out: ``seq`` is the leaf's index), plus ``"v": 1``, with both times spelt as UTC RFC 3339
  with six fraction digits and a ``Z``. JCS is RFC 8785, computed by ``rfc8785`` (Trail of
  Bits' implementation, the one the server itself uses as its reference), so the bytes
  are the server's byte for byte, floats and non-ASCII keys included.
* **Proofs** are RFC 9162 inclusion (section 2.1.3.2) and consistency (section 2.1.4.2)
  proofs, verified here step by step from the RFC's text.

Every failure is a :class:`~auditline_client.errors.VerificationError` subclass saying what
does not hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditline_client import types as api
from auditline_client.errors import AlteredEvent, InconsistentLog, UntrustedCheckpoint

ED25519 = 0x01
"""The signed-note signature type of Ed25519."""
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 9162 section 2.1.1)."""
LEAF_FORMAT = 1
"""The version of the leaf entry (its ``"v"``) this client computes."""

_SIGNATURE_PREFIX = "\u2014 "  # EM DASH, space
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_ENTRY_FIELDS = (
    "tenant_id", "id", "timestamp", "received_at", "user_id", "actor_type", "session_id",
    "action", "resource_type", "resource_id", "ip_address", "user_agent", "before", "after",
    "changed_fields", "metadata", "severity", "message", "request_id", "outcome",
)  # fmt: skip


def _b64(text: str, what: str) -> bytes:
    """Standard base64, canonical only (one spelling per value, as the server writes it)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != text:
        raise ValueError(f"{what} is not the canonical base64 of its bytes")
    return raw


def _hash32(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a base64 string")
    raw = _b64(text, what)
    if len(raw) != 32:
        raise ValueError(f"{what} is {len(raw)} bytes, not 32")
    return raw


# -- the pinned key and checkpoints -----------------------------------------------------------


@dataclass(frozen=True)
class CheckpointKey:
    """The Ed25519 verifier key of a server's checkpoints: pin it in the application's
    configuration (``CheckpointKey.parse(text)``) and pass it to every verification.

    ``str(key)`` is the key string again, to store.
    """

    name: str
    key_id: int
    public_key: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> CheckpointKey:
        """A key from ``<name>+<8 hex digits>+<base64(0x01 || 32 bytes)>`` (surrounding
        white space ignored); ``ValueError`` unless the ID matches the name and key."""
        name, _, rest = text.strip().partition("+")
        hex_id, _, encoded = rest.partition("+")
        if not name or any(c.isspace() for c in name) or not _HEX8.fullmatch(hex_id):
            raise ValueError("not a checkpoint key: expected <name>+<8 hex digits>+<base64>")
        raw = _b64(encoded, "the checkpoint key")
        if len(raw) != 33 or raw[0] != ED25519:
            raise ValueError("not an Ed25519 checkpoint key (0x01 and 32 bytes)")
        key = cls(name, int(hex_id, 16), raw[1:])
        if key.key_id != key_id(name, key.public_key):
            raise ValueError(f"the key ID {hex_id} does not match the key's name and bytes")
        return key

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def origin(self, tenant_id: str) -> str:
        """The name of *tenant_id*'s log, the first line of its checkpoints."""
        return f"{self.name}/{tenant_id}"


def key_id(name: str, public_key: bytes) -> int:
    """The signed-note key ID: the first 4 bytes, big-endian, of
    ``SHA-256(name || 0x0A || 0x01 || public key)``."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head of one tenant's log, verified with a pinned key.

    Keep ``note`` (the signed text, about 200 bytes) somewhere the server's administrators
    cannot rewrite; later, :meth:`open` it again and hand it to ``verify_consistency`` (or
    ``verify_event(trusted=...)``) to prove the log was only appended to since.
    """

    origin: str
    size: int
    root_hash: bytes
    note: str = field(repr=False)

    @classmethod
    def open(cls, note: str, key: CheckpointKey, *, tenant_id: str | None = None) -> Checkpoint:
        """Verify *note*'s signature by *key* and read the checkpoint in it; with
        *tenant_id*, also require that tenant's log. Raises :class:`UntrustedCheckpoint`."""
        text = _verified_text(note, key)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise UntrustedCheckpoint("the signed note is not a checkpoint (fewer than 3 lines)")
        origin, size, root_text = lines[:3]
        if not _DECIMAL.fullmatch(size) or int(size) > 2**63 - 1:
            raise UntrustedCheckpoint(f"the checkpoint's tree size {size[:30]!r} is malformed")
        try:
            root_hash = _hash32(root_text, "the checkpoint's root hash")
        except ValueError as exc:
            raise UntrustedCheckpoint(str(exc)) from None
        if not origin.startswith(key.name + "/"):
            raise UntrustedCheckpoint(f"the checkpoint is of {origin!r}, not a log of {key.name}")
        if tenant_id is not None and origin != key.origin(tenant_id):
            raise UntrustedCheckpoint(
                f"the checkpoint is of {origin!r}, not of tenant {tenant_id!r}'s log"
            )
        return cls(origin, int(size), root_hash, note)


def _verified_text(note: str, key: CheckpointKey) -> str:
    """The text of a signed note whose signature by *key* verifies.

    Signatures by other keys are ignored (signed-note allows co-signers); one by *key*
    that does not verify rejects the note, as does a note without one.
    """
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n") or any(c < " " and c != "\n" for c in note):
        raise UntrustedCheckpoint("not a signed note")
    text, block = note[: split + 1], note[split + 2 : -1]
    signed = False
    for line in block.split("\n"):
        if not line.startswith(_SIGNATURE_PREFIX):
            raise UntrustedCheckpoint("a signature line of the note is malformed")
        name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        try:
            raw = _b64(encoded, "a signature")
        except ValueError as exc:
            raise UntrustedCheckpoint(str(exc)) from None
        if len(raw) < 5 or name != key.name or int.from_bytes(raw[:4], "big") != key.key_id:
            continue  # another key's signature: not ours to judge
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[4:], text.encode())
        except InvalidSignature:
            raise UntrustedCheckpoint(
                f"the signature by {key.name}+{key.key_id:08x} does not verify: the checkpoint "
                "was altered or forged"
            ) from None
        signed = True
    if not signed:
        raise UntrustedCheckpoint(
            f"the checkpoint is not signed by the pinned key {key.name}+{key.key_id:08x}"
        )
    return text


# -- leaves ---------------------------------------------------------------------------------


def _rfc3339(text: str) -> str:
    """The leaf's spelling of an instant, as the server writes it: UTC, six fraction
    digits, ``Z``, and the year unpadded (four digits from 1000 on, fewer before: ``999-``).
    Not through ``strftime``, whose ``%Y`` for years before 1000 differs between C
    libraries and Python versions."""
    utc = datetime.fromisoformat(text).astimezone(UTC)
    return "%d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
    )  # fmt: skip


def leaf_entry(event: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object an event's leaf commits to (format version 1)."""
    entry: dict[str, Any] = {"v": LEAF_FORMAT}
    for name in _ENTRY_FIELDS:
        entry[name] = event[name]
    entry["timestamp"] = _rfc3339(event["timestamp"])
    entry["received_at"] = _rfc3339(event["received_at"])
    return entry


def leaf_hash(event: Mapping[str, Any]) -> bytes:
    """The RFC 9162 leaf hash of *event* as the API returns it (``Event``)."""
    canonical: bytes = rfc8785.dumps(leaf_entry(event))
    return hashlib.sha256(b"\x00" + canonical).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


# -- RFC 9162 verifiers ---------------------------------------------------------------------


def inclusion_root(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root that *path* leads to from *leaf* at *index* in a tree of *size* leaves,
    or None when the path cannot be a proof for that position (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None  # longer than the tree is deep
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def consistency_roots(
    m: int, n: int, first: bytes, path: Sequence[bytes]
) -> tuple[bytes, bytes] | None:
    """The two roots *path* leads to, for sizes ``0 < m < n`` with the first tree's root
    *first*, or None when the path cannot be a proof between those sizes (RFC 9162 section
    2.1.4.2)."""
    if not 0 < m < n or not path:
        return None
    steps = [first, *path] if m & (m - 1) == 0 else list(path)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = steps[0]
    for c in steps[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return (fr, sr) if sn == 0 else None


# -- what the clients call --------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedEvent:
    """An event proven to be the leaf at its ``seq`` in the tree ``checkpoint`` signs."""

    event: api.Event
    checkpoint: Checkpoint


def check_event(
    event: Mapping[str, Any], proof: Mapping[str, Any], key: CheckpointKey
) -> Checkpoint:
    """Check that *event* (``GET /api/v1/logs/{id}``) is the leaf at its ``seq`` in the tree
    the signed checkpoint of *proof* (``GET /api/v1/logs/{id}/proof``) commits to.

    Only the signed note and the inclusion path are taken from the proof: the tree size and
    root come from the verified note, and the leaf hash is computed here from the event's
    fields. Returns the verified checkpoint.
    """
    checkpoint = Checkpoint.open(
        str(proof.get("checkpoint", "")), key, tenant_id=event["tenant_id"]
    )
    seq = event["seq"]
    if proof.get("leaf_index") != seq:
        raise AlteredEvent(f"the proof is for leaf {proof.get('leaf_index')}, the event is {seq}")
    try:
        path = [_hash32(h, "an inclusion path element") for h in proof["inclusion_path"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise AlteredEvent(f"the inclusion proof is malformed: {exc}") from None
    computed = leaf_hash(event)
    if computed.hex() != event.get("leaf_hash"):
        raise AlteredEvent(
            f"event {event['id']} (seq {seq}): its fields do not hash to its leaf_hash: "
            "it was changed after it was stored"
        )
    if inclusion_root(computed, seq, checkpoint.size, path) != checkpoint.root_hash:
        raise AlteredEvent(
            f"event {event['id']} (seq {seq}) is not the leaf at its position in the signed "
            f"tree of size {checkpoint.size}: the event or the log was changed"
        )
    return checkpoint


def check_consistency(old: Checkpoint, new: Checkpoint, path: Sequence[str]) -> None:
    """Check that *new* extends *old*: same log, not smaller, and *path* (base64, from
    ``GET /api/v1/integrity/consistency``) proves *old*'s tree is a prefix of *new*'s."""
    check_order(old, new)
    if old.size in (0, new.size):
        return  # check_order compared the roots
    try:
        hashes = [_hash32(h, "a consistency path element") for h in path]
    except (TypeError, ValueError) as exc:
        raise InconsistentLog(f"the consistency proof is malformed: {exc}") from None
    roots = consistency_roots(old.size, new.size, old.root_hash, hashes)
    if roots != (old.root_hash, new.root_hash):
        raise InconsistentLog(
            f"the log of size {new.size} does not extend the trusted checkpoint of size "
            f"{old.size}: history before it was rewritten (a forked log)"
        )


def check_order(old: Checkpoint, new: Checkpoint) -> None:
    """What can be checked of *old* and *new* without a proof: same log, *new* not smaller,
    and for equal sizes (or an empty *old*) the roots."""
    if old.origin != new.origin:
        raise UntrustedCheckpoint(f"checkpoints of two logs: {old.origin!r}, {new.origin!r}")
    if new.size < old.size:
        raise InconsistentLog(
            f"the log has {new.size} leaves, fewer than the {old.size} of a trusted checkpoint: "
            "it was rolled back"
        )
    if new.size == old.size and new.root_hash != old.root_hash:
        raise InconsistentLog(f"two different roots for the same tree size {new.size}: a fork")
    if old.size == 0 and old.root_hash != EMPTY_ROOT:
        raise InconsistentLog("the trusted checkpoint of size 0 does not have the empty root")
