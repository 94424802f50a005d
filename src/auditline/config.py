"""Configuration: one settings object, read from ``AUDITLINE_*`` environment variables.

Nested sections use a double underscore, e.g. ``AUDITLINE_INGEST__BULK_MAX_EVENTS=500``.
Every field is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
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
    pool_min_size: int = Field(default=2, ge=1, description="connections kept open per process")
    pool_max_size: int = Field(default=20, ge=1, description="connections at most per process")
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="longest a statement may run (0: no limit)"
    )
    partition_months_ahead: int = Field(
        default=3, ge=1, le=24, description="monthly event partitions created in advance"
    )
    require_rls: bool = Field(
        default=True,
        description=(
            "Refuse to start when the API's database role can bypass row-level security "
            "(a superuser or BYPASSRLS role without app_role). Disable only for debugging."
        ),
    )


class IngestSettings(BaseModel):
    """Bounds on what one request may carry; beyond them a request is rejected, not truncated."""

    bulk_max_events: int = Field(default=1000, ge=1, description="events per bulk request")
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="request body limit (413 beyond)"
    )
    max_message_chars: int = Field(default=8192, ge=1, description="length of `message`")
    max_user_agent_chars: int = Field(default=512, ge=1, description="length of `user_agent`")
    max_field_chars: int = Field(
        default=256, ge=1, description="length of user, session, resource and request ids"
    )
    max_json_bytes: int = Field(
        default=64 * 1024, ge=64, description="per JSON field: metadata, before, after"
    )
    max_json_depth: int = Field(default=8, ge=1, description="nesting of a JSON field")
    max_json_keys: int = Field(default=256, ge=1, description="keys across one JSON field")
    group_commit: bool = Field(
        default=True, description="share one commit between concurrent writes"
    )
    max_group_events: int = Field(
        default=1000, ge=1, description="events per shared commit of small writes"
    )
    group_linger_ms: float = Field(
        default=0, ge=0, le=100,
        description="a shared commit waits until its oldest write is this old, so that "
        "more writes share it (CPU per event down, latency up by as much; 0: no wait)",
    )  # fmt: skip
    rollup_fold_seconds: float = Field(
        default=0.5, gt=0, le=60,
        description="how often the hourly rollups' deltas are folded into their counters",
    )  # fmt: skip
    max_future_skew_seconds: int = Field(
        default=300, ge=0, description="how far in the future a `timestamp` may be"
    )
    max_past_days: int = Field(default=3660, ge=1, description="how old a `timestamp` may be")
    masking_rules_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="how long a process keeps a tenant's masking rules: a settings change "
        "applies at once in the process that made it, within this in the others",
    )


JwtAlgorithm = Literal["EdDSA", "ES256", "RS256", "HS256"]
RoleName = Literal["admin", "auditor", "user"]


class ClaimMapping(BaseModel):
    """Where an issuer's tokens carry the subject, role and tenants (see docs/security.md).

    A claim name is looked up as given first (so URL-shaped custom claims such as
    ``https://acme.example/roles`` work), then as a dotted path (``realm_access.roles``).
    """

    model_config = ConfigDict(extra="forbid")

    subject: str = "sub"
    role: str = "role"
    tenants: str = "tenants"
    role_values: dict[str, RoleName] = Field(
        default_factory=dict,
        description="IdP value -> Auditline role; empty accepts admin, auditor, user as is",
    )
    tenant_prefix: str = Field(
        default="",
        description="Only values starting with this count as tenants (the prefix is removed)",
    )


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class IssuerSettings(BaseModel):
    """A trusted external identity provider."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1, description="The exact `iss` of its tokens")
    audience: str = Field(min_length=1, description="The `aud` its tokens must carry")
    jwks_url: str | None = Field(default=None, description="HTTPS URL of its JSON Web Key Set")
    algorithms: list[JwtAlgorithm] = Field(default=["RS256"], min_length=1)
    shared_secret: SecretStr | None = Field(
        default=None, description="HS256 only: the shared secret (at least 32 bytes)"
    )
    claims: ClaimMapping = Field(default_factory=ClaimMapping)
    allow_platform_admin: bool = Field(
        default=False, description="May this issuer grant all tenants ('*')?"
    )
    leeway_seconds: int = Field(default=30, ge=0, le=300)

    @model_validator(mode="after")
    def _one_kind_of_key(self) -> Self:
        if "HS256" in self.algorithms:
            if self.algorithms != ["HS256"]:
                raise ValueError("HS256 cannot be combined with asymmetric algorithms")
            secret = self.shared_secret.get_secret_value() if self.shared_secret else ""
            if len(secret.encode()) < 32:
                raise ValueError("HS256 needs a shared_secret of at least 32 bytes")
            if self.jwks_url:
                raise ValueError("an HS256 issuer takes no jwks_url")
            return self
        if self.shared_secret is not None:
            raise ValueError("shared_secret is only for HS256")
        if not self.jwks_url:
            raise ValueError("an issuer with asymmetric algorithms needs a jwks_url")
        url = urlsplit(self.jwks_url)
        if url.scheme != "https" and not (url.scheme == "http" and _loopback(url.hostname)):
            raise ValueError("jwks_url must be https (plain http only on a loopback address)")
        return self


class AuthSettings(BaseModel):
    """Token issuance and verification: the server's own key and trusted external issuers."""

    issuer: str = Field(default="auditline", description="`iss` of locally issued tokens")
    audience: str = Field(default="auditline", description="`aud` every local token carries")
    signing_key_file: Path | None = Field(
        default=None, description="Ed25519 private key (PEM); default <data_dir>/signing-key.pem"
    )
    bootstrap_token_ttl_seconds: int = Field(
        default=30 * 24 * 3600, ge=60, description="lifetime of the bootstrap admin token"
    )
    leeway_seconds: int = Field(default=30, ge=0, description="clock skew allowed on exp/nbf")
    issuers: list[IssuerSettings] = Field(
        default_factory=list, description="External identity providers (JSON list)"
    )
    jwks_cache_seconds: float = Field(
        default=3600.0, gt=0, description="how long fetched JWKS keys are trusted"
    )
    jwks_min_refresh_seconds: float = Field(
        default=30.0, ge=0, description="Least time between two fetches of one issuer's JWKS"
    )
    jwks_fetch_timeout_seconds: float = Field(default=5.0, gt=0, description="JWKS fetch timeout")
    max_token_bytes: int = Field(default=8192, ge=256, description="longer tokens are refused")

    @model_validator(mode="after")
    def _distinct_issuers(self) -> Self:
        names = [i.issuer for i in self.issuers]
        if self.issuer in names or len(set(names)) != len(names):
            raise ValueError("every issuer needs its own `iss`, distinct from auth.issuer")
        return self


class ApiKeySettings(BaseModel):
    """Service credentials bound to one tenant."""

    max_active_per_tenant: int = Field(default=100, ge=1, description="unrevoked keys per tenant")
    max_lifetime_days: int | None = Field(
        default=None, ge=1, description="If set, every key must expire within this many days"
    )
    last_used_resolution_seconds: float = Field(
        default=60.0, ge=0, description="`last_used_at` is written at most this often per key"
    )


class RateBudget(BaseModel):
    """A token bucket: *burst* requests at once, refilled at *rate* per second."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, description="tokens refilled per second")
    burst: int = Field(ge=1, description="bucket size: requests allowed at once")


class RateLimitSettings(BaseModel):
    """Token buckets per tenant and per principal, for ingest and for everything else."""

    enabled: bool = Field(default=True, description="apply the token buckets below")
    backend: Literal["memory", "postgres"] = Field(
        default="memory",
        description="memory: per process; postgres: shared by every process of the database",
    )
    ingest_per_tenant: RateBudget = RateBudget(rate=5000, burst=10000)
    ingest_per_principal: RateBudget = RateBudget(rate=2000, burst=5000)
    read_per_tenant: RateBudget = RateBudget(rate=200, burst=400)
    read_per_principal: RateBudget = RateBudget(rate=100, burst=200)
    auth_failures_per_client: RateBudget = Field(
        default=RateBudget(rate=2, burst=30),
        description="Failed authentications per client address (always per process)",
    )
    auth_failure_records: RateBudget = Field(
        default=RateBudget(rate=50, burst=500),
        description="Failed authentications recorded one by one; beyond, they are counted",
    )


class HttpSettings(BaseModel):
    """Connection-level protections passed to uvicorn, and the request body deadline."""

    timeout_keep_alive_seconds: int = Field(
        default=5, ge=1, description="idle keep-alive connections are closed after this"
    )
    limit_concurrency: int | None = Field(
        default=None, ge=1, description="Connections+tasks beyond which uvicorn answers 503"
    )
    backlog: int = Field(default=2048, ge=1, description="listen backlog")
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request body must arrive within this time (408)"
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies trusted for X-Forwarded-For (the client address of rate limits)",
    )


class SearchSettings(BaseModel):
    """Search, export and statistics (see docs/search.md)."""

    default_limit: int = Field(default=50, ge=1, description="page size when `limit` is absent")
    max_limit: int = Field(default=1000, ge=1, description="largest page size")
    exact_total_limit: int = Field(
        default=50_000,
        ge=1,
        description="include_total counts exactly up to this; beyond, an estimate "
        "(`approx`) or this bound (`gte`)",
    )
    total_budget_ms: int = Field(
        default=100,
        ge=1,
        description="time include_total may spend counting exactly before it answers "
        "PostgreSQL's estimate (`approx`)",
    )
    facet_size: int = Field(
        default=10, ge=1, le=100, description="values per facet when `facet_size` is absent"
    )
    facet_budget_ms: int = Field(
        default=200,
        ge=1,
        description="time facets may spend grouping every match before they count the "
        "newest `facet_sample_rows` only (`partial`)",
    )
    facet_sample_rows: int = Field(
        default=5000,
        ge=1,
        description="matches a partial facet answer counts (the newest ones); also the "
        "most sequence numbers past a page's watermark that facets from the rollups take "
        "away one by one (beyond, the grouped pass)",
    )
    probe_rows: int = Field(
        default=2000,
        ge=1,
        description="rows a full-text search walks in time order first (docs/search.md)",
    )
    probe_max_rows: int = Field(
        default=10_000,
        ge=0,
        description="most rows a second walk may take when the first shows the words are "
        "common enough to fill the page that way",
    )
    export_batch_size: int = Field(
        default=5000, ge=1, le=100_000, description="rows fetched per round trip when exporting"
    )
    export_duty: float = Field(
        default=0.5, gt=0, le=1,
        description="share of the time an export works: between two batches it pauses "
        "t * (1 - duty) / duty, t being the time the first of them took (1: no pause)",
    )  # fmt: skip
    stats_top: int = Field(default=10, ge=1, le=100, description="top users and resources")
    stats_max_buckets: int = Field(default=2000, ge=1, description="timeline buckets at most")
    filter_backend: Literal["postgres", "opensearch"] = Field(
        default="postgres",
        description="who answers searches and exports without full-text terms in `q` "
        "(`opensearch` needs `opensearch.url`)",
    )
    text_backend: Literal["postgres", "opensearch"] = Field(
        default="postgres",
        description="who answers searches and exports with full-text terms in `q` "
        "(`opensearch` needs `opensearch.url`); statistics always come from PostgreSQL",
    )
    on_unavailable: Literal["postgres", "503"] = Field(
        default="postgres",
        description="when OpenSearch cannot answer: ask PostgreSQL instead, or answer 503 "
        "with Retry-After",
    )
    retry_after_seconds: int = Field(
        default=5, ge=1, description="Retry-After of a 503 when OpenSearch cannot answer"
    )


class OpenSearchSettings(BaseModel):
    """The optional OpenSearch search tier (docs/operations.md#opensearch)."""

    url: str | None = Field(
        default=None,
        description="cluster endpoint, e.g. `https://search.example:9200`; unset: no "
        "OpenSearch (nothing is indexed)",
    )
    username: str | None = Field(default=None, description="HTTP basic auth user")
    password: SecretStr | None = Field(default=None, description="HTTP basic auth password")
    verify_certs: bool = Field(default=True, description="verify the cluster's TLS certificate")
    index_prefix: str = Field(
        default="auditline",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="indices are `<prefix>-events-g<N>-<YYYY.MM>` (generation N), read "
        "through `<prefix>-events`",
    )
    shards: int = Field(default=1, ge=1, description="primary shards of each monthly index")
    replicas: int = Field(
        default=1, ge=0, description="replicas of each monthly index (0 on a single node)"
    )
    request_timeout_seconds: float = Field(
        default=5.0, gt=0, description="longest one request may take before it counts as down"
    )
    index_batch_size: int = Field(
        default=2000, ge=1, le=50_000, description="events per bulk request of the indexer"
    )
    index_interval_seconds: float = Field(
        default=2.0, gt=0, description="how often the indexer follows every tenant's log"
    )
    index_job_seconds: float = Field(
        default=60.0,
        gt=0,
        description="how long one `search.index` job follows the logs "
        "before the next scheduled one takes over (one job row per this many seconds)",
    )
    aws_sigv4: bool = Field(
        default=False,
        description="sign every request with AWS SigV4 (IAM) for Amazon OpenSearch Service, "
        "with the default AWS credential chain (environment, profile, ECS task or EC2 "
        "instance role); excludes `username`/`password`",
    )
    aws_region: str | None = Field(
        default=None, description="`aws_sigv4`: the domain's region, e.g. `eu-west-1`"
    )
    aws_service: Literal["es"] = Field(
        default="es",
        description="`aws_sigv4`: the service signed for, `es` (an OpenSearch Service "
        "domain); OpenSearch Serverless (`aoss`) is not supported",
    )

    @model_validator(mode="after")
    def _sigv4_needs_a_region_and_no_password(self) -> Self:
        if self.aws_sigv4 and not self.aws_region:
            raise ValueError("opensearch.aws_sigv4 needs opensearch.aws_region")
        if self.aws_sigv4 and (self.username is not None or self.password is not None):
            raise ValueError("opensearch.aws_sigv4 excludes opensearch.username/password")
        return self


class IntegritySettings(BaseModel):
    """Tamper evidence: sealing each tenant's Merkle log into signed checkpoints
    (docs/integrity.md)."""

    origin: str = Field(
        default="auditline.localhost",
        pattern=r"^[A-Za-z0-9.\-]+(:[0-9]+)?$",
        description="the log's name: checkpoints read `<origin>/<tenant>`, and the "
        "checkpoint key is named after it (use this deployment's host name)",
    )
    key_file: Path | None = Field(
        default=None,
        description="Ed25519 checkpoint signing key (PEM, mode 0600); default "
        "`<data_dir>/checkpoint-key.pem`, created if absent",
    )
    seal_interval_seconds: float = Field(
        default=1.0, gt=0, description="how often tenants with new events are sealed"
    )
    max_leaves_per_seal: int = Field(
        default=100_000, ge=1, description="leaves one tenant's sealing round takes at most"
    )
    witness_backend: Literal["directory", "s3"] = Field(
        default="directory",
        description="where every checkpoint is also written, outside the database: a "
        "directory, or an S3 bucket (docs/integrity.md)",
    )
    witness_dir: Path | None = Field(
        default=None,
        description="directory witness: its root; default `<data_dir>/witness`",
    )
    witness_s3_bucket: str | None = Field(
        default=None,
        description="s3 witness: the bucket (must exist; Object Lock in compliance mode "
        "recommended)",
    )
    witness_s3_prefix: str = Field(
        default="auditline/checkpoints/",
        description="s3 witness: key prefix (objects `<prefix><tenant>/<tree size>.checkpoint`)",
    )
    witness_s3_endpoint_url: str | None = Field(
        default=None, description="s3 witness: endpoint of an S3-compatible store; unset for AWS"
    )
    witness_s3_region: str | None = Field(
        default=None, description="s3 witness: region of the bucket"
    )

    @model_validator(mode="after")
    def _s3_witness_needs_a_bucket(self) -> Self:
        if self.witness_backend == "s3" and not self.witness_s3_bucket:
            raise ValueError("integrity.witness_backend=s3 needs integrity.witness_s3_bucket")
        return self


class ReadSettings(BaseModel):
    """Admission of reads, so that reads never starve ingest (docs/configuration.md, "Reads").

    Per API process. Reads (get by id, search, export, statistics) run on their own
    connection pool, at most *max_concurrent* at once; exports and statistics, the heavy
    reads, also within *max_concurrent_heavy*, and exports within *max_concurrent_exports*
    (fewer than the heavy slots, so that exports never take every slot statistics need).
    A read that finds no free slot waits at most *queue_seconds*, then is refused (503
    with ``Retry-After``): never an unbounded queue. Slots bound how many reads run, not
    how much CPU they take: when PostgreSQL runs on the same machine (the embedded one),
    the read pool's server processes also run *backend_niceness* steps below normal
    priority, so that an export's query yields the CPU to ingest's transactions.
    """

    max_concurrent: int = Field(
        default=8, ge=1, description="reads running at once per process (= read pool size)"
    )
    max_concurrent_heavy: int = Field(
        default=2, ge=1, description="exports and statistics running at once per process"
    )
    max_concurrent_exports: int = Field(
        default=1, ge=1, description="exports running at once per process (of the heavy reads)"
    )
    queue_seconds: float = Field(
        default=0.025, ge=0, le=10, description="longest a read waits for a slot (503 after)"
    )
    retry_after_seconds: int = Field(
        default=1, ge=1, description="`Retry-After` of a refused or timed-out read"
    )
    statement_timeout_ms: int = Field(
        default=5000, ge=1, description="longest one statement of a search, get or stats"
    )
    export_statement_timeout_ms: int = Field(
        default=30_000, ge=1, description="longest one batch statement of an export"
    )
    backend_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="reads' PostgreSQL processes run this much below normal priority, "
        "when PostgreSQL runs on this machine",
    )


class MetricsSettings(BaseModel):
    """``GET /metrics`` (Prometheus text format) and the structured request log."""

    enabled: bool = Field(default=True, description="serve `GET /metrics` (404 when off)")
    bearer_token: SecretStr | None = Field(
        default=None, description="if set, /metrics requires `Authorization: Bearer <token>`"
    )
    tenant_labels: list[str] = Field(
        default_factory=list,
        description="tenants counted by name in ingest metrics (a bounded set; others: '_other')",
    )
    request_log: bool = Field(
        default=True, description="one JSON log line per request (logger auditline.requests)"
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry traces, metrics and logs, sent to the "
        "providers configured in the process (FASTAPI_OTEL_AUTO_CONFIGURE, OTEL_*); off, "
        "requests skip its per-request check (about 2 % of an ingest request's CPU)",
    )


class StreamSettings(BaseModel):
    """Live streams over WebSocket (``/api/v1/logs/stream``, docs/api.md)."""

    buffer_events: int = Field(
        default=2000,
        ge=1,
        description="events queued per connection; a client further behind is sent `lagged` "
        "and closed (it resumes with since=)",
    )
    max_streams_per_tenant: int = Field(
        default=100, ge=1, description="concurrent streams per tenant in each API process (4429)"
    )
    ping_seconds: float = Field(default=20.0, gt=0, description="a `ping` message this often")
    auth_timeout_seconds: float = Field(
        default=5.0, gt=0, description="wait for a first `auth` message when the handshake had "
        "no token",
    )  # fmt: skip
    idle_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="close a stream that sent no event for this long"
    )
    max_lifetime_seconds: float = Field(
        default=86_400.0, gt=0, description="close any stream after this long (it resumes)"
    )
    recheck_seconds: float = Field(
        default=60.0, gt=0, description="how often a stream's credential is checked again "
        "(a revoked API key closes it with 4401)",
    )  # fmt: skip
    send_timeout_seconds: float = Field(
        default=30.0, gt=0, description="a client that takes longer to accept one message "
        "is disconnected",
    )  # fmt: skip
    compress: bool = Field(
        default=False,
        description="permessage-deflate on WebSockets: less bandwidth for about 15 µs more "
        "CPU per message and connection (set by `serve`)",
    )
    read_batch: int = Field(
        default=500, ge=1, le=100_000, description="rows the hub reads per round trip "
        "(and hands to the connections at once: keep it well below buffer_events)",
    )  # fmt: skip
    replay_batch: int = Field(
        default=500, ge=1, le=10_000, description="stored events replayed per round trip"
    )


