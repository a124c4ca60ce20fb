"""A VeRA adapter as LoRA: exact rank-r factors per layer, or a truncated SVD to rank k.

VeRA's update of a layer is ΔW = Λb B Λd A (Kopiczko et al., 2024, eq. 1) with A sliced to
the layer's d_in and B to its d_out: a product of a (d_out × r) and an (r × d_in) matrix,
which is exactly a rank-r LoRA with lora_B = Λb B[:d_out] Λd, lora_A = A[:, :d_in] and
scaling 1 (lora_alpha = r). A smaller rank k keeps the k largest singular directions of ΔW
(Eckart–Young: the best rank-k approximation in Frobenius norm), computed from the two
factors through QR so that no d_out × d_in matrix is ever formed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import torch
from safetensors.torch import save as save_bytes

from .config import PEFT_TASK_TYPES, VeraConfig
from .inject import PEFT_PREFIX
from .peft_io import read_adapter
from .projection import regenerate_checked

LAMBDA_B, LAMBDA_D = ".vera_lambda_b", ".vera_lambda_d"


@dataclass
class LoraFactors:
    """Per adapted layer (module path): lora_B (d_out × k) and lora_A (k × d_in), float32."""

    config: VeraConfig
    rank: int
    b: dict[str, torch.Tensor] = field(default_factory=dict)
    a: dict[str, torch.Tensor] = field(default_factory=dict)
    heads: dict[str, torch.Tensor] = field(default_factory=dict)  # PEFT-named head tensors
    errors: dict[str, float] = field(default_factory=dict)  # ‖ΔW − ΔW_k‖_F / ‖ΔW‖_F


def exact_factors(
    blob: bytes, layers: dict[str, list[int]], projection: tuple[int, int, int, int, str]
) -> LoraFactors:
    """The rank-r LoRA equal to the blob's VeRA adapter. `layers` gives each module path's
    [d_in, d_out]; `projection` is (seed, r, max_d_in, max_d_out, fingerprint) as recorded."""
    adapter = read_adapter(blob)
    seed, r, max_d_in, max_d_out, recorded = projection
    config = adapter.config
    if (config.r, config.projection_prng_key) != (r, seed):
        raise ValueError(
            f"the blob's adapter config has r={config.r}, seed={config.projection_prng_key}; "
            f"its projection record has r={r}, seed={seed}"
        )
    vera_a, vera_b = regenerate_checked(seed, r, max_d_in, max_d_out, recorded)
    factors = LoraFactors(config, r)
    for key, tensor in sorted(adapter.vectors.items()):
        if key.endswith(LAMBDA_D):
            continue
        if not key.endswith(LAMBDA_B):
            factors.heads[key] = tensor
            continue
        path = key.removeprefix(PEFT_PREFIX).removesuffix(LAMBDA_B)
        if path not in layers:
            raise ValueError(f"the adapter adapts {path!r}, which the base model does not list")
        d_in, d_out = layers[path]
        lambda_b = tensor.float()
        lambda_d = adapter.vectors[f"{PEFT_PREFIX}{path}{LAMBDA_D}"].float()
        if lambda_b.numel() != d_out:
            raise ValueError(f"{path}: λb has {lambda_b.numel()} values, the layer's d_out={d_out}")
        factors.a[path] = vera_a[:, :d_in].clone()  # own storage: safetensors refuses shared
        factors.b[path] = (lambda_b[:, None] * vera_b[:d_out, :] * lambda_d[None, :]).contiguous()
        factors.errors[path] = 0.0
    return factors


def truncate(factors: LoraFactors, rank: int) -> LoraFactors:
    """Every layer cut to its best rank-`rank` approximation, with its relative error."""
    if not 1 <= rank <= factors.rank:
        raise ValueError(f"rank must be between 1 and r={factors.rank}, got {rank}")
    cut = LoraFactors(factors.config, rank, heads=dict(factors.heads))
    for path in factors.b:
        cut.b[path], cut.a[path], cut.errors[path] = _truncated(
            factors.b[path], factors.a[path], rank
        )
    return cut


def _truncated(b: torch.Tensor, a: torch.Tensor, rank: int):
    # ΔW = b a = (Qb Rb)(Qa Ra)ᵀ = Qb (Rb Raᵀ) Qaᵀ: the SVD of the small middle matrix is
    # the SVD of ΔW, in float64 so the reported error is the true one to ~1e-12.
    q_b, r_b = torch.linalg.qr(b.double())
    q_a, r_a = torch.linalg.qr(a.double().T)
    u, s, vh = torch.linalg.svd(r_b @ r_a.T)
    kept = min(rank, s.numel())
    root = s[:kept].sqrt()
    new_b = torch.zeros(b.shape[0], rank, dtype=torch.float64)
    new_a = torch.zeros(rank, a.shape[1], dtype=torch.float64)
    new_b[:, :kept] = (q_b @ u[:, :kept]) * root
    new_a[:kept] = root[:, None] * (vh[:kept] @ q_a.T)
    total = float(s.square().sum())
    error = math.sqrt(float(s[kept:].square().sum()) / total) if total > 0 else 0.0
    return new_b.float().contiguous(), new_a.float().contiguous(), error


def lora_files(
    factors: LoraFactors,
    base_model_name_or_path: str,
    fan_in_fan_out: bool,
    extra_config: dict,
) -> dict[str, bytes]:
    """adapter_config.json + adapter_model.safetensors of a PEFT LoRA folder. `extra_config`
    keys (labels, the export's own record) are ones PEFT's LoraConfig ignores on load."""
    config = factors.config
    tensors = dict(factors.heads)
    for path in factors.b:
        tensors[f"{PEFT_PREFIX}{path}.lora_A.weight"] = factors.a[path]
        tensors[f"{PEFT_PREFIX}{path}.lora_B.weight"] = factors.b[path]
    peft_config = {
        "peft_type": "LORA",
        "task_type": PEFT_TASK_TYPES[config.task],
        "base_model_name_or_path": base_model_name_or_path,
        "r": factors.rank,
        "lora_alpha": factors.rank,  # scaling = lora_alpha / r = 1: ΔW = lora_B lora_A
        "target_modules": config.target_modules,
        "lora_dropout": 0.0,
        "fan_in_fan_out": fan_in_fan_out,
        "bias": "none",
        "modules_to_save": config.modules_to_save,
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "inference_mode": True,
        "revision": None,
        **extra_config,
    }
    return {
        "adapter_config.json": json.dumps(peft_config, indent=2, sort_keys=True).encode(),
        "adapter_model.safetensors": save_bytes(
            {k: v.contiguous() for k, v in sorted(tensors.items())}, metadata={"format": "pt"}
        ),
    }


def conv1d_paths(model_config: dict, task: str, paths: list[str]) -> set[str]:
    """The paths among `paths` that are transformers Conv1D layers (weights stored
    d_in × d_out, GPT-2), found on a meta-device model built from config.json."""
    from transformers import AutoConfig
    from transformers.pytorch_utils import Conv1D

    from .describe import task_model_class

    config_dict = dict(model_config)
    config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    with torch.device("meta"):
        model = task_model_class(task).from_config(config)
    return {path for path in paths if isinstance(model.get_submodule(path), Conv1D)}
