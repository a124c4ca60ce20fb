"""Packs in real worker processes over real Redis and PostgreSQL: per-job crash safety,
per-job cancel, and resume from a checkpoint after a warm shutdown."""

from __future__ import annotations

import signal
import time

import pytest
from safetensors.torch import load as load_safetensors
from sqlalchemy import select

from registry.adapters.models import AdapterVersion
from registry.db import session_scope
from tests.workers.test_end_to_end import register_minilm, submit
from workers.dispatch import CeleryDispatcher
from workers.sweeper import sweep

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

TERMINAL = ("succeeded", "failed", "cancelled")


def events(stack, job_id: str) -> list[dict]:
    return stack.client.get(f"/v1/jobs/{job_id}/events", headers=stack.auth).json()


def wait_all(stack, ids: list[str], predicate, timeout: float = 120.0) -> list[dict]:
    return [stack.wait_for(job_id, predicate, timeout) for job_id in ids]


def versions(stack, adapter_id: str) -> list[tuple[int, str]]:
    with session_scope(stack.app.state.session_factory) as session:
        rows = session.execute(
            select(AdapterVersion.number, AdapterVersion.job_id)
            .where(AdapterVersion.adapter_id == adapter_id)
            .order_by(AdapterVersion.number)
        ).all()
    return [tuple(row) for row in rows]


def resend(stack):
    return sweep(stack.app.state.session_factory, CeleryDispatcher(stack.settings), stack.settings)


@pytest.mark.parametrize("stack_overrides", [{"checkpoint_interval_s": 0.5}], indirect=True)
def test_kill_9_of_a_worker_training_a_pack_of_8(stack, stack_overrides):
    base = register_minilm(stack.client, stack.auth)
    # Four users, two jobs each: every adapter must end with versions 1 and 2, no gap.
    jobs = [
        submit(stack, max_steps=24, batch_size=2, user_id=f"u{i % 4}", base=base) for i in range(8)
    ]
    ids = [job["id"] for job in jobs]
    first = stack.workers.start()
    running = wait_all(stack, ids, lambda j: j["state"] == "running" and j["checkpoint_step"])
    assert {j["pack_id"] for j in running} == {running[0]["pack_id"]}
    assert {j["pack_size"] for j in running} == {8}
    metrics = stack.client.get("/metrics").text
    assert "vera_packs 1.0" in metrics and "vera_pack_jobs 8.0" in metrics
    stack.workers.kill(first)  # kill -9: no chance to ack, reject, checkpoint or clean up
    time.sleep(stack.settings.heartbeat_stale_s + 0.5)
    assert sorted(resend(stack).requeued) == sorted(ids)
    stack.workers.start("replacement")
    done = wait_all(stack, ids, lambda j: j["state"] in TERMINAL)
    assert [(j["state"], j["attempts"]) for j in done] == [("succeeded", 2)] * 8
    for adapter_id in {j["adapter_id"] for j in done}:
        numbers, owners = zip(*versions(stack, adapter_id), strict=True)
        assert numbers == (1, 2)
        assert len(set(owners)) == 2
    for job_id in ids:  # each resumed from its own latest checkpoint, not from step 1
        resumed = [e["data"] for e in events(stack, job_id) if "resumed_from_step" in e["data"]]
        assert len(resumed) == 1 and resumed[0]["resumed_from_step"] >= 1


def test_cancelling_one_job_of_a_pack_stops_only_that_job(stack):
    base = register_minilm(stack.client, stack.auth)
    ids = [submit(stack, max_steps=40, batch_size=2, user_id=u, base=base)["id"] for u in "abc"]
    stack.workers.start()
    running = wait_all(stack, ids, lambda j: j["state"] == "running" and j["step"] > 0)
    assert len({j["pack_id"] for j in running}) == 1
    assert stack.client.post(f"/v1/jobs/{ids[1]}/cancel", headers=stack.auth).status_code == 200
    done = wait_all(stack, ids, lambda j: j["state"] in TERMINAL)
    assert [j["state"] for j in done] == ["succeeded", "cancelled", "succeeded"]
    assert [len(versions(stack, j["adapter_id"])) for j in done] == [1, 0, 1]
    # The other two went on in the same pack, now of two.
    sizes = [e["data"]["pack_size"] for e in events(stack, ids[0]) if e["kind"] == "progress"]
    assert sizes[0] == 3 and sizes[-1] == 2


