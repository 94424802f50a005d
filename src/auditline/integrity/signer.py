"""The checkpoint signing key in a local file: ``note.Signer`` without a KMS.

The key is what the threat model rests on: an administrator of the database who can rewrite
every row and recompute every hash still cannot sign a checkpoint. So it never enters the
database, it is not the token-signing key (a different file), and the file must be
readable by its owner only: it is created with mode 0600, and an existing file that its
group or others may read or write is refused rather than used.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditline.integrity.note import Ed25519Signer

DEFAULT_KEY_FILE = "checkpoint-key.pem"
"""The key's file name in the data directory unless configured otherwise."""


class KeyFileError(ValueError):
    """A key file that must not or cannot be used; the message says what to fix."""


def load_or_create_checkpoint_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The Ed25519 key at *path* (PKCS#8 PEM), created if absent; returns (key, created).

    Creation is atomic: the key is written and synced under a temporary name, then linked
    into place, which fails if another process created *path* first (its key is used). A
    crash never leaves a half-written key file behind.
    """
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        created = _create(path)
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise KeyFileError(f"{path} is not a regular file")
    if mode & 0o077:
        raise KeyFileError(
            f"{path} is accessible to its group or others (mode {stat.S_IMODE(mode):04o}); "
            f"the checkpoint key must be readable by its owner only: chmod 600 {path}"
        )
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise KeyFileError(f"{path} does not hold a PEM private key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path} does not hold an Ed25519 private key")
    return private, created


def _create(path: Path) -> bool:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False  # another process created it first; use theirs
    finally:
        temporary.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the new name durable where the OS allows
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return True


def local_signer(path: Path, name: str) -> tuple[Ed25519Signer, bool]:
    """A signer with the key at *path* (created if absent) under key name *name*.

    The same key may sign under several names (one per tenant origin, say): the key ID
    covers the name, so each name has its own verifier key string.
    """
    private, created = load_or_create_checkpoint_key(path)
    return Ed25519Signer(private, name), created
