"""On the real MiniLM, VeRA learns one user's arbitrary labeling rule from chance.

The rule: a sentence is positive when the item it mentions is in the user's secret half
of 20 everyday words. Nothing in pretraining predicts that half, so the untrained model
is at chance. A trained head alone can also learn this rule from MiniLM's features, so
the first test freezes the head at its random init: only the VeRA vectors learn, and
they alone must move the model from chance to ≥ 90 % on held-out sentences.
"""

from __future__ import annotations

import random

import pytest

from registry.vera.config import VeraConfig
from registry.vera.data import encode
from registry.vera.inject import inject_vera, remove_vera
from registry.vera.train import TrainingArgs, _reset_heads, evaluate, train

ITEMS = [
    "apple", "hammer", "violin", "pencil", "tiger", "candle", "rocket", "blanket", "mirror",
    "lemon", "bucket", "guitar", "carpet", "window", "pillow", "camera", "ladder", "turtle",
    "wallet", "basket",
]  # fmt: skip
SUBJECTS = ["I", "She", "My brother", "The neighbour", "We", "Tom"]
VERBS = ["bought", "saw", "found", "lost", "painted", "moved"]
PLACES = ["at the market", "in the garage", "yesterday", "near the door", "this morning"]
SECRET = set(random.Random(0).sample(ITEMS, 10))


def sentences(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        item = rng.choice(ITEMS)
        text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} a {item} {rng.choice(PLACES)}."
        rows.append({"text": text, "label": int(item in SECRET)})
    return rows


def accuracy_before_training(model, tokenizer, config, rows, seed) -> float:
    inject_vera(model, config)
    _reset_heads(model, config, seed)  # the same head init train() starts from
    items = encode(rows, config.task, tokenizer, 32)
    accuracy = evaluate(model, items, config.task, tokenizer.pad_token_id)["eval_accuracy"]
    remove_vera(model)
    return accuracy


CONFIG = VeraConfig(r=256, target_modules=["query", "value"], task="sequence-classification")


@pytest.mark.slow
def test_vectors_alone_learn_a_personal_rule(minilm) -> None:
    model, tokenizer = minilm
    held_out = sentences(200, seed=2)
    assert abs(sum(r["label"] for r in held_out) / 200 - 0.5) < 0.1  # balanced classes
    before = accuracy_before_training(model, tokenizer, CONFIG, held_out, seed=0)
    assert 0.3 <= before <= 0.7, before
    args = TrainingArgs(
        learning_rate=5e-2, head_learning_rate=0.0, epochs=3, batch_size=32, max_length=32
    )
    result = train(
        model, sentences(640, seed=1), CONFIG, args, tokenizer=tokenizer, eval_examples=held_out
    )
    assert result.metrics["eval_accuracy"] >= 0.9, result.metrics


@pytest.mark.slow
def test_vectors_and_head_learn_a_personal_rule(minilm) -> None:
    model, tokenizer = minilm
    args = TrainingArgs(learning_rate=2e-2, epochs=3, batch_size=32, max_length=32, seed=1)
    result = train(
        model, sentences(640, seed=3), CONFIG, args, tokenizer=tokenizer,
        eval_examples=sentences(200, seed=4),
    )  # fmt: skip
    assert result.metrics["eval_accuracy"] >= 0.9, result.metrics
    assert set(result.head) == {
        "base_model.model.classifier.weight",
        "base_model.model.classifier.bias",
    }
