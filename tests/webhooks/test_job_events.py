"""A job that ends queues job.succeeded / job.failed for the endpoints that want them, in
the transaction that ends it (registry/jobs/service.transition_job)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from registry.jobs import lease
from registry.jobs import service as jobs
from registry.jobs.schemas import JobRequest
from registry.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests import factories


@pytest.fixture
def world(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    dataset = factories.dataset(session, tenant.id, adapter.user_id)
    session.add(
        WebhookEndpoint(
            tenant_id=tenant.id,
            url="https://93.184.215.14/hook",
            event_types=["job.succeeded", "job.failed"],
            secret="whsec_x",
        )
    )
    session.flush()

    def submit():
        request = JobRequest(
            user_id=adapter.user_id,
            dataset_id=dataset.id,
            base_model_id=adapter.base_model_id,
            projection_id=adapter.projection_id,
            target_modules=["query", "value"],
        )
        return jobs.submit_job(session, tenant.id, request, idempotency_key=None)[0]

    return session, adapter, submit


def _deliveries(session) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


def test_success_carries_the_new_version(world) -> None:
    session, adapter, submit = world
    job = submit()
    claim = factories.claim_alone(session, job.id, "w1")
    version = lease.finish_success(
        session, claim, blob_sha256="b" * 64, size_bytes=1, metrics={"loss": 0.1}
    )
    [delivery] = _deliveries(session)
    assert delivery.event_type == "job.succeeded"
    assert delivery.adapter_id == adapter.id  # an erasure of the user removes it
    assert delivery.payload["data"] == {
        "job_id": job.id,
        "user_id": adapter.user_id,
        "adapter_id": adapter.id,
        "state": "succeeded",
        "version": version.number,
    }


def test_failure_carries_the_error_and_cancel_sends_nothing(world) -> None:
    session, _, submit = world
    failed = submit()
    claim = factories.claim_alone(session, failed.id, "w1")
    lease.finish_failure(session, claim, code="oom", kind="system", message="out of memory")
    cancelled = submit()
    jobs.request_cancel(session, cancelled.tenant_id, cancelled.id)
    [delivery] = _deliveries(session)
    assert delivery.event_type == "job.failed"
    assert delivery.payload["data"]["job_id"] == failed.id
    assert delivery.payload["data"]["error_code"] == "oom"
    assert delivery.payload["data"]["version"] is None
