"""Datasets, training jobs and their ordered events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, BigIntPK, JSONType, UTCDateTime, new_id, utcnow

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TASKS = ("causal-lm", "sequence-classification")


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        CheckConstraint("task IN ('causal-lm', 'sequence-classification')", name="task"),
        # Quotas: is this user new to the tenant, how many users (registry/tenants/quotas.py).
        Index("ix_datasets_tenant_id_user_id", "tenant_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(64))
    # Null once purged (retention): the row stays for the jobs that name it, the text goes.
    blob_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    rows: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # Distinct labels of a classification dataset, in first-seen order.
    labels: Mapped[list | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Job(Base):
    """The database, not the broker, owns a job: every worker write is fenced by lease_token."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"
        ),
        CheckConstraint(
            "error_kind IS NULL OR error_kind IN ('user', 'system')", name="error_kind"
        ),
        UniqueConstraint("tenant_id", "idempotency_key"),
        # A worker looks for queued jobs it may train in its pack (registry/jobs/packing.py).
        Index("ix_jobs_pack_key_state_created_at", "pack_key", "state", "created_at"),
        # Quotas count a tenant's active jobs; fair share asks when a tenant last got a
        # worker of a queue (registry/tenants/quotas.py, registry/jobs/fair_share.py).
        Index("ix_jobs_tenant_id_state", "tenant_id", "state"),
        Index("ix_jobs_tenant_id_queue_started_at", "tenant_id", "queue", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(200), index=True)
    adapter_id: Mapped[str] = mapped_column(ForeignKey("adapters.id"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    base_model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id"))
    projection_id: Mapped[str] = mapped_column(ForeignKey("projections.id"))
    hyperparameters: Mapped[dict] = mapped_column(JSONType)
    warm_start_version_id: Mapped[str | None] = mapped_column(ForeignKey("adapter_versions.id"))
    publish: Mapped[bool] = mapped_column(Boolean, default=True)
    queue: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_kind: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    result_version_id: Mapped[str | None] = mapped_column(ForeignKey("adapter_versions.id"))
    # Jobs with equal pack keys may train in one pack; NULL (jobs older than packs): alone.
    pack_key: Mapped[str | None] = mapped_column(String(64))
    # The pack it trains (or last trained) in, and how many jobs that pack held at its last step.
    pack_id: Mapped[str | None] = mapped_column(String(32))
    pack_size: Mapped[int | None] = mapped_column(Integer)
    # The latest checkpoint (a blob) and the step it was taken after; cleared once it ends.
    checkpoint_blob_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer)
    # Given at submit, carried to the version the job creates.
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (
        UniqueConstraint("job_id", "seq"),
        CheckConstraint("kind IN ('state', 'progress', 'metrics', 'log')", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Pack(Base):
    """One worker's training loop over several jobs; its counters feed /metrics."""

    __tablename__ = "packs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    worker: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer, default=0)  # jobs training now
    max_size: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(BigInteger, default=0)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    step_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
