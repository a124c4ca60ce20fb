"""Every route, called with another tenant's key, finds nothing of the first tenant."""

from tests.api import helpers


def _world(client, app, tenant):
    auth = tenant.auth()
    base = helpers.register_base_model(client, auth)
    projection = helpers.register_projection(client, auth, base["id"])
    dataset = helpers.upload_dataset(client, auth)
    job = client.post(
        "/v1/jobs", json=helpers.job_body(base, projection, dataset), headers=auth
    ).json()
    adapter_id = helpers.adapter_with_versions(
        app, tenant.id, [helpers.safetensors_blob([1.0, 2.0])], user_id="bob"
    )
    client.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 1}, headers=auth)
    key = client.get("/v1/keys", headers=auth).json()["items"][0]
    webhook = client.post(
        "/v1/webhooks",
        json={"url": "https://93.184.215.14/hook", "event_types": ["job.failed"]},
        headers=auth,
    ).json()
    delivery = client.post(f"/v1/webhooks/{webhook['id']}/ping", headers=auth).json()
    return {
        "base_model_id": base["id"],
        "dataset_id": dataset["id"],
        "job_id": job["id"],
        "adapter_id": adapter_id,
        "number": "1",
        "alias": "live",
        "user_id": "bob",
        "key_id": key["id"],
        "sha256": base["files"][0]["sha256"],
        "path": base["files"][0]["path"],
        "webhook_id": webhook["id"],
        "delivery_id": delivery["id"],
    }


BODIES = {
    ("POST", "/v1/base-models/files/{sha256}/complete"): {"upload_id": "0" * 32},
    ("PUT", "/v1/adapters/{adapter_id}/aliases/{alias}"): {"version": 1},
    ("PATCH", "/v1/adapters/{adapter_id}"): {"description": "mine now", "tags": ["x"]},
    ("PATCH", "/v1/adapters/{adapter_id}/versions/{number}"): {"add_tags": ["x"]},
    ("POST", "/v1/base-models/{base_model_id}/projections"): {
        "seed": 7,
        "r": 16,
        "max_d_in": 384,
        "max_d_out": 384,
        "generator": "g",
        "fingerprint": "sha256:" + "0" * 64,
        "torch_version": "2",
    },
}
# Routes that act on the caller's own tenant rather than on an object of another one.
OWN_TENANT = {
    ("GET", "/v1/base-models"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/feed"),
    ("GET", "/v1/keys"),
    ("GET", "/v1/me"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/base-models"),
    ("POST", "/v1/jobs"),
    ("POST", "/v1/datasets"),
    ("PUT", "/v1/base-models/files/{sha256}"),
    ("POST", "/v1/base-models/files/{sha256}/presign"),
    ("GET", "/v1/users/{user_id}/adapters"),
    ("GET", "/v1/users"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/resolve"),
    ("GET", "/v1/retention"),
    ("PATCH", "/v1/retention"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
}
# The operator API (/v1/operator/...) is no tenant-key API: it takes the operator's token,
# never an API key, and addresses every tenant by name (tests/api/test_quotas.py).
OPERATOR_PREFIX = "/v1/operator/"


def test_every_route_hides_other_tenants_objects(client, app, tenant, other_tenant):
    ids = _world(client, app, tenant)
    auth = tenant.auth()
    intruder = other_tenant.auth()
    checked = 0
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/v1/") or path.startswith(OPERATOR_PREFIX):
            continue
        for method in (m.upper() for m in operations):
            if (method, path) in OWN_TENANT:
                continue
            url = path.format(**ids)
            response = client.request(
                method, url, headers=intruder, json=BODIES.get((method, path))
            )
            assert response.status_code == 404, (method, url, response.text)
            assert response.json()["error"]["code"].endswith("not_found")
            checked += 1
    assert checked >= 15
    # The intruder's DELETEs (adapter, version, user) removed nothing of the owner's.
    assert client.get("/v1/resolve", params={"user_id": "bob"}, headers=auth).status_code == 200
    assert client.get(f"/v1/adapters/{ids['adapter_id']}/versions/1", headers=auth).is_success
    # Tenant-wide routes: the intruder sees none of the owner's rows.
    for url in ("/v1/base-models", "/v1/jobs", "/v1/users", "/v1/datasets", "/v1/webhooks"):
        assert client.get(url, headers=intruder).json()["items"] == []
    assert client.get("/v1/users", headers=auth).json()["items"][0]["user_id"] == "alice"
    assert client.get("/v1/feed", headers=intruder).json()["events"] == []
    owner_audit = {e["id"] for e in client.get("/v1/audit", headers=auth).json()["items"]}
    seen_audit = {e["id"] for e in client.get("/v1/audit", headers=intruder).json()["items"]}
    assert owner_audit and not owner_audit & seen_audit
    assert client.get("/v1/users/bob/adapters", headers=intruder).json()["items"] == []
    assert client.get("/v1/resolve", params={"user_id": "bob"}, headers=intruder).status_code == 404
    usage = client.get("/v1/usage", headers=intruder).json()["quotas"]
    assert {name: q["used"] for name, q in usage.items()} == {
        "max_active_jobs": 0,
        "max_stored_bytes": 0,
        "max_users": 0,
        "max_requests_per_s": None,
    }
    own_keys = client.get("/v1/keys", headers=intruder).json()["items"]
    assert ids["key_id"] not in {k["id"] for k in own_keys}
    foreign_dataset_job = helpers.job_body(
        {"id": ids["base_model_id"]}, {"id": "x"}, {"id": ids["dataset_id"], "user_id": "alice"}
    )
    response = client.post("/v1/jobs", json=foreign_dataset_job, headers=intruder)
    assert response.status_code == 422
    # Knowing the sha256 of another tenant's uploaded files does not let a manifest use them.
    owner_model = client.get(f"/v1/base-models/{ids['base_model_id']}", headers=auth).json()
    body = {k: owner_model[k] for k in ("name", "architecture", "layers", "weights_hash", "files")}
    response = client.post("/v1/base-models", json=body, headers=intruder)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "files_not_uploaded"
