"""Content hash of base-model weights, and discovery of the layers VeRA can adapt.

The hash is sha256 over every tensor in name order; for each tensor we feed
`name \\0 dtype \\0 shape \\0 <8-byte little-endian byte length> <raw bytes>`, where dtype is
torch's name without the `torch.` prefix ("float32", "bfloat16") and shape is comma-joined.
It is therefore independent of sharding, of the order tensors sit in files, and of
in-memory layout, and it changes if any single value changes.

This is a base model's `weights_hash`, the one a loaded model can be checked against. Its
`content_hash`, the identity adapters bind to, also covers config, tokenizer and every other
file of the folder: `registry/base_models/manifest.py`.

Canonical names, so that a checkpoint directory and the model loaded from it agree:

* A leading `<base_model_prefix>.` ("bert.", "model.") is stripped from every name that has
  it: the same backbone is stored with the prefix by `BertForSequenceClassification` and
  without it by `BertModel` (sentence-transformers checkpoints such as MiniLM).
* Tied / shared tensors count once, under the name a checkpoint keeps: transformers drops
  the tied copy (`lm_head.weight` tied to `model.embed_tokens.weight`) when it saves.
* Heads that a task creates fresh and trains with the adapter (`classifier`, `score` of a
  `*ForSequenceClassification` model) are not part of the base and are left out.
* `position_ids` index buffers are skipped: older checkpoints stored them (MiniLM does),
  current transformers neither saves nor loads them — they are derived from the config,
  not weights.
* An injected model hashes its base weights: VeRA vectors are skipped and the
  `.base_layer` hop of our wrapper is removed.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .config import SEQ_CLS_HEAD_NAMES


def _feed(digest: hashlib._Hash, name: str, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().to("cpu").contiguous()
    dtype = str(tensor.dtype).removeprefix("torch.")
    shape = ",".join(str(size) for size in tensor.shape)
    raw = tensor.reshape(-1).view(torch.uint8).numpy()
    digest.update(f"{name}\0{dtype}\0{shape}\0".encode())
    digest.update(struct.pack("<Q", raw.nbytes))
    digest.update(raw)


def _hash_named(names: Iterable[str], get_tensor) -> str:
    digest = hashlib.sha256()
    for name in sorted(names):
        _feed(digest, name, get_tensor(name))
    return "sha256:" + digest.hexdigest()


# transformers ignores these on load for the same reason (`modeling_utils`, position_ids).
_NOT_WEIGHTS = re.compile(r"(^|\.)position_ids$")


def _canonical(name: str, prefix: str | None) -> str:
    name = name.replace(".base_layer.", ".")
    if prefix and name.startswith(prefix + "."):
        return name[len(prefix) + 1 :]
    return name


def _model_tensors(model: nn.Module, exclude: Sequence[str]) -> dict[str, torch.Tensor]:
    tied_copies = set(getattr(model, "all_tied_weights_keys", None) or {})
    by_storage: dict[tuple, list[str]] = {}
    state = model.state_dict()
    for name, tensor in state.items():
        if (
            _NOT_WEIGHTS.search(name)
            or "vera_lambda" in name
            or any(re.match(rf"{re.escape(e)}(\.|$)", name) for e in exclude)
        ):
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        by_storage.setdefault(key, []).append(name)
    kept = {}
    for names in by_storage.values():
        # Keep the name a checkpoint keeps: not the tied copy; otherwise the first in order.
        originals = [n for n in sorted(names) if n not in tied_copies] or sorted(names)
        kept[originals[0]] = state[originals[0]]
    return kept


def hash_state_dict(model: nn.Module, exclude: Sequence[str] | None = None) -> str:
    """`sha256:<hex>` of a loaded model's base weights (see the module docstring)."""
    if exclude is None:
        is_seq_cls = type(model).__name__.endswith("ForSequenceClassification")
        exclude = SEQ_CLS_HEAD_NAMES if is_seq_cls else ()
    prefix = getattr(model, "base_model_prefix", None)
    tensors = _model_tensors(model, exclude)
    canonical = {}
    for name, tensor in tensors.items():
        new_name = _canonical(name, prefix)
        if new_name in canonical:
            raise ValueError(f"two tensors map to the name {new_name!r} after prefix stripping")
        canonical[new_name] = tensor
    return _hash_named(canonical, canonical.__getitem__)


