"""C2SP signed-note with Ed25519 signatures (https://c2sp.org/signed-note).

A signed note is a text that ends in a newline, a blank line, then signature lines::

    <text, ending in "\\n">
    <blank line>
    — <key name> <base64(4-byte key ID || Ed25519 signature of the text)>

with an EM DASH (U+2014) and a space opening each signature line. The key ID is the first
four bytes, big-endian, of ``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)``;
``0x01`` is Ed25519's signature type. A verifier key is written
``<name>+<key ID as 8 hex digits>+<base64(0x01 || public key)>`` and a signer key
``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || 32-byte seed)>`` (golang.org/x/mod/sumdb/note,
the reference implementation, reads and writes both).

Verification follows the spec's rules: signatures by unknown keys (name and key ID not
both known) are kept but ignored; a known key's signature that does not verify rejects the
whole note; a note without a verified signature by a known key is rejected. Parsing is
strict where the spec allows a choice: base64 must be canonical, at most 100 signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ED25519 = 0x01
"""signed-note signature type of Ed25519."""
MAX_SIGNATURES = 100
SIGNATURE_PREFIX = "\u2014 "  # EM DASH, space

_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A note that cannot be trusted; the message says why."""


class MalformedNote(NoteError):
    """Not a signed note at all: wrong structure, characters or encodings."""


class InvalidNoteSignature(NoteError):
    """A signature by a known key that does not verify: the note was altered or forged."""


class UnverifiedNote(NoteError):
    """A well-formed note with no signature by any known key."""

    def __init__(self, message: str, note: Note) -> None:
        super().__init__(message)
        self.note = note


def valid_key_name(name: str) -> bool:
    """Key names are non-empty, with no Unicode space and no ``+``."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, public_key: bytes) -> int:
    """The signed-note key ID of an Ed25519 *public_key* (32 raw bytes) named *name*."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def decode_base64(text: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), canonical only: one encoding per value."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not the canonical base64 of its bytes")
    return raw


def encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Verifier:
    """A known Ed25519 note key: its name, key ID and raw 32-byte public key."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise ValueError(f"invalid key name {self.name!r}: empty, or a space or a '+'")
        if len(self.public_key) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(self.public_key)}")
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    @property
    def vkey(self) -> str:
        """The verifier key string ``<name>+<key ID hex>+<base64(0x01 || key)>``."""
        encoded = encode_base64(bytes([ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except _CryptoInvalidSignature:
            return False
        return True


def parse_verifier_key(vkey: str) -> Verifier:
    """A :class:`Verifier` from its key string; ``ValueError`` unless it is exactly right."""
    name, _, rest = vkey.partition("+")
    hex_id, _, encoded = rest.partition("+")
    if not valid_key_name(name) or not _HEX8.fullmatch(hex_id) or not encoded:
        raise ValueError("malformed verifier key: expected <name>+<8 hex digits>+<base64>")
    try:
        key = decode_base64(encoded)
    except ValueError as exc:
        raise ValueError(f"malformed verifier key: {exc}") from None
    if len(key) != 33 or key[0] != ED25519:
        raise ValueError("verifier key is not an Ed25519 key (0x01 and 32 bytes)")
    verifier = Verifier(name, key[1:])
    if verifier.key_id != int(hex_id, 16):
        raise ValueError(f"verifier key ID {hex_id} does not match its name and key")
    return verifier


class Signer(Protocol):
    """Signs note texts with one Ed25519 key under one key name.

    The local file-backed signer implements it (``signer.py``); a KMS-backed one can
    implement the same three members. ``sign`` returns the 64-byte Ed25519 signature.
    """

    @property
    def name(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class Ed25519Signer:
    """A :class:`Signer` holding its private key in memory."""

    private_key: Ed25519PrivateKey = field(repr=False)
    name: str

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise ValueError(f"invalid key name {self.name!r}: empty, or a space or a '+'")

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def parse_signer_key(skey: str) -> Ed25519Signer:
    """An :class:`Ed25519Signer` from ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01||seed)>``."""
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise ValueError("malformed signer key: expected PRIVATE+KEY+<name>+<id>+<base64>")
    _, _, name, hex_id, encoded = parts
    if not valid_key_name(name) or not _HEX8.fullmatch(hex_id):
        raise ValueError("malformed signer key: bad name or key ID")
    try:
        seed = decode_base64(encoded)
    except ValueError as exc:
        raise ValueError(f"malformed signer key: {exc}") from None
    if len(seed) != 33 or seed[0] != ED25519:
        raise ValueError("signer key is not an Ed25519 key (0x01 and a 32-byte seed)")
    signer = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(seed[1:]), name)
    if signer.verifier.key_id != int(hex_id, 16):
        raise ValueError(f"signer key ID {hex_id} does not match its name and key")
    return signer


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key's name and ID, and the signature bytes."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        encoded = encode_base64(self.key_id.to_bytes(4, "big") + self.signature)
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text and its signatures, verified or by unknown keys."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def _check_characters(text: str, what: str) -> None:
    for char in text:
        if char < " " and char != "\n":
            raise MalformedNote(f"{what} contains the control character {char!r}")


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note of *text* (which must end in a newline), signed by each signer.

    Each signature is checked against its signer's public key before it is written, so a
    faulty signer (a KMS answering for another key, say) cannot emit a bad checkpoint.
    """
    if not signers:
        raise ValueError("a signed note needs at least one signer")
    if not text.endswith("\n"):
        raise MalformedNote("note text must end in a newline")
    _check_characters(text, "note text")
    message = text.encode()
    lines = []
    for signer in signers:
        verifier = Verifier(signer.name, signer.public_key)
        signature = signer.sign(message)
        if not verifier.verify(message, signature):
            raise ValueError(f"signer {signer.name!r} returned a signature its key rejects")
        lines.append(NoteSignature(verifier.name, verifier.key_id, signature).line)
    return text + "\n" + "".join(lines)


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse *note* and verify its signatures against the known *verifiers*.

    Raises :class:`MalformedNote`, :class:`InvalidNoteSignature` (a known key's signature
    does not verify) or :class:`UnverifiedNote` (no signature by a known key).
    """
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if known.setdefault(slot, verifier) != verifier:
            raise ValueError(f"two verifier keys share name and ID {verifier.name}+{slot[1]:08x}")
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNote("note is not valid UTF-8") from None
    _check_characters(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedNote("note does not end with a newline-terminated signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"note has more than {MAX_SIGNATURES} signatures")
    message = text.encode()
    verified: dict[tuple[str, int], NoteSignature] = {}
    unverified: dict[str, NoteSignature] = {}
    for line in lines:
        signature = _parse_signature_line(line)
        slot = (signature.name, signature.key_id)
        key = known.get(slot)
        if key is None:
            unverified.setdefault(line, signature)
        elif slot not in verified:
            if not key.verify(message, signature.signature):
                raise InvalidNoteSignature(
                    f"the signature of known key {key.name}+{key.key_id:08x} "
                    "does not verify: the note was altered or forged"
                )
            verified[slot] = signature
    opened = Note(text, tuple(verified.values()), tuple(unverified.values()))
    if not verified:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in opened.unverified)
        raise UnverifiedNote(f"no signature by a known key (signed by: {names})", opened)
    return opened


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedNote(f"signature line does not start with an em dash: {line[:40]!r}")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not valid_key_name(name) or not encoded:
        raise MalformedNote(f"signature line is not '— <name> <base64>': {line[:40]!r}")
    try:
        raw = decode_base64(encoded)
    except ValueError as exc:
        raise MalformedNote(f"signature of {name!r}: {exc}") from None
    if len(raw) < 5:
        raise MalformedNote(f"signature of {name!r} is too short")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])
