"""Configuration: one settings object, read from ``AUDITLINE_*`` environment variables.

Nested sections use a double underscore, e.g. ``AUDITLINE_INGEST__BULK_MAX_EVENTS=500``.
Every field is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseModel):
    """Where PostgreSQL is and how the service talks to it."""

    url: str | None = Field(
        default=None,
        description="PostgreSQL URL; when unset the service starts its own embedded server.",
    )
    app_role: str | None = Field(
        default="auditline_app",
        description=(
            "Role every API connection switches to (SET ROLE) so row-level security applies "
            "even when the login role owns the tables. Empty disables the switch."
        ),
    )
    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=20, ge=1)
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    partition_months_ahead: int = Field(default=3, ge=1, le=24)


class IngestSettings(BaseModel):
    """Bounds on what one request may carry; beyond them a request is rejected, not truncated."""

    bulk_max_events: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_message_chars: int = Field(default=8192, ge=1)
    max_user_agent_chars: int = Field(default=512, ge=1)
    max_field_chars: int = Field(default=256, ge=1)
    max_json_bytes: int = Field(
        default=64 * 1024, ge=64, description="per JSON field: metadata, before, after"
    )
    max_json_depth: int = Field(default=8, ge=1)
    max_json_keys: int = Field(default=256, ge=1, description="keys across one JSON field")
    group_commit: bool = Field(
        default=True, description="share one commit between concurrent writes"
    )
    max_group_events: int = Field(default=5000, ge=1, description="events per shared commit")
    max_future_skew_seconds: int = Field(default=300, ge=0)
    max_past_days: int = Field(default=3660, ge=1)


class AuthSettings(BaseModel):
    """Token issuance and verification for locally signed JWTs."""

    issuer: str = "auditline"
    audience: str = "auditline"
    signing_key_file: Path | None = Field(
        default=None, description="Ed25519 private key (PEM); default <data_dir>/signing-key.pem"
    )
    bootstrap_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    leeway_seconds: int = Field(default=30, ge=0)


class Settings(BaseSettings):
    """All of Auditline's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="AUDITLINE_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default=Path(".auditline"))
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    maintenance_interval_seconds: float = Field(default=3600.0, gt=0)

    @property
    def signing_key_path(self) -> Path:
        return self.auth.signing_key_file or self.data_dir / "signing-key.pem"

    @property
    def bootstrap_token_path(self) -> Path:
        return self.data_dir / "bootstrap-admin.jwt"
