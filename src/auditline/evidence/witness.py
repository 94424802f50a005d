"""A copy of every checkpoint outside the database, where a database administrator who
rolls the log back cannot reach it.

Two backends, one contract (:class:`Witness` to append, :class:`WitnessReader` to read back):

* :class:`DirectoryWitness` (default): ``<data_dir>/witness/<tenant>/<tree size>.checkpoint``,
  each file written once, atomically, and synced.
* :class:`S3Witness`: ``<prefix><tenant>/<tree size>.checkpoint`` in a bucket, the
  production choice with S3 Object Lock in compliance mode (docs/integrity.md), so that
  not even the bucket's owner can rewrite or delete a witnessed checkpoint.

**Written once, never rewritten.** Appending the checkpoint a witness already holds is a
success (two sealers, or a retry, write the same bytes: a checkpoint's signature is
deterministic). Appending a *different* checkpoint of the same size is refused with
:class:`WitnessConflict` and logged at CRITICAL: the log was forked, or rolled back and
sealed again, which is exactly what the witness is there to expose. The witness keeps the
first checkpoint, and ``auditline verify`` reports the two disagreeing roots.

Tree sizes are zero-padded to 20 digits, so a listing is in tree order in both backends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, Protocol

from auditline.config import Settings
from auditline.domain.tenants import TenantId
from auditline.storage.s3 import s3_client

log = logging.getLogger(__name__)

_SUFFIX: Final = ".checkpoint"
_PROBE_KEY: Final = ".conditional-put-probe"  # no tenant id starts with a dot
_PROBE_BODY: Final = b"auditline: does this store honour If-None-Match on PUT?\n"
_READ_CONCURRENCY: Final = 16


def checkpoint_name(tree_size: int) -> str:
    """The object or file name of a tenant's checkpoint of *tree_size* leaves."""
    return f"{tree_size:020d}{_SUFFIX}"


def _tree_size(name: str) -> int | None:
    stem = name.removesuffix(_SUFFIX)
    return int(stem) if name.endswith(_SUFFIX) and stem.isdigit() else None


class WitnessConflict(RuntimeError):
    """The witness holds a different checkpoint of this size: the log was forked."""


def _conflict(tenant: str, tree_size: int, where: str, kept: str, refused: str) -> WitnessConflict:
    log.critical(
        "WITNESS CONFLICT: tenant %s's witness already holds a different checkpoint of tree "
        "size %d at %s; the log was forked, or rolled back and sealed again. The witnessed "
        "checkpoint is kept; run `auditline verify --tenant %s`.\nwitnessed:\n%s\nrefused:\n%s",
        tenant, tree_size, where, tenant, kept, refused,
    )  # fmt: skip
    return WitnessConflict(
        f"tenant {tenant}: the witness already holds a different checkpoint of size "
        f"{tree_size} ({where}): the log was forked or rolled back"
    )


class Witness(Protocol):
    """Somewhere checkpoints are appended and never rewritten (what the sealer needs)."""

    async def append(self, tenant: TenantId, tree_size: int, note: str) -> None:
        """Keep *note*; a no-op if it is there already, :class:`WitnessConflict` if a
        different checkpoint of *tree_size* is."""
        ...


class WitnessReader(Protocol):
    """What a verifier reads back from a witness."""

    async def checkpoints(self, tenant: str) -> list[tuple[int, str]]:
        """Every witnessed checkpoint of *tenant*: (tree size, note text), smallest first."""
        ...


