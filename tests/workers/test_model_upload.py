"""A base model registered by upload trains on a worker that has only the registry."""

from __future__ import annotations

import shutil

import pytest

from registry.client.api import RegistryClient
from tests.workers.test_end_to_end import minilm, submit

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def test_worker_on_another_machine_trains_a_model_registered_by_upload(stack, tmp_path):
    from registry.vera.describe import describe_base_model

    laptop = tmp_path / "laptop" / "minilm"
    shutil.copytree(minilm()[0], laptop)
    description = describe_base_model(laptop)
    rc = RegistryClient(api_key=stack.auth["Authorization"].split()[1], http=stack.client)
    base = rc.upload_base_model(laptop, description)
    assert base["source_uri"] is None
    shutil.rmtree(laptop)  # the uploader's folder is gone: nothing but the registry is left

    worker_home = tmp_path / "worker-machine"  # a VERA_HOME of its own
    stack.workers.env["VERA_HOME"] = str(worker_home)
    stack.workers.start()
    job = submit(stack, max_steps=3, base=base)
    done = stack.wait_for(job["id"], lambda j: j["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded", (done, stack.workers.logs())
    cached = worker_home / "models" / base["content_hash"].removeprefix("sha256:")
    assert {p.name for p in cached.iterdir()} >= {"model.safetensors", "config.json", "vocab.txt"}
