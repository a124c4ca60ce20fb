"""Deliveries to a real HTTPS receiver (tests/webhooks/receiver.py) that fails the first
two attempts: retried with backoff, signed, listed with their state, redelivered."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from registry.db import session_scope, utcnow
from registry.jobs import lease
from registry.webhooks import verify
from registry.webhooks.models import WebhookDelivery
from registry.webhooks.outbox import emit
from registry.webhooks.sender import (
    BACKOFF_STEPS,
    KEEP_FINISHED_DAYS,
    MAX_ATTEMPTS,
    Outcome,
    claim_due,
    prune_finished,
    record,
    retry_delay_s,
    send_due,
)
from tests import factories
from tests.api import helpers


def _register(client, tenant, receiver, event_types=("job.failed", "job.succeeded")) -> dict:
    response = client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "event_types": list(event_types)},
        headers=tenant.auth(),
    )
    assert response.status_code == 201, response.text
    return response.json()


def _send_until(app, settings, done, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the deliveries did not arrive in time"
        send_due(app.state.session_factory, settings)
        time.sleep(0.05)


def _fail_a_job(client, app, tenant) -> str:
    """Submit a job through the API, then fail it as a worker would (a user error)."""
    auth = tenant.auth()
    base = helpers.register_base_model(client, auth)
    projection = helpers.register_projection(client, auth, base["id"])
    dataset = helpers.upload_dataset(client, auth)
    job = client.post(
        "/v1/jobs", json=helpers.job_body(base, projection, dataset), headers=auth
    ).json()
    with session_scope(app.state.session_factory) as session:
        claim = factories.claim_alone(session, job["id"], "w1")
        lease.finish_failure(
            session, claim, code="dataset_too_small", kind="user", message="too few rows"
        )
    return job["id"]


def _deliveries(client, tenant, webhook_id: str, **params) -> list[dict]:
    response = client.get(
        f"/v1/webhooks/{webhook_id}/deliveries", params=params, headers=tenant.auth("read")
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_failed_job_reaches_a_receiver_that_fails_twice(client, app, settings, tenant, receiver):
    webhook = _register(client, tenant, receiver)
    job_id = _fail_a_job(client, app, tenant)

    _send_until(app, settings, lambda: receiver.answered_ok())

    assert [r.status for r in receiver.requests] == [500, 500, 204]
    delivered = receiver.answered_ok()[0]
    event = verify(webhook["secret"], delivered.body, delivered.headers["Vera-Signature"])
    assert event["type"] == "job.failed"
    assert event["data"] == {
        "job_id": job_id,
        "user_id": "alice",
        "adapter_id": event["data"]["adapter_id"],
        "state": "failed",
        "version": None,
        "error_code": "dataset_too_small",
        "error_kind": "user",
        "error_message": "too few rows",
    }
    assert delivered.headers["Vera-Event-Id"] == event["id"]
    assert delivered.headers["Vera-Event-Type"] == "job.failed"
    assert delivered.headers["Host"] == receiver.url.split("/")[2]  # the name, not the address
    # Every attempt carries the same event id (receivers dedupe on it).
    assert {r.headers["Vera-Event-Id"] for r in receiver.requests} == {event["id"]}

    [delivery] = _deliveries(client, tenant, webhook["id"])
    assert delivery["state"] == "succeeded"
    assert delivery["attempts"] == 3
    assert delivery["last_status"] == 204
    assert delivery["delivered_at"] is not None
    assert delivery["payload"] == event
    assert _deliveries(client, tenant, webhook["id"], state="pending") == []

    # A redelivery goes out again at once, same event, freshly signed.
    response = client.post(
        f"/v1/webhooks/{webhook['id']}/deliveries/{delivery['id']}/redeliver",
        headers=tenant.auth(),
    )
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "pending"
    _send_until(app, settings, lambda: len(receiver.answered_ok()) == 2)
    again = receiver.answered_ok()[1]
    assert verify(webhook["secret"], again.body, again.headers["Vera-Signature"]) == event
    [delivery] = _deliveries(client, tenant, webhook["id"])
    assert (delivery["state"], delivery["attempts"]) == ("succeeded", 1)


def test_only_subscribed_event_types_are_delivered(client, app, settings, tenant, receiver):
    receiver.fail_first = 0
    succeeded = _register(client, tenant, receiver, ["job.succeeded"])
    moved = _register(client, tenant, receiver, ["alias.moved"])
    with session_scope(app.state.session_factory) as session:
        emit(session, tenant.id, "alias.moved", {"alias": "live"})
    _send_until(app, settings, lambda: receiver.answered_ok())
    assert _deliveries(client, tenant, succeeded["id"]) == []
    assert [d["event_type"] for d in _deliveries(client, tenant, moved["id"])] == ["alias.moved"]
    assert json.loads(receiver.requests[0].body)["data"] == {"alias": "live"}


def test_the_sender_checks_the_address_again_before_sending(
    client, app, settings, tenant, receiver
):
    """Registered while private receivers were allowed; the operator then forbids them."""
    webhook = _register(client, tenant, receiver)
    with session_scope(app.state.session_factory) as session:
        emit(session, tenant.id, "job.failed", {"job_id": "j"})
    strict = settings.model_copy(update={"webhook_allow_private": False})
    report = send_due(app.state.session_factory, strict)
    assert len(report.retrying) == 1
    assert receiver.requests == []
    [delivery] = _deliveries(client, tenant, webhook["id"])
    assert delivery["state"] == "pending"
    assert delivery["last_error"].startswith("refused: ")
    assert "VERA_WEBHOOK_ALLOW_PRIVATE" in delivery["last_error"]


def test_a_receiver_whose_certificate_is_not_trusted_gets_nothing(
    client, app, settings, tenant, receiver
):
    webhook = _register(client, tenant, receiver)
    with session_scope(app.state.session_factory) as session:
        emit(session, tenant.id, "job.failed", {"job_id": "j"})
    untrusting = settings.model_copy(update={"webhook_ca_bundle": None})
    send_due(app.state.session_factory, untrusting)
    assert receiver.requests == []
    [delivery] = _deliveries(client, tenant, webhook["id"])
    assert "CERTIFICATE_VERIFY_FAILED" in delivery["last_error"]


def test_a_delivery_fails_for_good_after_the_last_retry(client, app, settings, tenant, receiver):
    receiver.fail_first = 1000
    webhook = _register(client, tenant, receiver)
    with session_scope(app.state.session_factory) as session:
        emit(session, tenant.id, "job.failed", {"job_id": "j"})
        session.query(WebhookDelivery).update({"attempts": MAX_ATTEMPTS - 1})
    send_due(app.state.session_factory, settings)
    [delivery] = _deliveries(client, tenant, webhook["id"])
    assert (delivery["state"], delivery["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert delivery["next_attempt_at"] is None
    assert delivery["last_error"] == "HTTP 500: oops"
    assert _deliveries(client, tenant, webhook["id"], state="failed") == [delivery]


def test_retries_span_more_than_a_day_at_the_default_base() -> None:
    delays = [retry_delay_s(n, 10.0) for n in range(1, MAX_ATTEMPTS)]
    assert delays == [step * 10.0 for step in BACKOFF_STEPS]
    assert sum(delays) > 24 * 3600
    assert delays == sorted(delays)
    assert retry_delay_s(MAX_ATTEMPTS, 10.0) is None


def test_a_leased_delivery_is_not_claimed_twice_and_a_redelivery_beats_its_lease(
    client, app, settings, tenant, receiver
):
    webhook = _register(client, tenant, receiver)
    with session_scope(app.state.session_factory) as session:
        emit(session, tenant.id, "job.failed", {"job_id": "j"})
    factory = app.state.session_factory
    [leased] = claim_due(factory, settings, 10)
    assert claim_due(factory, settings, 10) == []  # a second sender skips it
    # A redelivery asked while the attempt is in flight wins: the attempt's result is dropped.
    client.post(
        f"/v1/webhooks/{webhook['id']}/deliveries/{leased.id}/redeliver", headers=tenant.auth()
    )
    assert record(factory, leased, Outcome(False, status=500, error="HTTP 500"), settings) is None
    [delivery] = _deliveries(client, tenant, webhook["id"])
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == (
        "pending",
        0,
        None,
    )
    [again] = claim_due(factory, settings, 10)
    assert again.id == leased.id
    assert record(factory, again, Outcome(True, status=204), settings) == "succeeded"


def test_metrics_show_deliveries_by_state_and_the_sender_lag(
    client, app, settings, tenant, receiver
):
    receiver.fail_first = 0
    _register(client, tenant, receiver)
    with session_scope(app.state.session_factory) as session:
        emit(session, tenant.id, "job.failed", {"job_id": "j"})
        session.query(WebhookDelivery).update({"next_attempt_at": utcnow() - timedelta(seconds=90)})
    metrics = client.get("/metrics").text
    assert 'vera_webhook_deliveries{state="pending"} 1.0' in metrics
    lag = next(line for line in metrics.splitlines() if line.startswith("vera_webhook_oldest"))
    assert 90 <= float(lag.split()[1]) < 150
    _send_until(app, settings, lambda: receiver.answered_ok())
    metrics = client.get("/metrics").text
    assert 'vera_webhook_deliveries{state="succeeded"} 1.0' in metrics
    assert "vera_webhook_oldest_due_seconds 0.0" in metrics


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    client, app, settings, tenant, receiver
):
    receiver.fail_first, receiver.redirect_to = 0, "/elsewhere"
    webhook = _register(client, tenant, receiver)
    with session_scope(app.state.session_factory) as session:
        emit(session, tenant.id, "job.failed", {"job_id": "j"})
    send_due(app.state.session_factory, settings)
    assert [(r.path, r.status) for r in receiver.requests] == [("/hook", 307)]
    [delivery] = _deliveries(client, tenant, webhook["id"])
    assert (delivery["state"], delivery["last_status"]) == ("pending", 307)


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    client, app, settings, tenant, receiver
):
    receiver.fail_first, receiver.delay_s = 0, 3.0
    webhook = _register(client, tenant, receiver)
    with session_scope(app.state.session_factory) as session:
        emit(session, tenant.id, "job.failed", {"job_id": "j"})
    started = time.monotonic()
    send_due(app.state.session_factory, settings.model_copy(update={"webhook_timeout_s": 0.5}))
    assert time.monotonic() - started < 2.5  # the answer would come after 3 s
    [delivery] = _deliveries(client, tenant, webhook["id"])
    assert delivery["state"] == "pending" and delivery["last_status"] is None
    assert delivery["last_error"].startswith("ReadTimeout")


def test_finished_deliveries_are_pruned_after_their_keeping_time(client, app, tenant, receiver):
    webhook = _register(client, tenant, receiver)
    old = utcnow() - timedelta(days=KEEP_FINISHED_DAYS, hours=1)
    with session_scope(app.state.session_factory) as session:
        for state in ("succeeded", "failed", "pending"):
            emit(session, tenant.id, "job.failed", {"job_id": state})
        rows = session.query(WebhookDelivery).all()
        for row, state in zip(rows, ("succeeded", "failed", "pending"), strict=True):
            row.state, row.created_at = state, old
        emit(session, tenant.id, "job.failed", {"job_id": "recent"})
    assert prune_finished(app.state.session_factory) == 2
    left = _deliveries(client, tenant, webhook["id"])
    assert sorted(d["state"] for d in left) == ["pending", "pending"]
