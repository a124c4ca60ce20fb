"""A base-model file streams through the API into the store: memory stays bounded however
large the file (the body is never held whole)."""

from __future__ import annotations

import hashlib
import threading
import time
import tracemalloc

import httpx
import pytest
import uvicorn

from registry.config import Settings
from registry.main import create_app
from tests.api.conftest import RecordingDispatcher, Tenant
from tests.workers.conftest import free_port

MiB = 1024 * 1024


@pytest.fixture
def served(db_url, engine, tmp_path):
    settings = Settings(
        _env_file=None, database_url=db_url, storage_url=f"file://{tmp_path / 'blobs'}"
    )
    app = create_app(settings, dispatcher=RecordingDispatcher())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield app, f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)
    app.state.engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_large_file_upload_holds_only_a_few_chunks_in_memory(served):
    app, url = served
    tenant = Tenant(app, "big")
    block = bytes(range(256)) * 4096  # 1 MiB, sent 48 times: made on the fly
    size = 48 * MiB
    sha256 = hashlib.sha256(block * 48).hexdigest()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        response = httpx.put(
            f"{url}/v1/base-models/files/{sha256}",
            content=(block for _ in range(48)),
            headers={**tenant.auth(), "Content-Length": str(size)},
            timeout=120,
        )
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    assert response.json()["size"] == size
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB for a {size // MiB} MiB upload"
