"""Queueing an event for the tenant's webhook endpoints, inside the caller's transaction.

A delivery row commits with the change it reports (or not at all), and the webhook worker
sends it: an outbox, so no event is lost to a crash between the change and the send."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import new_id, utcnow
from registry.webhooks.models import WEBHOOK_EVENTS, WebhookDelivery, WebhookEndpoint


def emit(
    session: Session,
    tenant_id: str,
    event_type: str,
    data: dict,
    *,
    adapter_id: str | None = None,
) -> str:
    """Queue `event_type` with `data` (JSON) for every enabled endpoint of the tenant that
    subscribed to it; the event's id (receivers dedupe on it)."""
    if event_type not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}")
    event_id = new_id()
    now = utcnow()
    endpoints = session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.disabled_at.is_(None)
        )
    ).all()
    payload = {"id": event_id, "type": event_type, "created_at": now.isoformat(), "data": data}
    for endpoint in endpoints:
        if event_type in endpoint.event_types:
            session.add(
                WebhookDelivery(
                    tenant_id=tenant_id,
                    endpoint_id=endpoint.id,
                    event_type=event_type,
                    event_id=event_id,
                    payload=payload,
                    adapter_id=adapter_id,
                    next_attempt_at=now,
                )
            )
    session.flush()
    return event_id
