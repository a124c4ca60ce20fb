"""Injection, freezing, merge/unmerge/remove, half-precision bases, and the fast paths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from registry.vera.config import VeraConfig
from registry.vera.inject import (
    adapter_state_dict,
    inject_vera,
    merge_vera,
    remove_vera,
    set_adapter_enabled,
    unmerge_vera,
    vera_layers,
)
from registry.vera.layers import dense_flops, factored_flops

from .conftest import tiny_llama

TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]


def randomize_vectors(model, seed: int = 0, scale: float = 0.5) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in vera_layers(model).values():
            for vector in (layer.vera_lambda_d, layer.vera_lambda_b):
                vector.copy_(torch.randn(vector.shape, generator=generator) * scale)


def test_inject_freezes_base_and_starts_at_the_base() -> None:
    model = tiny_llama()
    ids = torch.randint(0, 96, (2, 7))
    expected = model(ids).logits
    layers = inject_vera(model, VeraConfig(r=16, target_modules=TARGETS, d_initial=0.1))
    assert len(layers) == 10
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("vera_lambda_d", "vera_lambda_b")) for n in trainable)
    layer = layers["model.layers.0.self_attn.v_proj"]
    assert (layer.d_in, layer.d_out) == (64, 32)
    assert torch.equal(layer.vera_lambda_d, torch.full((16,), 0.1))
    assert torch.equal(layer.vera_lambda_b, torch.zeros(32))
    # A is 16 × max_d_in (96, down_proj), B is max_d_out (96, up_proj) × 16.
    assert tuple(model.vera_projection.vera_A.shape) == (16, 96)
    assert tuple(model.vera_projection.vera_B.shape) == (96, 16)
    torch.testing.assert_close(model(ids).logits, expected, rtol=0, atol=1e-6)


def test_merge_unmerge_remove_and_disable() -> None:
    model = tiny_llama()
    ids = torch.randint(0, 96, (2, 7))
    base = model(ids).logits
    inject_vera(model, VeraConfig(r=16, target_modules=TARGETS))
    randomize_vectors(model)
    adapted = model(ids).logits
    assert (adapted - base).abs().max() > 1e-2
    set_adapter_enabled(model, False)
    torch.testing.assert_close(model(ids).logits, base, rtol=0, atol=1e-6)
    set_adapter_enabled(model, True)
    merge_vera(model)
    torch.testing.assert_close(model(ids).logits, adapted, rtol=1e-5, atol=1e-5)
    unmerge_vera(model)
    torch.testing.assert_close(model(ids).logits, adapted, rtol=1e-5, atol=1e-5)
    remove_vera(model)
    assert not vera_layers(model) and not hasattr(model, "vera_projection")
    torch.testing.assert_close(model(ids).logits, base, rtol=1e-5, atol=1e-5)


def test_remove_with_merge_keeps_the_adaptation() -> None:
    model = tiny_llama()
    ids = torch.randint(0, 96, (1, 5))
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    randomize_vectors(model, seed=3)
    adapted = model(ids).logits
    remove_vera(model, merge=True)
    assert type(model.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    torch.testing.assert_close(model(ids).logits, adapted, rtol=1e-5, atol=1e-5)


def test_bf16_base_keeps_fp32_vectors_and_projection() -> None:
    model = tiny_llama().to(torch.bfloat16)
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    randomize_vectors(model)
    layer = model.model.layers[0].self_attn.q_proj
    before = {name: tensor.clone() for name, tensor in _adapter_tensors(model, layer).items()}
    parameter = layer.vera_lambda_b
    model.to(torch.bfloat16)  # must neither round A/B, the vectors nor the bank
    after = _adapter_tensors(model, layer)
    assert {name: t.dtype for name, t in after.items()} == dict.fromkeys(before, torch.float32)
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name
    assert layer.vera_lambda_b is parameter  # an optimizer holding it stays valid
    assert layer.base_layer.weight.dtype == torch.bfloat16
    x = torch.randn(2, 3, 64, dtype=torch.bfloat16)
    out = layer(x)
    assert out.dtype == torch.bfloat16
    # Reference: base output in bf16 plus the adapter path in fp32, rounded once.
    vera_a = model.vera_projection.vera_A[:, :64]
    vera_b = model.vera_projection.vera_B[:64]
    lambda_d, lambda_b = layer.vera_lambda_d.float(), layer.vera_lambda_b.float()
    delta = lambda_b * F.linear(lambda_d * F.linear(x.float(), vera_a), vera_b)
    torch.testing.assert_close(out, (layer.base_layer(x) + delta).to(torch.bfloat16))


def _adapter_tensors(model, layer) -> dict[str, torch.Tensor]:
    from registry.vera.bank import AdapterBank

    if layer.bank_lambda_d.shape[0] == 0:
        bank = AdapterBank(model, capacity=2)
        bank.put("alice", {k: v + 0.123456789 for k, v in adapter_state_dict(model).items()})
    return {
        "vera_A": model.vera_projection.vera_A,
        "vera_B": model.vera_projection.vera_B,
        "vera_lambda_d": layer.vera_lambda_d,
        "vera_lambda_b": layer.vera_lambda_b,
        "bank_lambda_d": layer.bank_lambda_d,
        "bank_lambda_b": layer.bank_lambda_b,
    }


@pytest.mark.parametrize("convert", ["half", "float64"])
def test_vectors_never_drop_below_float32(convert) -> None:
    model = tiny_llama()
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj"]))
    layer = model.model.layers[0].self_attn.q_proj
    _adapter_tensors(model, layer)
    model.half() if convert == "half" else model.to(torch.float64)
    expected = torch.float32 if convert == "half" else torch.float64
    for name in ("vera_lambda_d", "vera_lambda_b", "bank_lambda_d", "bank_lambda_b"):
        assert getattr(layer, name).dtype == expected, name


def plain_vera(x, weight, bias, vera_a, vera_b, lambda_d, lambda_b):
    """The paper's formula, nothing shared, nothing merged."""
    return F.linear(x, weight, bias) + lambda_b * ((lambda_d * (x @ vera_a.T)) @ vera_b.T)


