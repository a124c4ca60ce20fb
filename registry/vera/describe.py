"""What the registry records about a base model and a projection, computed locally."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .hashing import discover_layers, hash_safetensors_dir, max_dims
from .projection import GENERATOR_ID, fingerprint, generate_projection


def describe_base_model(path: str | Path) -> dict:
    """content_hash, architecture and every targetable linear layer of a local checkpoint."""
    from transformers import AutoConfig, AutoModel

    directory = Path(path)
    config = AutoConfig.from_pretrained(directory)
    # The meta device gives shapes without allocating or reading any weights.
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    layers = discover_layers(model, r".*")
    architectures = json.loads((directory / "config.json").read_text()).get("architectures")
    return {
        "name": directory.name,
        "content_hash": hash_safetensors_dir(directory),
        "architecture": (architectures or [type(model).__name__])[0],
        "layers": {p: [d_in, d_out] for p, (d_in, d_out) in layers.items()},
        "source_uri": str(directory.resolve()),
    }


def describe_projection(
    layers: dict[str, list[int]], target_modules: list[str] | str, seed: int, r: int
) -> dict:
    """The projection row for these targets: dims, generator id and fingerprint."""
    from .config import VeraConfig

    config = VeraConfig(target_modules=target_modules)
    matched = {p: tuple(d) for p, d in layers.items() if config.matches(p)}
    if not matched:
        raise ValueError(f"target_modules={target_modules!r} matches none of the layers")
    max_d_in, max_d_out = max_dims(matched)
    vera_a, vera_b = generate_projection(seed, r, max_d_in, max_d_out)
    return {
        "seed": seed,
        "r": r,
        "max_d_in": max_d_in,
        "max_d_out": max_d_out,
        "generator": GENERATOR_ID,
        "fingerprint": fingerprint(vera_a, vera_b),
        "torch_version": torch.__version__,
    }
