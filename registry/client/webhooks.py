"""Webhook calls of the client: functions over a `RegistryClient` (its transport, retries
and errors), kept out of client/api.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from registry.client.api import RegistryClient, _segment


def _json(client: RegistryClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, path, **kwargs).json()


def _path(webhook_id: str) -> str:
    return f"/v1/webhooks/{_segment(webhook_id)}"


def create_webhook(
    client: RegistryClient, url: str, event_types: list[str], description: str | None = None
) -> dict:
    """Register an endpoint; the answer holds its signing `secret`, shown this once."""
    body: dict[str, Any] = {"url": url, "event_types": event_types}
    if description is not None:
        body["description"] = description
    return _json(client, "POST", "/v1/webhooks", json=body)


def list_webhooks(client: RegistryClient) -> list[dict]:
    """Every endpoint of the tenant, oldest first (all pages)."""
    return list(_pages(client, "/v1/webhooks", {}))


def get_webhook(client: RegistryClient, webhook_id: str) -> dict:
    return _json(client, "GET", _path(webhook_id))


def delete_webhook(client: RegistryClient, webhook_id: str) -> dict:
    return _json(client, "DELETE", _path(webhook_id))


def list_deliveries(
    client: RegistryClient, webhook_id: str, *, state: str | None = None, limit: int = 50
) -> list[dict]:
    """The endpoint's newest `limit` deliveries (optionally in one state), newest first."""
    params: dict[str, Any] = {"limit": min(limit, 500)}
    if state is not None:
        params["state"] = state
    rows: list[dict] = []
    for delivery in _pages(client, f"{_path(webhook_id)}/deliveries", params):
        rows.append(delivery)
        if len(rows) >= limit:
            break
    return rows


def redeliver(client: RegistryClient, webhook_id: str, delivery_id: str) -> dict:
    """Send a delivery again now, with a fresh retry schedule."""
    return _json(
        client, "POST", f"{_path(webhook_id)}/deliveries/{_segment(delivery_id)}/redeliver"
    )


def ping(client: RegistryClient, webhook_id: str) -> dict:
    """Queue a `webhook.ping` delivery for this endpoint."""
    return _json(client, "POST", f"{_path(webhook_id)}/ping")


def _pages(client: RegistryClient, path: str, params: dict[str, Any]) -> Iterator[dict]:
    cursor = None
    while True:
        page = _json(
            client, "GET", path, params={**params, **({"cursor": cursor} if cursor else {})}
        )
        yield from page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return