@pytest.mark.parametrize("path", ["factored", "dense", "auto"])
def test_fast_paths_give_the_plain_gradients_fp64(path) -> None:
    torch.manual_seed(0)
    model = tiny_llama().double()
    inject_vera(model, VeraConfig(r=32, target_modules=["q_proj", "k_proj", "v_proj"]))
    model.vera_projection.vera_A = model.vera_projection.vera_A.double()
    model.vera_projection.vera_B = model.vera_projection.vera_B.double()
    randomize_vectors(model, seed=1)
    attention = model.model.layers[0].self_attn
    layers = [attention.q_proj, attention.k_proj, attention.v_proj]
    for layer in layers:
        layer.compute_path = path
    x = torch.randn(3, 5, 64, dtype=torch.float64, requires_grad=True)
    # Shared input: the A x cache hands q, k and v the same projected tensor.
    outs = [layer(x) for layer in layers]
    loss = sum((out**2).sum() * (i + 1) for i, out in enumerate(outs))
    vectors = [p for layer in layers for p in (layer.vera_lambda_d, layer.vera_lambda_b)]
    grads = torch.autograd.grad(loss, [x, *vectors])
    model.vera_projection.clear_cache()

    x_ref = x.detach().clone().requires_grad_(True)
    params = []
    ref_loss = 0
    for i, layer in enumerate(layers):
        lambda_d = layer.vera_lambda_d.detach().clone().requires_grad_(True)
        lambda_b = layer.vera_lambda_b.detach().clone().requires_grad_(True)
        params += [lambda_d, lambda_b]
        out = plain_vera(
            x_ref,
            layer.base_layer.weight,
            layer.base_layer.bias,
            model.vera_projection.vera_A[:, :64],
            model.vera_projection.vera_B[: layer.d_out],
            lambda_d,
            lambda_b,
        )
        torch.testing.assert_close(outs[i], out, rtol=1e-10, atol=1e-10)
        ref_loss = ref_loss + (out**2).sum() * (i + 1)
    ref_grads = torch.autograd.grad(ref_loss, [x_ref, *params])
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_input_projection_is_computed_once_for_q_k_v() -> None:
    model = tiny_llama()
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj"]))
    projection = model.vera_projection
    calls = []
    original = F.linear

    def counting(x, weight, bias=None):
        if weight.shape[0] == 8:  # a product with A (r rows)
            calls.append(tuple(x.shape))
        return original(x, weight, bias)

    for layer in vera_layers(model).values():
        layer.compute_path = "factored"
    ids = torch.randint(0, 96, (2, 6))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(F, "linear", counting)
        model(ids)
    assert len(calls) == 2  # one per decoder layer, not three
    assert not projection._input_cache  # cleared after the forward


def test_flop_model_picks_dense_for_large_rank() -> None:
    tokens = 32 * 128
    # MiniLM query+value (d = 384, shared input): r = 1024 dense, r = 16 factored.
    assert dense_flops(tokens, 384, 384, 1024, True) < factored_flops(
        tokens, 384, 384, 1024, 2, True
    )
    assert dense_flops(tokens, 384, 384, 16, True) > factored_flops(tokens, 384, 384, 16, 2, True)


def test_errors_name_shapes() -> None:
    from registry.vera.layers import SharedProjection, VeraLinear
    from registry.vera.projection import generate_projection

    projection = SharedProjection(*generate_projection(0, 4, 8, 8), seed=0, fingerprint="x")
    with pytest.raises(ValueError, match=r"d_in=16, d_out=8.*\(4, 8\)"):
        VeraLinear(torch.nn.Linear(16, 8), projection)


def test_forward_under_inference_mode_matches_no_grad() -> None:
    model = tiny_llama(seed=4)
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj"]))
    randomize_vectors(model)
    ids = torch.randint(0, 96, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    with torch.inference_mode():
        got = model(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
