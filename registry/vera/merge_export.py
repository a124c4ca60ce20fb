"""A base model folder with an adapter merged into its weights, written as a zip.

W' = W + ΔW per adapted layer (ΔW = lora_B lora_A, exact: `lora_export.exact_factors`),
transposed for Conv1D layers, which store (d_in × d_out); a classifier's trained head joins
the checkpoint. One safetensors file is in memory at a time; the zip is written to disk.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .inject import PEFT_PREFIX
from .lora_export import LoraFactors

INDEX_SUFFIX = ".safetensors.index.json"


def _tensor_files(folder: Path, files: list[str]) -> dict[str, str]:
    """{tensor name: manifest path of the safetensors file holding it}."""
    names: dict[str, str] = {}
    for rel in files:
        if rel.endswith(".safetensors"):
            with safe_open(folder / rel, "pt") as handle:
                names.update(dict.fromkeys(handle.keys(), rel))
    return names


def _weight_names(paths: list[str], names: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """{module path: tensor name} and the task model's prefix the checkpoint lacks, if any:
    module paths are the task model's (`bert.encoder…`), a backbone checkpoint's names are
    not prefixed (`encoder…`)."""
    found, missing_prefix = {}, None
    for path in paths:
        if f"{path}.weight" in names:
            found[path] = f"{path}.weight"
            continue
        prefix, _, rest = path.partition(".")
        if rest and f"{rest}.weight" in names:
            found[path], missing_prefix = f"{rest}.weight", prefix
            continue
        raise ValueError(f"the base model's weights hold no tensor for layer {path!r}")
    return found, missing_prefix


def write_merged_zip(
    folder: Path,
    files: list[str],
    factors: LoraFactors,
    conv1d: set[str],
    config_updates: dict,
    out: Path,
) -> None:
    """The base model's files (`files`, manifest paths under `folder`) into the zip `out`,
    the adapter merged in; config.json gets `config_updates` (a classifier's labels)."""
    names = _tensor_files(folder, files)
    targets, prefix = _weight_names(list(factors.b), names)
    heads = {key.removeprefix(PEFT_PREFIX): tensor for key, tensor in factors.heads.items()}
    # A backbone checkpoint plus a head would load with the head dropped (transformers adds
    # the prefix to every name, the head's too): write a full task-model checkpoint instead.
    rename = (lambda name: f"{prefix}.{name}") if prefix and heads else (lambda name: name)
    head_file = next((rel for rel in files if rel.endswith(".safetensors")), None)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel in files:
            source = folder / rel
            if rel.endswith(".safetensors"):
                tensors = load_file(source)
                for path, name in targets.items():
                    if names[name] == rel:
                        tensors[name] = _merged(tensors[name], factors, path, path in conv1d)
                tensors = {rename(name): tensor for name, tensor in tensors.items()}
                if rel == head_file:
                    tensors.update(heads)
                merged = out.with_name(out.name + ".part")
                save_file(tensors, merged, metadata={"format": "pt"})
                del tensors
                archive.write(merged, rel, compress_type=zipfile.ZIP_STORED)
                merged.unlink()
            elif rel == "config.json" and config_updates:
                config = {**json.loads(source.read_text()), **config_updates}
                archive.writestr(rel, json.dumps(config, indent=2, sort_keys=True))
            elif rel.endswith(INDEX_SUFFIX):
                index = json.loads(source.read_text())
                weight_map = {rename(k): v for k, v in index.get("weight_map", {}).items()}
                weight_map.update(dict.fromkeys(heads, head_file))
                archive.writestr(rel, json.dumps({**index, "weight_map": weight_map}, indent=2))
            else:
                archive.write(source, rel)


def _merged(weight: torch.Tensor, factors: LoraFactors, path: str, conv1d: bool) -> torch.Tensor:
    delta = factors.b[path] @ factors.a[path]  # (d_out × d_in), float32
    if conv1d:
        delta = delta.T
    if tuple(delta.shape) != tuple(weight.shape):
        raise ValueError(
            f"layer {path!r}: the base weight is {tuple(weight.shape)}, the adapter's update "
            f"{tuple(delta.shape)}"
        )
    return (weight.float() + delta).to(weight.dtype)
