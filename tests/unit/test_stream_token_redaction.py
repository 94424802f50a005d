"""A browser's stream token travels in the URL; uvicorn logs handshake URLs: redact it."""

from __future__ import annotations

import logging

from auditline.api.stream import RedactAccessTokens
from auditline.app import create_app
from auditline.config import Settings


def test_handshake_log_lines_lose_the_access_token() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/api/v1/logs/stream?q=x&access_token=eyJh.secret.sig&since=4"),
        None,
    )  # fmt: skip
    assert RedactAccessTokens().filter(record)
    line = record.getMessage()
    assert "secret" not in line
    assert "access_token=[REDACTED]&since=4" in line
    assert "q=x" in line


def test_the_app_installs_the_filter_once() -> None:
    logger = logging.getLogger("uvicorn.error")
    before = [f for f in logger.filters if isinstance(f, RedactAccessTokens)]
    for f in before:
        logger.removeFilter(f)
    create_app(Settings())
    create_app(Settings())
    assert len([f for f in logger.filters if isinstance(f, RedactAccessTokens)]) == 1
