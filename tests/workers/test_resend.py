"""The sweeper re-sends a queued job only when it was never sent or the broker lost it:
a backlog no worker takes stays in Redis once, and a restarted (empty) Redis gets every
queued job back within seconds."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from registry.config import Settings
from registry.db import session_scope, utcnow
from registry.jobs import service as jobs
from registry.jobs.models import Job
from registry.jobs.schemas import JobRequest
from tests import factories
from tests.workers.conftest import REPO, worker_env
from workers.celery_app import TRAIN_QUEUE
from workers.dispatch import CeleryDispatcher
from workers.sweeper import UNSENT_GRACE_S, sweep

BACKLOG = 10


@pytest.fixture
def settings(pg_url, redis_server, tmp_path) -> Settings:
    return Settings(
        _env_file=None,
        home=tmp_path / "home",
        database_url=pg_url,
        broker_url=redis_server.url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        sweep_interval_s=1.0,
    )


@pytest.fixture
def backlog(pg_session_factory) -> list[str]:
    """Queued jobs, never sent (as after a broker outage at submit), past the send grace."""
    with session_scope(pg_session_factory) as session:
        tenant = factories.tenant(session)
        base = factories.base_model(session, tenant.id)
        projection = factories.projection(session, tenant.id, base.id)
        dataset = factories.dataset(session, tenant.id, user_id="alice")
        ids = []
        for steps in range(1, BACKLOG + 1):
            request = JobRequest(
                user_id="alice",
                dataset_id=dataset.id,
                base_model_id=base.id,
                projection_id=projection.id,
                target_modules=["query", "value"],
                hyperparameters={"max_steps": steps},
            )
            ids.append(jobs.submit_job(session, tenant.id, request)[0].id)
    time.sleep(UNSENT_GRACE_S + 0.1)
    return ids


def _age_sends(factory, seconds: float) -> None:
    """As if the sends were this much older (the old sweeper re-sent after 60 s)."""
    with session_scope(factory) as session:
        session.execute(
            update(Job)
            .where(Job.sent_at.is_not(None))
            .values(sent_at=utcnow() - timedelta(seconds=seconds))
        )


def test_backlog_without_workers_is_sent_once(settings, redis_server, backlog, pg_session_factory):
    dispatcher = CeleryDispatcher(settings)
    redis = redis_server.client()
    first = sweep(pg_session_factory, dispatcher, settings)
    assert sorted(first.resent) == sorted(backlog)
    assert redis.llen(TRAIN_QUEUE) == BACKLOG
    for _ in range(3):
        _age_sends(pg_session_factory, 3600)
        assert sweep(pg_session_factory, dispatcher, settings).resent == []
        assert redis.llen(TRAIN_QUEUE) == BACKLOG


def test_restarted_empty_redis_gets_the_backlog_again(
    settings, redis_server, backlog, pg_session_factory
):
    dispatcher = CeleryDispatcher(settings)
    sweep(pg_session_factory, dispatcher, settings)
    redis_server.stop()
    redis_server.start()  # no persistence: the queue is gone
    assert redis_server.client().llen(TRAIN_QUEUE) == 0
    report = sweep(pg_session_factory, dispatcher, settings)
    assert sorted(report.resent) == sorted(backlog)
    assert redis_server.client().llen(TRAIN_QUEUE) == BACKLOG
    assert sweep(pg_session_factory, dispatcher, settings).resent == []


def test_broker_down_during_a_sweep_sends_nothing_and_loses_nothing(
    settings, redis_server, backlog, pg_session_factory
):
    dispatcher = CeleryDispatcher(settings)
    redis_server.stop()
    assert sweep(pg_session_factory, dispatcher, settings).resent == []
    redis_server.start()
    assert sorted(sweep(pg_session_factory, dispatcher, settings).resent) == sorted(backlog)


def test_the_running_sweeper_resends_within_seconds_of_a_redis_restart(
    settings, redis_server, backlog, tmp_path
):
    """The real schedule: `vera-registry worker --beat` on the maintenance queue."""
    log = tmp_path / "sweeper.log"
    with open(log, "w") as out:
        sweeper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "registry.cli",
                "worker",
                "--queues",
                "maintenance",
                "--beat",
                "--pool",
                "solo",
                "--without-heartbeat",
                "--schedule",
                str(tmp_path / "beat-schedule"),
            ],
            cwd=tmp_path,
            env={**worker_env(settings), "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_queue(redis_server, BACKLOG, 60, log)
        time.sleep(3 * settings.sweep_interval_s)  # several sweeps: still once each
        assert redis_server.client().llen(TRAIN_QUEUE) == BACKLOG
        redis_server.stop()
        redis_server.start()
        restarted = time.monotonic()
        _wait_for_queue(redis_server, BACKLOG, 30, log)
        took = time.monotonic() - restarted
        time.sleep(2 * settings.sweep_interval_s)
        assert redis_server.client().llen(TRAIN_QUEUE) == BACKLOG
    finally:
        sweeper.terminate()
        sweeper.wait(30)
    assert took < 15, f"re-sent only after {took:.1f} s"


def _wait_for_queue(redis_server, length: int, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis_server.client().llen(TRAIN_QUEUE) >= length:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"queue never reached {length}:\n{log.read_text()[-4000:]}")
