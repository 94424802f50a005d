"""What every ``auditline`` command shares: its settings, who it acts as, its services."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Awaitable, Callable

from auditline.config import Settings
from auditline.domain.access import Actor
from auditline.domain.tenants import TenantId
from auditline.services import Services, open_services
from auditline.tenancy.scope import for_system


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings, with ``--data-dir`` applied."""
    settings = Settings()
    if getattr(args, "data_dir", None) is not None:
        settings.data_dir = args.data_dir
    return settings


def operator() -> Actor:
    """The person running the command, as records of their changes and reads name them."""
    try:
        return Actor(f"cli:{getpass.getuser()}", "system")
    except Exception:  # no user name in some containers
        return Actor("cli", "system")


def operator_tenant(tenant: str) -> TenantId:
    """A tenant named on the command line: whoever runs commands here owns the database."""
    return for_system(tenant, reason="an operator's command on the database's machine")


async def with_services(settings: Settings, work: Callable[[Services], Awaitable[int]]) -> int:
    """Run *work* with a command's services: the API's, minus what only a server needs
    (a warm pool, the group-commit flusher)."""
    settings = settings.model_copy(deep=True)
    settings.database.pool_min_size = 1
    settings.ingest.group_commit = False
    async with open_services(settings) as services:
        return await work(services)
