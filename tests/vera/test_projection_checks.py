"""The projection an adapter was made with must be ours; refusals name their cause."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from registry.vera.config import VeraConfig
from registry.vera.inject import adapter_state_dict, inject_vera
from registry.vera.peft_io import CONFIG_NAME, WEIGHTS_NAME, adapter_blob, load_peft
from registry.vera.projection import (
    ProjectionMismatch,
    fingerprint,
    generate_projection,
    regenerate_checked,
)

from .conftest import tiny_llama
from .test_layers import randomize_vectors

TARGETS = ["q_proj", "v_proj"]


def peft_checkpoint_on_bf16(directory, seed: int = 5):
    """A real PEFT VeRA adapter saved with save_projection=True from a bf16 base."""
    from peft import VeraConfig as PeftVeraConfig
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(
            tiny_llama().to(torch.bfloat16),
            PeftVeraConfig(
                r=8, target_modules=TARGETS, save_projection=True, projection_prng_key=seed
            ),
        )
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, parameter in peft_model.named_parameters():
                if "vera_lambda" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        peft_model.save_pretrained(directory)
    return peft_model.eval()


def test_peft_checkpoint_saved_on_a_bf16_base_loads(tmp_path) -> None:
    peft_model = peft_checkpoint_on_bf16(tmp_path)
    stored = load_file(tmp_path / WEIGHTS_NAME)["base_model.vera_A"]
    ours, _ = generate_projection(5, 8, 64, 64)
    # PEFT rounded A through bf16 (the base's dtype) and stored it as float32.
    assert not torch.equal(stored, ours) and torch.equal(stored, ours.bfloat16().float())
    model = tiny_llama().to(torch.bfloat16)
    adapter = load_peft(tmp_path, model)
    assert adapter.metadata["projection_fingerprint"] == model.vera_projection.fingerprint
    ids = torch.randint(0, 96, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours_logits, peft_logits = model(ids).logits, peft_model(ids).logits
    torch.testing.assert_close(ours_logits.float(), peft_logits.float(), rtol=0.05, atol=0.05)


def _damage(directory, damage: str) -> None:
    tensors = load_file(directory / WEIGHTS_NAME)
    vera_a = tensors["base_model.vera_A"]
    if damage == "seed":  # the config names another seed than the matrices were drawn with
        config = json.loads((directory / CONFIG_NAME).read_text())
        config["projection_prng_key"] = 6
        (directory / CONFIG_NAME).write_text(json.dumps(config))
    elif damage == "few values":
        vera_a[0, :3] += 0.01
    elif damage == "scaled":
        tensors["base_model.vera_A"] = vera_a * 3
    elif damage == "shape":
        tensors["base_model.vera_A"] = vera_a[:, :32].contiguous()
    save_file(tensors, directory / WEIGHTS_NAME)


@pytest.mark.parametrize(
    ("damage", "cause", "words"),
    [
        ("seed", "draw", "another random draw"),
        ("few values", "corrupted", "of its values differ"),
        ("scaled", "corrupted", "no kaiming-uniform draw"),
        ("shape", "shape", "another model or other targets"),
    ],
)
def test_a_stored_projection_that_is_not_ours_is_refused_with_its_cause(
    tmp_path, damage, cause, words
) -> None:
    peft_checkpoint_on_bf16(tmp_path)
    _damage(tmp_path, damage)
    model = tiny_llama()
    with pytest.raises(ProjectionMismatch, match=words) as caught:
        load_peft(tmp_path, model)
    assert caught.value.cause == cause
    assert not hasattr(model, "vera_projection")  # left as it came


def test_an_injected_model_refuses_a_blob_with_another_fingerprint() -> None:
    config = VeraConfig(r=8, target_modules=TARGETS)
    source = tiny_llama()
    inject_vera(source, config)
    randomize_vectors(source)
    wrong = "sha256:" + "0" * 64
    blob = adapter_blob(
        source, base_model_hash="sha256:x", projection_fingerprint=wrong, identity={}
    )
    target = tiny_llama()
    inject_vera(target, config)
    before = adapter_state_dict(target)
    with pytest.raises(ProjectionMismatch, match=wrong) as caught:
        load_peft(blob, target)
    assert caught.value.cause == "fingerprint"
    after = adapter_state_dict(target)
    assert all(torch.equal(before[key], after[key]) for key in before)  # nothing loaded
    right = source.vera_projection.fingerprint
    good = adapter_blob(
        source, base_model_hash="sha256:x", projection_fingerprint=right, identity={}
    )
    load_peft(good, target)


def test_a_recorded_fingerprint_mismatch_names_the_candidates_not_only_torch() -> None:
    vera_a, vera_b = generate_projection(5, 8, 10, 12)
    with pytest.raises(ProjectionMismatch, match="other parameters") as caught:
        regenerate_checked(5, 8, 10, 12, fingerprint(*generate_projection(6, 8, 10, 12)))
    assert caught.value.cause == "fingerprint"
    rounded = fingerprint(vera_a.bfloat16(), vera_b.bfloat16())
    with pytest.raises(ProjectionMismatch, match="rounded to bfloat16") as caught:
        regenerate_checked(5, 8, 10, 12, rounded)
    assert caught.value.cause == "rounding"
