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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

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
    description: Mapped[str | None] = mapped_column(Text)
    # The highest version number ever given out: numbers are never reused, even after a
    # version is deleted (downstream caches key on adapter id and number).
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Rises on a new version, an alias move or a metadata change (GET /v1/users?updated_since).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # Loaded when read (lists load it for all rows at once: selectinload); the database's
    # cascade removes the rows with the adapter.
    tag_rows: Mapped[list[AdapterTag]] = relationship(
        order_by="AdapterTag.tag", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]


class AdapterTag(Base):
    """A string tag on an adapter (one row a tag, so lists filter by tag with an index)."""

    __tablename__ = "adapter_tags"
    __table_args__ = (Index("ix_adapter_tags_tenant_id_tag", "tenant_id", "tag"),)

    adapter_id: Mapped[str] = mapped_column(
        ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))


class AdapterVersion(Base):
    """Immutable: numbered 1, 2, 3… per adapter, never reused (a deleted version leaves a
    gap); at most one per job."""

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
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    tag_rows: Mapped[list[VersionTag]] = relationship(
        order_by="VersionTag.tag", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]


class VersionTag(Base):
    """A string tag on a version."""

    __tablename__ = "version_tags"
    __table_args__ = (Index("ix_version_tags_tenant_id_tag", "tenant_id", "tag"),)

    version_id: Mapped[str] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))


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


# What the change feed carries: alias moves, and deletions a downstream server must apply.
FEED_KINDS = ("set", "rollback", "version_deleted", "adapter_deleted", "user_deleted")


class AliasEvent(Base):
    """Append-only alias history; `seq` is global and monotonic, so it is the change feed.

    Deletions are feed events too. An erasure removes every event of the user and appends
    one `user_deleted` event that names only the adapter ids (random, now pointing at
    nothing): no user id, name or text survives it."""

    __tablename__ = "alias_events"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('set', 'rollback', 'version_deleted', 'adapter_deleted', 'user_deleted')",
            name="kind",
        ),
        # The feed reads a tenant's events after a seq; history reads one alias's in order.
        # Both also serve the foreign keys' cascades (their first column).
        Index("ix_alias_events_tenant_id_seq", "tenant_id", "seq"),
        Index("ix_alias_events_adapter_id_alias_seq", "adapter_id", "alias", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # Null for adapter_deleted and user_deleted (the adapter row is gone; see adapter_ids).
    adapter_id: Mapped[str | None] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(200))
    adapter_name: Mapped[str | None] = mapped_column(String(200))
    alias: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    generation: Mapped[int | None] = mapped_column(Integer)
    # Deletions: the adapters this event removed.
    adapter_ids: Mapped[list[str] | None] = mapped_column(JSONType)
    # Who moved the alias (an API key id; null: a worker's publish or a server-side command)
    # and why, as the caller said.
    actor_key_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
