"""Cold storage: where archive files go. One small interface, two backends.

* :class:`DirectoryStore` (default): a directory, ``<data_dir>/archive`` unless configured.
  A file is written beside its final name, flushed to disk and renamed into place, so a
  reader never sees half a file and a crash leaves at most a ``.partial`` behind.
* :class:`S3Store`: a bucket and a key prefix (aiobotocore), for AWS or any S3-compatible
  store (``endpoint_url``). A PUT replaces an object at once, so the same holds.

Keys are relative paths with ``/`` (``tenant=acme/day=2026-01-31/manifest.json``); both
backends refuse keys that could leave their root. Files move through local paths rather
than memory, so a large day never has to fit in memory. ``sha256`` reads an object back
from the store itself: it is how a write is verified before anything leaves the hot table.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from auditline.config import Settings
from auditline.storage.s3 import s3_client

_CHUNK = 1024 * 1024


class ObjectMissing(LookupError):
    """The key names no object in the store."""


class ColdStore(Protocol):
    """What the archive service needs of a cold store."""

    def location(self, key: str) -> str:
        """Where *key* lives, for people and logs (a path or an ``s3://`` URL)."""
        ...

    async def put_file(self, key: str, source: Path) -> None:
        """Store the file at *source* under *key*, replacing any object there."""
        ...

    async def get_file(self, key: str, target: Path) -> None:
        """Copy the object *key* to *target*; raises :class:`ObjectMissing`."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def get_bytes(self, key: str) -> bytes:
        """The object *key*; raises :class:`ObjectMissing`."""
        ...

    async def sha256(self, key: str) -> tuple[str, int]:
        """(hex SHA-256, size) of the object as the store returns it; :class:`ObjectMissing`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove *key*; no error if it is not there."""
        ...

    async def list(self, prefix: str) -> list[str]:
        """Every key under *prefix* (a ``/``-ended folder), sorted."""
        ...


def _checked(key: str) -> str:
    path = PurePosixPath(key)
    if path.is_absolute() or ".." in path.parts or not path.parts or str(path) != key:
        raise ValueError(f"not a plain relative key: {key!r}")
    return key


class DirectoryStore:
    """Cold storage in a local (or mounted) directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    def location(self, key: str) -> str:
        return str(self._path(key))

    async def put_file(self, key: str, source: Path) -> None:
        await asyncio.to_thread(self._put, key, source)

    def _put(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with source.open("rb") as src, partial.open("wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        partial.replace(target)
        _fsync_dir(target.parent)

    async def get_file(self, key: str, target: Path) -> None:
        path = self._path(key)

        def copy() -> None:
            try:
                src = path.open("rb")
            except FileNotFoundError:
                raise ObjectMissing(key) from None
            with src, target.open("wb") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)

        await asyncio.to_thread(copy)

    async def put_bytes(self, key: str, data: bytes) -> None:
        def put() -> None:
            target = self._path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            with partial.open("wb") as dst:
                dst.write(data)
                dst.flush()
                os.fsync(dst.fileno())
            partial.replace(target)
            _fsync_dir(target.parent)

        await asyncio.to_thread(put)

    async def get_bytes(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    async def sha256(self, key: str) -> tuple[str, int]:
        path = self._path(key)

        def digest() -> tuple[str, int]:
            h, size = hashlib.sha256(), 0
            try:
                src = path.open("rb")
            except FileNotFoundError:
                raise ObjectMissing(key) from None
            with src:
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
            return h.hexdigest(), size

        return await asyncio.to_thread(digest)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def list(self, prefix: str) -> list[str]:
        base = self.root / _checked(prefix.rstrip("/")) if prefix.strip("/") else self.root

        def walk() -> list[str]:
            if not base.is_dir():
                return []
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in base.rglob("*")
                if p.is_file() and not p.name.endswith(".partial")
            )

        return await asyncio.to_thread(walk)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Store:
    """Cold storage in an S3 bucket under a key prefix, through one aiobotocore client.

    The client comes from :func:`auditline.storage.s3.s3_client` (checksums only when
    required, for S3-compatible stores); integrity is checked here by reading each object
    back and comparing its SHA-256 with the manifest.
    """

    def __init__(self, client: Any, bucket: str, prefix: str, *, endpoint: str | None) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._endpoint = endpoint

    def _key(self, key: str) -> str:
        return self.prefix + _checked(key)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    async def put_file(self, key: str, source: Path) -> None:
        # Objects up to 5 GB go in one PUT: a tenant-day in Parquet is far below that.
        size = (await asyncio.to_thread(source.stat)).st_size
        with source.open("rb") as body:
            await self._client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=body, ContentLength=size
            )

    async def put_bytes(self, key: str, data: bytes) -> None:
        await self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    @asynccontextmanager
    async def _body(self, key: str) -> AsyncIterator[Any]:
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._client.exceptions.NoSuchKey:
            raise ObjectMissing(key) from None
        async with response["Body"] as body:
            yield body

    async def get_file(self, key: str, target: Path) -> None:
        async with self._body(key) as body:
            with target.open("wb") as dst:
                while chunk := await body.read(_CHUNK):
                    dst.write(chunk)

    async def get_bytes(self, key: str) -> bytes:
        async with self._body(key) as body:
            data: bytes = await body.read()
            return data

    async def sha256(self, key: str) -> tuple[str, int]:
        h, size = hashlib.sha256(), 0
        async with self._body(key) as body:
            while chunk := await body.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
        return h.hexdigest(), size

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def list(self, prefix: str) -> list[str]:
        full = self.prefix + (_checked(prefix.rstrip("/")) + "/" if prefix.strip("/") else "")
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            keys += [item["Key"].removeprefix(self.prefix) for item in page.get("Contents", [])]
        return sorted(keys)


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[ColdStore]:
    """The configured cold store, open for the block."""
    archive = settings.archive
    if archive.backend == "directory":
        yield DirectoryStore(settings.archive_directory)
        return
    assert archive.s3_bucket is not None  # noqa: S101 - the settings validator requires it
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            s3_client(endpoint_url=archive.s3_endpoint_url, region=archive.s3_region)
        )
        yield S3Store(
            client, archive.s3_bucket, archive.s3_prefix, endpoint=archive.s3_endpoint_url
        )
