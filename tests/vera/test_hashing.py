"""Base-model content hash (model vs checkpoint directory) and target discovery."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from registry.vera.config import max_dims
from registry.vera.hashing import discover_layers, hash_safetensors_dir, hash_state_dict

from .conftest import tiny_llama


@pytest.mark.parametrize("tied", [False, True])
def test_saved_and_loaded_model_hash_alike(tmp_path, tied) -> None:
    from transformers import LlamaForCausalLM

    model = tiny_llama(tie_word_embeddings=tied)
    # Small shards: the hash must not depend on how the weights are split across files.
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    from_dir = hash_safetensors_dir(tmp_path)
    assert from_dir.startswith("sha256:") and len(from_dir) == 7 + 64
    assert hash_state_dict(model) == from_dir
    reloaded = LlamaForCausalLM.from_pretrained(tmp_path)
    assert hash_state_dict(reloaded) == from_dir


def test_one_changed_value_changes_the_hash(tmp_path) -> None:
    model = tiny_llama()
    before = hash_state_dict(model)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[3, 5] += 1e-3
    assert hash_state_dict(model) != before


def test_hash_ignores_tensor_order_and_hashes_dtype(tmp_path) -> None:
    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4)}
    save_file(tensors, tmp_path / "one.safetensors")
    other = tmp_path / "other"
    other.mkdir()
    save_file({"a": tensors["a"]}, other / "x.safetensors")
    save_file({"b": tensors["b"]}, other / "y.safetensors")
    assert hash_safetensors_dir(tmp_path) == hash_safetensors_dir(other)
    save_file({"a": tensors["a"], "b": tensors["b"].double()}, other / "y.safetensors")
    (other / "x.safetensors").unlink()
    assert hash_safetensors_dir(tmp_path) != hash_safetensors_dir(other)


def test_minilm_directory_and_models_agree(minilm_path) -> None:
    from transformers import AutoModel, AutoModelForSequenceClassification

    from_dir = hash_safetensors_dir(minilm_path)
    # The checkpoint is a BertModel (no "bert." prefix); the classifier adds the prefix
    # and a fresh head, neither of which is part of the base.
    assert hash_state_dict(AutoModel.from_pretrained(minilm_path)) == from_dir
    classifier = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    assert hash_state_dict(classifier) == from_dir


def test_injected_model_hashes_its_base() -> None:
    from registry.vera.config import VeraConfig
    from registry.vera.inject import inject_vera

    model = tiny_llama()
    before = hash_state_dict(model)
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    assert hash_state_dict(model) == before


def test_discover_layers_list_and_regex() -> None:
    model = tiny_llama()
    layers = discover_layers(model, ["q_proj", "v_proj"])
    assert layers == {
        f"model.layers.{i}.self_attn.{name}": shape
        for i in range(2)
        for name, shape in (("q_proj", (64, 64)), ("v_proj", (64, 32)))
    }
    regex = discover_layers(model, r".*\.1\.mlp\.(up|down)_proj")
    assert regex == {
        "model.layers.1.mlp.up_proj": (64, 96),
        "model.layers.1.mlp.down_proj": (96, 64),
    }
    assert max_dims(regex) == (96, 96)
    # A list entry matches whole trailing names only; a regex must match the whole path.
    with pytest.raises(ValueError, match="matches no linear layer"):
        discover_layers(model, ["proj"])
    with pytest.raises(ValueError, match="matches no linear layer"):
        discover_layers(model, "q_proj")


def test_discover_layers_skips_modules_to_save(minilm_path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    every_dense = discover_layers(model, ["dense", "classifier"], modules_to_save=["classifier"])
    assert "classifier" not in every_dense and len(every_dense) == 6 * 3 + 1  # + pooler
