"""The API fixtures (tests/api/conftest.py), with settings that let webhooks reach a local
receiver, and that receiver."""

import pytest

from registry.config import Settings
from tests.api.conftest import app, client, dispatcher, other_tenant, tenant  # noqa: F401
from tests.webhooks.receiver import serve


@pytest.fixture
def receiver(tmp_path):
    receiver, stop = serve(tmp_path, fail_first=2)
    yield receiver
    stop()


@pytest.fixture
def settings(db_url, tmp_path, receiver):
    return Settings(
        _env_file=None,
        database_url=db_url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        webhook_allow_private=True,
        webhook_ca_bundle=receiver.ca_path,
        webhook_retry_base_s=0.2,
        webhook_timeout_s=5,
    )
