"""What the registry records about a base model and a projection, computed locally."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from registry.base_models.manifest import manifest_hash, scan_folder

from .hashing import discover_layers, hash_safetensors_dir, max_dims
from .projection import GENERATOR_ID, fingerprint, generate_projection


def describe_base_model(path: str | Path) -> dict:
    """The registration body of a local checkpoint: its manifest (every file's sha256, the
    tensor hash, the content hash over both), architecture and targetable linear layers."""
    from transformers import AutoConfig, AutoModel

    directory = Path(path)
    config = AutoConfig.from_pretrained(directory)
    # The meta device gives shapes without allocating or reading any weights.
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    layers = discover_layers(model, r".*")
    architectures = json.loads((directory / "config.json").read_text()).get("architectures")
    weights_hash = hash_safetensors_dir(directory)
    files = scan_folder(directory)
    return {
        "name": directory.name,
        "content_hash": manifest_hash(weights_hash, files),
        "weights_hash": weights_hash,
        "files": [asdict(f) for f in files],
        "architecture": (architectures or [type(model).__name__])[0],
        "layers": {p: [d_in, d_out] for p, (d_in, d_out) in layers.items()},
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
