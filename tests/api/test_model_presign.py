"""Presigned base-model uploads: the client PUTs straight to S3, the registry verifies what
landed before it counts as uploaded."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest
from fastapi.testclient import TestClient

from registry.client.api import RegistryClient
from registry.main import create_app
from tests.api.conftest import RecordingDispatcher, Tenant
from tests.storage.conftest import bucket, moto_endpoint, raw_client, s3_settings  # noqa: F401


@pytest.fixture
def s3_app(moto_endpoint, bucket, db_url, engine):  # noqa: F811
    settings = s3_settings(moto_endpoint, bucket, database_url=db_url, s3_presign_uploads=True)
    app = create_app(settings, dispatcher=RecordingDispatcher())
    yield app
    app.state.engine.dispose()


def test_files_go_to_s3_directly_and_are_verified(s3_app, tmp_path):
    tenant = Tenant(s3_app, "s3")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(os.urandom(3000))
    (folder / "config.json").write_text("{}")
    from registry.base_models.manifest import scan_folder

    files = [vars(f) for f in scan_folder(folder)]
    body = {
        "name": "m",
        "architecture": "Bert",
        "layers": {"q": [4, 4]},
        "weights_hash": "sha256:" + "a" * 64,
        "files": files,
    }
    with TestClient(s3_app) as client:
        seen: list[tuple[str, str]] = []
        client.event_hooks["request"] = [lambda r: seen.append((r.method, r.url.path))]
        rc = RegistryClient(api_key=tenant.keys["admin"], http=client)
        model = rc.upload_base_model(folder, body)
        assert model["source_uri"] is None
        # No file body went through the API: each was presigned, then completed.
        assert not [p for m, p in seen if m == "PUT"]
        assert sum(p.endswith("/complete") for _, p in seen) == 2
        store = s3_app.state.store
        assert all(store.exists(f["sha256"]) for f in files)
        staged = raw_client(store.client.meta.endpoint_url).list_objects_v2(
            Bucket=store.bucket, Prefix=f"{store.prefix}/staging/"
        )
        assert staged.get("KeyCount", 0) == 0  # adopted, then the staging key deleted


def test_wrong_bytes_at_the_presigned_url_are_refused(s3_app):
    tenant = Tenant(s3_app, "s3")
    data = os.urandom(500)
    sha256 = hashlib.sha256(data).hexdigest()
    url = f"/v1/base-models/files/{sha256}"
    with TestClient(s3_app) as client:
        ticket = client.post(f"{url}/presign", json={"size": 500}, headers=tenant.auth()).json()
        assert httpx.put(ticket["url"], content=b"x" + data[1:]).status_code == 200
        done = client.post(
            f"{url}/complete", json={"upload_id": ticket["upload_id"]}, headers=tenant.auth()
        )
        assert done.status_code == 400 and done.json()["error"]["code"] == "sha256_mismatch"
        assert not s3_app.state.store.exists(sha256)
        assert client.get(url, headers=tenant.auth()).status_code == 404
        again = client.post(
            f"{url}/complete", json={"upload_id": ticket["upload_id"]}, headers=tenant.auth()
        )
        assert again.status_code == 404  # the staged bytes are gone
        # Another tenant cannot complete this tenant's staged upload.
        other = Tenant(s3_app, "other")
        ticket = client.post(f"{url}/presign", json={"size": 500}, headers=tenant.auth()).json()
        httpx.put(ticket["url"], content=data)
        stolen = client.post(
            f"{url}/complete", json={"upload_id": ticket["upload_id"]}, headers=other.auth()
        )
        assert stolen.status_code == 404
