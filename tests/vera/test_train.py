"""The training loop: it learns, it is deterministic, it reports, it can be cancelled."""

from __future__ import annotations

import random

import pytest
import torch

from registry.vera.config import VeraConfig
from registry.vera.data import IGNORE_INDEX, collate, encode
from registry.vera.hashing import hash_state_dict
from registry.vera.inject import inject_vera, remove_vera, vera_layers
from registry.vera.train import (
    Progress,
    TrainingArgs,
    TrainingCancelled,
    _lr_factor,
    evaluate,
    train,
)

from .conftest import tiny_llama

LLAMA_TARGETS = ["q_proj", "v_proj", "up_proj", "down_proj", "lm_head"]


def cyclic_corpus(count: int, seed: int) -> list[dict]:
    """Token runs counting up modulo 16: predictable after the first token."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        start = rng.randrange(16)
        rows.append({"input_ids": [10 + (start + i) % 16 for i in range(24)]})
    return rows


def test_lr_schedule() -> None:
    assert _lr_factor(0, 100, 10, "linear") == pytest.approx(0.1)
    assert _lr_factor(9, 100, 10, "linear") == pytest.approx(1.0)
    assert _lr_factor(55, 100, 10, "linear") == pytest.approx(0.5)
    assert _lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert _lr_factor(99, 100, 10, "constant") == 1.0


class CharTokenizer:
    """One id per character; id 1 is BOS, 2 is EOS."""

    eos_token_id = 2
    pad_token_id = 0

    def __call__(self, text, add_special_tokens=True, truncation=False, max_length=None):
        ids = ([1] if add_special_tokens else []) + [3 + ord(c) % 90 for c in text]
        return {"input_ids": ids[:max_length] if truncation else ids}


def test_prompt_completion_trains_on_the_completion_only() -> None:
    rows = [{"prompt": "ab", "completion": "cde"}, {"text": "xy"}]
    items = encode(rows, "causal-lm", CharTokenizer(), max_length=32)
    assert items[0].input_ids == [1, 3 + 97 % 90, 3 + 98 % 90, *[3 + ord(c) % 90 for c in "cde"], 2]
    assert (
        items[0].labels[:3] == [IGNORE_INDEX] * 3 and items[0].labels[3:] == items[0].input_ids[3:]
    )
    assert items[1].labels == items[1].input_ids
    batch = collate(items, "causal-lm", pad_token_id=0)
    assert batch["labels"][1, 4:].eq(IGNORE_INDEX).all()
    assert batch["attention_mask"].sum(1).tolist() == [7, 4]


def test_deterministic_progress_and_model_left_unchanged() -> None:
    model = tiny_llama()
    before = hash_state_dict(model)
    config = VeraConfig(r=16, target_modules=LLAMA_TARGETS)
    args = TrainingArgs(max_steps=4, batch_size=8, seed=3, eval_fraction=0.25)
    events: list[Progress] = []
    first = train(model, cyclic_corpus(32, 0), config, args, progress=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4] and events[0].total_steps == 4
    assert all(e.tokens_per_second > 0 for e in events)
    assert first.metrics["steps"] == 4 and "eval_loss" in first.metrics
    assert not vera_layers(model) and hash_state_dict(model) == before
    second = train(model, cyclic_corpus(32, 0), config, args)
    for key, value in first.vectors.items():
        assert torch.equal(value, second.vectors[key]), key


def test_cancellation_between_steps() -> None:
    model = tiny_llama()
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    config = VeraConfig(r=8, target_modules=["q_proj"])
    with pytest.raises(TrainingCancelled) as caught:
        train(
            model,
            cyclic_corpus(64, 0),
            config,
            TrainingArgs(batch_size=8),
            should_cancel=should_cancel,
        )
    assert caught.value.step == 2
    assert not vera_layers(model)


@pytest.mark.slow
def test_tiny_llama_causal_lm_loss_halves() -> None:
    model = tiny_llama()
    config = VeraConfig(r=64, target_modules=LLAMA_TARGETS)
    held_out = cyclic_corpus(32, seed=1)
    inject_vera(model, config)
    before = evaluate(model, encode(held_out, "causal-lm", None, 64), "causal-lm", 0)["eval_loss"]
    remove_vera(model)
    args = TrainingArgs(learning_rate=5e-2, epochs=4, batch_size=16, seed=0)
    result = train(model, cyclic_corpus(256, seed=0), config, args, eval_examples=held_out)
    assert result.metrics["eval_loss"] <= 0.5 * before, (before, result.metrics)
    # Warm start: a second run continues from the trained vectors.
    warm = train(
        model,
        cyclic_corpus(16, seed=2),
        config,
        TrainingArgs(max_steps=1, learning_rate=1e-9, batch_size=16),
        eval_examples=held_out,
        warm_start=result.vectors,
    )
    assert warm.metrics["eval_loss"] <= 0.5 * before
