"""Liveness, readiness and Prometheus metrics: safe to expose.

/readyz says ok or failed per dependency, never an address or an error text (those go to
the log); /metrics holds service-wide aggregates only (no tenant or user ids) and takes a
bearer token when `VERA_METRICS_TOKEN` is set.
"""

from __future__ import annotations

import hmac
import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, text

from registry.errors import Unauthorized

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

JOBS_BY_STATE = Gauge(
    "vera_jobs", "Jobs by state, read from the database at scrape time", ["state"]
)
WEBHOOK_DELIVERIES = Gauge(
    "vera_webhook_deliveries", "Webhook deliveries by state, read at scrape time", ["state"]
)
WEBHOOK_LAG = Gauge(
    "vera_webhook_oldest_due_seconds",
    "How long the oldest due webhook delivery has waited for the sender (0: none waits)",
)
# Packs (workers write their counters to the database; read here at scrape time).
PACK_GAUGES = {
    "packs": Gauge("vera_packs", "Packs training now (one per busy worker)"),
    "pack_jobs": Gauge("vera_pack_jobs", "Jobs training in those packs (their summed sizes)"),
    "rows_per_step": Gauge("vera_pack_rows_per_step", "Mean rows per step of the packs now"),
    "seconds_per_step": Gauge(
        "vera_pack_seconds_per_step", "Mean seconds per step of the packs training now"
    ),
    "steps_total": Gauge("vera_pack_steps_total", "Packed training steps, all packs ever"),
    "rows_total": Gauge("vera_pack_rows_total", "Rows trained in packs, all packs ever"),
    "step_seconds_total": Gauge(
        "vera_pack_step_seconds_total", "Seconds spent in packed steps, all packs ever"
    ),
}


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


CheckResult = Literal["ok", "failed"]


class ReadyOut(BaseModel):
    """Each dependency ok or failed; why it failed goes to the log, never to the caller."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": {"database": "ok", "storage": "ok", "broker": "ok"},
                },
                {
                    "status": "not_ready",
                    "checks": {"database": "ok", "storage": "failed", "broker": "ok"},
                },
            ]
        }
    )

    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult] = Field(description="database, storage and broker.")


@router.get("/healthz", response_model=HealthOut, summary="Is the process up?")
def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


def _check_database(request: Request) -> None:
    with request.app.state.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "A dependency is unreachable."}},
    summary="Are the database, storage and broker reachable?",
)
async def readyz(request: Request) -> JSONResponse:
    """Database, blob storage and broker are reachable."""
    state = request.app.state
    checks = {
        "database": lambda: _check_database(request),
        "storage": state.store.check,
        "broker": state.dispatcher.check,
    }
    results: dict[str, CheckResult] = {}
    for name, check in checks.items():
        try:
            await run_in_threadpool(check)
            results[name] = "ok"
        except Exception as exc:  # a probe reports every failure, whatever its kind
            # The reason names hosts and ports: the operator's log gets it, the caller not.
            log.warning("readiness: %s check failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = "failed"
    ready = all(value == "ok" for value in results.values())
    body = ReadyOut(status="ready" if ready else "not_ready", checks=results)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def _count_jobs(request: Request) -> tuple[dict[str, int], dict[str, float]]:
    from registry.jobs.models import Job
    from registry.jobs.packing import pack_metrics

    settings = request.app.state.settings
    with request.app.state.session_factory() as session:
        rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        packs = pack_metrics(session, live_s=settings.heartbeat_stale_s)
    return {state: count for state, count in rows}, packs


def _count_webhooks(request: Request) -> tuple[dict[str, int], float]:
    from registry.db import utcnow
    from registry.webhooks.models import WebhookDelivery

    now = utcnow()
    with request.app.state.session_factory() as session:
        rows = session.execute(
            select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
        ).all()
        oldest = session.scalar(
            select(func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now
            )
        )
    lag = (now - oldest).total_seconds() if oldest is not None else 0.0
    return {state: count for state, count in rows}, max(0.0, lag)


def _check_metrics_token(request: Request) -> None:
    token = request.app.state.settings.metrics_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized(
            "/metrics needs 'Authorization: Bearer <VERA_METRICS_TOKEN>'", code="metrics_token"
        )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests by route and status, latency, jobs by state, packs,
    webhook deliveries."""
    _check_metrics_token(request)
    counts, packs = await run_in_threadpool(_count_jobs, request)
    for state in ("queued", "running", "succeeded", "failed", "cancelled"):
        JOBS_BY_STATE.labels(state).set(counts.get(state, 0))
    for name, gauge in PACK_GAUGES.items():
        gauge.set(packs[name])
    deliveries, lag = await run_in_threadpool(_count_webhooks, request)
    for state in ("pending", "succeeded", "failed"):
        WEBHOOK_DELIVERIES.labels(state).set(deliveries.get(state, 0))
    WEBHOOK_LAG.set(lag)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
