"""Base models, bound by content hash, and the shared random projections over them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, JSONType, UTCDateTime, new_id, utcnow


class BaseModel(Base):
    __tablename__ = "base_models"
    __table_args__ = (UniqueConstraint("tenant_id", "content_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(71))  # "sha256:" + 64 hex
    architecture: Mapped[str] = mapped_column(String(200))
    # {module path: [d_in, d_out]} for every linear layer an adapter may target.
    layers: Mapped[dict[str, list[int]]] = mapped_column(JSONType)
    source_uri: Mapped[str] = mapped_column(String(2000))
    # What it can train, per task (registry.vera.capabilities); null for older registrations.
    capabilities: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
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
