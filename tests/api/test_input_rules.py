"""Bad input is a 4xx naming what is wrong, never a 500 (PostgreSQL DataError, RecursionError)."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from tests.api import helpers

# PostgreSQL is where these were 500s (SQLite stores NUL and 64-bit integers).
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def client(app):
    # Server errors come back as responses here, so a 500 fails an assertion, not the request.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _assert_invalid(response, field: str, message: str = "NUL") -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert any(d["field"] == field and message in d["message"] for d in error["details"]), error


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/jobs/a%00b", "path"),
        ("/v1/jobs/a%00b/events", "path"),
        ("/v1/datasets/a%00b", "path"),
        ("/v1/users/a%00b/adapters", "path"),
        ("/v1/adapters/a%00b", "path"),
        ("/v1/base-models/a%00b", "path"),
        ("/v1/jobs?user_id=a%00b", "query.user_id"),
        ("/v1/resolve?user_id=alice&adapter=x%00", "query.adapter"),
        ("/v1/resolve?user_id=a%00b", "query.user_id"),
        ("/v1/jobs?status=queued&user_id=%00", "query.user_id"),
    ],
)
def test_nul_in_path_or_query_is_422(client, tenant, path, field):
    _assert_invalid(client.get(path, headers=tenant.auth()), field)


def test_a_query_parameter_given_twice_is_422(client, tenant):
    response = client.get("/v1/jobs?user_id=alice&user_id=bob", headers=tenant.auth())
    _assert_invalid(response, "query.user_id", "given 2 times")


def test_an_unknown_query_parameter_is_422(client, tenant):
    response = client.get("/v1/jobs?user=alice", headers=tenant.auth())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"] == [{"field": "query.user", "message": "unknown parameter"}]
    assert "takes: cursor, limit, status, user_id" in error["message"]


def test_nul_in_a_json_body_is_422_naming_the_field_and_stores_nothing(client, tenant):
    auth = tenant.auth()
    before = client.get("/v1/keys", headers=auth).json()["items"]
    response = client.post("/v1/keys", json={"name": "a\x00b", "scopes": ["read"]}, headers=auth)
    _assert_invalid(response, "body.name")
    assert client.get("/v1/keys", headers=auth).json()["items"] == before
    model = {
        "name": "m",
        "weights_hash": "sha256:" + "0" * 64,
        "files": [{"path": "model.safetensors", "sha256": "0" * 64, "size": 1}],
        "architecture": "Bert",
        "layers": {"a\x00": [1, 1]},
    }
    response = client.post("/v1/base-models", json=model, headers=auth)
    _assert_invalid(response, "body.layers.a\\u0000")


def test_nul_in_a_dataset_upload_query_and_rows(client, tenant):
    auth = {**tenant.auth(), "Content-Type": "application/x-ndjson"}
    upload = "/v1/datasets?task=sequence-classification&user_id="
    rows = helpers.dataset_bytes()
    _assert_invalid(client.post(upload + "a%00b", content=rows, headers=auth), "query.user_id")
    labelled = b'{"text": "a", "label": "x\\u0000"}\n{"text": "b", "label": "y"}\n'
    response = client.post(upload + "alice", content=labelled, headers=auth)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_dataset" and error["details"][0]["line"] == 1
    assert "label: contains a NUL character" in error["details"][0]["message"]


def test_lone_surrogate_in_a_json_key_is_422(client, tenant):
    body = b'{"name": "k", "scopes": ["read"], "\\udc00": 1}'
    response = client.post(
        "/v1/keys", content=body, headers={**tenant.auth(), "Content-Type": "application/json"}
    )
    _assert_invalid(response, "body.\\udc00", "surrogate")


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_body_is_422(client, tenant, depth):
    body = b"[" * depth + b"]" * depth
    response = client.post(
        "/v1/jobs", content=body, headers={**tenant.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "nested deeper than 64 levels" in response.json()["error"]["message"]


def test_deeply_nested_dataset_line_is_a_line_error(client, tenant):
    lines = b'{"text": "a", "label": 0}\n' + b"[" * 60_000 + b"\n" + b'{"text": "b", "label": 1}'
    response = client.post(
        "/v1/datasets?task=sequence-classification&user_id=alice",
        content=lines,
        headers={**tenant.auth(), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert details == [{"line": 2, "message": "nested deeper than 64 levels"}]


def test_malformed_cursors_are_400_bad_cursor(client, tenant, app):
    auth = tenant.auth()
    adapter_id = helpers.adapter_with_versions(app, tenant.id, [helpers.safetensors_blob([1.0])])
    cases = {
        "/v1/jobs": [
            ["2024-01-01T00:00:00", "x"],  # naive: no point in time
            ["2024-01-01T00:00:00+00:00", "a\x00b"],
            ["2024-01-01T00:00:00+00:00", 5],
            ["2024-01-01T00:00:00+00:00", "x", "y"],
            True,
        ],
        f"/v1/adapters/{adapter_id}/versions": [2**31, True, -1, 1.5, "1"],
        "/v1/base-models": [True, "a\x00", 7, ""],
    }
    for path, values in cases.items():
        for value in values:
            response = client.get(path, params={"cursor": _cursor(value)}, headers=auth)
            assert response.status_code == 400, (path, value, response.text)
            assert response.json()["error"]["code"] == "bad_cursor"
    for path in cases:  # not base64 JSON at all
        response = client.get(path, params={"cursor": "%%%"}, headers=auth)
        assert response.json()["error"]["code"] == "bad_cursor"


def test_cursors_still_page(client, tenant, app):
    auth = tenant.auth()
    blobs = [helpers.safetensors_blob([float(i)]) for i in range(3)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)
    first = client.get(f"/v1/adapters/{adapter_id}/versions?limit=2", headers=auth).json()
    rest = client.get(
        f"/v1/adapters/{adapter_id}/versions",
        params={"cursor": first["next_cursor"]},
        headers=auth,
    ).json()
    assert [v["number"] for v in first["items"] + rest["items"]] == [1, 2, 3]


def test_job_cursor_and_event_after_beyond_int32(client, tenant):
    auth = tenant.auth()
    model = helpers.register_base_model(client, auth)
    projection = helpers.register_projection(client, auth, model["id"])
    dataset = helpers.upload_dataset(client, auth)
    body = helpers.job_body(model, projection, dataset)
    for _ in range(2):
        assert client.post("/v1/jobs", json=body, headers=auth).status_code == 202
    page = client.get("/v1/jobs?limit=1", headers=auth).json()
    rest = client.get("/v1/jobs", params={"cursor": page["next_cursor"]}, headers=auth).json()
    assert len(page["items"]) == len(rest["items"]) == 1
    job_id = page["items"][0]["id"]
    events = client.get(f"/v1/jobs/{job_id}/events?after=2147483647", headers=auth)
    assert events.status_code == 200 and events.json() == []
    too_far = client.get(f"/v1/jobs/{job_id}/events?after=2147483648", headers=auth)
    _assert_invalid(too_far, "query.after", "less than or equal to 2147483647")


def test_undocumented_routes_take_any_query(client):
    assert client.get("/metrics?name[]=vera_jobs").status_code == 200


def test_an_unexpected_exception_is_a_logged_500_in_the_envelope(app, client, caplog):
    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal",
            "message": "internal error; see the server log",
            "details": None,
        }
    }
    assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records)
