"""`POST /v1/classify` on a MiniLM classifier base: each user's own head, labels by name."""

from __future__ import annotations

import httpx
import pytest

from registry.vera.config import TASK_SEQUENCE_CLASSIFICATION, VeraConfig
from tests.serving.conftest import SEED, Publisher, R, load_for, serve

torch = pytest.importorskip("torch")

LABELS = ["negative", "positive"]
TEXTS = ["the sky is blue", "a red car and a dog"]


def test_classify_scores_each_users_head_by_label_name(registry_live, tmp_path):
    from transformers import AutoTokenizer

    from registry.vera.inject import inject_vera, load_adapter_state_dict
    from tests.client.test_runtime import minilm_path

    app, _live, rc, _other = registry_live
    config = VeraConfig(
        r=R,
        target_modules=["query", "value"],
        projection_prng_key=SEED,
        task=TASK_SEQUENCE_CLASSIFICATION,
    )
    publisher = Publisher(app, rc, minilm_path(), config)
    publisher.add_version("c1", seed=1, labels=LABELS)
    publisher.add_version("c2", seed=2, labels=LABELS)
    server = serve(rc, publisher.base["id"], minilm_path(), tmp_path / "cache")
    try:
        with httpx.Client(base_url=server.url, headers=rc.tenant.auth("read")) as http:
            answers = {
                user: http.post(
                    "/v1/classify",
                    json={"model": publisher.base["name"], "user": user, "input": TEXTS},
                )
                for user in ("c1", "c2")
            }
            base = http.post("/v1/classify", json={"model": publisher.base["id"], "input": "x"})
            chat = http.post(
                "/v1/completions", json={"model": publisher.base["id"], "prompt": "hello"}
            )
    finally:
        server.stop()

    assert base.status_code == 422 and base.json()["error"]["details"][0]["field"] == "user"
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "wrong_task"
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    batch = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    for user, seed in (("c1", 1), ("c2", 2)):
        assert answers[user].status_code == 200, answers[user].text
        data = answers[user].json()["data"]
        model = load_for(minilm_path(), TASK_SEQUENCE_CLASSIFICATION)
        inject_vera(model, config)
        load_adapter_state_dict(model, publisher.vectors(seed))
        with torch.no_grad():
            expected = model(**batch).logits.softmax(-1)
        for row, item in enumerate(data):
            assert set(item["scores"]) == set(LABELS)
            assert item["label"] == LABELS[int(expected[row].argmax())]
            scores = [item["scores"][label] for label in LABELS]
            torch.testing.assert_close(torch.tensor(scores), expected[row], atol=1e-4, rtol=0)
    assert answers["c1"].json()["data"] != answers["c2"].json()["data"]

