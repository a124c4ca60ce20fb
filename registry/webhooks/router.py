"""Webhook endpoints of the caller's tenant and their deliveries."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from registry.api.deps import AdminDep, ReadDep, SessionDep, SettingsDep
from registry.api.pagination import MAX_LIMIT, ByCreatedAt, Page, decode_cursor, encode_cursor
from registry.webhooks import service
from registry.webhooks.schemas import DeliveryOut, NewWebhookOut, WebhookIn, WebhookOut

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _cursor(rows: list, limit: int) -> str | None:
    if len(rows) < limit:
        return None
    return encode_cursor([rows[-1].created_at.isoformat(), rows[-1].id])


@router.post(
    "",
    status_code=201,
    response_model=NewWebhookOut,
    responses={409: {"description": "The tenant has the most endpoints allowed."}},
    summary="Register a webhook endpoint",
)
def create_webhook(
    body: WebhookIn, principal: AdminDep, session: SessionDep, settings: SettingsDep
) -> NewWebhookOut:
    """Register an endpoint for event types; the response is the only time its signing
    secret is shown."""
    endpoint = service.create_endpoint(
        session, principal.tenant_id, body, settings, actor_key_id=principal.key_id
    )
    return NewWebhookOut(**WebhookOut.model_validate(endpoint).model_dump(), secret=endpoint.secret)


@router.get("", response_model=Page[WebhookOut], summary="List webhook endpoints")
def list_webhooks(
    principal: ReadDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
) -> Page[WebhookOut]:
    """This tenant's endpoints, oldest first (never their secrets)."""
    rows = service.list_endpoints(
        session, principal.tenant_id, after=decode_cursor(cursor, ByCreatedAt), limit=limit
    )
    return Page(
        items=[WebhookOut.model_validate(r) for r in rows], next_cursor=_cursor(rows, limit)
    )


@router.get("/{webhook_id}", response_model=WebhookOut, summary="Show a webhook endpoint")
def get_webhook(webhook_id: str, principal: ReadDep, session: SessionDep) -> WebhookOut:
    """One endpoint (not its secret)."""
    return WebhookOut.model_validate(service.get_endpoint(session, principal.tenant_id, webhook_id))


@router.delete("/{webhook_id}", response_model=WebhookOut, summary="Delete a webhook endpoint")
def delete_webhook(webhook_id: str, principal: AdminDep, session: SessionDep) -> WebhookOut:
    """Delete an endpoint with its deliveries; pending ones are not sent."""
    endpoint = service.delete_endpoint(
        session, principal.tenant_id, webhook_id, actor_key_id=principal.key_id
    )
    return WebhookOut.model_validate(endpoint)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="List a webhook's deliveries",
)
def list_deliveries(
    webhook_id: str,
    principal: ReadDep,
    session: SessionDep,
    state: Literal["pending", "succeeded", "failed"] | None = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
) -> Page[DeliveryOut]:
    """The endpoint's deliveries, newest first, with their state, attempts and last answer."""
    rows = service.list_deliveries(
        session,
        principal.tenant_id,
        webhook_id,
        state=state,
        before=decode_cursor(cursor, ByCreatedAt),
        limit=limit,
    )
    return Page(
        items=[DeliveryOut.model_validate(r) for r in rows], next_cursor=_cursor(rows, limit)
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a webhook delivery again",
)
def redeliver(
    webhook_id: str, delivery_id: str, principal: AdminDep, session: SessionDep
) -> DeliveryOut:
    """Send a delivery again now (any state), with a fresh retry schedule."""
    delivery = service.redeliver(session, principal.tenant_id, webhook_id, delivery_id)
    return DeliveryOut.model_validate(delivery)


@router.post(
    "/{webhook_id}/ping",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a test event to a webhook",
)
def ping(webhook_id: str, principal: AdminDep, session: SessionDep) -> DeliveryOut:
    """Queue a `webhook.ping` event for this endpoint alone, to test the receiver."""
    return DeliveryOut.model_validate(service.ping(session, principal.tenant_id, webhook_id))