class DirectoryWitness:
    """Checkpoints as files, one per tenant and tree size."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, tenant: str, tree_size: int) -> Path:
        return self.root / tenant / checkpoint_name(tree_size)

    async def append(self, tenant: TenantId, tree_size: int, note: str) -> None:
        await asyncio.to_thread(self._write, tenant, tree_size, note)

    def _write(self, tenant: str, tree_size: int, note: str) -> None:
        path = self.path(tenant, tree_size)
        if path.exists():
            self._same(path, tenant, tree_size, note)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        with temporary.open("w", encoding="utf-8") as fh:
            fh.write(note)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)  # fails rather than replace: written once
        except FileExistsError:
            self._same(path, tenant, tree_size, note)  # another sealer witnessed it first
            return
        finally:
            temporary.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    @staticmethod
    def _same(path: Path, tenant: str, tree_size: int, note: str) -> None:
        kept = path.read_text(encoding="utf-8")
        if kept != note:
            raise _conflict(tenant, tree_size, str(path), kept, note)

    async def checkpoints(self, tenant: str) -> list[tuple[int, str]]:
        return await asyncio.to_thread(self._read, tenant)

    def _read(self, tenant: str) -> list[tuple[int, str]]:
        folder = self.root / tenant
        if not folder.is_dir():
            return []
        found = [
            (size, p.read_text(encoding="utf-8"))
            for p in folder.glob(f"*{_SUFFIX}")
            if (size := _tree_size(p.name)) is not None
        ]
        return sorted(found)


class S3Witness:
    """Checkpoints as objects in an S3 bucket, one per tenant and tree size.

    Never-overwrite is the store's own where it can be: a conditional PUT
    (``If-None-Match: *``, AWS S3 since 2024) fails with 412 when the key exists, so two
    writers cannot both create it. Not every S3-compatible store honours the header, and
    one that ignores it would silently overwrite; so the first append of a process probes
    the store (two conditional PUTs of one fixed object, ``<prefix>.conditional-put-probe``)
    and, unless the second is refused, falls back to reading the key before writing it.
    That check-then-put leaves a race only between two writers of the same size, which
    write the same bytes; a forked checkpoint comes later and is caught by the check. With
    Object Lock (which keeps every version), an overwrite still could not destroy the
    first checkpoint.

    The service needs ``s3:PutObject``, ``s3:GetObject`` and ``s3:ListBucket`` on the
    prefix, never ``s3:DeleteObject``.
    """

    def __init__(
        self, client: Any, bucket: str, prefix: str, *, conditional_put: bool | None = None
    ) -> None:
        """*conditional_put*: whether the store honours ``If-None-Match`` (None: probe)."""
        self._client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._conditional = conditional_put
        self._probing = asyncio.Lock()

    def key(self, tenant: str, tree_size: int) -> str:
        return f"{self.prefix}{tenant}/{checkpoint_name(tree_size)}"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    async def append(self, tenant: TenantId, tree_size: int, note: str) -> None:
        key, data = self.key(tenant, tree_size), note.encode()
        conditional = await self._conditional_puts()
        for _ in range(3):
            if conditional:
                try:
                    await self._put(key, data, conditional=True)
                    return
                except self._client.exceptions.ClientError as exc:
                    # 412: the key exists. 409: a concurrent conditional write to it.
                    if _status(exc) not in (409, 412):
                        raise
            kept = await self._get(key)
            if kept is None:
                if not conditional:
                    await self._put(key, data, conditional=False)
                    return
                continue  # the concurrent write (409) did not complete: try again
            if kept != data:
                raise _conflict(
                    tenant, tree_size, self.location(key), kept.decode(errors="replace"), note
                )
            return
        raise RuntimeError(f"could not write {self.location(key)}: concurrent writes kept failing")

    async def checkpoints(self, tenant: str) -> list[tuple[int, str]]:
        folder = f"{self.prefix}{tenant}/"
        sizes: list[tuple[int, str]] = []
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
            for item in page.get("Contents", []):
                name = item["Key"].removeprefix(folder)
                if "/" not in name and (size := _tree_size(name)) is not None:
                    sizes.append((size, item["Key"]))
        limit = asyncio.Semaphore(_READ_CONCURRENCY)

        async def read(size: int, key: str) -> tuple[int, str] | None:
            async with limit:
                data = await self._get(key)
            return None if data is None else (size, data.decode("utf-8", errors="replace"))

        found = await asyncio.gather(*(read(size, key) for size, key in sizes))
        return sorted(item for item in found if item is not None)

    async def _put(self, key: str, data: bytes, *, conditional: bool) -> None:
        # Content-MD5: S3 requires a checksum on every PUT into a bucket with Object Lock
        # retention, and MD5 is the one every S3-compatible store accepts.
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        extra = {"IfNoneMatch": "*"} if conditional else {}
        await self._client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentMD5=md5, ContentType="text/plain",
            **extra,
        )  # fmt: skip

    async def _get(self, key: str) -> bytes | None:
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=key)
        except self._client.exceptions.ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        async with response["Body"] as body:
            data: bytes = await body.read()
            return data

    async def _conditional_puts(self) -> bool:
        async with self._probing:
            if self._conditional is None:
                self._conditional = await self._probe()
            return self._conditional

    async def _probe(self) -> bool:
        key = self.prefix + _PROBE_KEY
        for _ in range(2):
            try:
                await self._put(key, _PROBE_BODY, conditional=True)
            except self._client.exceptions.ClientError as exc:
                if _status(exc) == 412:
                    return True  # refused to overwrite: conditional writes work
                if _status(exc) != 501 and _code(exc) != "NotImplemented":
                    raise
                log.warning(
                    "s3://%s rejects conditional writes (%s); the witness checks each key "
                    "before writing it", self.bucket, exc,
                )  # fmt: skip
                return False
        log.warning(
            "s3://%s ignores If-None-Match on PUT (it overwrote %s); the witness checks each "
            "key before writing it", self.bucket, key,
        )  # fmt: skip
        return False


def _status(exc: Any) -> int | None:
    """The HTTP status of a botocore ``ClientError``."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


ConfiguredWitness = DirectoryWitness | S3Witness
"""Either backend: each both a :class:`Witness` and a :class:`WitnessReader`."""


@asynccontextmanager
async def open_witness(settings: Settings) -> AsyncIterator[ConfiguredWitness]:
    """The configured witness, open for the block (the S3 backend's client closes with it)."""
    integrity = settings.integrity
    if integrity.witness_backend == "directory":
        yield DirectoryWitness(settings.witness_path)
        return
    assert integrity.witness_s3_bucket is not None  # noqa: S101 - the settings validator requires it
    async with s3_client(
        endpoint_url=integrity.witness_s3_endpoint_url, region=integrity.witness_s3_region
    ) as client:
        yield S3Witness(client, integrity.witness_s3_bucket, integrity.witness_s3_prefix)
