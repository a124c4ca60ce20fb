"""PEFT-format save/load, and the registry's adapter blob (safetensors bytes + metadata).

A saved directory is exactly what `PeftModel.from_pretrained` reads: adapter_config.json
(peft_type VERA, save_projection false) and adapter_model.safetensors with PEFT's tensor
names. The blob is the same safetensors payload; its header metadata also carries the
format version, base model hash, projection fingerprint, the adapter config and the
adapter's identity, so the bytes are self-describing. No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import load_file, save_file
from torch import nn

from .config import VeraConfig
from .inject import adapter_state_dict, inject_vera, load_adapter_state_dict, remove_vera
from .projection import ProjectionMismatch, check_stored

BLOB_FORMAT_VERSION = "1"
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


@dataclass
class LoadedAdapter:
    config: VeraConfig
    vectors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    # A and B as a PEFT checkpoint saved with save_projection=True stores them.
    stored_projection: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def identity(self) -> dict[str, str]:
        return json.loads(self.metadata.get("adapter_identity", "{}"))


def _vectors_and_config(
    model_or_vectors: nn.Module | dict[str, torch.Tensor], config: VeraConfig | None
) -> tuple[dict[str, torch.Tensor], VeraConfig]:
    if isinstance(model_or_vectors, nn.Module):
        return adapter_state_dict(model_or_vectors), config or model_or_vectors.vera_config
    if config is None:
        raise ValueError("saving bare vectors needs their VeraConfig")
    return model_or_vectors, config


def _contiguous(vectors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in sorted(vectors.items())}


def save_peft(
    model_or_vectors: nn.Module | dict[str, torch.Tensor],
    directory: str | Path,
    config: VeraConfig | None = None,
    base_model_name_or_path: str | None = None,
) -> Path:
    """Write adapter_config.json + adapter_model.safetensors, loadable by PEFT."""
    vectors, config = _vectors_and_config(model_or_vectors, config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    peft_config = config.to_peft_dict(base_model_name_or_path)
    (directory / CONFIG_NAME).write_text(json.dumps(peft_config, indent=2, sort_keys=True))
    save_file(_contiguous(vectors), directory / WEIGHTS_NAME, metadata={"format": "pt"})
    return directory


def adapter_blob(
    model_or_vectors: nn.Module | dict[str, torch.Tensor],
    *,
    base_model_hash: str,
    projection_fingerprint: str,
    identity: dict[str, str],
    config: VeraConfig | None = None,
    base_model_name_or_path: str | None = None,
) -> bytes:
    """The bytes the registry stores: PEFT-named tensors, registry facts in the header."""
    vectors, config = _vectors_and_config(model_or_vectors, config)
    bad = {k: type(v).__name__ for k, v in identity.items() if not isinstance(v, str)}
    if bad:
        raise TypeError(f"identity values must be strings, got {bad}")
    metadata = {
        "format": "pt",  # what transformers/PEFT expect in a safetensors header
        "format_version": BLOB_FORMAT_VERSION,
        "base_model_hash": base_model_hash,
        "projection_fingerprint": projection_fingerprint,
        "adapter_config": json.dumps(config.to_peft_dict(base_model_name_or_path), sort_keys=True),
        "adapter_identity": json.dumps(identity, sort_keys=True),
    }
    return serialize_safetensors(_contiguous(vectors), metadata)


_DTYPE_CODES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def serialize_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with a canonical header (sorted keys, compact JSON).

    safetensors' own writer orders the metadata map arbitrarily, so the same adapter
    could give different bytes and different content addresses; this writer does not.
    """
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        if tensor.dtype not in _DTYPE_CODES:
            raise TypeError(f"{name}: dtype {tensor.dtype} cannot be stored in an adapter blob")
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _DTYPE_CODES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    return len(encoded).to_bytes(8, "little") + encoded + b"".join(chunks)


def read_blob_metadata(blob: bytes) -> dict[str, str]:
    """The header metadata of a blob, without reading its tensors."""
    header_size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + header_size])
    return header.get("__metadata__", {})


def read_adapter(source: str | Path | bytes) -> LoadedAdapter:
    """A PEFT directory or a registry blob, as config + PEFT-named tensors + metadata."""
    if isinstance(source, bytes | bytearray):
        metadata = read_blob_metadata(bytes(source))
        if metadata.get("format_version") != BLOB_FORMAT_VERSION:
            raise ValueError(
                f"blob format_version {metadata.get('format_version')!r}, "
                f"expected {BLOB_FORMAT_VERSION!r}"
            )
        config = VeraConfig.from_peft_dict(json.loads(metadata["adapter_config"]))
        return LoadedAdapter(config, load_bytes(bytes(source)), metadata)
    directory = Path(source)
    config = VeraConfig.from_peft_dict(json.loads((directory / CONFIG_NAME).read_text()))
    vectors = load_file(directory / WEIGHTS_NAME)
    stored = None
    if "base_model.vera_A" in vectors and "base_model.vera_B" in vectors:
        # Saved with save_projection=True: load_peft checks them against ours (check_stored).
        stored = vectors.pop("base_model.vera_A"), vectors.pop("base_model.vera_B")
    return LoadedAdapter(config, vectors, {}, stored)


def load_peft(
    source: str | Path | bytes,
    model: nn.Module,
    expected_base_hash: str | None = None,
) -> LoadedAdapter:
    """Load an adapter into `model`, injecting VeRA first if it is not there yet.

    The projection must be the adapter's: a blob's recorded fingerprint must be the model's
    (regenerated and checked when injecting here), a PEFT checkpoint's stored A/B must be
    ours up to their rounding (`check_stored`); `expected_base_hash` (if given) must equal
    the blob's base model hash. On any refusal a model injected here is left as it came.
    """
    adapter = read_adapter(source)
    recorded_base = adapter.metadata.get("base_model_hash")
    if expected_base_hash and recorded_base and recorded_base != expected_base_hash:
        raise ValueError(
            f"adapter was trained on base {recorded_base}, this base is {expected_base_hash}"
        )
    recorded = adapter.metadata.get("projection_fingerprint")
    injected_here = not hasattr(model, "vera_projection")
    if injected_here:
        inject_vera(model, adapter.config, recorded)
    try:
        _check_same_adapter_shape(model.vera_config, adapter.config)
        projection = model.vera_projection
        if recorded and recorded != projection.fingerprint:
            raise ProjectionMismatch(
                f"the adapter was made against projection {recorded}, this model is injected "
                f"with {projection.fingerprint} (same seed and r): its A/B differ in dims or "
                "were drawn by another torch build, or the adapter's metadata is corrupted",
                "fingerprint",
            )
        if adapter.stored_projection is not None:
            ours = projection.vera_A, projection.vera_B
            check_stored(adapter.stored_projection, ours, projection.seed)
            adapter.metadata["projection_fingerprint"] = projection.fingerprint
        load_adapter_state_dict(model, adapter.vectors)
    except Exception:
        if injected_here:
            remove_vera(model)
        raise
    return adapter


def _check_same_adapter_shape(injected: VeraConfig, wanted: VeraConfig) -> None:
    mine = (injected.r, injected.projection_prng_key, injected.target_modules)
    theirs = (wanted.r, wanted.projection_prng_key, wanted.target_modules)
    if mine != theirs:
        raise ValueError(
            f"model is injected with (r, seed, targets)={mine}, adapter needs {theirs}"
        )
