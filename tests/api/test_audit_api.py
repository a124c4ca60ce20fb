"""Who moved an alias and why (history, feed, audit log, webhook outbox); key changes in the
audit log; GET /v1/audit: admin only, filters, pages, one tenant's events only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from registry.db import session_scope
from registry.tenants import service as tenants
from registry.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.api import helpers


def _key_id(app, plaintext: str) -> str:
    with session_scope(app.state.session_factory) as session:
        return tenants.authenticate(session, plaintext).key_id


def _audit(client, tenant, **params) -> list[dict]:
    response = client.get("/v1/audit", params=params, headers=tenant.auth())
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _subscribe(app, tenant_id: str, event_types: list[str]) -> str:
    """An endpoint row as POST /v1/webhooks leaves it (the outbox only needs the row)."""
    with session_scope(app.state.session_factory) as session:
        endpoint = WebhookEndpoint(
            tenant_id=tenant_id,
            url="https://hooks.example.com/vera",
            event_types=event_types,
            secret="whsec_test",
        )
        session.add(endpoint)
        session.flush()
        return endpoint.id


def test_alias_moves_record_actor_and_reason_everywhere(client, app, tenant):
    blobs = [helpers.safetensors_blob([float(i), 2.0]) for i in range(3)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)
    endpoint_id = _subscribe(app, tenant.id, ["alias.moved"])
    _subscribe(app, tenant.id, ["job.failed"])  # not subscribed: gets nothing
    train, admin = tenant.auth("train"), tenant.auth("admin")
    train_key, admin_key = _key_id(app, tenant.keys["train"]), _key_id(app, tenant.keys["admin"])
    alias_url = f"/v1/adapters/{adapter_id}/aliases/live"
    client.put(alias_url, json={"version": 1}, headers=train)  # no reason: null
    published = client.put(alias_url, json={"version": 2, "reason": "eval +3%"}, headers=train)
    assert published.status_code == 200, published.text
    rolled = client.post(f"{alias_url}/rollback", json={"reason": "bad outputs"}, headers=admin)
    assert rolled.status_code == 200 and rolled.json()["version"] == 1

    history = client.get(f"{alias_url}/history", headers=tenant.auth("read")).json()
    history = history["items"] if isinstance(history, dict) else history  # list, or a Page
    moves = [(e["kind"], e["to_version"], e["actor_key_id"], e["reason"]) for e in history]
    assert moves == [
        ("set", 1, train_key, None),
        ("set", 2, train_key, "eval +3%"),
        ("rollback", 1, admin_key, "bad outputs"),
    ]
    feed = client.get("/v1/feed", headers=tenant.auth("read")).json()["events"]
    assert [(e["actor_key_id"], e["reason"]) for e in feed] == [m[2:] for m in moves]

    audited = _audit(client, tenant, action="alias.set") + _audit(
        client, tenant, action="alias.rollback"
    )
    assert [
        (a["action"], a["actor_key_id"], a["adapter_id"], a["target"], a["details"])
        for a in audited
    ] == [
        ("alias.set", train_key, adapter_id, "live", _details(None, 1, 1, None)),
        ("alias.set", train_key, adapter_id, "live", _details(1, 2, 2, "eval +3%")),
        ("alias.rollback", admin_key, adapter_id, "live", _details(2, 1, 3, "bad outputs")),
    ]

    with session_scope(app.state.session_factory) as session:
        deliveries = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        assert {d.endpoint_id for d in deliveries} == {endpoint_id}
        data = sorted((d.payload["data"] for d in deliveries), key=lambda d: d["generation"])
        assert all(d.event_type == "alias.moved" and d.adapter_id == adapter_id for d in deliveries)
    assert data[2] == {
        "adapter_id": adapter_id,
        "user_id": "alice",
        "adapter_name": "default",
        "alias": "live",
        "kind": "rollback",
        **_details(2, 1, 3, "bad outputs"),
    }
    assert [d["reason"] for d in data] == [None, "eval +3%", "bad outputs"]


def _details(from_version, to_version, generation, reason) -> dict:
    return {
        "from_version": from_version,
        "to_version": to_version,
        "generation": generation,
        "reason": reason,
    }


def test_a_reason_is_text_of_at_most_500_characters(client, app, tenant):
    adapter_id = helpers.adapter_with_versions(app, tenant.id, [helpers.safetensors_blob([1.0])])
    alias_url = f"/v1/adapters/{adapter_id}/aliases/live"
    auth = tenant.auth("train")
    for reason in ("x" * 501, "nul \u0000 inside", 7):
        response = client.put(alias_url, json={"version": 1, "reason": reason}, headers=auth)
        assert response.status_code == 422, (reason, response.text)
    ok = client.put(alias_url, json={"version": 1, "reason": "ü" * 500}, headers=auth)
    assert ok.status_code == 200
    response = client.post(f"{alias_url}/rollback", json={"reason": "x" * 501}, headers=auth)
    assert response.status_code == 422
    assert _audit(client, tenant, action="alias.set")[0]["details"]["reason"] == "ü" * 500


def test_key_creation_and_revocation_are_audited_once(client, app, tenant):
    admin_key = _key_id(app, tenant.keys["admin"])
    made_at_setup = _audit(client, tenant, action="key.created")
    # The fixture's three keys were made server-side: no actor.
    assert [(e["actor_key_id"], e["details"]["scopes"]) for e in made_at_setup] == [
        (None, ["admin"]),
        (None, ["train"]),
        (None, ["read"]),
    ]
    created = client.post(
        "/v1/keys", json={"name": "ci", "scopes": ["read", "train"]}, headers=tenant.auth()
    ).json()
    for _ in range(2):  # revoking twice is one revocation
        assert client.delete(f"/v1/keys/{created['id']}", headers=tenant.auth()).status_code == 200
    events = [e for e in _audit(client, tenant) if e["target"] == created["id"]]
    assert [(e["action"], e["actor_key_id"], e["adapter_id"], e["details"]) for e in events] == [
        ("key.created", admin_key, None, {"name": "ci", "scopes": ["train", "read"]}),
        ("key.revoked", admin_key, None, {"name": "ci", "scopes": ["train", "read"]}),
    ]
    assert created["api_key"] not in str(events)  # the secret is never logged
    assert events[0]["id"] < events[1]["id"] and events[0]["created_at"] <= events[1]["created_at"]


def test_audit_log_needs_an_admin_key(client, tenant):
    for scope in ("read", "train"):
        response = client.get("/v1/audit", headers=tenant.auth(scope))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "missing_scope"
    assert client.get("/v1/audit").status_code == 401


def test_audit_filters_and_pages(client, app, tenant, other_tenant):
    for number in range(3):
        client.post(
            "/v1/keys", json={"name": f"k{number}", "scopes": ["read"]}, headers=tenant.auth()
        )
    everything = _audit(client, tenant)
    assert len(everything) == 6  # the fixture's 3 keys, then 3 more
    assert all(e["action"] == "key.created" for e in everything)
    assert _audit(client, tenant, action="key.revoked") == []

    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/audit", params=params, headers=tenant.auth()).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything and [e["id"] for e in seen] == sorted(e["id"] for e in seen)

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert _audit(client, tenant, since=future) == []
    assert _audit(client, tenant, since=past) == everything
    for params in (
        {"action": "alias.exploded"},
        {"since": "2026-01-01T00:00:00"},  # a time without a zone is no point in time
        {"since": "1700000000"},  # no Unix times: ISO 8601 only
        {"since": "0001-01-01T00:00:00+01:00"},  # before the first time UTC can hold
        {"limit": 0},
        {"limit": 501},
    ):
        response = client.get("/v1/audit", params=params, headers=tenant.auth())
        assert response.status_code == 422, (params, response.text)
    response = client.get("/v1/audit", params={"cursor": "bm9wZQ"}, headers=tenant.auth())
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_cursor"

    # Another tenant reads only its own log.
    theirs = _audit(client, other_tenant)
    assert len(theirs) == 3 and not {e["id"] for e in theirs} & {e["id"] for e in everything}
