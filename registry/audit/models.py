"""The audit log: who did what to a tenant's keys, aliases and users (GET /v1/audit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow


class AuditEvent(Base):
    """Append-only. Holds ids, counts and what the actor typed as a reason; never a user's
    data. `adapter_id` (no foreign key: the adapter may be gone) lets an erasure remove the
    events about the user's adapters."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    actor_key_id: Mapped[str | None] = mapped_column(String(32))  # null: operator / worker
    action: Mapped[str] = mapped_column(String(64))
    adapter_id: Mapped[str | None] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
