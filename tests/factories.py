"""Rows for tests, made through the services so that the rules apply to them too."""

from __future__ import annotations

import hashlib
import secrets

from registry.adapters import service as adapters
from registry.base_models import service as base_models
from registry.db import new_id
from registry.jobs import lease
from registry.jobs.models import Dataset
from registry.tenants import service as tenants

LAYERS = {
    "encoder.layer.0.attention.self.query": [384, 384],
    "encoder.layer.0.attention.self.value": [384, 384],
    "encoder.layer.0.intermediate.dense": [384, 1536],
    "encoder.layer.0.output.dense": [1536, 384],
}


def sha(seed: str | bytes | None = None) -> str:
    data = seed if isinstance(seed, bytes) else (seed or secrets.token_hex(8)).encode()
    return hashlib.sha256(data).hexdigest()


def tenant(session, name: str | None = None):
    return tenants.create_tenant(session, name or f"tenant-{secrets.token_hex(4)}")


def api_key(session, tenant_id: str, scopes=("admin",)):
    return tenants.create_api_key(session, tenant_id, list(scopes), name="test")


def base_model(session, tenant_id: str, layers=None, capabilities=None):
    model, _ = base_models.register_base_model(
        session,
        tenant_id,
        name="minilm",
        weights_hash="sha256:" + sha(),
        files=[{"path": "model.safetensors", "sha256": sha(), "size": 100}],
        architecture="BertModel",
        layers=layers or LAYERS,
        # An operator-allowed shared volume: rows without uploading anything.
        source_uri="/models/minilm",
        capabilities=capabilities,
        allowed_sources=["/models"],
    )
    return model


def projection(session, tenant_id: str, base_model_id: str, *, seed=7, r=16, dims=(384, 384)):
    proj, _ = base_models.get_or_create_projection(
        session,
        tenant_id,
        base_model_id,
        seed=seed,
        r=r,
        max_d_in=dims[0],
        max_d_out=dims[1],
        generator="torch-cpu-test",
        fingerprint="sha256:" + sha(f"{seed}-{r}-{dims}"),
        torch_version="2.13.0",
    )
    return proj


def adapter(session, tenant_id: str, user_id: str = "user-1", name: str = "default"):
    model = base_model(session, tenant_id)
    proj = projection(session, tenant_id, model.id)
    return adapters.get_or_create_adapter(
        session,
        tenant_id,
        user_id=user_id,
        name=name,
        base_model_id=model.id,
        projection_id=proj.id,
        target_modules=["query", "value"],
        task="sequence-classification",
    )


def version(session, adapter_row, **kwargs):
    blob = kwargs.pop("blob_sha256", sha())
    return adapters.create_version(session, adapter_row, blob_sha256=blob, size_bytes=100, **kwargs)


def dataset(session, tenant_id: str, user_id: str = "user-1", task="sequence-classification"):
    row = Dataset(
        tenant_id=tenant_id,
        user_id=user_id,
        task=task,
        blob_sha256=sha(),
        rows=10,
        size_bytes=100,
        labels=[0, 1],
    )
    session.add(row)
    session.flush()
    return row


def claim_alone(session, job_id: str, worker: str, lease_s: float = 60):
    """The job in a pack of its own (VERA_PACK_MAX_JOBS=1), as a worker claims it; None
    when it is not claimable."""
    claims = lease.claim_pack(session, job_id, worker, lease_s, pack_id=new_id(), room=1)
    return claims[0] if claims else None
