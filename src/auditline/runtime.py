"""Process-level plumbing shared by the CLI and the app: which database, which data dir.

``database(settings)`` yields the URL to use: ``AUDITLINE_DATABASE__URL`` when set, else the
embedded server of the data dir (started if needed, reused if already running). The data
dir lock makes a second ``auditline serve`` on the same directory fail fast and clearly.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from auditline.config import Settings
from auditline.security.tokens import SigningKey, issue_token, load_or_create_signing_key
from auditline.storage.embedded import EmbeddedPostgres


class DataDirBusy(RuntimeError):
    """Another ``auditline serve`` holds this data dir."""


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on *data_dir* for the life of a server process.

    ``flock`` is released by the kernel when the process dies, even by SIGKILL, so a crash
    never leaves a stale lock behind.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "serve.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "unknown"
            raise DataDirBusy(
                f"another auditline server (pid {holder}) is already using {data_dir.resolve()}; "
                "stop it or choose another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def server_running(data_dir: Path) -> bool:
    """True while an ``auditline serve`` holds *data_dir*."""
    path = data_dir / "serve.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def database(settings: Settings, *, owner: bool = False) -> Iterator[str]:
    """The PostgreSQL URL to use for the duration of the block.

    With no configured URL the data dir's embedded server is used: started if needed, and
    stopped at the end only if this block started it and no server process owns the data
    dir, or if *owner* (the serve process) says the server is its to stop.
    """
    if settings.database.url:
        yield settings.database.url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    embedded.start()
    if owner:
        embedded.adopt()
    try:
        yield embedded.url()
    finally:
        if owner or not server_running(settings.data_dir):
            embedded.stop()


def signing_key(settings: Settings) -> SigningKey:
    key, _ = load_or_create_signing_key(settings.signing_key_path)
    return key


def write_bootstrap_token(settings: Settings, key: SigningKey) -> Path:
    """Write a platform-admin token (mode 0600) for the first login; returns its path."""
    path = settings.bootstrap_token_path
    token = issue_token(
        key,
        settings.auth,
        subject="bootstrap-admin",
        role="admin",
        tenants=["*"],
        ttl_seconds=settings.auth.bootstrap_token_ttl_seconds,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    tmp.replace(path)
    return path