class ArchiveSettings(BaseModel):
    """Cold storage of archived events (see docs/operations.md, "Archival")."""

    backend: Literal["directory", "s3"] = Field(
        default="directory", description="where archives go: a directory, or an S3 bucket"
    )
    directory: Path | None = Field(
        default=None,
        description="directory backend: root of the archive; default <data_dir>/archive",
    )
    s3_bucket: str | None = Field(default=None, description="s3 backend: the bucket (must exist)")
    s3_prefix: str = Field(
        default="auditline/", description="s3 backend: key prefix of the archive"
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="s3 backend: endpoint of an S3-compatible store; unset for AWS"
    )
    s3_region: str | None = Field(default=None, description="s3 backend: region of the bucket")
    batch_rows: int = Field(
        default=50_000, ge=1000, le=1_000_000,
        description="rows read, encoded and written per Parquet row group",
    )  # fmt: skip
    zstd_level: int = Field(default=9, ge=1, le=22, description="zstd level of the Parquet files")
    scheduled: bool = Field(
        default=True, description="run the archival task on the scheduler (false: by CLI only)"
    )
    interval_seconds: float = Field(
        default=86_400.0, gt=0, description="how often the archival task runs"
    )

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Self:
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("archive.backend=s3 needs archive.s3_bucket")
        return self


