"""learning_rate "auto": candidates, the pick by held-out loss, and that it pays off on a
real public corpus (Rotten Tomatoes snippets, tests/vera/rotten_tomatoes.py) with MiniLM."""

from __future__ import annotations

import math

import pytest

from registry.jobs.errors import UserInputError
from registry.vera import auto_lr
from registry.vera.train import TrainingArgs, TrainingResult


def _result(eval_loss: float, eval_accuracy: float = 0.5) -> TrainingResult:
    return TrainingResult({}, {}, {"eval_loss": eval_loss, "eval_accuracy": eval_accuracy})


def test_expand_makes_one_member_per_candidate_differing_only_in_rate() -> None:
    args = TrainingArgs(learning_rate=auto_lr.AUTO, batch_size=8, seed=7, eval_fraction=0.2)
    members = auto_lr.expand("job-1", args)
    assert [key for key, _ in members] == [
        f"job-1#lr{i}" for i in range(len(auto_lr.CANDIDATE_RATES))
    ]
    assert [a.learning_rate for _, a in members] == list(auto_lr.CANDIDATE_RATES)
    for _, member_args in members:
        assert member_args.batch_size == 8 and member_args.seed == 7
        assert member_args.eval_fraction == 0.2
    assert args.learning_rate == auto_lr.AUTO  # the job's own args are left alone
    no_split = auto_lr.expand("j", TrainingArgs(learning_rate=auto_lr.AUTO, eval_fraction=0))
    assert {a.eval_fraction for _, a in no_split} == {auto_lr.AUTO_EVAL_FRACTION}


def test_pick_keeps_the_lowest_held_out_loss_and_lists_every_candidate() -> None:
    members = auto_lr.expand("j", TrainingArgs(learning_rate=auto_lr.AUTO))
    keys = [key for key, _ in members]
    results = {
        keys[0]: _result(0.61, 0.70),
        keys[1]: _result(0.42, 0.81),
        keys[2]: _result(float("nan")),  # diverged: listed as null, never chosen
    }
    choice = auto_lr.pick(members, results, failed={keys[3]: RuntimeError("boom")})
    assert choice.key == keys[1] and choice.result is results[keys[1]]
    assert choice.metrics["learning_rate"] == auto_lr.CANDIDATE_RATES[1]
    assert choice.metrics["eval_loss"] == 0.42  # the winner's own metrics, unchanged
    listed = choice.metrics["learning_rate_auto"]
    assert listed["picked_by"] == "eval_loss"
    assert listed["candidates"] == [
        {"learning_rate": auto_lr.CANDIDATE_RATES[0], "eval_loss": 0.61, "eval_accuracy": 0.70},
        {"learning_rate": auto_lr.CANDIDATE_RATES[1], "eval_loss": 0.42, "eval_accuracy": 0.81},
        {"learning_rate": auto_lr.CANDIDATE_RATES[2], "eval_loss": None, "eval_accuracy": 0.5},
        {"learning_rate": auto_lr.CANDIDATE_RATES[3], "error": "boom"},
    ]
    tie = {keys[2]: _result(0.5), keys[1]: _result(0.5)}
    assert auto_lr.pick(members, tie).key == keys[1]  # equal losses: the lower rate


def test_pick_without_a_finished_candidate_says_why() -> None:
    members = auto_lr.expand("j", TrainingArgs(learning_rate=auto_lr.AUTO))
    keys = [key for key, _ in members]
    bad_rows = UserInputError("rows [3] encode to no tokens", code="empty_rows")
    with pytest.raises(UserInputError) as raised:
        auto_lr.pick(members, {}, failed=dict.fromkeys(keys, bad_rows))
    assert raised.value is bad_rows
    with pytest.raises(ValueError, match="no learning-rate candidate finished"):
        auto_lr.pick(members, {keys[0]: _result(math.inf)})
