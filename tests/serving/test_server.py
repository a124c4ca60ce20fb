"""`serve-model` over real HTTP: a tiny Llama with ten users' adapters, served by the
inference server (uvicorn) against a live registry (uvicorn, SQLite)."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from registry.vera.config import TASK_CAUSAL_LM, VeraConfig
from tests.serving.conftest import SEED, Publisher, R, serve

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
    requests = [(f"{name}:{USERS[i % 10]}", PROMPTS[i % len(PROMPTS)], {}) for i in range(18)] + [
        (name, PROMPTS[0], {}),
        (f"{name}:u3", PROMPTS[1], {"temperature": 0.9, "seed": 5}),
    ]
    alone = [complete(http, *request[:2], **request[2]) for request in requests]
    rows_before = metric(http, "vera_serve_batch_size_count")
    batches_of_one = metric(http, "vera_serve_batch_size_bucket", le="1.0")

    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(lambda r: complete(http, r[0], r[1], **r[2]), requests))

    assert [c["choices"][0]["text"] for c in together] == [c["choices"][0]["text"] for c in alone]
    texts = {c["choices"][0]["text"] for c in alone[:10]}
    assert len(texts) > 5, "users' adapters must change the outputs"
    assert alone[0]["usage"]["completion_tokens"] >= 1
    calls = metric(http, "vera_serve_batch_size_count") - rows_before
    ones = metric(http, "vera_serve_batch_size_bucket", le="1.0") - batches_of_one
    assert calls < len(requests) and ones < calls, "concurrent requests must share batches"
    assert metric(http, "vera_serve_loaded_users") == 10
    assert metric(http, "vera_serve_generated_tokens_total") > 0


def test_publish_and_rollback_under_load_switch_that_user_only(llama):
    publisher, server, http, _other = llama
    name = publisher.base["name"]
    runtime = server.loaded.runtime
    before = {user: complete(http, f"{name}:{user}", PROMPTS[0]) for user in ("u0", "u1")}
    seen: dict[str, set[str]] = {"u0": set(), "u1": set()}
    stop = threading.Event()

    def load(user: str) -> None:
        while not stop.is_set():
            seen[user].add(complete(http, f"{name}:{user}", PROMPTS[0])["choices"][0]["text"])

    def switched(version: int) -> float:
        """Seconds from now until the server serves u0's `version`."""
        started = time.monotonic()
        while runtime.users["u0"].version != version:
            assert time.monotonic() - started < 5, f"u0 never reached v{version}"
            time.sleep(0.01)
        return time.monotonic() - started

    with ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(load, user) for user in ("u0", "u1")]
        publisher.add_version("u0", seed=999)  # v2, published
        publish_s = switched(2)
        v2 = complete(http, f"{name}:u0", PROMPTS[0])
        publisher.rc.rollback(publisher.adapters["u0"], "live")  # back to v1
        rollback_s = switched(1)
        after = complete(http, f"{name}:u0", PROMPTS[0])
        stop.set()
        for worker in workers:
            worker.result()

    assert publish_s < 1 and rollback_s < 1, (publish_s, rollback_s)
    text = lambda answer: answer["choices"][0]["text"]  # noqa: E731
    assert text(v2) != text(before["u0"]) and text(after) == text(before["u0"])
    assert seen["u1"] == {text(before["u1"])}, "another user's outputs must not move"
    assert seen["u0"] <= {text(before["u0"]), text(v2)}
    assert runtime.users["u1"].version == 1
    assert metric(http, "vera_serve_adapter_swaps_total", reason="feed") >= 2


def test_the_openai_package_talks_to_it_unchanged(llama):
    import openai

    publisher, server, http, other = llama
    client = openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=publisher.rc.tenant.keys["read"], max_retries=0
    )
    model = f"{publisher.base['name']}:u2"
    ours = complete(http, model, PROMPTS[1])["choices"][0]["text"]
    done = client.completions.create(model=model, prompt=PROMPTS[1], max_tokens=4, temperature=0)
    assert done.choices[0].text == ours and done.usage.completion_tokens >= 1
    stream = client.completions.create(
        model=model, prompt=PROMPTS[1], max_tokens=4, temperature=0, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == ours
    assert chunks[-1].choices[0].finish_reason == done.choices[0].finish_reason

    messages = [{"role": "system", "content": "w3"}, {"role": "user", "content": "w5 w6"}]
    chat = client.chat.completions.create(
        model=model, messages=messages, max_tokens=4, temperature=0
    )
    assert chat.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=4, temperature=0, stream=True
    )
    deltas = [c.choices[0].delta.content or "" for c in stream]
    assert "".join(deltas) == chat.choices[0].message.content
    assert [m.id for m in client.models.list()] == [publisher.base["name"]]

    stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key=other.keys["read"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="serves tenant 'acme'"):
        stranger.completions.create(model=model, prompt="w5", max_tokens=2)


def test_errors_are_clear_and_change_nothing(llama):
    publisher, server, http, other = llama
    name = publisher.base["name"]
    body = {"model": f"{name}:u4", "prompt": "w5 w6", "max_tokens": 2}

    def post(json=None, headers=None) -> httpx.Response:
        return http.post("/v1/completions", json=json or body, headers=headers)

    def error(response: httpx.Response, status: int) -> dict:
        assert response.status_code == status, response.text
        return response.json()["error"]

    assert error(post(headers={"Authorization": ""}), 401)["code"] == "missing_key"
    assert error(post(headers={"Authorization": "Bearer nope"}), 401)["message"]
    assert error(post(headers=other.auth("read")), 403)["code"] == "wrong_tenant"
    missing = error(post({**body, "model": f"{name}:nobody"}), 404)
    assert missing["code"] == "adapter_not_found" and "'nobody'" in missing["message"]
    assert error(post({**body, "model": "gpt-4"}), 404)["code"] == "model_not_found"
    assert error(post({**body, "max_tokens": 100_000}), 422)["details"][0]["field"] == "max_tokens"
    long_prompt = " ".join(["w5"] * 70)  # the tiny Llama's context is 64 positions
    assert "context of 64" in error(post({**body, "prompt": long_prompt}), 422)["message"]
    huge = b'{"prompt": "' + b"w5 " * 2_000_000 + b'"}'
    assert error(http.post("/v1/completions", content=huge), 413)["code"] == "too_large"
    assert error(post({**body, "logprobs": 3}), 422)["message"].count("logprobs") == 1
    assert error(http.post("/v1/classify", json={"model": name, "input": "w5"}), 400)

    batcher = server.state.batcher
    batcher.max_queue = 0
    try:
        full = post()
        assert error(full, 429)["code"] == "overloaded" and full.headers["Retry-After"] == "1"
    finally:
        batcher.max_queue = 256
    assert post().status_code == 200
    assert "nobody" not in server.loaded.runtime.users
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").status_code == 200
