"""Base models, bound by content hash, and the shared random projections over them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import Base, JSONType, UTCDateTime, new_id, utcnow


class BaseModel(Base):
    __tablename__ = "base_models"
    __table_args__ = (UniqueConstraint("tenant_id", "content_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # "sha256:" + 64 hex over weights_hash and every file (registry/base_models/manifest.py).
    content_hash: Mapped[str] = mapped_column(String(71))
    # The tensor hash (registry/vera/hashing.py): what a loaded model can be checked against.
    weights_hash: Mapped[str] = mapped_column(String(71))
    architecture: Mapped[str] = mapped_column(String(200))
    # {module path: [d_in, d_out]} for every linear layer an adapter may target.
    layers: Mapped[dict[str, list[int]]] = mapped_column(JSONType)
    # None: the files are blobs in the registry's store; else an allow-listed external root.
    source_uri: Mapped[str | None] = mapped_column(String(2000))
    # What it can train, per task (registry.vera.capabilities); null for older registrations.
    capabilities: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    files: Mapped[list[BaseModelFile]] = relationship(
        lazy="selectin", order_by="BaseModelFile.path", cascade="all, delete-orphan"
    )


class BaseModelFile(Base):
    """One file of a base model's checkpoint folder, by content."""

    __tablename__ = "base_model_files"
    __table_args__ = (PrimaryKeyConstraint("base_model_id", "path"),)

    base_model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class ModelFileUpload(Base):
    """A tenant sent these bytes (verified) to the store: only then may its manifests name
    them. Per tenant, so no tenant learns or reuses what another one uploaded."""

    __tablename__ = "model_file_uploads"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "sha256"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Projection(Base):
    """The shared A/B matrices: never stored, regenerated from the seed and checked."""

    __tablename__ = "projections"
    __table_args__ = (
        UniqueConstraint("base_model_id", "seed", "r", "max_d_in", "max_d_out", "generator"),
        CheckConstraint("r > 0 AND max_d_in > 0 AND max_d_out > 0", name="positive_sizes"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    base_model_id: Mapped[str] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    r: Mapped[int] = mapped_column(Integer)
    max_d_in: Mapped[int] = mapped_column(Integer)
    max_d_out: Mapped[int] = mapped_column(Integer)
    generator: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(71))
    torch_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
