"""Property-based fuzzing of every operation from our own OpenAPI schema, over PostgreSQL
(where bad text and integers turn into DataErrors): all of schemathesis's checks, two
seeds, with a valid API key so cases get past authentication."""

from __future__ import annotations

import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from registry.config import Settings
from registry.db import session_scope
from registry.main import create_app
from registry.migrate import upgrade
from tests import factories
from tests.api import helpers
from tests.api.conftest import RecordingDispatcher
from tests.pgdb import temporary_database

SEEDS = (1, 2)
# Values that once were 500s over PostgreSQL, mixed into generated strings and integers
# (schemathesis leaves NUL out of paths and headers; test_input_rules covers those).
EDGE_VALUES = ["a\x00b", "\x00", 2**31, 2**31 - 1, 2**63, -(2**31) - 1]
CASES_PER_OPERATION = 12
REJECTIONS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    with temporary_database("vera_fuzz") as url:
        upgrade(url)
        settings_ = Settings(
            _env_file=None,
            database_url=url,
            storage_url=f"file://{root / 'blobs'}",
            max_dataset_bytes=16 * 1024,
        )
        app = create_app(settings_, dispatcher=RecordingDispatcher())
        with session_scope(app.state.session_factory) as session:
            tenant = factories.tenant(session, "fuzz")
            _, app.state.fuzz_key = factories.api_key(session, tenant.id, ["admin"])
        # Some real objects, so generated ids sometimes reach the deeper code paths.
        blob = helpers.safetensors_blob([1.0])
        helpers.adapter_with_versions(app, tenant.id, [blob], "alice")
        yield app
        app.state.engine.dispose()


def _schema(seed: int):
    """The schema of an app built at import (the OpenAPI document needs no database); cases
    are sent to `fuzz_app`, the same code over PostgreSQL."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": seed,
            "dictionaries": {"edges": {"values": EDGE_VALUES}},
            # Input that breaks the schema must be refused; a body over the JSON size limit
            # is refused before it is parsed (413), which is as good a refusal.
            # The answers must be as the document says: each status documented for the
            # operation, each body valid against that status's schema (our error envelope
            # for every 4xx: registry/api/openapi.py).
            "checks": {
                "negative_data_rejection": {"expected-statuses": REJECTIONS},
                "status_code_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
            },
            "generation": {
                "dictionaries": {
                    kind: {"dictionary": "edges", "probability": 0.1}
                    for kind in ("string", "integer")
                }
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", _SCHEMA_APP, config=config)
    if seed != SEEDS[0]:
        # The examples and coverage phases (boundary values, NUL bytes, duplicate and
        # missing parameters...) draw the same cases whatever the seed: run them once.
        schema.config.phases.examples.enabled = False
        schema.config.phases.coverage.enabled = False
    return schema


def _valid_wait(query) -> bool:
    wait = query.get("wait") if isinstance(query, dict) else None
    if isinstance(wait, bool) or not isinstance(wait, int | float | str):
        return False
    try:
        return 0 < float(wait) <= 60
    except ValueError:
        return False


def _fuzz_test(seed: int):
    @_schema(seed).parametrize()
    @settings(
        max_examples=CASES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def test(case, fuzz_app):
        headers = {"Authorization": f"Bearer {fuzz_app.state.fuzz_key}"}
        if case.path == "/v1/feed" and _valid_wait(case.query):
            # Long-polls would only slow the run down; an invalid `wait` stays as drawn.
            case.query["wait"] = 0
        # Every check schemathesis has (its default: `--checks all`) but one: that any
        # schema-valid request is accepted. Some rules are no schema's to state: ids must
        # name existing rows, cursors must be ones we issued, a dataset must be JSONL.
        response = case.call_and_validate(
            headers=headers, app=fuzz_app, excluded_checks=[positive_data_acceptance]
        )
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        if response.status_code >= 400 and response.status_code != 405:
            assert set(response.json()["error"]) == {"code", "message", "details"}

    return test


_SCHEMA_APP = create_app(
    Settings(
        _env_file=None,
        database_url="postgresql+psycopg://unused@127.0.0.1:1/unused",
        storage_url=f"file://{tempfile.mkdtemp(prefix='vera-fuzz-')}",
    ),
    dispatcher=RecordingDispatcher(),
)
test_no_server_errors_seed_1 = _fuzz_test(SEEDS[0])
test_no_server_errors_seed_2 = _fuzz_test(SEEDS[1])
