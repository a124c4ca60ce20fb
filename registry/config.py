"""Settings, read from `VERA_*` environment variables (or a `.env` file).

With no configuration everything runs on one machine under `VERA_HOME` (`./.vera/`): a
SQLite database, blobs in a local directory and a broker that needs no server.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024
GiB = 1024 * MiB


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERA_", env_file=".env", extra="ignore")

    home: Path = Field(Path(".vera"), description="Directory for embedded state.")
    # The three embedded defaults live under `home` (filled in below when unset).
    # URLs that may carry a password are SecretStr: repr(), model_dump() and anything that
    # prints Settings show '**********'; consumers call .get_secret_value() where they connect.
    database_url: SecretStr = Field(
        SecretStr(""),
        description="SQLAlchemy URL; postgresql+psycopg://user:pw@host/db in production.",
    )
    storage_url: str = Field(
        "", description="file://DIR or s3://bucket/prefix for adapter and dataset blobs."
    )
    s3_endpoint_url: str | None = Field(None, description="Endpoint of an S3-compatible store.")
    s3_region: str | None = Field(None, description="S3 region.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="S3 access key (else boto3's chain)."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key.")
    s3_checksums: bool = Field(
        True, description="Send SHA-256 checksums on upload; turn off for stores that reject them."
    )
    s3_conditional_writes: bool = Field(
        True, description="Use If-None-Match create-only writes; off for stores without them."
    )
    s3_presign_downloads: bool = Field(
        False, description="Answer blob downloads with a 307 to a presigned S3 URL."
    )
    s3_presign_ttl_s: int = Field(300, description="Lifetime of presigned URLs, seconds.")
    broker_url: SecretStr = Field(
        SecretStr(""), description="Celery broker: redis://host:6379/0 or amqp://… in production."
    )
    broker_visibility_timeout_s: int | None = Field(
        None, description="Redis redelivery timeout; default: job_max_runtime_s + 600."
    )
    resolve_cache_s: float = Field(
        0.1,
        description="Without push (SQLite, or pg_listen off): how long a resolve may lag an "
        "alias move made by another process; 0 turns the resolve cache off.",
    )
    api_host: str = Field("127.0.0.1", description="Address `vera-registry serve` binds.")
    api_port: int = Field(8300, description="Port `vera-registry serve` binds.")
    max_dataset_bytes: int = Field(64 * MiB, description="Largest dataset upload, bytes.")
    max_dataset_rows: int = Field(200_000, description="Most rows in one dataset.")
    max_blob_bytes: int = Field(512 * MiB, description="Largest adapter blob, bytes.")
    job_max_runtime_s: int = Field(6 * 3600, description="Hard limit on one training job.")
    job_max_attempts: int = Field(3, description="Claims of one job before it fails for good.")
    heartbeat_interval_s: float = Field(5.0, description="How often a running job heartbeats.")
    heartbeat_stale_s: float = Field(60.0, description="Heartbeat age after which a job is lost.")
    pack_max_jobs: int = Field(
        8,
        ge=1,
        le=1024,
        description="Most jobs one worker trains together in one pack; 1: one job at a time.",
    )
    pack_max_tokens: int = Field(
        16384, ge=1, description="Token budget of one packed training step (bounds memory)."
    )
    checkpoint_interval_s: float = Field(
        60.0, gt=0, description="How often a running job writes a checkpoint it can resume from."
    )
    blob_gc_grace_s: int = Field(24 * 3600, description="Age before an unreferenced blob goes.")
    max_dataset_line_bytes: int = Field(
        1 * MiB, description="Longest line of a dataset, bytes (bounds an upload's memory)."
    )
    upload_timeout_s: float = Field(
        900.0, description="Longest time to receive one request body (an upload); then 408."
    )
    upload_idle_timeout_s: float = Field(
        30.0, description="Longest wait for the next bytes of a request body; then 408."
    )
    pg_listen: bool = Field(
        True,
        description="On PostgreSQL, push alias moves to every API process (LISTEN/NOTIFY); "
        "off: each process polls every resolve_cache_s.",
    )
    listen_database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL for the LISTEN connection when database_url goes through "
        "a transaction-pooling PgBouncer; default: database_url.",
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token /metrics requires; unset: /metrics is open (aggregates)."
    )
    sweep_interval_s: float = Field(
        5.0, description="How often the sweeper sends unsent jobs and checks the broker."
    )
    blob_gc_interval_s: float = Field(
        3600.0, description="How often blob garbage collection runs (its own slow schedule)."
    )
    retention_interval_s: float = Field(
        3600.0, description="How often retention deletes old versions and purges idle datasets."
    )
    model_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated roots (local dirs, s3://bucket/prefix) base models may "
        "be registered from without uploading; empty: uploads only.",
    )
    max_model_file_bytes: int = Field(
        64 * GiB, description="Largest single base-model file upload, bytes."
    )
    max_merged_export_bytes: int = Field(
        2 * GiB,
        description="Largest base model (sum of its files) a format=merged export copies, bytes.",
    )
    s3_part_bytes: int = Field(
        64 * MiB, ge=5 * MiB, description="Part size of S3 multipart uploads (at least 5 MiB)."
    )
    s3_presign_uploads: bool = Field(
        False, description="Hand out presigned S3 PUT URLs for base-model files."
    )

    # Quotas: the operator's defaults for every tenant (unset: no limit); a tenant's own
    # values (`vera-registry tenants quotas`, PATCH /v1/operator/tenants/{name}/quotas) win.
    max_active_jobs: int | None = Field(
        1000, ge=1, description="Default per-tenant limit on queued + running jobs; unset: none."
    )
    max_stored_bytes: int | None = Field(
        None, ge=0, description="Default per-tenant limit on stored dataset and version bytes."
    )
    max_users: int | None = Field(
        None, ge=1, description="Default per-tenant limit on distinct users; unset: none."
    )
    max_requests_per_s: float | None = Field(
        None, gt=0, description="Default per-API-key request rate limit; unset: none."
    )
    # Retention defaults (a tenant's admins may set their own: PATCH /v1/retention).
    keep_versions: int = Field(
        10, ge=1, description="Versions of each adapter retention keeps (the newest N)."
    )
    keep_alias_days: int = Field(
        30,
        ge=0,
        description="Retention also keeps every version an alias pointed at this recently.",
    )
    keep_dataset_days: int = Field(
        30, ge=0, description="Days a finished job's dataset is kept before it is purged."
    )
    operator_token: SecretStr | None = Field(
        None,
        description="Bearer token of the operator API (/v1/operator/…: tenants' quotas); "
        "unset: that API is off.",
    )

    # Webhooks (registry/webhooks): where deliveries may go, and how the sender retries.
    webhook_allow_http: bool = Field(
        False, description="Accept http:// webhook URLs (development only; https otherwise)."
    )
    webhook_allow_private: bool = Field(
        False,
        description="Accept webhook URLs whose host resolves to a private, loopback, "
        "link-local or otherwise non-public address.",
    )
    webhook_private_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host names whose webhook URLs may resolve to private "
        "addresses (an internal receiver), without allowing every private address.",
    )
    webhook_ca_bundle: Path | None = Field(
        None,
        description="PEM file of CA certificates webhook receivers' certificates may also "
        "chain to (besides the public CAs).",
    )
    webhook_interval_s: float = Field(
        2.0, gt=0, description="How often the webhook sender looks for due deliveries."
    )
    webhook_retry_base_s: float = Field(
        10.0,
        gt=0,
        description="First retry delay of a failed delivery; the later ones are multiples "
        "(about 31 hours of retries in all at the default).",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for one webhook receiver's answer, seconds."
    )

    @field_validator(
        "s3_endpoint_url",
        "s3_region",
        "s3_access_key_id",
        "s3_secret_access_key",
        "broker_visibility_timeout_s",
        "listen_database_url",
        "metrics_token",
        "operator_token",
        "webhook_ca_bundle",
        "max_active_jobs",
        "max_stored_bytes",
        "max_users",
        "max_requests_per_s",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value):
        # An empty VERA_X= (as compose files and .env templates leave them) means "unset".
        return None if value == "" else value

    @field_validator("model_sources", "webhook_private_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        home = self.home.as_posix()
        if not self.database_url.get_secret_value():
            self.database_url = SecretStr(f"sqlite:///{home}/registry.db")
        self.storage_url = self.storage_url or f"file://{home}/blobs"
        if not self.broker_url.get_secret_value():
            self.broker_url = SecretStr(f"sqla+sqlite:///{home}/broker.db")
        return self


def reveal(value: str | SecretStr) -> str:
    """The plain value of a setting that may be secret, for the one call that connects."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
