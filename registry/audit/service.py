"""Writing and reading the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import AuditEvent

# What the log records (action names): one list, so readers and filters agree.
ACTIONS = (
    "key.created",
    "key.revoked",
    "alias.set",
    "alias.rollback",
    "version.deleted",
    "adapter.deleted",
    "user.erased",
    "quotas.changed",
    "retention.changed",
    "webhook.created",
    "webhook.deleted",
)


def record(
    session: Session,
    tenant_id: str,
    action: str,
    *,
    actor_key_id: str | None = None,
    adapter_id: str | None = None,
    target: str | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (it commits with the change it records).
    `details` holds ids and counts, never a user's data."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(
        tenant_id=tenant_id,
        actor_key_id=actor_key_id,
        action=action,
        adapter_id=adapter_id,
        target=target,
        details=details or {},
    )
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session,
    tenant_id: str,
    *,
    after_id: int = 0,
    limit: int = 50,
    action: str | None = None,
    since: datetime | None = None,
) -> list[AuditEvent]:
    """The tenant's audit events after `after_id` (and at or after `since`), oldest first."""
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.id > after_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    return list(session.scalars(query.order_by(AuditEvent.id).limit(limit)))
