"""PEFT folder export without torch: adapter_config.json from the blob's own header.

The worker writes the full PEFT adapter config into the safetensors header metadata
(`adapter_config`), so the blob is self-describing and the API needs no ML stack to serve
a folder that `PeftModel.from_pretrained` loads.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

from registry.errors import BlobCorrupt

MAX_HEADER_BYTES = 100 * 1024 * 1024
# Every export says which base model its folder needs (the client fetches it when absent).
BASE_MODEL_HEADER = "X-Vera-Base-Model-Id"


def read_safetensors_metadata(blob: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file, parsed with the standard library."""
    if len(blob) < 8:
        raise BlobCorrupt("adapter blob is shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > min(MAX_HEADER_BYTES, len(blob) - 8):
        raise BlobCorrupt(f"safetensors header length {header_len} runs past the blob")
    try:
        header = json.loads(blob[8 : 8 + header_len])
    except ValueError as exc:
        raise BlobCorrupt(f"safetensors header is not JSON: {exc}") from exc
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise BlobCorrupt("safetensors __metadata__ is not an object")
    return metadata


def adapter_config(metadata: dict[str, str]) -> dict:
    """The PEFT adapter config the worker recorded in the blob's header."""
    config_text = metadata.get("adapter_config")
    if not config_text:
        raise BlobCorrupt("adapter blob carries no adapter_config in its header metadata")
    return json.loads(config_text)


def label_maps(metadata: dict[str, str]) -> dict[str, dict]:
    """`id2label`/`label2id` of a classifier from the labels in the blob's identity (what
    transformers' configs carry); empty when the adapter has none (a causal LM)."""
    labels = json.loads(
        json.loads(metadata.get("adapter_identity") or "{}").get("labels") or "null"
    )
    if not labels:
        return {}
    # Dataset labels are any JSON value (1, "spam"); the maps name them as text.
    names = [label if isinstance(label, str) else json.dumps(label) for label in labels]
    return {
        "id2label": {str(index): name for index, name in enumerate(names)},
        "label2id": {name: index for index, name in enumerate(names)},
    }


def zip_folder(files: dict[str, bytes]) -> bytes:
    """A zip of {name: bytes}; the PEFT folders are small (a LoRA of a 7B model: MBs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def peft_zip(blob: bytes, updates: dict | None = None) -> bytes:
    """A zip holding adapter_config.json (the recorded one, with `updates`) and
    adapter_model.safetensors (the blob itself: PEFT's tensor names)."""
    metadata = read_safetensors_metadata(blob)
    config = {**adapter_config(metadata), **(updates or {})}
    text = json.dumps(config, indent=2, sort_keys=True)
    return zip_folder({"adapter_config.json": text.encode(), "adapter_model.safetensors": blob})
