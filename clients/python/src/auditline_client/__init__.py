"""Python client for Auditline: sync and async clients, typed errors, a background batcher,
the live stream and proof verification.

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
    AlteredEvent,
    AuditlineError,
    BadRequest,
    Conflict,
    Forbidden,
    InconsistentLog,
    NetworkError,
    NotFound,
    NotSealed,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    UntrustedCheckpoint,
    ValidationFailed,
    VerificationError,
)
from auditline_client.proofs import Checkpoint, CheckpointKey, VerifiedEvent
from auditline_client.stream import AsyncStream, Stream, StreamEvent, StreamOptions

__all__ = [
    "DEFAULT_TIMEOUT",
    "NO_RETRIES",
    "AlteredEvent",
    "AsyncClient",
    "AsyncStream",
    "AuditlineError",
    "BadRequest",
    "Batcher",
    "BatcherStats",
    "Checkpoint",
    "CheckpointKey",
    "Client",
    "Conflict",
    "Forbidden",
    "InconsistentLog",
    "NetworkError",
    "NotFound",
    "NotSealed",
    "PayloadTooLarge",
    "ProblemError",
    "RateLimited",
    "Retries",
    "ServerError",
    "Stream",
    "StreamEvent",
    "StreamOptions",
    "Unauthorized",
    "Unavailable",
    "UntrustedCheckpoint",
    "ValidationFailed",
    "VerificationError",
    "VerifiedEvent",
    "__version__",
]
