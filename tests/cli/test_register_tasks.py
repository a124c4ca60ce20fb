"""`base-models register` records what the checkpoint can train and sizes the projection
on the class the task trains (lm_head lives only on the causal-LM class)."""

from __future__ import annotations

import pytest

from tests.workers.test_job_fit import tiny_llama_with_tokenizer

pytest.importorskip("torch")


def test_register_sizes_lm_head_targets_on_the_causal_lm_class(cli, tmp_path):
    path = tiny_llama_with_tokenizer(tmp_path / "tiny-llama")
    targets = "q_proj,v_proj,lm_head"
    registered = cli.json("base-models", "register", str(path), "--r", "8", "--targets", targets)
    projection = registered["projection"]
    assert (projection["max_d_in"], projection["max_d_out"]) == (64, 96)  # vocab 96
    capabilities = registered["base_model"]["capabilities"]
    assert capabilities["max_positions"] == 64
    assert "lm_head" in capabilities["tasks"]["causal-lm"]["layers"]
    wrong = cli(
        "base-models",
        "register",
        str(path),
        "--task",
        "sequence-classification",
        "--targets",
        "lm_head",
        ok=False,
    )
    assert wrong.exit_code == 2 and "matches none" in wrong.output
