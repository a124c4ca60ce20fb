"""With S3 storage and presigning on, downloads redirect to the store itself."""

import httpx
from fastapi.testclient import TestClient

from registry.main import create_app
from tests.api import helpers
from tests.api.conftest import RecordingDispatcher, Tenant
from tests.storage.conftest import bucket, moto_endpoint, s3_settings  # noqa: F401


def test_blob_download_redirects_to_a_presigned_url(moto_endpoint, bucket, db_url, engine):  # noqa: F811
    settings = s3_settings(
        moto_endpoint,
        bucket,
        database_url=db_url,
        s3_presign_downloads=True,
        max_dataset_bytes=64 * 1024,
    )
    app = create_app(settings, dispatcher=RecordingDispatcher())
    tenant = Tenant(app, "s3")
    blob = helpers.safetensors_blob([1.0, 2.0])
    adapter_id = helpers.adapter_with_versions(app, tenant.id, [blob])
    with TestClient(app) as client:
        response = client.get(
            f"/v1/adapters/{adapter_id}/versions/1/blob",
            headers=tenant.auth("read"),
            follow_redirects=False,
        )
        assert response.status_code == 307
        assert httpx.get(response.headers["location"]).content == blob
        ready = client.get("/readyz").json()
        assert ready["checks"]["storage"] == "ok"
    app.state.engine.dispose()
