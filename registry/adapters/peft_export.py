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


def peft_zip(blob: bytes) -> bytes:
    """A zip holding adapter_config.json and adapter_model.safetensors."""
    metadata = read_safetensors_metadata(blob)
    config_text = metadata.get("adapter_config")
    if not config_text:
        raise BlobCorrupt("adapter blob carries no adapter_config in its header metadata")
    config = json.loads(config_text)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("adapter_config.json", json.dumps(config, indent=2, sort_keys=True))
        archive.writestr("adapter_model.safetensors", blob)
    return buffer.getvalue()
