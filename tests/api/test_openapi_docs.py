"""The API reference tells the truth and works offline: every operation has a summary, a
description and its errors in our envelope; examples match their schemas; /docs and /redoc
load nothing from outside. (tests/api/test_fuzz.py checks the answers against the
document; tests/ui/test_api_docs.py renders the pages in a browser.)"""

from __future__ import annotations

import json
import re
import tempfile

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry.api.deps import ReadDep
from registry.api.errors import ErrorOut
from registry.api.openapi import api_routes, install_openapi
from registry.config import Settings
from registry.errors import error_envelope
from registry.main import create_app
from tests.api.conftest import RecordingDispatcher

ERROR_REF = "#/components/schemas/ErrorOut"
METHODS = {"get", "put", "post", "patch", "delete"}


def _app():
    """The app without a database: the document and the pages need none."""
    return create_app(
        Settings(
            _env_file=None,
            database_url="postgresql+psycopg://unused@127.0.0.1:1/unused",
            storage_url=f"file://{tempfile.mkdtemp(prefix='vera-docs-')}",
        ),
        dispatcher=RecordingDispatcher(),
    )


@pytest.fixture(scope="module")
def app():
    return _app()


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _resolve(spec, schema):
    """A component's schema; for an optional body (`X | None`), X's."""
    schema = next((s for s in schema.get("anyOf", []) if "$ref" in s), schema)
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def _validator(spec, schema):
    return jsonschema.Draft202012Validator({**schema, "components": spec["components"]})


def test_every_operation_has_a_human_summary_and_a_description(app, spec):
    generated = {
        (route.path_format, method.lower()): route.name.replace("_", " ").title()
        for route in api_routes(app.routes)
        for method in route.methods
    }
    operations = list(_operations(spec))
    assert len(operations) == len(generated) > 40
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation["summary"] != generated[(path, method)], f"{where}: FastAPI's summary"
        assert len(operation.get("description", "")) > 10, where


def _expected_errors(operation) -> set[str]:
    """What every operation of its kind can answer, by what the document says it takes."""
    expected = {"422"}  # unknown query parameters, on every route
    if operation.get("security"):
        expected.add("401")
    if any(p["in"] == "path" for p in operation.get("parameters", [])):
        expected.add("404")
    if "requestBody" in operation:
        expected |= {"413", "422"}
    return expected


def test_every_error_is_documented_in_our_envelope(spec):
    for path, method, operation in _operations(spec):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        assert "4XX" not in responses and "default" not in responses, where
        missing = _expected_errors(operation) - set(responses)
        assert not missing, f"{where}: undocumented {missing}"
        if operation.get("security") and not path.startswith("/v1/operator"):
            assert {"403", "429"} <= set(responses), where  # scopes and the key's rate
        for status, response in responses.items():
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, f"{where} {status}"
                assert response["description"], f"{where} {status}"
    text = json.dumps(spec)
    assert "HTTPValidationError" not in text and "ValidationError" not in text
    assert '"detail"' not in text  # FastAPI's {"detail": [...]} shape is nowhere


def test_the_envelope_schema_is_what_errors_look_like(spec):
    envelope = error_envelope("not_found", "adapter x not found", {"id": "x"})
    assert ErrorOut.model_validate(envelope).model_dump() == envelope
    assert not list(_validator(spec, {"$ref": ERROR_REF}).iter_errors(envelope))


def test_a_route_added_later_is_documented_the_same_way():
    app = FastAPI()
    install_openapi(app)

    @app.get("/v1/widgets/{widget_id}", summary="Show a widget")
    def get_widget(widget_id: str, principal: ReadDep) -> dict:
        """One widget."""
        return {}

    responses = app.openapi()["paths"]["/v1/widgets/{widget_id}"]["get"]["responses"]
    assert {"401", "403", "404", "422", "429"} <= set(responses)
    assert responses["404"]["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}


def test_request_bodies_and_responses_have_examples_that_fit_their_schemas(spec):
    checked = 0
    for path, method, operation in _operations(spec):
        where = f"{method.upper()} {path}"
        content = operation.get("requestBody", {}).get("content", {})
        for media_type, body in content.items():
            if media_type == "application/json":
                assert _resolve(spec, body["schema"]).get("examples"), f"{where} body"
            elif media_type != "application/octet-stream":  # file bytes: no example to show
                assert body.get("example"), f"{where} {media_type} body"
        for status, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if status.startswith("2") and schema:
                schema = _resolve(spec, schema.get("items", schema))  # a list: its items'
                assert schema.get("examples"), f"{where} {status}"
    for name, schema in spec["components"]["schemas"].items():
        for example in schema.get("examples", []):
            errors = [e.message for e in _validator(spec, schema).iter_errors(example)]
            assert not errors, f"{name}'s example: {errors}"
            checked += 1
    assert checked > 40


def test_health_probes_have_response_models(spec):
    healthz = spec["paths"]["/healthz"]["get"]["responses"]
    readyz = spec["paths"]["/readyz"]["get"]["responses"]
    ref = "#/components/schemas/{}"
    assert healthz["200"]["content"]["application/json"]["schema"]["$ref"] == ref.format(
        "HealthOut"
    )
    for status in ("200", "503"):
        assert readyz[status]["content"]["application/json"]["schema"]["$ref"] == ref.format(
            "ReadyOut"
        )


def test_the_bearer_key_can_be_entered_in_docs(spec):
    schemes = spec["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), "an outside URL"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets)
    for url in assets:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert "/openapi.json" in html
    # The browser refuses whatever the bundles would still fetch from outside.
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "https:" not in policy
