"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import func, select, text

router = APIRouter(tags=["health"])

JOBS_BY_STATE = Gauge(
    "vera_jobs", "Jobs by state, read from the database at scrape time", ["state"]
)


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


def _check_database(request: Request) -> None:
    with request.app.state.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Database, blob storage and broker are reachable."""
    state = request.app.state
    checks = {
        "database": lambda: _check_database(request),
        "storage": state.store.check,
        "broker": state.dispatcher.check,
    }
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await run_in_threadpool(check)
            results[name] = "ok"
        except Exception as exc:  # a probe reports every failure, whatever its kind
            results[name] = f"error: {exc}"
    ready = all(value == "ok" for value in results.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": results},
        status_code=200 if ready else 503,
    )


def _count_jobs(request: Request) -> dict[str, int]:
    from registry.jobs.models import Job

    with request.app.state.session_factory() as session:
        rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state: count for state, count in rows}


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests by route and status, latency, jobs by state."""
    counts = await run_in_threadpool(_count_jobs, request)
    for state in ("queued", "running", "succeeded", "failed", "cancelled"):
        JOBS_BY_STATE.labels(state).set(counts.get(state, 0))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
