"""alias.moved reaches a real HTTPS receiver: a publish and a rollback made through the API,
each signed, with its reason."""

from __future__ import annotations

import time

from registry.webhooks import verify
from registry.webhooks.sender import send_due
from tests.api import helpers


def test_publish_and_rollback_are_delivered_with_their_reasons(
    client, app, settings, tenant, receiver
):
    receiver.fail_first = 0
    webhook = client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "event_types": ["alias.moved"]},
        headers=tenant.auth(),
    ).json()
    blobs = [helpers.safetensors_blob([float(i)]) for i in (1, 2)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)
    alias_url = f"/v1/adapters/{adapter_id}/aliases/live"
    auth = tenant.auth("train")
    client.put(alias_url, json={"version": 1}, headers=auth)
    client.put(alias_url, json={"version": 2, "reason": "retrained"}, headers=auth)
    client.post(f"{alias_url}/rollback", json={"reason": "worse on evals"}, headers=auth)

    deadline = time.monotonic() + 20
    while len(receiver.answered_ok()) < 3:
        assert time.monotonic() < deadline, "the deliveries did not arrive in time"
        send_due(app.state.session_factory, settings)
        time.sleep(0.05)

    events = [
        verify(webhook["secret"], r.body, r.headers["Vera-Signature"])
        for r in receiver.answered_ok()
    ]
    assert {e["type"] for e in events} == {"alias.moved"}
    moves = sorted((e["data"] for e in events), key=lambda d: d["generation"])
    assert [(m["kind"], m["from_version"], m["to_version"], m["reason"]) for m in moves] == [
        ("set", None, 1, None),
        ("set", 1, 2, "retrained"),
        ("rollback", 2, 1, "worse on evals"),
    ]
    assert {(m["adapter_id"], m["user_id"], m["adapter_name"], m["alias"]) for m in moves} == {
        (adapter_id, "alice", "default", "live")
    }
