"""Capabilities go in with the base model and come back; a job that does not fit is a 422."""

from __future__ import annotations

from tests import factories
from tests.api.helpers import (
    LAYERS,
    job_body,
    register_base_model,
    register_projection,
    upload_dataset,
    upload_model_file,
)

CAPABILITIES = {
    "max_positions": 512,
    "tasks": {
        "sequence-classification": {"layers": {f"bert.{p}": d for p, d in LAYERS.items()}},
    },
    "unsupported": {"causal-lm": "the checkpoint has no weights for cls.predictions.bias: …"},
}


def test_capabilities_round_trip_and_max_seq_len_is_checked_at_submit(client, tenant):
    auth = tenant.auth()
    base = register_base_model(client, auth, capabilities=CAPABILITIES)
    assert client.get(f"/v1/base-models/{base['id']}", headers=auth).json()["capabilities"] == (
        CAPABILITIES
    )
    projection = register_projection(client, auth, base["id"])
    dataset = upload_dataset(client, auth)
    too_long = job_body(base, projection, dataset, hyperparameters={"max_seq_len": 1024})
    response = client.post("/v1/jobs", json=too_long, headers=auth)
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "hyperparameters.max_seq_len" and "at most 512" in detail["message"]
    fits = job_body(base, projection, dataset, hyperparameters={"max_seq_len": 512})
    assert client.post("/v1/jobs", json=fits, headers=auth).status_code == 202


def test_unknown_task_in_capabilities_is_a_422(client, tenant):
    weights = upload_model_file(client, tenant.auth(), b"weights")
    body = {
        "name": "m",
        "weights_hash": "sha256:" + factories.sha(),
        "files": [{"path": "model.safetensors", **weights}],
        "architecture": "BertModel",
        "layers": LAYERS,
        "capabilities": {"tasks": {"translation": {"layers": LAYERS}}},
    }
    response = client.post("/v1/base-models", json=body, headers=tenant.auth())
    assert response.status_code == 422, response.text