class RetentionSettings(BaseModel):
    """Removing events: cleanup, the daily retention task, archival's deletes.

    See docs/operations.md ("Retention and cleanup")."""

    min_age_hours: float = Field(
        default=24.0,
        ge=0,
        description="events younger than this are never removed, whatever is asked (422)",
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="events removed per transaction (each recorded in the tenant's log)",
    )
    pause_ms: int = Field(
        default=50,
        ge=0,
        le=60_000,
        description="pause between two batches, so writes and queries keep their share",
    )
    sync_max_events: int = Field(
        default=10_000,
        ge=0,
        description="a cleanup of more events answers 202 and runs as a job",
    )
    duty: float = Field(
        default=0.33,
        gt=0,
        le=1,
        description="share of the time a batched removal works: after a batch that took t "
        "seconds it waits t * (1 - duty) / duty (and at least pause_ms)",
    )
    partition_drop: bool = Field(
        default=True,
        description="the retention task drops whole months no tenant still keeps",
    )
    lock_timeout_ms: int = Field(
        default=2000,
        ge=1,
        description="longest a partition drop waits for its locks before it is retried later",
    )
    scheduled: bool = Field(
        default=True,
        description="run the retention task on the scheduler (false: removals by cleanup only)",
    )
    interval_seconds: float = Field(
        default=86_400.0, gt=0, description="how often the retention task runs"
    )


