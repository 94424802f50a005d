"""Python client for Auditline: sync and async clients, typed errors, a background batcher.

from auditline_client import Client
with Client("http://127.0.0.1:8000", token) as audit:
    audit.create(action="LOGIN", user_id="alice")
"""

from auditline_client._http import DEFAULT_TIMEOUT, NO_RETRIES, Retries
from auditline_client._version import __version__
from auditline_client.aio import AsyncClient
from auditline_client.batcher import Batcher, BatcherStats
from auditline_client.client import Client
from auditline_client.errors import (
    AuditlineError,
    BadRequest,
    Conflict,
    Forbidden,
    NetworkError,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "NO_RETRIES",
    "AsyncClient",
    "AuditlineError",
    "BadRequest",
    "Batcher",
    "BatcherStats",
    "Client",
    "Conflict",
    "Forbidden",
    "NetworkError",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "RateLimited",
    "Retries",
    "ServerError",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "__version__",
]
