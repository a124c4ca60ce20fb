import pytest


def test_no_key_is_401_with_error_body(client):
    response = client.get("/v1/base-models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer vera_x_y", "Basic abc", "Bearer "])
def test_bad_key_is_401(client, tenant, header):
    response = client.get("/v1/base-models", headers={"Authorization": header})
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_scopes(client, tenant):
    body = {"name": "k", "scopes": ["read"]}
    assert client.post("/v1/keys", json=body, headers=tenant.auth("read")).status_code == 403
    assert client.post("/v1/keys", json=body, headers=tenant.auth("train")).status_code == 403
    created = client.post("/v1/keys", json=body, headers=tenant.auth("admin"))
    assert created.status_code == 201 and created.json()["api_key"].startswith("vera_")
    new_key = {"Authorization": f"Bearer {created.json()['api_key']}"}
    assert client.get("/v1/base-models", headers=new_key).status_code == 200
    error = client.post(
        "/v1/datasets?user_id=u&task=causal-lm", content=b'{"text":"x"}', headers=new_key
    ).json()["error"]
    assert error["code"] == "missing_scope" and error["details"]["required"] == "train"


def test_revoked_key_stops_working(client, tenant, app):
    created = client.post(
        "/v1/keys", json={"name": "k", "scopes": ["read"]}, headers=tenant.auth()
    ).json()
    key = {"Authorization": f"Bearer {created['api_key']}"}
    assert client.get("/v1/base-models", headers=key).status_code == 200
    assert client.delete(f"/v1/keys/{created['id']}", headers=tenant.auth()).status_code == 200
    app.state.auth_cache.forget_all()  # otherwise it takes up to the cache TTL (5 s)
    assert client.get("/v1/base-models", headers=key).status_code == 401
    listed = client.get("/v1/keys", headers=tenant.auth()).json()["items"]
    assert all("api_key" not in k and "secret" not in str(k) for k in listed)


def test_unknown_route_and_bad_json_use_the_error_shape(client, tenant):
    missing = client.get("/v1/nothing-here", headers=tenant.auth())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = client.post(
        "/v1/base-models",
        content=b"{not json",
        headers={**tenant.auth(), "Content-Type": "application/json"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid"


def test_health_ready_metrics(client, tenant, dispatcher):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    dispatcher.fail = True
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["checks"]["broker"] == "failed"
    client.get("/v1/base-models", headers=tenant.auth())
    metrics = client.get("/metrics").text
    assert 'vera_http_requests_total{method="GET",route="/v1/base-models",status="200"}' in metrics
    assert 'vera_jobs{state="queued"}' in metrics


def test_me_names_the_tenant_and_what_the_key_grants(client, tenant, other_tenant):
    me = client.get("/v1/me", headers=tenant.auth("train")).json()
    assert me["tenant_id"] == tenant.id and me["tenant_name"]
    assert me["scopes"] == ["train"] and me["granted"] == ["read", "train"]
    admin = client.get("/v1/me", headers=tenant.auth("admin")).json()
    assert admin["granted"] == ["admin", "read", "train"] and admin["key_id"] != me["key_id"]
    assert client.get("/v1/me", headers=other_tenant.auth("read")).json()["tenant_id"] != tenant.id
    assert client.get("/v1/me").status_code == 401