class SqsSettings(BaseModel):
    """The Amazon SQS queue backend (``jobs.backend = "sqs"``); see docs/operations.md."""

    endpoint_url: str | None = Field(
        default=None, description="SQS endpoint; unset: the region's AWS endpoint"
    )
    region: str = Field(default="us-east-1", description="AWS region of the queues")
    queue_name: str = Field(default="auditline-jobs", description="the standard queue")
    dead_letter_queue_name: str = Field(
        default="auditline-jobs-dlq", description="where the redrive policy moves dead messages"
    )
    create_queues: bool = Field(
        default=False,
        description="create both queues and the redrive policy if missing (dev and tests; in "
        "production provision them and grant no sqs:CreateQueue)",
    )
    access_key_id: str | None = Field(
        default=None, description="static credentials; unset: the AWS default chain"
    )
    secret_access_key: SecretStr | None = Field(default=None, description="with access_key_id")
    relay_batch: int = Field(
        default=10, ge=1, le=10, description="outbox rows sent per SendMessageBatch"
    )


class JobsSettings(BaseModel):
    """Background work: the queue, the workers and the scheduler (docs/architecture.md)."""

    backend: Literal["postgres", "sqs"] = Field(
        default="postgres", description="queue backend: the database itself, or Amazon SQS"
    )
    in_process_worker: bool = Field(
        default=True,
        description="`serve` runs a worker (and the scheduler) in each API process; turn off "
        "when dedicated `auditline worker` processes run",
    )
    concurrency: int = Field(default=4, ge=1, le=256, description="tasks one worker runs at once")
    visibility_timeout_seconds: int = Field(
        default=60,
        ge=1,
        le=43_200,
        description="a received task is hidden this long; a live worker extends it (heartbeat), "
        "a dead worker's task is delivered again after it",
    )
    max_receives: int = Field(
        default=5,
        ge=1,
        le=100,
        description="deliveries of a task before it is dead-lettered and its job failed",
    )
    retry_base_seconds: float = Field(
        default=2.0, ge=0, description="first retry delay after a failure; doubles each time"
    )
    retry_max_seconds: float = Field(default=300.0, ge=0, description="longest retry delay")
    poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=20,
        description="longest an idle worker waits before looking again (new work wakes it at "
        "once: NOTIFY for PostgreSQL, long polling for SQS)",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="a stopping worker waits this long for running tasks, "
        "then releases them to other workers",
    )
    scheduler: bool = Field(
        default=True, description="workers also run the periodic-task scheduler"
    )
    keep_finished_days: int = Field(
        default=30,
        ge=1,
        description="finished jobs (and PostgreSQL dead letters) are deleted this many days "
        "after they finished, by the daily `jobs.prune` task",
    )
    sqs: SqsSettings = Field(default_factory=SqsSettings)


