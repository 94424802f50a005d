"""S3 clients, made one way for every part that keeps objects in a bucket (the archive's
cold store, the checkpoint witness).

Checksums are computed and validated only when an operation requires them: S3-compatible
stores (S3Proxy among them) do not all accept the CRC headers newer botocore sends by
default. Callers that care about an object's bytes check them themselves (the archive
reads each file back and compares its SHA-256; the witness compares what it finds with
what it meant to write).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def s3_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> AsyncIterator[Any]:
    """An aiobotocore S3 client, closed when the block ends. Credentials come from the
    standard AWS chain (environment, profile, instance role) unless given."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    config = AioConfig(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
    )
    async with get_session().create_client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
    ) as client:  # fmt: skip
        yield client
