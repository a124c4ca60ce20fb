"""A tenant's webhook endpoints and their deliveries: register, list, delete, redeliver."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.audit import service as audit
from registry.config import Settings
from registry.db import get_owned, new_id, utcnow
from registry.errors import Conflict, NotFound
from registry.webhooks.models import WebhookDelivery, WebhookEndpoint
from registry.webhooks.schemas import WebhookIn
from registry.webhooks.urls import Resolver, check_url, system_resolver

# Each endpoint multiplies every event into one delivery: a bound keeps the fan-out small.
MAX_ENDPOINTS = 20
SECRET_PREFIX = "whsec_"
PING_EVENT = "webhook.ping"


def create_endpoint(
    session: Session,
    tenant_id: str,
    body: WebhookIn,
    settings: Settings,
    *,
    actor_key_id: str | None,
    resolve: Resolver = system_resolver,
) -> WebhookEndpoint:
    """Register an endpoint whose URL passes the rules (registry/webhooks/urls.py); its
    `secret` is readable on the returned row, to be shown once."""
    check_url(body.url, settings, resolve)
    count = session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
    )
    if count >= MAX_ENDPOINTS:
        raise Conflict(
            f"this tenant has {count} webhook endpoints, the most allowed: delete one first",
            code="too_many_webhooks",
            details={"limit": MAX_ENDPOINTS, "used": count},
        )
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=body.url,
        event_types=list(dict.fromkeys(body.event_types)),
        secret=SECRET_PREFIX + secrets.token_urlsafe(32),
        description=body.description,
    )
    session.add(endpoint)
    session.flush()
    audit.record(
        session,
        tenant_id,
        "webhook.created",
        actor_key_id=actor_key_id,
        target=endpoint.id,
        details={"event_types": endpoint.event_types},
    )
    return endpoint


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    return get_owned(session, WebhookEndpoint, tenant_id, endpoint_id, "webhook")


def list_endpoints(
    session: Session, tenant_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[WebhookEndpoint]:
    """Oldest first; `after` is the (created_at, id) of the last endpoint of the prior page."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    if after is not None:
        created_at, endpoint_id = after
        query = query.where(
            (WebhookEndpoint.created_at > created_at)
            | ((WebhookEndpoint.created_at == created_at) & (WebhookEndpoint.id > endpoint_id))
        )
    order = (WebhookEndpoint.created_at, WebhookEndpoint.id)
    return list(session.scalars(query.order_by(*order).limit(limit)))


def delete_endpoint(
    session: Session, tenant_id: str, endpoint_id: str, *, actor_key_id: str | None
) -> WebhookEndpoint:
    """Delete an endpoint and its deliveries (pending ones are never sent)."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    session.delete(endpoint)
    session.flush()
    audit.record(
        session, tenant_id, "webhook.deleted", actor_key_id=actor_key_id, target=endpoint_id
    )
    return endpoint


def list_deliveries(
    session: Session,
    tenant_id: str,
    endpoint_id: str,
    *,
    state: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[WebhookDelivery]:
    """Newest first; `before` is the (created_at, id) of the last delivery of the prior page."""
    get_endpoint(session, tenant_id, endpoint_id)
    query = select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.tenant_id == tenant_id
    )
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    if before is not None:
        created_at, delivery_id = before
        query = query.where(
            (WebhookDelivery.created_at < created_at)
            | ((WebhookDelivery.created_at == created_at) & (WebhookDelivery.id < delivery_id))
        )
    order = (WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))


def redeliver(
    session: Session, tenant_id: str, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    """Send a delivery again now, whatever its state: back to pending with a fresh retry
    schedule (attempts from 0). Same event id: receivers that dedupe drop a repeat."""
    get_endpoint(session, tenant_id, endpoint_id)
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.tenant_id == tenant_id,
        )
        .with_for_update()
    )
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} of webhook {endpoint_id} not found")
    delivery.state, delivery.attempts = "pending", 0
    delivery.next_attempt_at, delivery.delivered_at = utcnow(), None
    session.flush()
    return delivery


def ping(session: Session, tenant_id: str, endpoint_id: str) -> WebhookDelivery:
    """Queue a `webhook.ping` event for this one endpoint (to test the receiver)."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    now = utcnow()
    event_id = new_id()
    delivery = WebhookDelivery(
        tenant_id=tenant_id,
        endpoint_id=endpoint.id,
        event_type=PING_EVENT,
        event_id=event_id,
        payload={
            "id": event_id,
            "type": PING_EVENT,
            "created_at": now.isoformat(),
            "data": {"webhook_id": endpoint.id},
        },
        next_attempt_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery
