"""Which jobs may train together in one pack, and the packs' counters for /metrics.

A pack is one training loop on one injected model: its jobs must share everything the
injection fixes (base model, projection — seed, r, fingerprint —, target modules, task, the
initial λd and VeRA dropout) and the queue that routes them to a worker pool. Everything
else (data, learning rate, schedule, batch size, steps, seed, head) is per job.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from registry.db import utcnow
from registry.jobs.models import Pack


def pack_key(
    *,
    base_model_id: str,
    projection_id: str,
    target_modules: list[str],
    task: str,
    hyperparameters: dict,
    queue: str | None,
) -> str:
    """Jobs with equal keys may share one pack (the one home of that rule)."""
    facts = {
        "base_model_id": base_model_id,
        "projection_id": projection_id,
        "target_modules": sorted(set(target_modules)),
        "task": task,
        "d_initial": float(hyperparameters["d_initial"]),
        "vera_dropout": float(hyperparameters["vera_dropout"]),
        "queue": queue,
    }
    canonical = json.dumps(facts, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def start_pack(session: Session, pack_id: str, worker: str) -> None:
    session.add(Pack(id=pack_id, worker=worker))
    session.flush()


def record_pack(
    session: Session,
    pack_id: str,
    *,
    size: int,
    max_size: int,
    steps: int,
    rows: int,
    tokens: int,
    step_seconds: float,
    finished: bool = False,
) -> None:
    """Add a stretch of steps to the pack's counters and set its current size."""
    now = utcnow()
    session.execute(
        update(Pack)
        .where(Pack.id == pack_id)
        .values(
            size=size,
            max_size=max_size,
            steps=Pack.steps + steps,
            rows=Pack.rows + rows,
            tokens=Pack.tokens + tokens,
            step_seconds=Pack.step_seconds + step_seconds,
            updated_at=now,
            finished_at=now if finished else None,
        )
        .execution_options(synchronize_session=False)
    )


def pack_metrics(session: Session, live_s: float) -> dict[str, float]:
    """Service-wide figures: packs training now (updated within `live_s`), their mean rows
    and seconds per step, and totals over every pack ever (for rates)."""
    since = utcnow() - timedelta(seconds=live_s)
    live = Pack.finished_at.is_(None) & (Pack.updated_at >= since)
    packs, jobs, live_steps, live_rows, live_seconds = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Pack.size), 0),
            func.coalesce(func.sum(Pack.steps), 0),
            func.coalesce(func.sum(Pack.rows), 0),
            func.coalesce(func.sum(Pack.step_seconds), 0.0),
        ).where(live)
    ).one()
    steps, rows, seconds = session.execute(
        select(
            func.coalesce(func.sum(Pack.steps), 0),
            func.coalesce(func.sum(Pack.rows), 0),
            func.coalesce(func.sum(Pack.step_seconds), 0.0),
        )
    ).one()
    # PostgreSQL sums integers as NUMERIC (Decimal): plain numbers for the gauges.
    live_steps, live_rows, live_seconds = int(live_steps), int(live_rows), float(live_seconds)
    return {
        "packs": int(packs),
        "pack_jobs": int(jobs),
        "rows_per_step": live_rows / live_steps if live_steps else 0.0,
        "seconds_per_step": live_seconds / live_steps if live_steps else 0.0,
        "steps_total": int(steps),
        "rows_total": int(rows),
        "step_seconds_total": float(seconds),
    }
