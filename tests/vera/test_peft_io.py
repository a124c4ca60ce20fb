"""PEFT interoperability both ways (MiniLM classifier, tiny Llama), and the registry blob."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from registry.vera.config import VeraConfig
from registry.vera.hashing import hash_state_dict
from registry.vera.inject import adapter_state_dict, inject_vera
from registry.vera.peft_io import (
    adapter_blob,
    load_peft,
    read_adapter,
    read_blob_metadata,
    save_peft,
)

from .conftest import tiny_llama
from .test_layers import randomize_vectors

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def minilm_classifier(path, seed: int = 0):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)  # the fresh head differs per seed; the adapter carries it
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=3).eval()


def minilm_batch():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (3, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def peft_logits(base, directory, batch):
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = PeftModel.from_pretrained(base, directory).eval()
    with torch.no_grad():
        return peft_model(**batch).logits


def test_minilm_ours_to_peft(minilm_path, tmp_path) -> None:
    model = minilm_classifier(minilm_path)
    config = VeraConfig(r=32, target_modules=["query", "value"], task="sequence-classification")
    inject_vera(model, config)
    randomize_vectors(model, scale=0.3)
    batch = minilm_batch()
    with torch.no_grad():
        ours = model(**batch).logits
    save_peft(model, tmp_path, base_model_name_or_path=str(minilm_path))
    written = json.loads((tmp_path / "adapter_config.json").read_text())
    assert written["peft_type"] == "VERA" and written["save_projection"] is False
    assert written["task_type"] == "SEQ_CLS" and written["target_modules"] == ["query", "value"]
    theirs = peft_logits(minilm_classifier(minilm_path, seed=1), tmp_path, batch)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)


def peft_trained_adapter(base, peft_config, batch, labels_or_none, directory):
    """A few AdamW steps of PEFT's own VeRA, saved by PEFT."""
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(base, peft_config)
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=5e-2)
    for _ in range(3):
        out = peft_model(**batch, labels=labels_or_none)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        logits = peft_model(**batch).logits
    peft_model.save_pretrained(directory)
    return logits


def test_minilm_peft_to_ours(minilm_path, tmp_path) -> None:
    from peft import VeraConfig as PeftVeraConfig

    batch = minilm_batch()
    peft_config = PeftVeraConfig(
        r=32, target_modules=["query", "value"], task_type="SEQ_CLS", save_projection=False
    )
    labels = torch.tensor([0, 2, 1])
    expected = peft_trained_adapter(
        minilm_classifier(minilm_path), peft_config, batch, labels, tmp_path
    )
    model = minilm_classifier(minilm_path, seed=1)
    load_peft(tmp_path, model)
    assert model.vera_config.task == "sequence-classification"
    with torch.no_grad():
        ours = model(**batch).logits
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


LLAMA_TARGETS = ["q_proj", "v_proj", "up_proj", "down_proj"]


def test_llama_ours_to_peft(tmp_path) -> None:
    model = tiny_llama()
    inject_vera(model, VeraConfig(r=16, target_modules=LLAMA_TARGETS, projection_prng_key=7))
    randomize_vectors(model, scale=0.5)
    ids = torch.randint(0, 96, (2, 9))
    with torch.no_grad():
        ours = model(ids).logits
    save_peft(model, tmp_path)
    theirs = peft_logits(tiny_llama(), tmp_path, {"input_ids": ids})
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)


