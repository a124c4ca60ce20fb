"""The webhook routes: registration rules, secrets shown once, scopes, pages, audit."""

from __future__ import annotations

from registry.audit.models import AuditEvent
from registry.db import session_scope
from registry.webhooks.service import MAX_ENDPOINTS

PUBLIC = "https://93.184.215.14/hook"  # an IP literal: no DNS needed


def _create(client, tenant, url=PUBLIC, event_types=("job.succeeded",), **extra):
    return client.post(
        "/v1/webhooks",
        json={"url": url, "event_types": list(event_types), **extra},
        headers=tenant.auth(),
    )


def test_create_shows_the_secret_once(client, tenant) -> None:
    response = _create(client, tenant, event_types=["job.failed", "job.failed", "alias.moved"])
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["event_types"] == ["job.failed", "alias.moved"]
    shown = client.get(f"/v1/webhooks/{created['id']}", headers=tenant.auth("read")).json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in created.items() if k != "secret"}


def test_a_private_address_is_refused_naming_the_setting(client, tenant) -> None:
    for url in ("https://127.0.0.1/hook", "https://169.254.169.254/", "https://[::1]:8443/"):
        response = _create(client, tenant, url=url)
        assert response.status_code == 422, (url, response.text)
        error = response.json()["error"]
        assert error["code"] == "webhook_url_refused"
        assert "VERA_WEBHOOK_ALLOW_PRIVATE" in error["message"]


def test_http_and_credentials_are_refused(client, tenant) -> None:
    response = _create(client, tenant, url="http://93.184.215.14/hook")
    assert response.status_code == 422
    assert "VERA_WEBHOOK_ALLOW_HTTP" in response.json()["error"]["message"]
    response = _create(client, tenant, url="https://u:p@93.184.215.14/hook")
    assert response.status_code == 422
    assert "user or password" in response.json()["error"]["message"]


def test_unknown_event_types_and_empty_lists_are_422(client, tenant) -> None:
    assert _create(client, tenant, event_types=["job.started"]).status_code == 422
    assert _create(client, tenant, event_types=[]).status_code == 422


def test_scopes(client, tenant) -> None:
    assert _create(client, tenant).status_code == 201
    webhook_id = client.get("/v1/webhooks", headers=tenant.auth("read")).json()["items"][0]["id"]
    for scope in ("read", "train"):
        response = client.post(
            "/v1/webhooks",
            json={"url": PUBLIC, "event_types": ["job.failed"]},
            headers=tenant.auth(scope),
        )
        assert response.status_code == 403
        assert (
            client.delete(f"/v1/webhooks/{webhook_id}", headers=tenant.auth(scope)).status_code
            == 403
        )
        assert (
            client.post(f"/v1/webhooks/{webhook_id}/ping", headers=tenant.auth(scope)).status_code
            == 403
        )


def test_pages_oldest_first(client, tenant) -> None:
    ids = [_create(client, tenant, description=f"hook {i}").json()["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/webhooks", params=params, headers=tenant.auth("read")).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_deliveries_page_newest_first_and_filter_by_state(client, tenant) -> None:
    webhook_id = _create(client, tenant).json()["id"]
    pings = [
        client.post(f"/v1/webhooks/{webhook_id}/ping", headers=tenant.auth()).json()
        for _ in range(3)
    ]
    assert all(p["state"] == "pending" and p["event_type"] == "webhook.ping" for p in pings)
    url = f"/v1/webhooks/{webhook_id}/deliveries"
    first = client.get(url, params={"limit": 2}, headers=tenant.auth("read")).json()
    rest = client.get(
        url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=tenant.auth("read")
    ).json()
    listed = [d["id"] for d in first["items"] + rest["items"]]
    assert listed == [p["id"] for p in reversed(pings)]
    assert rest["next_cursor"] is None
    assert client.get(url, params={"state": "succeeded"}, headers=tenant.auth()).json() == {
        "items": [],
        "next_cursor": None,
    }
    assert client.get(url, params={"state": "sent"}, headers=tenant.auth()).status_code == 422


def test_redeliver_of_an_unknown_delivery_is_404(client, tenant) -> None:
    webhook_id = _create(client, tenant).json()["id"]
    response = client.post(
        f"/v1/webhooks/{webhook_id}/deliveries/{'0' * 32}/redeliver", headers=tenant.auth()
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_delete_removes_the_endpoint_and_its_deliveries_and_audits(client, app, tenant) -> None:
    webhook_id = _create(client, tenant).json()["id"]
    client.post(f"/v1/webhooks/{webhook_id}/ping", headers=tenant.auth())
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=tenant.auth()).status_code == 200
    assert client.get(f"/v1/webhooks/{webhook_id}", headers=tenant.auth()).status_code == 404
    assert (
        client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=tenant.auth()).status_code
        == 404
    )
    with session_scope(app.state.session_factory) as session:
        webhook_rows = session.query(AuditEvent).filter(AuditEvent.action.like("webhook.%"))
        rows = webhook_rows.order_by(AuditEvent.id).all()  # (the fixture's keys are audited too)
        assert [(r.action, r.target) for r in rows] == [
            ("webhook.created", webhook_id),
            ("webhook.deleted", webhook_id),
        ]
        assert rows[0].actor_key_id is not None
        assert rows[0].details == {"event_types": ["job.succeeded"]}


def test_a_tenant_has_at_most_so_many_endpoints(client, tenant) -> None:
    for _ in range(MAX_ENDPOINTS):
        assert _create(client, tenant).status_code == 201
    response = _create(client, tenant)
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"limit": MAX_ENDPOINTS, "used": MAX_ENDPOINTS}
