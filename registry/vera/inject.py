"""Put VeRA into a transformers model, take it out, merge it; read and write its vectors.

The model stays the caller's transformers model (its forward, generate and heads work as
before); the adapted linear layers are replaced in place by `VeraLinear` and one
`SharedProjection` is attached as the submodule `vera_projection`.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from .config import VeraConfig, max_dims, target_matches
from .hashing import discover_layers
from .layers import SharedProjection, VeraLinear
from .projection import fingerprint, generate_projection, regenerate_checked

PEFT_PREFIX = "base_model.model."


def vera_layers(model: nn.Module) -> dict[str, VeraLinear]:
    """{module path: VeraLinear} of an injected model."""
    return {path: m for path, m in model.named_modules() if isinstance(m, VeraLinear)}


def head_modules(model: nn.Module, config: VeraConfig) -> dict[str, nn.Module]:
    """The `modules_to_save` modules, matched as PEFT does (the path or its last parts)."""
    names = config.modules_to_save or []
    found = {}
    for path, module in model.named_modules():
        if path and names and target_matches(names, path):
            found[path] = module
    return found


def _replace(model: nn.Module, path: str, new_module: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, new_module)


def _build_projection(
    model: nn.Module, config: VeraConfig, expected_fingerprint: str | None
) -> tuple[SharedProjection, dict[str, tuple[int, int]]]:
    layers = discover_layers(model, config.target_modules, config.modules_to_save or ())
    max_d_in, max_d_out = max_dims(layers)
    key = config.projection_prng_key
    if expected_fingerprint is None:
        vera_a, vera_b = generate_projection(key, config.r, max_d_in, max_d_out)
    else:
        vera_a, vera_b = regenerate_checked(
            key, config.r, max_d_in, max_d_out, expected_fingerprint
        )
    projection = SharedProjection(vera_a, vera_b, key, fingerprint(vera_a, vera_b))
    return projection, layers


# Output projections sit next to q/k/v (or gate/up) but read a different tensor.
_OUTPUT_PROJECTIONS = {"o_proj", "out_proj", "down_proj", "c_proj", "wo", "dense_4h_to_h"}


def _set_input_sharing(layers: dict[str, VeraLinear]) -> None:
    """Guess which layers read the same input (q, k, v under one parent).

    Only the dense-vs-factored choice uses this guess; results never depend on it, since
    the A x cache itself is keyed by the actual input tensor.
    """

    def group(path: str, layer: VeraLinear) -> tuple[str, int, str]:
        parent, _, name = path.rpartition(".")
        return parent, layer.d_in, name if name in _OUTPUT_PROJECTIONS else ""

    sizes = Counter(group(path, layer) for path, layer in layers.items())
    for path, layer in layers.items():
        layer.input_sharing = sizes[group(path, layer)]


def inject_vera(
    model: nn.Module, config: VeraConfig, expected_fingerprint: str | None = None
) -> dict[str, VeraLinear]:
    """Adapt `model` in place: base frozen, λd = d_initial, λb = 0, heads trainable.

    With `expected_fingerprint`, the regenerated A/B must match it (ProjectionMismatch).
    """
    if hasattr(model, "vera_projection"):
        raise ValueError("model already has VeRA injected; call remove_vera first")
    projection, layers = _build_projection(model, config, expected_fingerprint)
    device = next(model.parameters()).device
    projection.to(device)
    model.requires_grad_(False)
    for path in layers:
        base = model.get_submodule(path)
        _replace(model, path, VeraLinear(base, projection, config.d_initial, config.vera_dropout))
    _set_input_sharing(vera_layers(model))
    for head in head_modules(model, config).values():
        head.requires_grad_(True)
    model.add_module("vera_projection", projection)
    # The A x cache lives for one forward of the whole model.
    hooks = [
        model.register_forward_pre_hook(lambda *_: projection.clear_cache()),
        model.register_forward_hook(lambda *_: projection.clear_cache()),
    ]
    object.__setattr__(model, "_vera_hooks", hooks)
    object.__setattr__(model, "vera_config", config)
    return vera_layers(model)


def remove_vera(model: nn.Module, merge: bool = False) -> nn.Module:
    """Put the base layers back (with ΔW folded in when `merge`); heads keep their weights."""
    for path, layer in vera_layers(model).items():
        if merge:
            layer.merge()
        elif layer.merged:
            layer.unmerge()
        _replace(model, path, layer.base_layer)
    for hook in getattr(model, "_vera_hooks", []):
        hook.remove()
    for attribute in ("_vera_hooks", "vera_config"):
        model.__dict__.pop(attribute, None)
    if hasattr(model, "vera_projection"):
        del model.vera_projection
    return model


def merge_vera(model: nn.Module) -> None:
    for layer in vera_layers(model).values():
        layer.merge()


def unmerge_vera(model: nn.Module) -> None:
    for layer in vera_layers(model).values():
        layer.unmerge()


def set_adapter_enabled(model: nn.Module, enabled: bool) -> None:
    for layer in vera_layers(model).values():
        layer.adapter_enabled = enabled


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """{PEFT name: live tensor} of an injected model: each layer's λ vectors and the heads'
    parameters and buffers (PEFT saves a modules_to_save copy under the module's own path)."""
    config: VeraConfig = model.vera_config
    named = {}
    for path, layer in vera_layers(model).items():
        for name in ("vera_lambda_b", "vera_lambda_d"):
            named[f"{PEFT_PREFIX}{path}.{name}"] = getattr(layer, name)
    for path, head in head_modules(model, config).items():
        for name, tensor in head.state_dict(keep_vars=True).items():
            named[f"{PEFT_PREFIX}{path}.{name}"] = tensor
    return named


def detached_copies(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU copies of PEFT-named tensors, the λ vectors in float32 (what gets saved)."""
    state = {}
    for key, tensor in named.items():
        tensor = tensor.detach()
        if key.endswith(("vera_lambda_b", "vera_lambda_d")):
            tensor = tensor.float()
        state[key] = tensor.cpu().clone()
    return state


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained tensors under PEFT's names, detached copies on the CPU (λ in float32)."""
    return detached_copies(adapter_tensors(model))


def load_adapter_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy PEFT-named vectors (and heads) into an injected model; names and shapes must match."""
    copy_adapter_state(adapter_tensors(model), state)


def copy_adapter_state(targets: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
    """Copy PEFT-named `state` into `targets` ({PEFT name: tensor}): the same names, shapes."""
    missing = sorted(set(targets) - set(state))
    unexpected = sorted(set(state) - set(targets))
    if missing or unexpected:
        raise KeyError(f"adapter keys differ: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with torch.no_grad():
        for key, value in state.items():
            target = targets[key]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"{key}: adapter has shape {tuple(value.shape)}, model expects "
                    f"{tuple(target.shape)}"
                )
            target.copy_(value.to(target.dtype))
