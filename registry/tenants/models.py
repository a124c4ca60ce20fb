"""Tenants and their API keys (hashed at rest)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, JSONType, UTCDateTime, new_id, utcnow


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # The lookup part of the key, stored plainly; the secret part only as its sha256.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TenantPolicy(Base):
    """A tenant's quotas (set by the operator) and retention (set by the tenant's admins).
    A null column takes the operator's default from Settings (docs/operations.md)."""

    __tablename__ = "tenant_policies"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    max_active_jobs: Mapped[int | None] = mapped_column(Integer)  # queued + running
    max_stored_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_users: Mapped[int | None] = mapped_column(Integer)
    max_requests_per_s: Mapped[float | None] = mapped_column(Float)  # per API key
    keep_versions: Mapped[int | None] = mapped_column(Integer)
    keep_alias_days: Mapped[int | None] = mapped_column(Integer)
    keep_dataset_days: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