class BackupSettings(BaseModel):
    """Scheduled backups (``auditline backup`` runs one by hand; see docs/operations.md)."""

    dir: Path | None = Field(
        default=None, description="where scheduled backups go; default <data_dir>/backups"
    )
    keep: int = Field(default=7, ge=1, description="complete scheduled backups kept, newest")
    interval_seconds: float | None = Field(
        default=None,
        ge=0,
        description="how often the scheduler takes a backup; unset: daily with the embedded "
        "server, never with an external database.url (use its snapshots); 0: never",
    )
    compress_level: int = Field(
        default=1, ge=0, le=9, description="gzip level of the pg_dump archive (0: none)"
    )
    restore_memory_mb: int = Field(
        default=512,
        ge=1,
        description="maintenance_work_mem of the restore session: index builds dominate a "
        "restore, and more memory made it about 25 % faster",
    )


class Settings(BaseSettings):
    """All of Auditline's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="AUDITLINE_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(
        default=Path(".auditline"), description="embedded PostgreSQL, signing key, tokens"
    )
    host: str = Field(default="127.0.0.1", description="address `serve` binds")
    port: int = Field(default=8000, ge=0, le=65535, description="port `serve` binds")
    workers: int | None = Field(
        default=None, ge=1, description="API processes started by serve; unset: one per CPU"
    )
    log_level: str = Field(default="info", description="uvicorn log level")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    api_keys: ApiKeySettings = Field(default_factory=ApiKeySettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    opensearch: OpenSearchSettings = Field(default_factory=OpenSearchSettings)
    integrity: IntegritySettings = Field(default_factory=IntegritySettings)
    reads: ReadSettings = Field(default_factory=ReadSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    maintenance_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="how often partitions ahead are checked (a scheduled task)",
    )

    @model_validator(mode="after")
    def _opensearch_backend_needs_a_cluster(self) -> Self:
        chosen = {self.search.filter_backend, self.search.text_backend}
        if "opensearch" in chosen and self.opensearch.url is None:
            raise ValueError("search.*_backend = opensearch needs opensearch.url")
        return self

    @property
    def signing_key_path(self) -> Path:
        return self.auth.signing_key_file or self.data_dir / "signing-key.pem"

    @property
    def checkpoint_key_path(self) -> Path:
        return self.integrity.key_file or self.data_dir / "checkpoint-key.pem"

    @property
    def witness_path(self) -> Path:
        return self.integrity.witness_dir or self.data_dir / "witness"

    @property
    def backup_dir(self) -> Path:
        return self.backup.dir or self.data_dir / "backups"

    @property
    def backup_interval_seconds(self) -> float:
        """0 when scheduled backups are off. An external database has its own backups
        (snapshots, point-in-time recovery), and a dump of it onto whichever host's worker
        runs the task would be both heavy and scattered, so it takes an explicit setting."""
        if self.backup.interval_seconds is not None:
            return self.backup.interval_seconds
        return 0.0 if self.database.url else 86_400.0

    @property
    def bootstrap_token_path(self) -> Path:
        return self.data_dir / "bootstrap-admin.jwt"

    @property
    def archive_directory(self) -> Path:
        return self.archive.directory or self.data_dir / "archive"


def reference_rows(section: BaseModel | None = None, prefix: str = "AUDITLINE_") -> list[str]:
    """One Markdown table row per setting: its variable, default and meaning.

    ``docs/configuration.md`` embeds this table; a test keeps the two in step.
    """
    section = section if section is not None else Settings.model_construct()
    rows = []
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            rows += reference_rows(value, f"{prefix}{name.upper()}__")
            continue
        if value is None:
            shown = "*(unset)*"
        elif isinstance(value, list | dict | bool):
            shown = f"`{json.dumps(value)}`"
        else:
            shown = f"`{value}`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | {shown} | {description} |")
    return rows


if __name__ == "__main__":
    print("\n".join(reference_rows()))