def blob_tensors(stack, job: dict) -> dict:
    url = f"/v1/adapters/{job['adapter_id']}/versions/1/blob"
    return load_safetensors(stack.client.get(url, headers=stack.auth).content)


@pytest.mark.parametrize("stack_overrides", [{"pack_max_jobs": 1}], indirect=True)
def test_a_job_handed_back_at_shutdown_resumes_from_its_checkpoint(stack, stack_overrides):
    base = register_minilm(stack.client, stack.auth)
    job = submit(stack, max_steps=80, batch_size=2, user_id="alice", base=base)
    first = stack.workers.start()
    stack.wait_for(job["id"], lambda j: j["state"] == "running" and j["step"] >= 4)
    stack.workers.kill(first, signal.SIGTERM)  # warm shutdown: checkpoint, back to the queue
    handed = stack.job(job["id"])
    assert handed["state"] == "queued" and 4 <= handed["checkpoint_step"] < 80
    # The same rows, seed and settings for another user: the uninterrupted run to compare with.
    twin = submit(stack, max_steps=80, batch_size=2, user_id="bob", base=base)
    stack.workers.start("next")
    assert job["id"] in resend(stack).resent
    done = wait_all(stack, [job["id"], twin["id"]], lambda j: j["state"] in TERMINAL)
    assert [(j["state"], j["attempts"]) for j in done] == [("succeeded", 1)] * 2
    # VERA_PACK_MAX_JOBS=1: one job at a time, each in a pack of its own.
    assert (
        done[0]["pack_id"] != done[1]["pack_id"]
        and done[0]["pack_size"] == 1 == done[1]["pack_size"]
    )
    log = events(stack, job["id"])
    step = handed["checkpoint_step"]
    assert any(
        e["data"].get("reason", "").startswith(f"worker shut down at step {step}") for e in log
    )
    assert [e["data"]["resumed_from_step"] for e in log if "resumed_from_step" in e["data"]] == [
        step
    ]
    resumed_at = next(i for i, e in enumerate(log) if "resumed_from_step" in e["data"])
    assert all(e["data"]["step"] > step for e in log[resumed_at:] if e["kind"] == "progress")
    resumed, uninterrupted = blob_tensors(stack, done[0]), blob_tensors(stack, done[1])
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[name], tensor, atol=1e-5, rtol=0, msg=name)


def test_sigterm_hands_back_every_job_of_a_pack_and_each_resumes(stack):
    base = register_minilm(stack.client, stack.auth)
    ids = [submit(stack, max_steps=60, batch_size=2, user_id=u, base=base)["id"] for u in "abc"]
    first = stack.workers.start()
    running = wait_all(stack, ids, lambda j: j["state"] == "running" and j["step"] >= 2)
    assert len({j["pack_id"] for j in running}) == 1
    stack.workers.kill(first, signal.SIGTERM)  # warm shutdown of a pack of three
    handed = [stack.job(job_id) for job_id in ids]
    assert [j["state"] for j in handed] == ["queued"] * 3
    assert all(2 <= j["checkpoint_step"] < 60 and j["attempts"] == 0 for j in handed)
    stack.workers.start("next")
    assert sorted(resend(stack).resent) == sorted(ids)
    done = wait_all(stack, ids, lambda j: j["state"] in TERMINAL)
    # A hand-back is no attempt: each job ran once more, resumed where it stopped, one version.
    assert [(j["state"], j["attempts"]) for j in done] == [("succeeded", 1)] * 3
    for job, before in zip(done, handed, strict=True):
        log = events(stack, job["id"])
        resumed = [e["data"]["resumed_from_step"] for e in log if "resumed_from_step" in e["data"]]
        assert resumed == [before["checkpoint_step"]]
        assert [n for n, _ in versions(stack, job["adapter_id"])] == [1]
