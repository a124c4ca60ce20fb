"""Property-based fuzzing of every operation from our own OpenAPI schema: never a 500."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from registry.config import Settings
from registry.db import session_scope
from registry.main import create_app
from registry.migrate import upgrade
from tests import factories
from tests.api import helpers
from tests.api.conftest import RecordingDispatcher

CASES_PER_OPERATION = 30
schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")


def _fuzz_app():
    root = Path(tempfile.mkdtemp(prefix="vera-fuzz-"))
    url = f"sqlite:///{root / 'registry.db'}"
    upgrade(url)
    app = create_app(
        Settings(
            _env_file=None,
            database_url=url,
            storage_url=f"file://{root / 'blobs'}",
            max_dataset_bytes=16 * 1024,
        ),
        dispatcher=RecordingDispatcher(),
    )
    with session_scope(app.state.session_factory) as session:
        tenant = factories.tenant(session, "fuzz")
        _, key = factories.api_key(session, tenant.id, ["admin"])
    # Some real objects, so generated ids sometimes reach the deeper code paths.
    helpers.adapter_with_versions(app, tenant.id, [helpers.safetensors_blob([1.0])], "alice")
    app.state.fuzz_key = key
    return app


# Built at import: schemathesis generates one test per operation from the schema.
fuzz_app = _fuzz_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


@schema.parametrize()
@settings(max_examples=CASES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    headers = {"Authorization": f"Bearer {fuzz_app.state.fuzz_key}"}
    if case.path == "/v1/feed" and isinstance(case.query, dict):
        case.query["wait"] = 0  # long-polls would only slow the run down
    response = case.call(headers=headers)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400 and response.status_code != 405:
        assert set(response.json()["error"]) == {"code", "message", "details"}
