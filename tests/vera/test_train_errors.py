"""The training loop names input it cannot train on as the user's error (UserInputError)."""

from __future__ import annotations

import pytest

from registry.jobs.errors import UserInputError
from registry.vera.config import VeraConfig
from registry.vera.train import TrainingArgs, train

from .conftest import tiny_llama

CONFIG = VeraConfig(r=8, target_modules=["q_proj", "v_proj"])


def test_rows_that_encode_to_nothing_are_a_user_error() -> None:
    rows = [{"input_ids": [5, 6, 7]}, {"input_ids": []}]
    with pytest.raises(UserInputError, match=r"rows \[1\].*encode to no tokens") as error:
        train(tiny_llama(), rows, CONFIG, TrainingArgs(max_steps=1, eval_fraction=0))
    assert error.value.code == "empty_rows"


def test_a_split_that_leaves_nothing_to_train_on_is_a_user_error() -> None:
    rows = [{"input_ids": [5, 6, 7]}]
    with pytest.raises(UserInputError, match="eval_fraction") as error:
        train(tiny_llama(), rows, CONFIG, TrainingArgs(max_steps=1, eval_fraction=0.5))
    assert error.value.code == "too_few_rows"