def _prefix_from_config(directory: Path) -> str | None:
    config_path = directory / "config.json"
    if not config_path.exists():
        return None
    architectures = json.loads(config_path.read_text()).get("architectures") or []
    import transformers

    for architecture in architectures:
        model_class = getattr(transformers, architecture, None)
        if model_class is not None:
            return model_class.base_model_prefix
    return None


def _checkpoint_tensors(directory: Path, prefix: str | None) -> dict[str, tuple[Path, str]]:
    """{canonical name: (file, stored name)} of a directory of *.safetensors files."""
    from safetensors import safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {directory}")
    location: dict[str, tuple[Path, str]] = {}
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if _NOT_WEIGHTS.search(name):
                    continue
                canonical = _canonical(name, prefix)
                if canonical in location:
                    raise ValueError(f"tensor {canonical!r} is stored twice in {directory}")
                location[canonical] = (file, name)
    return location


def missing_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Canonical names of the model's weights that the checkpoint at `path` lacks: what
    `from_pretrained` would initialise at random (tied copies are not missing)."""
    prefix = getattr(model, "base_model_prefix", None)
    stored = _checkpoint_tensors(Path(path), prefix)
    tied_copies = set(getattr(model, "all_tied_weights_keys", None) or {})
    wanted = {
        _canonical(name, prefix)
        for name in model.state_dict()
        if name not in tied_copies and not _NOT_WEIGHTS.search(name)
    }
    return sorted(wanted - set(stored))


def hash_safetensors_dir(path: str | Path, base_model_prefix: str | None = None) -> str:
    """`sha256:<hex>` of the weights in a directory of *.safetensors files.

    Tensors are read one at a time (memory-mapped by safetensors), so the weights are
    never held in memory at once. The prefix to strip is read from config.json's
    `architectures` unless given.
    """
    from safetensors import safe_open

    directory = Path(path)
    location = _checkpoint_tensors(directory, base_model_prefix or _prefix_from_config(directory))

    def read(canonical: str) -> torch.Tensor:
        file, name = location[canonical]
        with safe_open(file, framework="pt") as handle:
            return handle.get_tensor(name)

    return _hash_named(location, read)


def linear_shape(module: nn.Module) -> tuple[int, int] | None:
    """(d_in, d_out) of a layer VeRA can adapt, else None."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):
        d_in, d_out = module.weight.shape  # Conv1D stores (fan_in, fan_out)
        return d_in, d_out
    return None


def linear_layers(model: nn.Module) -> dict[str, tuple[int, int]]:
    """{module path: (d_in, d_out)} of every layer VeRA can adapt (our wrapper seen through)."""
    layers = {}
    for path, module in model.named_modules():
        if path.endswith(".base_layer"):
            continue  # counted under its wrapper's path, as PEFT names it
        shape = linear_shape(getattr(module, "base_layer", module))
        if path and shape is not None:
            layers[path] = shape
    return layers


def discover_layers(
    model: nn.Module, target_modules: list[str] | str, modules_to_save: Sequence[str] = ()
) -> dict[str, tuple[int, int]]:
    """{module path: (d_in, d_out)} of the linear layers matched by PEFT's rules."""
    from .config import VeraConfig

    config = VeraConfig(target_modules=target_modules, modules_to_save=list(modules_to_save))
    layers = config.select(linear_layers(model))
    if not layers:
        raise ValueError(f"target_modules={target_modules!r} matches no linear layer")
    return layers
