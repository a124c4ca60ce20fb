"""Packed training: each member of a pack ends exactly where train() alone would (1e-5)."""

from __future__ import annotations

import random

import pytest
import torch

from registry.jobs.errors import UserInputError
from registry.vera.config import VeraConfig
from registry.vera.hashing import hash_state_dict
from registry.vera.inject import vera_layers
from registry.vera.packed import PackedTrainer
from registry.vera.train import BatchOrder, TrainingArgs, train

from .conftest import tiny_llama
from .test_train import CharTokenizer

# r=64 on d=32: train() takes its dense path (W0 + ΔW) for the larger batches, the pack
# always the factored one; both must agree.
CLS = VeraConfig(r=64, target_modules=["query", "value"], task="sequence-classification")
LM = VeraConfig(r=16, target_modules=["q_proj", "v_proj", "down_proj", "lm_head"])


def tiny_bert(num_labels: int = 2, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=num_labels,
        pad_token_id=0,
    )
    return BertForSequenceClassification(config).eval()


def relabelled(model, num_labels: int):
    """The same base with a `num_labels` head: what a worker loads for that user."""
    other = tiny_bert(num_labels)
    base = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier")}
    other.load_state_dict(base, strict=False)
    return other


def rows(count: int, num_labels: int, seed: int, longest: int = 12) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "input_ids": [rng.randrange(1, 64) for _ in range(rng.randint(3, longest))],
            "label": rng.randrange(num_labels),
        }
        for _ in range(count)
    ]


# Different data, label counts, rates, decay, schedules, warmup, batches, lengths, steps,
# clipping and seeds.
MEMBERS = {
    "a": (2, rows(10, 2, 1), TrainingArgs(epochs=2, batch_size=4, warmup_ratio=0.2, seed=1)),
    "b": (
        3,
        rows(7, 3, 2, longest=20),
        TrainingArgs(
            learning_rate=5e-2,
            weight_decay=0.01,
            schedule="cosine",
            warmup_ratio=0,
            batch_size=3,
            max_steps=5,
            max_grad_norm=None,
            seed=2,
        ),
    ),
    "c": (
        2,
        rows(12, 2, 3, longest=6),
        TrainingArgs(
            schedule="constant",
            batch_size=5,
            max_steps=3,
            max_grad_norm=0.05,
            seed=3,
            eval_fraction=0.2,
        ),
    ),
    "d": (
        4,
        rows(6, 4, 4),
        TrainingArgs(head_learning_rate=1e-2, learning_rate=1e-2, batch_size=2, seed=4),
    ),
}


def solo(model, key: str, members=MEMBERS, config=CLS):
    num_labels, data, args = members[key]
    return train(relabelled(model, num_labels), data, config, args)


def assert_same(packed, alone) -> None:
    assert packed.vectors.keys() == alone.vectors.keys()
    for name, value in alone.vectors.items():
        torch.testing.assert_close(packed.vectors[name], value, rtol=0, atol=1e-5, msg=name)


def run_to_end(pack: PackedTrainer, on_step=None) -> dict:
    finished, step = {}, 0
    while (report := pack.step()) is not None:
        step += 1
        finished |= report.finished
        if on_step is not None:
            on_step(step, report)
    return finished


def test_classification_members_equal_train_alone() -> None:
    model = tiny_bert()
    before = hash_state_dict(model)
    with PackedTrainer(model, CLS) as pack:
        for key, (num_labels, data, args) in MEMBERS.items():
            pack.add(key, data, args, num_labels=num_labels)
        assert pack.members["a"].total_steps == 6 and pack.members["b"].total_steps == 5
        finished = run_to_end(pack)
    assert not vera_layers(model) and hash_state_dict(model) == before
    assert set(finished) == set(MEMBERS)
    for key in MEMBERS:
        alone = solo(model, key)
        assert_same(finished[key], alone)
        assert finished[key].metrics["steps"] == alone.metrics["steps"]
        for name in ("eval_loss", "eval_accuracy"):  # "c" holds 20% out
            assert finished[key].metrics.get(name) == pytest.approx(
                alone.metrics.get(name), abs=1e-5
            )
    assert finished["d"].vectors["base_model.model.classifier.weight"].shape == (4, 32)
    assert "eval_loss" in finished["c"].metrics


