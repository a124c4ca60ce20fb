"""Fair share: the order in which workers take queued jobs across tenants, against a plain
model of the rules (registry/jobs/fair_share.py), on the pure function and through the
database claims a worker makes."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from registry.db import new_id, utcnow
from registry.jobs import lease
from registry.jobs.fair_share import Candidate, Load, fair_order
from registry.jobs.models import Job
from tests import factories

EPOCH = utcnow() - timedelta(days=1)


def model_picks(queued: dict, running: dict, served: dict, n: int) -> list[str]:
    """The rules as written: each pick goes to the tenant with the fewest running jobs,
    then the one served least recently (never first, this round's picks latest), then the
    one with the oldest queued job; that tenant's oldest job. Plain and quadratic."""
    queued = {t: sorted(jobs) for t, jobs in queued.items() if jobs}  # [(created, id)]
    running = dict(running)
    recency = {t: (1, served[t]) if served.get(t) else (0,) for t in queued}
    picks = []
    while len(picks) < n and any(queued.values()):
        tenant = min(
            (t for t in queued if queued[t]),
            key=lambda t: (running.get(t, 0), recency[t], queued[t][0], t),
        )
        picks.append(queued[tenant].pop(0)[1])
        running[tenant] = running.get(tenant, 0) + 1
        recency[tenant] = (2, len(picks))
    return picks


minutes = st.integers(min_value=0, max_value=30)
tenant_state = st.fixed_dictionaries(
    {
        "queued": st.lists(minutes, max_size=5),
        "running": st.integers(min_value=0, max_value=2),
        "served": st.one_of(st.none(), minutes),
    }
)
worlds = st.lists(tenant_state, min_size=1, max_size=4)


def _flatten(world):
    queued, running, served = {}, {}, {}
    for index, state in enumerate(world):
        tenant = f"t{index}"
        queued[tenant] = [
            (EPOCH + timedelta(minutes=m), f"{tenant}-{i:02d}")
            for i, m in enumerate(state["queued"])
        ]
        running[tenant] = state["running"]
        served[tenant] = EPOCH + timedelta(minutes=state["served"]) if state["served"] else None
    return queued, running, served


@given(world=worlds, n=st.integers(min_value=1, max_value=25))
def test_fair_order_matches_the_plain_model(world, n):
    queued, running, served = _flatten(world)
    candidates = [Candidate(i, t, c) for t, jobs in queued.items() for c, i in jobs]
    loads = {t: Load(running[t], served[t]) for t in queued}
    assert fair_order(candidates, loads, n) == model_picks(queued, running, served, n)


def test_a_tenant_with_one_job_goes_before_another_tenants_backlog():
    backlog = [Candidate(f"a{i}", "a", EPOCH + timedelta(seconds=i)) for i in range(1000)]
    late = Candidate("b0", "b", EPOCH + timedelta(hours=1))
    # One worker that finishes before it claims again: nobody runs anything at claim time;
    # tenant a was served just now, b never.
    loads = {"a": Load(0, EPOCH + timedelta(hours=2)), "b": Load(0, None)}
    assert fair_order([*backlog, late], loads, 3) == ["b0", "a0", "a1"]
    # With one running job each, turns alternate.
    assert fair_order([*backlog, late], {}, 3) == ["a0", "b0", "a1"]


def _world_rows(session, world):
    """Jobs in the database as `world` says: queued ones, running ones, and one finished
    job per served tenant (its start is when the tenant was served last)."""
    queued, running, served = _flatten(world)
    for tenant_name in queued:
        tenant = factories.tenant(session, f"{tenant_name}-{new_id()[:6]}")
        adapter = factories.adapter(session, tenant.id)
        dataset = factories.dataset(session, tenant.id)

        def job(state, created_at, started_at=None, tenant=tenant, adapter=adapter, data=dataset):
            row = Job(
                tenant_id=tenant.id,
                user_id="user-1",
                adapter_id=adapter.id,
                dataset_id=data.id,
                base_model_id=adapter.base_model_id,
                projection_id=adapter.projection_id,
                hyperparameters={},
                request_sha256="0" * 64,
                pack_key="shared",  # one pack key: companions may come from every tenant
                state=state,
                created_at=created_at,
                started_at=started_at,
            )
            session.add(row)
            return row

        rows = [(created_at, job("queued", created_at)) for created_at, _ in queued[tenant_name]]
        session.flush()
        queued[tenant_name] = [(created_at, row.id) for created_at, row in rows]
        for _ in range(running[tenant_name]):
            job("running", EPOCH, EPOCH + timedelta(minutes=31)).lease_expires_at = (
                utcnow() + timedelta(hours=1)
            )
        if served[tenant_name]:
            job("succeeded", EPOCH, served[tenant_name])
    session.flush()
    # Runners' starts beat `served`: restate the model's view of who was served last.
    for tenant_name in queued:
        if running[tenant_name]:
            served[tenant_name] = EPOCH + timedelta(minutes=31)
    return queued, running, served


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=worlds, room=st.integers(min_value=1, max_value=4), data=st.data())
def test_worker_claims_follow_the_model_and_no_job_waits_without_a_message(
    session, world, room, data
):
    """One message per queued job, delivered in any order, each claimed as a worker does
    (a pack of `room`): the jobs are taken in the model's order, and when the messages
    are spent no job is left queued (a message whose job went earlier is a no-op)."""
    try:
        queued, running, served = _world_rows(session, world)
        ids = [job_id for jobs in queued.values() for _, job_id in jobs]
        messages = data.draw(st.permutations(ids))
        claimed = []
        for message in messages:
            claims = lease.claim_next(session, message, "w", 60, pack_id=new_id(), room=room)
            claimed += [c.job_id for c in claims]
        assert claimed == model_picks(queued, running, served, len(ids))
        assert session.scalar(select(func.count()).where(Job.state == "queued")) == 0
    finally:
        session.rollback()


def test_a_running_pack_stops_refilling_while_another_tenant_waits(session):
    """Continuous batching must not starve a job that cannot join the pack."""
    world = [{"queued": [0, 1, 2, 3], "running": 0, "served": None}]
    queued, _, _ = _world_rows(session, world)
    a_jobs = [job_id for _, job_id in queued["t0"]]
    pack = lease.claim_next(session, a_jobs[0], "w", 60, pack_id="p", room=2)
    key = session.get(Job, a_jobs[0]).pack_key
    assert [c.job_id for c in pack] == a_jobs[:2]
    b_queued, _, _ = _world_rows(session, [{"queued": [5], "running": 0, "served": None}])
    ((_, b_job),) = b_queued["t0"]
    session.get(Job, b_job).pack_key = "other"  # another tenant's model: it cannot join
    session.flush()
    more = lease.claim_companions(session, key, "w", 60, pack_id="p", limit=2, pack_size=2)
    assert more == []  # b's job is the fairest: the pack drains instead
    (b_claim,) = lease.claim_next(session, a_jobs[2], "w2", 60, pack_id="q", room=2)
    assert b_claim.job_id == b_job
    more = lease.claim_companions(session, key, "w", 60, pack_id="p", limit=2, pack_size=2)
    assert [c.job_id for c in more] == a_jobs[2:]
