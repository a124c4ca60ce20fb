"""Layers are discovered on the class each task trains; what a checkpoint can train."""

from __future__ import annotations

import pytest
import torch

from registry.vera.config import VeraConfig
from registry.vera.describe import (
    describe_base_model,
    describe_projection,
    layers_for,
    max_positions,
)
from registry.vera.inject import inject_vera
from registry.vera.train import TrainingArgs, train

from .conftest import tiny_llama

LM_HEAD_TARGETS = ["q_proj", "v_proj", "lm_head"]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def llama(llama_dir):
    return describe_base_model(llama_dir)


def test_lm_head_sizes_the_projection_the_worker_regenerates(llama, llama_dir) -> None:
    from transformers import AutoModelForCausalLM

    layers = layers_for(llama, "causal-lm")
    assert layers["lm_head"] == [64, 96] and "model.layers.0.self_attn.q_proj" in layers
    body = describe_projection(layers, LM_HEAD_TARGETS, 3, 8, "causal-lm")
    assert (body["max_d_in"], body["max_d_out"]) == (64, 96)  # vocab 96, not the backbone's 64
    model = AutoModelForCausalLM.from_pretrained(llama_dir)
    config = VeraConfig(r=8, target_modules=LM_HEAD_TARGETS, projection_prng_key=3)
    inject_vera(model, config, body["fingerprint"])  # no ProjectionMismatch


def test_a_regex_written_against_causal_lm_paths_matches(llama) -> None:
    regex = r"model\.layers\.\d+\.self_attn\.(q|v)_proj"
    body = describe_projection(layers_for(llama, "causal-lm"), regex, 3, 8, "causal-lm")
    assert (body["max_d_in"], body["max_d_out"]) == (64, 64)


def test_classification_layers_have_no_lm_head_and_never_the_fresh_head(llama) -> None:
    layers = layers_for(llama, "sequence-classification")
    assert "model.layers.1.mlp.down_proj" in layers
    assert "lm_head" not in layers and "score" not in layers
    assert llama["capabilities"]["max_positions"] == 64
    assert llama["capabilities"]["unsupported"] == {}


def test_the_training_runner_trains_lm_head_targets(llama, llama_dir) -> None:
    from transformers import AutoModelForCausalLM

    body = describe_projection(layers_for(llama, "causal-lm"), LM_HEAD_TARGETS, 3, 8, "causal-lm")
    model = AutoModelForCausalLM.from_pretrained(llama_dir)
    config = VeraConfig(r=8, target_modules=LM_HEAD_TARGETS, projection_prng_key=3)
    examples = [{"input_ids": [(i * 7 + j) % 96 for j in range(12)]} for i in range(8)]
    result = train(
        model,
        examples,
        config,
        TrainingArgs(max_steps=3, batch_size=4),
        expected_fingerprint=body["fingerprint"],
    )
    assert result.vectors["base_model.model.lm_head.vera_lambda_b"].shape == (96,)
    assert result.metrics["steps"] == 3


def test_gpt2_conv1d_and_tied_lm_head(tmp_path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=40)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    description = describe_base_model(tmp_path)
    assert description["capabilities"]["max_positions"] == 40
    layers = layers_for(description, "causal-lm")
    assert layers["transformer.h.0.attn.c_attn"] == [32, 96] and layers["lm_head"] == [32, 50]
    body = describe_projection(layers, ["c_proj", "lm_head"], 1, 4, "causal-lm")
    assert (body["max_d_in"], body["max_d_out"]) == (128, 50)
    model = GPT2LMHeadModel.from_pretrained(tmp_path)
    vera = VeraConfig(r=4, target_modules=["c_proj", "lm_head"], projection_prng_key=1)
    examples = [{"input_ids": [(i + j) % 50 for j in range(10)]} for i in range(4)]
    result = train(
        model, examples, vera, TrainingArgs(max_steps=2), expected_fingerprint=body["fingerprint"]
    )
    assert result.vectors["base_model.model.lm_head.vera_lambda_b"].shape == (50,)


def test_minilm_can_classify_but_has_no_lm_head(minilm_path) -> None:
    description = describe_base_model(minilm_path)
    capabilities = description["capabilities"]
    assert capabilities["max_positions"] == 512
    assert "causal-lm" not in capabilities["tasks"]
    assert "cls.predictions" in capabilities["unsupported"]["causal-lm"]
    layers = capabilities["tasks"]["sequence-classification"]["layers"]
    assert layers["bert.encoder.layer.0.attention.self.query"] == [384, 384]
    assert "classifier" not in layers
    # A regex written against the classification class's paths (`bert.` prefix) matches.
    regex = r"bert\.encoder\.layer\.\d+\.attention\.self\.(query|value)"
    task = "sequence-classification"
    body = describe_projection(layers_for(description, task), regex, 0, 8, task)
    assert (body["max_d_in"], body["max_d_out"]) == (384, 384)


def test_max_positions_leaves_out_roberta_padding_offset() -> None:
    from transformers import AutoModelForSequenceClassification, RobertaConfig

    config = RobertaConfig(max_position_embeddings=514, pad_token_id=1, num_hidden_layers=1)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    assert max_positions(model) == 512
