"""Amazon OpenSearch Service: with ``opensearch.aws_sigv4`` the client signs every request
with SigV4 from the default AWS credential chain, looked up off the event loop (a pure
unit: nothing is sent)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import AsyncHttpConnection, AWSV4SignerAsyncAuth
from pydantic import ValidationError

from auditline.config import OpenSearchSettings
from auditline.opensearch import client as client_module
from auditline.opensearch.client import open_client

URL = "https://search-audit.eu-west-1.es.amazonaws.com"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No profile files and no instance metadata: the environment is the only source."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


async def test_the_client_signs_with_sigv4_when_configured(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    settings = OpenSearchSettings(url=URL, aws_sigv4=True, aws_region="eu-west-1")
    client = await open_client(settings)
    try:
        # Connections are made on first use; what they will be made with is set now.
        assert client.transport.connection_class is AsyncHttpConnection
        signer = client.transport.kwargs["http_auth"]
        assert isinstance(signer, AWSV4SignerAsyncAuth)
        headers = signer("GET", f"{URL}/auditline-events/_search", b"{}", {})
        credential = "Credential=AKIDEXAMPLE/"
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 " + credential)
        assert "/eu-west-1/es/aws4_request" in headers["Authorization"]
        assert "X-Amz-Date" in headers
    finally:
        await client.close()


async def test_without_sigv4_the_client_uses_basic_auth_or_none(
    aws_env: pytest.MonkeyPatch,
) -> None:
    client = await open_client(OpenSearchSettings(url=URL, username="u", password="p"))  # type: ignore[arg-type]
    try:
        assert client.transport.kwargs["http_auth"] == ("u", "p")
        assert client.transport.connection_class is not AsyncHttpConnection
    finally:
        await client.close()


async def test_sigv4_without_credentials_refuses_to_start(aws_env: pytest.MonkeyPatch) -> None:
    settings = OpenSearchSettings(url=URL, aws_sigv4=True, aws_region="eu-west-1")
    with pytest.raises(ValueError, match="no AWS credentials"):
        await open_client(settings)


async def test_the_credential_chain_is_not_asked_on_the_event_loop(
    aws_env: pytest.MonkeyPatch,
) -> None:
    """The chain may ask the instance metadata service (seconds): never on the loop."""
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    asked_on: list[threading.Thread] = []
    real = client_module.botocore.session.get_session

    def get_session(*args: Any, **kwargs: Any) -> Any:
        asked_on.append(threading.current_thread())
        return real(*args, **kwargs)

    aws_env.setattr(client_module.botocore.session, "get_session", get_session)
    settings = OpenSearchSettings(url=URL, aws_sigv4=True, aws_region="eu-west-1")
    client = await open_client(settings)
    await client.close()
    assert asked_on
    assert threading.current_thread() not in asked_on


def test_opensearch_serverless_is_not_offered() -> None:
    with pytest.raises(ValidationError, match="aws_service"):
        OpenSearchSettings(url=URL, aws_sigv4=True, aws_region="eu-west-1", aws_service="aoss")  # type: ignore[arg-type]


def test_sigv4_needs_a_region_and_no_password() -> None:
    with pytest.raises(ValidationError, match="aws_region"):
        OpenSearchSettings(url=URL, aws_sigv4=True)
    with pytest.raises(ValidationError, match="excludes"):
        OpenSearchSettings(url=URL, aws_sigv4=True, aws_region="eu-west-1", username="u")
