"""The API tests' app over a real database (both backends), plus a RegistryClient on it."""

from __future__ import annotations

import pytest

from registry.client.api import RegistryClient
from tests.api.conftest import app, client, dispatcher, settings, tenant  # noqa: F401


@pytest.fixture
def registry(client, tenant, tmp_path):  # noqa: F811
    """A RegistryClient speaking to the real app through FastAPI's TestClient (httpx)."""
    rc = RegistryClient(api_key=tenant.keys["admin"], http=client, cache_dir=tmp_path / "cache")
    rc.tenant = tenant
    yield rc
    rc.close()
