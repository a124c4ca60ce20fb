"""What the registry records about a base model and a projection, computed locally."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from registry.errors import Invalid

from .hashing import discover_layers, hash_safetensors_dir, max_dims
from .projection import GENERATOR_ID, fingerprint, generate_projection


def _not_a_model(directory: Path, why: str) -> Invalid:
    return Invalid(
        f"{directory} is not a model folder: {why} (a folder written by transformers' "
        "save_pretrained(..., safe_serialization=True) is)",
        code="not_a_model",
        details={"path": str(directory)},
    )


def check_model_folder(directory: Path) -> None:
    """Raise Invalid (not a traceback) unless `directory` holds a config.json that names a
    model type and *.safetensors weights."""
    if not directory.is_dir():
        raise _not_a_model(directory, "no such folder")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise _not_a_model(directory, "it has no config.json")
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, OSError) as exc:
        raise _not_a_model(directory, f"config.json is not readable JSON ({exc})") from exc
    if not isinstance(config, dict) or not config.get("model_type"):
        raise _not_a_model(directory, "config.json names no model_type")
    if not any(directory.glob("*.safetensors")):
        raise _not_a_model(directory, "it has no *.safetensors weights")


def describe_base_model(path: str | Path) -> dict:
    """content_hash, architecture and every targetable linear layer of a local checkpoint."""
    from transformers import AutoConfig, AutoModel

    directory = Path(path)
    check_model_folder(directory)
    try:
        config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError) as exc:  # e.g. a model_type this transformers does not know
        raise _not_a_model(directory, str(exc).splitlines()[0]) from exc
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