def lm_rows(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    words = ["ab", "cde", "fg", "hij", "klm"]
    out = []
    for i in range(count):
        if i % 3 == 2:
            out.append({"text": " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))})
        else:
            prompt = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
            out.append({"prompt": prompt, "completion": rng.choice(words)})
    return out


@pytest.mark.parametrize("row_path", ["blocks", "gather"])
def test_causal_lm_members_equal_train_alone(row_path: str) -> None:
    model = tiny_llama()
    # Data seeds 1/2 instead would give one λd element (layers.1 down_proj) a gradient
    # of ~1.5e-8, Adam's eps, on its first non-zero step: AdamW then turns float32
    # rounding noise into a 3e-5 difference (train() in float32 is itself 8.5e-5 from
    # the same run in float64 there). Not a packing effect: a pack of one is bit-equal.
    members = {
        "p": (None, lm_rows(11, 9), TrainingArgs(batch_size=4, max_steps=4, seed=5)),
        "q": (
            None,
            lm_rows(12, 5),
            TrainingArgs(batch_size=2, epochs=1, learning_rate=5e-2, schedule="cosine", seed=6),
        ),
    }
    tokenizer = CharTokenizer()
    with PackedTrainer(model, LM, tokenizer=tokenizer, row_path=row_path) as pack:
        for key, (_, data, args) in members.items():
            pack.add(key, data, args)
        finished = run_to_end(pack)
    for key, (_, data, args) in members.items():
        assert_same(finished[key], train(model, data, LM, args, tokenizer=tokenizer))


def test_members_join_and_leave_without_disturbing_others() -> None:
    model = tiny_bert()

    def on_step(step, report):
        if step == 2:
            pack.remove("b")
        if step == 3:
            pack.add("d", MEMBERS["d"][1], MEMBERS["d"][2], num_labels=4)

    with PackedTrainer(model, CLS) as pack:
        for key in "ab":
            pack.add(key, MEMBERS[key][1], MEMBERS[key][2], num_labels=MEMBERS[key][0])
        finished = run_to_end(pack, on_step)
    assert set(finished) == {"a", "d"}
    for key in "ad":
        assert_same(finished[key], solo(model, key))


def test_a_member_failing_on_its_own_rows_leaves_the_others_equal() -> None:
    model = tiny_bert()
    # Longer than the model's 64 positions: the forward fails on this member's rows only.
    bad = [*rows(6, 2, 9), {"input_ids": list(range(1, 60)) * 2, "label": 0}]
    with PackedTrainer(model, CLS) as pack:
        pack.add("a", MEMBERS["a"][1], MEMBERS["a"][2])
        pack.add("bad", bad, TrainingArgs(batch_size=7, seed=0))
        pack.add("c", MEMBERS["c"][1], MEMBERS["c"][2])
        first = pack.step()
        assert set(first.failed) == {"bad"} and first.members == ["a", "c"]
        assert "bad" not in pack.members
        finished = run_to_end(pack) | first.finished
    for key in "ac":
        assert_same(finished[key], solo(model, key))


def test_batch_order_resumes_mid_run_exactly() -> None:
    whole = BatchOrder(10, 4, seed=7)
    expected = [whole.next() for _ in range(11)]
    for start in range(11):
        resumed = BatchOrder(10, 4, seed=7, start_step=start)
        assert [resumed.next() for _ in range(start, 11)] == expected[start:], start


@pytest.mark.parametrize("task", ["causal-lm", "classification"])
def test_a_pack_of_one_is_bit_identical_to_train(task: str) -> None:
    # Classification member "b" (3 rows × 20 tokens, r=64): train() goes dense there.
    if task == "causal-lm":
        model, config, data, args = tiny_llama(), LM, lm_rows(1, 9), TrainingArgs(max_steps=3)
        labels, tokenizer = None, CharTokenizer()
        alone = train(model, data, config, args, tokenizer=tokenizer)
    else:
        model, config, tokenizer = tiny_bert(), CLS, None
        labels, data, args = MEMBERS["b"]
        alone = solo(model, "b")
    with PackedTrainer(model, config, tokenizer=tokenizer) as pack:
        pack.add("p", data, args, num_labels=labels)
        packed = run_to_end(pack)["p"]
    for name, value in alone.vectors.items():
        assert torch.equal(packed.vectors[name], value), name


def test_bad_rows_are_refused_at_add_and_nothing_joins() -> None:
    model = tiny_bert()
    with PackedTrainer(model, CLS) as pack:
        with pytest.raises(UserInputError, match=r"labels outside 0\.\.1") as error:
            pack.add("x", rows(4, 3, 0), TrainingArgs(), num_labels=2)
        assert error.value.code == "label_out_of_range"
        with pytest.raises(UserInputError, match="encode to no tokens"):
            pack.add("y", [{"input_ids": [], "label": 0}], TrainingArgs())
        assert not pack.members and pack.step() is None


def test_token_budget_bounds_each_step_and_is_fair() -> None:
    model = tiny_bert()
    budget = 80  # a and b together (8 rows × ≤ 10); big alone exceeds it (8 × 20)
    big = [{"input_ids": [5] * 20, "label": 1} for _ in range(8)]
    members = {
        "a": (2, rows(8, 2, 1, longest=10), TrainingArgs(batch_size=4, max_steps=3, seed=1)),
        "b": (2, rows(8, 2, 2, longest=10), TrainingArgs(batch_size=4, max_steps=3, seed=2)),
        "big": (2, big, TrainingArgs(batch_size=8, max_steps=2, seed=3)),
    }
    reports = []
    with PackedTrainer(model, CLS, max_tokens_per_step=budget) as pack:
        for key, (_, data, args) in members.items():
            pack.add(key, data, args)
        finished = run_to_end(pack, lambda step, report: reports.append(report))
    for report in reports:
        assert report.padded_tokens <= budget or report.members == ["big"], report
    # Round robin: big waits one step, then runs alone while the others wait.
    assert [r.members for r in reports[:3]] == [["a", "b"], ["big"], ["a", "b"]]
    assert [r.members for r in reports[3:]] == [["big"], ["a", "b"]]
    for key in members:
        assert_same(finished[key], solo(model, key, members))


def test_checkpoint_then_resume_in_a_fresh_trainer_equals_uninterrupted() -> None:
    model = tiny_bert()
    saved = {}
    with PackedTrainer(model, CLS) as pack:
        for key in "ab":
            pack.add(key, MEMBERS[key][1], MEMBERS[key][2], num_labels=MEMBERS[key][0])
        for _ in range(3):
            pack.step()
        saved = {key: pack.checkpoint(key) for key in "ab"}
    assert torch.load(__import__("io").BytesIO(saved["a"]), weights_only=True)["step"] == 3
    with PackedTrainer(model, CLS) as pack:
        for key in "ab":
            num_labels, data, args = MEMBERS[key]
            member = pack.add(key, data, args, num_labels=num_labels, checkpoint=saved[key])
            assert member.step == 3
        finished = run_to_end(pack)
    for key in "ab":
        assert_same(finished[key], solo(model, key))
