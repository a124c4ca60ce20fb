"""Request helpers that build a registry state through the API itself."""

from __future__ import annotations

import hashlib
import json
import os

from registry.db import session_scope
from tests import factories

LAYERS = factories.LAYERS


def upload_model_file(client, auth, data: bytes) -> dict:
    """PUT one base-model file into the registry's store; its manifest entry."""
    sha256 = hashlib.sha256(data).hexdigest()
    response = client.put(f"/v1/base-models/files/{sha256}", content=data, headers=auth)
    assert response.status_code == 201, response.text
    return {"sha256": sha256, "size": len(data)}


def register_base_model(client, auth, **overrides) -> dict:
    """A base model whose (tiny, fake) files were uploaded first, as the CLI does."""
    files = [
        {"path": "model.safetensors", **upload_model_file(client, auth, os.urandom(64))},
        {"path": "config.json", **upload_model_file(client, auth, b'{"model_type": "bert"}')},
    ]
    body = {
        "name": "minilm",
        "weights_hash": "sha256:" + factories.sha(),
        "architecture": "Bert",
        "layers": LAYERS,
        "files": files,
        **overrides,
    }
    response = client.post("/v1/base-models", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def register_projection(client, auth, base_model_id: str) -> dict:
    body = {
        "seed": 7,
        "r": 16,
        "max_d_in": 384,
        "max_d_out": 384,
        "generator": "g",
        "fingerprint": "sha256:" + factories.sha("fp"),
        "torch_version": "2.13.0",
    }
    response = client.post(f"/v1/base-models/{base_model_id}/projections", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def dataset_bytes(rows: int = 4) -> bytes:
    return "\n".join(json.dumps({"text": f"row {i}", "label": i % 2}) for i in range(rows)).encode()


def upload_dataset(client, auth, user_id: str = "alice") -> dict:
    response = client.post(
        "/v1/datasets",
        params={"user_id": user_id, "task": "sequence-classification"},
        content=dataset_bytes(),
        headers={**auth, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def job_body(base_model: dict, projection: dict, dataset: dict, **extra) -> dict:
    return {
        "user_id": dataset["user_id"],
        "dataset_id": dataset["id"],
        "base_model_id": base_model["id"],
        "projection_id": projection["id"],
        "target_modules": ["query", "value"],
        **extra,
    }


def adapter_with_versions(app, tenant_id: str, blobs: list[bytes], user_id: str = "alice"):
    """An adapter whose versions hold the given blob bytes (as a finished job would leave)."""
    from registry.adapters import service as adapters

    store = app.state.store
    with session_scope(app.state.session_factory) as session:
        adapter = factories.adapter(session, tenant_id, user_id=user_id)
        for blob in blobs:
            info = store.put(blob)
            adapters.create_version(session, adapter, blob_sha256=info.sha256, size_bytes=info.size)
        return adapter.id


def safetensors_blob(values: list[float], peft_config: dict | None = None) -> bytes:
    """A real safetensors file built with the standard library (one float32 tensor)."""
    import struct

    payload = struct.pack(f"<{len(values)}f", *values)
    header = {
        "base_model.model.layer.vera_lambda_d": {
            "dtype": "F32",
            "shape": [len(values)],
            "data_offsets": [0, len(payload)],
        }
    }
    header["__metadata__"] = {
        "format": "pt",
        "adapter_config": json.dumps(
            peft_config or {"peft_type": "VERA", "r": len(values), "target_modules": ["layer"]}
        ),
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + payload
