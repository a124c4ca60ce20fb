"""`serve-model` over real HTTP: a tiny Llama with ten users' adapters, served by the
inference server (uvicorn) against a live registry (uvicorn, SQLite)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from registry.vera.config import TASK_CAUSAL_LM, VeraConfig
from tests.serving.conftest import R, SEED, Publisher, serve

USERS = [f"u{i}" for i in range(10)]
PROMPTS = ["w5 w6 w7", "w10 w11", "w20 w3 w4 w9", "w40"]


@pytest.fixture(scope="module")
def llama(registry_live, tmp_path_factory):
    from tests.workers.test_job_fit import tiny_llama_with_tokenizer

    app, _live, rc, other = registry_live
    folder = tiny_llama_with_tokenizer(tmp_path_factory.mktemp("llama"))
    config = VeraConfig(r=R, target_modules=["q_proj", "v_proj"], projection_prng_key=SEED)
    assert config.task == TASK_CAUSAL_LM
    publisher = Publisher(app, rc, folder, config)
    for index, user in enumerate(USERS):
        publisher.add_version(user, seed=100 + index)
    server = serve(
        rc, publisher.base["id"], folder, tmp_path_factory.mktemp("cache"), max_wait_ms=30
    )
    http = httpx.Client(base_url=server.url, headers=rc.tenant.auth("read"), timeout=120)
    yield publisher, server, http, other
    http.close()
    server.stop()


def complete(http: httpx.Client, model: str, prompt: str, **params) -> dict:
    body = {"model": model, "prompt": prompt, "max_tokens": 4, "temperature": 0, **params}
    response = http.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def metric(http: httpx.Client, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in http.get("/metrics").text.splitlines()
        if re.match(rf"{name}[{{ ]", line) and all(w in line for w in wanted)
    )


def wait_ready(http: httpx.Client) -> None:
    deadline = time.monotonic() + 10
    while http.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, http.get("/readyz").text
        time.sleep(0.05)


def test_concurrent_users_are_batched_and_equal_one_by_one(llama):
    publisher, _server, http, _other = llama
    wait_ready(http)
    name = publisher.base["name"]
    requests = [
        (f"{name}:{USERS[i % 10]}", PROMPTS[i % len(PROMPTS)], {}) for i in range(18)
    ] + [(name, PROMPTS[0], {}), (f"{name}:u3", PROMPTS[1], {"temperature": 0.9, "seed": 5})]
    alone = [complete(http, *request[:2], **request[2]) for request in requests]
    rows_before = metric(http, "vera_serve_batch_size_count")
    batches_of_one = metric(http, "vera_serve_batch_size_bucket", le="1.0")

    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(lambda r: complete(http, r[0], r[1], **r[2]), requests))

    assert [c["choices"][0]["text"] for c in together] == [
        c["choices"][0]["text"] for c in alone
    ]
    texts = {c["choices"][0]["text"] for c in alone[:10]}
    assert len(texts) > 5, "users' adapters must change the outputs"
    assert alone[0]["usage"]["completion_tokens"] >= 1
    calls = metric(http, "vera_serve_batch_size_count") - rows_before
    ones = metric(http, "vera_serve_batch_size_bucket", le="1.0") - batches_of_one
    assert calls < len(requests) and ones < calls, "concurrent requests must share batches"
    assert metric(http, "vera_serve_loaded_users") == 10
    assert metric(http, "vera_serve_generated_tokens_total") > 0
