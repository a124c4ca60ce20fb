"""Fair share of a queue's workers across tenants: which queued jobs a worker takes next.

A train message is a wake-up, not an assignment: the worker that receives it claims the
fairest claimable job of the message's queue (registry/jobs/lease.py `claim_next`), and
fills its pack with companions picked the same way. Each pick goes to

1. the tenant with the fewest running jobs in the queue (counting the picks before it);
2. on a tie, the tenant served least recently: its latest job start in the queue (never
   served first; a pick of this round counts as the latest start). Without this rule one
   worker that finishes a job before it claims the next would always see 0 running for
   everyone, and the tenant with the oldest backlog would win every claim;
3. on a tie, the tenant whose oldest queued job is oldest (then its id);

and takes that tenant's oldest queued job. So one tenant's thousand queued jobs take
turns with another tenant's one instead of going first.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.jobs.models import Job
from registry.tenants.models import Tenant

LEAD_CANDIDATES = 4  # picks tried in order when other workers hold the first ones


@dataclass(frozen=True)
class Candidate:
    job_id: str
    tenant_id: str
    created_at: datetime


@dataclass(frozen=True)
class Load:
    running: int = 0
    last_started_at: datetime | None = None


def fair_order(candidates: Iterable[Candidate], loads: dict[str, Load], n: int) -> list[str]:
    """The first `n` picks (job ids) from queued `candidates` under the rules above."""
    queues: dict[str, list[Candidate]] = {}
    for candidate in sorted(candidates, key=lambda c: (c.created_at, c.job_id)):
        queues.setdefault(candidate.tenant_id, []).append(candidate)
    heads = dict.fromkeys(queues, 0)

    def key(tenant_id: str, running: int, served: tuple) -> tuple:
        head = queues[tenant_id][heads[tenant_id]]
        return (running, served, head.created_at, head.job_id, tenant_id)

    heap = []
    for tenant_id in queues:
        load = loads.get(tenant_id, Load())
        # Never served < served at time t < served in this round (k-th pick).
        served = (1, load.last_started_at) if load.last_started_at else (0,)
        heap.append(key(tenant_id, load.running, served))
    heapq.heapify(heap)
    picks: list[str] = []
    while heap and len(picks) < n:
        running, _, _, job_id, tenant_id = heapq.heappop(heap)
        picks.append(job_id)
        heads[tenant_id] += 1
        if heads[tenant_id] < len(queues[tenant_id]):
            heapq.heappush(heap, key(tenant_id, running + 1, (2, len(picks))))
    return picks


def _same_queue(queue: str | None):
    # `IS NULL` / `=` rather than IS NOT DISTINCT FROM, which no index serves.
    return Job.queue.is_(None) if queue is None else Job.queue == queue


def _claimable():
    return (
        (Job.state == "queued")
        & Job.cancel_requested_at.is_(None)
        & (Job.attempts < Job.max_attempts)
    )


def _candidates(session: Session, where, per_tenant: int) -> list[Candidate]:
    """Each tenant's `per_tenant` oldest claimable jobs matching `where`."""
    rank = func.row_number().over(partition_by=Job.tenant_id, order_by=(Job.created_at, Job.id))
    ranked = (
        select(Job.id, Job.tenant_id, Job.created_at, rank.label("rank"))
        .where(_claimable(), where)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.id, ranked.c.tenant_id, ranked.c.created_at).where(
            ranked.c.rank <= per_tenant
        )
    ).all()
    return [Candidate(job_id, tenant_id, created_at) for job_id, tenant_id, created_at in rows]


def _loads(session: Session, queue: str | None, tenant_ids: set[str]) -> dict[str, Load]:
    if not tenant_ids:
        return {}
    running = dict(
        session.execute(
            select(Job.tenant_id, func.count())
            .where(Job.state == "running", _same_queue(queue), Job.tenant_id.in_(tenant_ids))
            .group_by(Job.tenant_id)
        ).all()
    )
    # One max() per tenant, each an index probe of jobs(tenant_id, queue, started_at).
    last_started = (
        select(func.max(Job.started_at))
        .where(Job.tenant_id == Tenant.id, _same_queue(queue))
        .correlate(Tenant)
        .scalar_subquery()
    )
    last = dict(
        session.execute(select(Tenant.id, last_started).where(Tenant.id.in_(tenant_ids))).all()
    )
    return {t: Load(running.get(t, 0), last.get(t)) for t in tenant_ids}


def lead_order(session: Session, queue: str | None) -> list[str]:
    """The fairest claimable jobs of `queue`, best first (a few, for when others hold the
    first ones)."""
    candidates = _candidates(session, _same_queue(queue), LEAD_CANDIDATES)
    loads = _loads(session, queue, {c.tenant_id for c in candidates})
    return fair_order(candidates, loads, LEAD_CANDIDATES)


def companion_order(session: Session, pack_key: str, limit: int) -> list[str]:
    """Claimable jobs with this pack key in fair order (the pack's own claims count as
    running): `limit` of them and a few more, for when other workers hold some."""
    n = limit + LEAD_CANDIDATES
    candidates = _candidates(session, Job.pack_key == pack_key, n)
    if not candidates:
        return []
    queue = session.scalar(select(Job.queue).where(Job.id == candidates[0].job_id))
    loads = _loads(session, queue, {c.tenant_id for c in candidates})
    return fair_order(candidates, loads, n)


def pack_may_grow(session: Session, pack_key: str) -> bool:
    """Continuous batching may add a job to a running pack only while the fairest claimable
    job of its queue is one that could join it. Otherwise the pack drains, and its worker's
    next claim goes to the tenant waiting: a pack that refilled for ever would starve every
    job it cannot take."""
    queue = session.execute(select(Job.queue).where(Job.pack_key == pack_key).limit(1)).first()
    if queue is None:
        return False
    order = lead_order(session, queue.queue)
    return (
        bool(order) and session.scalar(select(Job.pack_key).where(Job.id == order[0])) == pack_key
    )
