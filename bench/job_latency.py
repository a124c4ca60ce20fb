"""Job latency with a real worker process and Redis (not a test).

Submits tiny MiniLM jobs through the API and reports: submit → first training step,
last step → version live (seen through /v1/resolve), and whole-job time with a cold and
a warm base-model cache.

    python bench/job_latency.py [--jobs 4] [--steps 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from registry.config import Settings  # noqa: E402
from registry.db import session_scope  # noqa: E402
from registry.main import create_app  # noqa: E402
from registry.migrate import upgrade  # noqa: E402
from tests import factories  # noqa: E402
from tests.pgdb import temporary_database  # noqa: E402
from tests.workers.conftest import Workers, worker_env  # noqa: E402
from tests.workers.test_end_to_end import dataset_lines, minilm, register_minilm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    with temporary_database("vera_bench") as url:
        run(args, url)


def run(args, url: str) -> None:
    upgrade(url)
    workdir = Path(tempfile.mkdtemp(prefix="vera-latency-"))
    settings = Settings(
        _env_file=None,
        database_url=url,
        broker_url="redis://127.0.0.1:6379/13",
        storage_url=f"file://{workdir / 'blobs'}",
        heartbeat_interval_s=1.0,
    )
    workers = Workers(worker_env(settings), workdir)
    workers.start("bench")
    app = create_app(settings)
    try:
        with session_scope(app.state.session_factory) as session:
            tenant = factories.tenant(session, "bench")
            _, key = factories.api_key(session, tenant.id, ["admin"])
        auth = {"Authorization": f"Bearer {key}"}
        with TestClient(app) as client:
            rows = [run_job(client, auth, index, args.steps) for index in range(args.jobs)]
        print("| job | cache | submit → first step (s) | last step → live (s) | whole job (s) |")
        print("| --- | --- | --- | --- | --- |")
        for index, row in enumerate(rows):
            cache = "cold" if index == 0 else "warm"
            print(f"| {index + 1} | {cache} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.2f} |")
    finally:
        workers.stop_all()
        app.state.engine.dispose()


def run_job(client, auth, index: int, steps: int) -> tuple[float, float, float]:
    from registry.vera.describe import describe_projection

    user = f"user-{index}"
    _, description = minilm()
    base = register_minilm(client, auth)
    projection = client.post(
        f"/v1/base-models/{base['id']}/projections",
        json=describe_projection(description["layers"], ["query", "value"], 7, 32),
        headers=auth,
    ).json()
    dataset = client.post(
        "/v1/datasets",
        params={"user_id": user, "task": "sequence-classification"},
        content=dataset_lines(),
        headers=auth,
    ).json()
    body = {
        "user_id": user,
        "dataset_id": dataset["id"],
        "base_model_id": base["id"],
        "projection_id": projection["id"],
        "target_modules": ["query", "value"],
        "hyperparameters": {
            "max_steps": steps,
            "batch_size": 4,
            "max_seq_len": 16,
            "eval_fraction": 0.0,
        },
    }
    submitted = time.time()
    job = client.post("/v1/jobs", json=body, headers=auth).json()
    while True:
        response = client.get("/v1/resolve", params={"user_id": user}, headers=auth)
        if response.status_code == 200:
            live_at = time.time()
            break
        state = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()
        if state["state"] == "failed":
            raise RuntimeError(f"job failed: {state}")
        time.sleep(0.01)
    version = client.get(f"/v1/adapters/{job['adapter_id']}/versions/1", headers=auth).json()
    metrics = version["metrics"]
    return (
        metrics["first_step_at"] - submitted,
        live_at - metrics["last_step_at"],
        live_at - submitted,
    )


if __name__ == "__main__":
    main()
