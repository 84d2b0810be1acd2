"""All configuration, read from the environment (and `.env`) when the composition root asks."""

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.headers import DEFAULT_MAX_HEADER_BYTES
from domain.request import DEFAULT_MAX_BODY_BYTES
from infrastructure.outbound_guard import Allowlist


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUECALL_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "DUECALL_DATABASE_URL"),
        description="Postgres URL; unset → an embedded Postgres in data_dir.",
    )
    direct_database_url: str | None = Field(
        default=None,
        description="A session connection to the same database (not through a transaction "
        "pooler) for LISTEN, session advisory locks and migrations; unset → DATABASE_URL. "
        "Set it when DATABASE_URL points at PgBouncer in transaction mode.",
    )
    data_dir: Path = Field(
        default=Path(".duecall/pgdata"), description="Embedded Postgres data directory."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    admin_key: str | None = Field(
        default=None, description="Bearer key of /v1/admin (tenants and keys); unset → disabled."
    )
    api_rate_per_second: float = Field(
        default=1000.0, gt=0, description="Requests a second per API key (a key may set its own)."
    )
    api_burst: int = Field(default=2000, ge=1, description="Requests at once per API key.")
    secret_key: str | None = Field(
        default=None,
        description="Base64 AES key sealing secrets at rest; unset → a key file in .duecall/.",
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    tracing: Literal["none", "otlp", "console"] = Field(
        default="none",
        description="OpenTelemetry traces: none (off), otlp (OTLP/HTTP to "
        "OTEL_EXPORTER_OTLP_ENDPOINT) or console (stdout).",
    )
    log_level: str = "INFO"
    db_pool_size: int = 4
    db_lock_timeout_seconds: int = 5
    db_connect_timeout_seconds: int = Field(
        default=5,
        ge=1,
        description="How long a read or write waits for a database connection before it fails "
        "(while the database is away: the API answers 503, workers back off and retry).",
    )
    shutdown_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, how long a worker lets attempts in flight finish; what is "
        "still running then is handed back for another worker, and the process exits.",
    )
    batch_size: int = Field(default=500, ge=1, le=1000, description="Messages per transaction.")
    max_in_flight: int = Field(
        default=256, ge=1, description="Concurrent HTTP attempts per worker process."
    )
    tenant_max_in_flight: int = Field(
        default=100, ge=1, description="Attempts in flight at once per tenant (all workers)."
    )
    host_max_in_flight: int = Field(
        default=20, ge=1, description="Attempts in flight at once per tenant and target host."
    )
    execution_grace_seconds: float = Field(
        default=30.0, ge=0, description="Grace after a call's timeout before it is re-claimed."
    )
    max_deliveries: int = Field(
        default=3, ge=1, le=20, description="Deliveries of one attempt before it is failed as lost."
    )
    circuit_failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive failures (timeout, network, 5xx) that open it."
    )
    circuit_open_seconds: float = Field(default=30.0, gt=0, description="How long it stays open.")
    circuit_probe_wait_seconds: float = Field(
        default=5.0, gt=0, description="How long other calls wait while the probe is out."
    )
    timer_lookahead_seconds: float = Field(
        default=1.0, ge=0, le=30, description="How far ahead the timer claims and holds calls."
    )
    schedule_lookahead_seconds: float = Field(
        default=1.0,
        ge=0.1,
        le=30,
        description="How long before its nominal time a schedule's fire is planned and its call "
        "submitted (due at the nominal time; overlap is judged then).",
    )
    timer_prestart_seconds: float = Field(
        default=0.25,
        ge=0,
        le=5,
        description="How long before its due time the timer takes an attempt in hand (the "
        "request itself is sent at the due time).",
    )
    record_running_after_seconds: float = Field(
        default=0.25,
        ge=0,
        le=10,
        description="A first attempt's start is recorded with its outcome, in one "
        "transaction, or as running once its request has been out this long; 0 records every "
        "start before its request is sent.",
    )
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=10)
    outcome_linger_seconds: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="How long a worker gathers attempt outcomes before it records them (one "
        "transaction for all), while no claim waits for the concurrency slots they hold; "
        "0.02 s while one does. A call's status shows its outcome up to this much later.",
    )
    projection_linger_seconds: float = Field(
        default=0.2,
        ge=0,
        le=2,
        description="Least time between two read-model rounds that fold events: a steady "
        "stream is folded in batches this far apart (cheaper per event; read models lag by up "
        "to this much more); the first event after a quiet spell is folded at once.",
    )
    worker_heartbeat_seconds: float = Field(
        default=1.0, gt=0, le=10, description="How often a worker says it is alive."
    )
    worker_dead_after_seconds: float = Field(
        default=3.0,
        gt=0,
        le=300,
        description="A worker silent this long is dead: any other worker ends its leases and "
        "its attempts are made again at once (same Idempotency-Key).",
    )
    response_snippet_bytes: int = 64 * 1024
    max_request_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, ge=1, description="Largest body a call may send (→ 413)."
    )
    max_request_header_bytes: int = Field(
        default=DEFAULT_MAX_HEADER_BYTES,
        ge=1,
        description="Largest total of a call's header names and values (→ 413).",
    )
    readiness_max_lag_seconds: float = Field(
        default=60.0, gt=0,
        description="/readyz answers 503 while a read model is further behind than this "
        "(or has events it could not fold).",
    )
    max_api_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Largest API request body (→ 413)."
    )
    event_stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=300,
        description="The live event stream sends a `: heartbeat` comment after this long "
        "without an event.",
    )
    event_stream_queue_size: int = Field(
        default=1000, ge=1,
        description="Events held for one live-stream subscriber; one that falls further "
        "behind is disconnected (it reconnects with Last-Event-ID and catches up).",
    )
    outbound_allowlist: str = Field(
        default="",
        description="Internal targets the outbound guard admits: comma-separated CIDRs and "
        "host names, e.g. 127.0.0.1/32,::1/128,localhost (empty → public addresses only).",
    )

    @field_validator("outbound_allowlist")
    @classmethod
    def _allowlist_parses(cls, value: str) -> str:
        Allowlist.parse(value)  # ValueError names the bad entry
        return value

    @property
    def allowlist(self) -> Allowlist:
        """``outbound_allowlist`` parsed."""
        return Allowlist.parse(self.outbound_allowlist)
