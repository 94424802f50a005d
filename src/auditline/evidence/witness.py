"""A copy of every checkpoint outside the database, where a database administrator who
rolls the log back cannot reach it.

A directory by default (``<data_dir>/witness/<tenant>/<tree size>.checkpoint``, each file
written once, atomically, and synced). Point it at storage the database's administrators
cannot rewrite; an S3 bucket with Object Lock is the production choice (docs/integrity.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from pathlib import Path
from typing import Protocol

from auditline.domain.tenants import TenantId


class Witness(Protocol):
    """Somewhere checkpoints are appended and never rewritten."""

    async def append(self, tenant: TenantId, tree_size: int, note: str) -> None: ...


class DirectoryWitness:
    """Checkpoints as files, one per tenant and tree size."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, tenant: str, tree_size: int) -> Path:
        # Zero-padded so a directory listing is in tree order.
        return self.root / tenant / f"{tree_size:020d}.checkpoint"

    async def append(self, tenant: TenantId, tree_size: int, note: str) -> None:
        await asyncio.to_thread(self._write, self.path(tenant, tree_size), note)

    @staticmethod
    def _write(path: Path, note: str) -> None:
        if path.exists():
            return  # the same size is always the same checkpoint: already witnessed
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        with temporary.open("w", encoding="utf-8") as fh:
            fh.write(note)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another sealer witnessed it first
        finally:
            temporary.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def checkpoints(self, tenant: str) -> list[tuple[int, str]]:
        """Every witnessed checkpoint of *tenant*: (tree size, note text), smallest first."""
        folder = self.root / tenant
        if not folder.is_dir():
            return []
        found = [
            (int(p.name.split(".")[0]), p.read_text(encoding="utf-8"))
            for p in folder.glob("*.checkpoint")
        ]
        return sorted(found)