def test_llama_peft_to_ours(tmp_path) -> None:
    from peft import VeraConfig as PeftVeraConfig

    ids = torch.randint(0, 96, (2, 9))
    peft_config = PeftVeraConfig(
        r=16,
        target_modules=LLAMA_TARGETS,
        projection_prng_key=11,
        save_projection=False,
        task_type="CAUSAL_LM",
    )
    batch = {"input_ids": ids}
    expected = peft_trained_adapter(tiny_llama(), peft_config, batch, ids, tmp_path)
    model = tiny_llama()
    load_peft(tmp_path, model)
    with torch.no_grad():
        ours = model(ids).logits
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_peft_key_names(tmp_path) -> None:
    from peft import VeraConfig as PeftVeraConfig
    from peft import get_peft_model
    from peft.utils import get_peft_model_state_dict

    config = VeraConfig(r=8, target_modules=LLAMA_TARGETS)
    model = tiny_llama()
    inject_vera(model, config)
    ours = adapter_state_dict(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(
            tiny_llama(), PeftVeraConfig(r=8, target_modules=LLAMA_TARGETS, save_projection=False)
        )
    theirs = get_peft_model_state_dict(peft_model)
    assert set(ours) == set(theirs)


def test_blob_round_trip(tmp_path) -> None:
    model = tiny_llama()
    base_hash = hash_state_dict(model)
    config = VeraConfig(r=8, target_modules=["q_proj", "v_proj"], projection_prng_key=3)
    inject_vera(model, config)
    randomize_vectors(model)
    identity = {"tenant": "t1", "user_id": "alice", "adapter": "default", "version": "4"}
    blob = adapter_blob(
        model,
        base_model_hash=base_hash,
        projection_fingerprint=model.vera_projection.fingerprint,
        identity=identity,
    )
    metadata = read_blob_metadata(blob)
    assert metadata["format_version"] == "1" and metadata["base_model_hash"] == base_hash
    assert read_adapter(blob).identity == identity
    # Deterministic bytes: the registry content-addresses them.
    assert blob == adapter_blob(
        adapter_state_dict(model),
        config=config,
        base_model_hash=base_hash,
        projection_fingerprint=model.vera_projection.fingerprint,
        identity=dict(reversed(identity.items())),
    )
    fresh = tiny_llama()
    load_peft(blob, fresh, expected_base_hash=base_hash)
    ids = torch.randint(0, 96, (1, 6))
    torch.testing.assert_close(fresh(ids).logits, model(ids).logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match="trained on base"):
        load_peft(blob, tiny_llama(), expected_base_hash="sha256:" + "0" * 64)


def test_blob_with_wrong_fingerprint_is_refused() -> None:
    from registry.vera.projection import ProjectionMismatch

    model = tiny_llama()
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj"]))
    blob = adapter_blob(
        model, base_model_hash="sha256:x", projection_fingerprint="sha256:bad", identity={}
    )
    with pytest.raises(ProjectionMismatch):
        load_peft(blob, tiny_llama())


def test_shape_mismatch_is_named(tmp_path) -> None:
    model = tiny_llama()
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj"]))
    vectors = adapter_state_dict(model)
    key = next(k for k in vectors if k.endswith("vera_lambda_d"))
    vectors[key] = torch.zeros(9)
    save_peft(vectors, tmp_path, config=model.vera_config)
    with pytest.raises(ValueError, match=r"shape \(9,\).*\(8,\)"):
        load_peft(tmp_path, model)


def test_peft_reads_the_blob_bytes(tmp_path) -> None:
    model = tiny_llama()
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    randomize_vectors(model)
    blob = adapter_blob(model, base_model_hash="sha256:x", projection_fingerprint="f", identity={})
    save_peft(model, tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(blob)
    ids = torch.randint(0, 96, (1, 6))
    with torch.no_grad():
        ours = model(ids).logits
    torch.testing.assert_close(peft_logits(tiny_llama(), tmp_path, {"input_ids": ids}), ours)


def test_peft_adapter_with_saved_projection_is_checked(tmp_path) -> None:
    from peft import VeraConfig as PeftVeraConfig
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(
            tiny_llama(), PeftVeraConfig(r=8, target_modules=["q_proj"], save_projection=True)
        )
    peft_model.save_pretrained(tmp_path)
    adapter = load_peft(tmp_path, tiny_llama())
    assert adapter.metadata["projection_fingerprint"].startswith("sha256:")
