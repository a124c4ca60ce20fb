"""Adapters, their immutable versions, aliases and the append-only alias history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, BigIntPK, JSONType, UTCDateTime, new_id, utcnow


class Adapter(Base):
    """One end user's adapter, bound to one base model, projection and set of targets."""

    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), default="default")
    base_model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id"))
    projection_id: Mapped[str] = mapped_column(ForeignKey("projections.id"))
    target_modules: Mapped[list[str] | str] = mapped_column(JSONType)
    task: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AdapterVersion(Base):
    """Immutable: numbered 1, 2, 3… per adapter with no gaps; at most one per job."""

    __tablename__ = "adapter_versions"
    __table_args__ = (
        UniqueConstraint("adapter_id", "number"),
        CheckConstraint("number > 0", name="positive_number"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    adapter_id: Mapped[str] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    blob_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict] = mapped_column(JSONType, default=dict)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", use_alter=True), unique=True)
    parent_version_id: Mapped[str | None] = mapped_column(ForeignKey("adapter_versions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Alias(Base):
    """A movable name (`live`) for a version; `generation` rises on every move (CAS)."""

    __tablename__ = "aliases"
    __table_args__ = (
        UniqueConstraint("adapter_id", "name"),
        CheckConstraint("generation > 0", name="positive_generation"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    adapter_id: Mapped[str] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[str] = mapped_column(ForeignKey("adapter_versions.id"))
    generation: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AliasEvent(Base):
    """Append-only alias history; `seq` is global and monotonic, so it is the change feed."""

    __tablename__ = "alias_events"
    __table_args__ = (
        CheckConstraint("kind IN ('set', 'rollback')", name="kind"),
        # The feed reads a tenant's events after a seq; history reads one alias's in order.
        # Both also serve the foreign keys' cascades (their first column).
        Index("ix_alias_events_tenant_id_seq", "tenant_id", "seq"),
        Index("ix_alias_events_adapter_id_alias_seq", "adapter_id", "alias", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    adapter_id: Mapped[str] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(200))
    adapter_name: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
