"""What the registry records about a base model and a projection, computed locally."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from registry.base_models.manifest import manifest_hash, scan_folder
from registry.errors import Invalid

from .capabilities import task_layers, unsupported_reason
from .config import TASK_CAUSAL_LM, TASK_SEQUENCE_CLASSIFICATION, TASKS, VeraConfig, max_dims
from .hashing import hash_safetensors_dir, linear_layers, missing_weights
from .projection import GENERATOR_ID, fingerprint, generate_projection

# The transformers class each task trains: layer paths differ between them
# (`model.layers.0…` and `lm_head` in LlamaForCausalLM, `layers.0…` in LlamaModel).
TASK_MODEL_CLASSES = {
    TASK_CAUSAL_LM: "AutoModelForCausalLM",
    TASK_SEQUENCE_CLASSIFICATION: "AutoModelForSequenceClassification",
}


def task_model_class(task: str):
    """The transformers auto class that loads a model for `task`."""
    import transformers

    return getattr(transformers, TASK_MODEL_CLASSES[task])


def max_positions(model: nn.Module) -> int | None:
    """The longest input the model's position embeddings cover (None: no fixed limit)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return None
    # RoBERTa-style embeddings number positions from padding_idx + 1 (514 rows, 512 usable).
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    offset = getattr(embeddings, "padding_idx", None)
    return limit - offset - 1 if isinstance(offset, int) else limit


def model_layers(model: nn.Module, task: str) -> dict[str, list[int]]:
    """Every layer a `task` adapter may target: the task's fresh head is trained, not adapted."""
    selected = VeraConfig(target_modules=".*", task=task).select(linear_layers(model))
    return {path: list(dims) for path, dims in selected.items()}


def loaded_capabilities(model: nn.Module, task: str) -> dict[str, Any]:
    """The capabilities of a model loaded for `task` (a worker checks a job against these)."""
    return {
        "max_positions": max_positions(model),
        "tasks": {task: {"layers": model_layers(model, task)}},
        "unsupported": {},
    }


def describe_capabilities(directory: Path, config) -> dict[str, Any]:
    """Per task: the layers of the class it trains, or why the checkpoint cannot train it."""
    tasks, unsupported, limit = {}, {}, None
    for task in TASKS:
        try:
            # The meta device gives shapes and names without allocating or reading weights.
            with torch.device("meta"):
                model = task_model_class(task).from_config(config)
        except ValueError:  # no such class for this architecture
            unsupported[task] = f"transformers has no {TASK_MODEL_CLASSES[task]} for it"
            continue
        limit = max_positions(model)
        reason = unsupported_reason(task, missing_weights(model, directory))
        if reason:
            unsupported[task] = reason
        else:
            tasks[task] = {"layers": model_layers(model, task)}
    return {"max_positions": limit, "tasks": tasks, "unsupported": unsupported}


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
    """The registration body of a local checkpoint: its manifest (every file's sha256, the
    tensor hash, the content hash over both), architecture, the backbone's linear layers and,
    per task, what it can train (see `registry.vera.capabilities`)."""
    from transformers import AutoConfig, AutoModel

    directory = Path(path)
    check_model_folder(directory)
    try:
        config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError) as exc:  # e.g. a model_type this transformers does not know
        raise _not_a_model(directory, str(exc).splitlines()[0]) from exc
    # The meta device gives shapes without allocating or reading any weights.
    with torch.device("meta"):
        backbone = AutoModel.from_config(config)
    architectures = json.loads((directory / "config.json").read_text()).get("architectures")
    weights_hash = hash_safetensors_dir(directory)
    files = scan_folder(directory)
    return {
        "name": directory.name,
        "content_hash": manifest_hash(weights_hash, files),
        "weights_hash": weights_hash,
        "files": [asdict(f) for f in files],
        "architecture": (architectures or [type(backbone).__name__])[0],
        "layers": {p: list(dims) for p, dims in linear_layers(backbone).items()},
        "capabilities": describe_capabilities(directory, config),
    }


def default_task(description: dict) -> str:
    """The task a projection is sized on when none is named: the first the model can train."""
    supported = (description.get("capabilities") or {}).get("tasks") or {}
    return next((task for task in TASKS if task in supported), TASK_CAUSAL_LM)


def layers_for(description: dict, task: str) -> dict[str, list[int]]:
    """The layers a `task` job targets: the task's own when recorded, else the backbone's."""
    capabilities = description.get("capabilities")
    if capabilities is None:
        return description["layers"]
    layers = task_layers(capabilities, task)
    if layers is None:
        reason = capabilities.get("unsupported", {}).get(task, "not described")
        raise ValueError(f"this model cannot train {task}: {reason}")
    return layers


def describe_projection(
    layers: dict[str, list[int]],
    target_modules: list[str] | str,
    seed: int,
    r: int,
    task: str = TASK_CAUSAL_LM,
) -> dict:
    """The projection row for these targets over `layers` (those of the task's model class,
    see `layers_for`): dims, generator id and fingerprint."""
    matched = VeraConfig(target_modules=target_modules, task=task).select(layers)
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
