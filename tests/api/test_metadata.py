"""Descriptions and tags (PATCH, at submit, carried to the job's version), GET /v1/users
with its filters, and one Page shape with working cursors on every list route."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from registry.db import session_scope
from registry.jobs import lease
from registry.jobs.models import Job
from tests import factories
from tests.api import helpers


def _adapter(app, tenant, user_id="alice", versions=2) -> str:
    blobs = [helpers.safetensors_blob([float(i), 2.0]) for i in range(versions)]
    return helpers.adapter_with_versions(app, tenant.id, blobs, user_id=user_id)


def test_patch_adapter_and_version_description_and_tags(client, app, tenant):
    adapter_id = _adapter(app, tenant)
    auth = tenant.auth("train")
    before = client.get(f"/v1/adapters/{adapter_id}", headers=auth).json()
    assert before["tags"] == [] and before["description"] is None

    body = {"description": "German support bot", "tags": ["lang:de", "team.support"]}
    patched = client.patch(f"/v1/adapters/{adapter_id}", json=body, headers=auth)
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == ["lang:de", "team.support"]
    assert patched.json()["description"] == "German support bot"
    assert patched.json()["updated_at"] > before["updated_at"]
    changed = client.patch(
        f"/v1/adapters/{adapter_id}",
        json={"add_tags": ["prod"], "remove_tags": ["team.support"]},
        headers=auth,
    ).json()
    assert changed["tags"] == ["lang:de", "prod"]
    assert changed["description"] == "German support bot"  # left out: unchanged
    cleared = client.patch(f"/v1/adapters/{adapter_id}", json={"description": ""}, headers=auth)
    assert cleared.json()["description"] is None and cleared.json()["tags"] == ["lang:de", "prod"]

    url = f"/v1/adapters/{adapter_id}/versions/2"
    version = client.patch(url, json={"description": "best", "tags": ["rc"]}, headers=auth).json()
    assert (version["number"], version["description"], version["tags"]) == (2, "best", ["rc"])
    assert client.get(url, headers=auth).json()["tags"] == ["rc"]
    tagged = client.get(
        f"/v1/adapters/{adapter_id}/versions", params={"tag": "rc"}, headers=auth
    ).json()
    assert [v["number"] for v in tagged["items"]] == [2]
    mine = client.get("/v1/users/alice/adapters", params={"tag": "prod"}, headers=auth).json()
    assert [a["id"] for a in mine["items"]] == [adapter_id]
    none = client.get("/v1/users/alice/adapters", params={"tag": "nope"}, headers=auth).json()
    assert none == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": ["Upper"]}, "tags"),
        ({"tags": ["-lead"]}, "tags"),
        ({"tags": ["a" * 65]}, "tags"),
        ({"add_tags": ["sp ace"]}, "add_tags"),
        ({"tags": [f"t{i}" for i in range(33)]}, "tags"),
        ({"description": "x" * 2001}, "description"),
        ({"description": "a\x00b"}, "description"),
        ({}, "body"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_metadata_is_422_naming_the_field(client, app, tenant, body, field):
    adapter_id = _adapter(app, tenant, versions=1)
    response = client.patch(f"/v1/adapters/{adapter_id}", json=body, headers=tenant.auth())
    assert response.status_code == 422, response.text
    assert field in response.text


def test_at_most_32_tags_after_adding(client, app, tenant):
    adapter_id = _adapter(app, tenant, versions=1)
    url = f"/v1/adapters/{adapter_id}"
    auth = tenant.auth()
    client.patch(url, json={"tags": [f"t{i}" for i in range(32)]}, headers=auth)
    response = client.patch(url, json={"add_tags": ["one-more"]}, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_tags"
    assert "at most 32" in response.json()["error"]["message"]
    assert len(client.get(url, headers=auth).json()["tags"]) == 32


def test_read_scope_cannot_patch(client, app, tenant):
    adapter_id = _adapter(app, tenant, versions=1)
    response = client.patch(
        f"/v1/adapters/{adapter_id}", json={"tags": ["x"]}, headers=tenant.auth("read")
    )
    assert response.status_code == 403


def test_submit_tags_the_adapter_now_and_the_new_version_when_it_is_made(client, app, tenant):
    auth = tenant.auth()
    base = helpers.register_base_model(client, auth)
    projection = helpers.register_projection(client, auth, base["id"])
    dataset = helpers.upload_dataset(client, auth)
    body = helpers.job_body(
        base,
        projection,
        dataset,
        description="nightly retrain",
        tags=["nightly", "nightly", "exp:7"],
        adapter_description="alice's classifier",
        adapter_tags=["prod"],
    )
    job = client.post("/v1/jobs", json=body, headers=auth).json()
    assert (job["description"], job["tags"]) == ("nightly retrain", ["exp:7", "nightly"])
    adapter = client.get(f"/v1/adapters/{job['adapter_id']}", headers=auth).json()
    assert (adapter["description"], adapter["tags"]) == ("alice's classifier", ["prod"])
    # What a worker does when training ends (lease.finish_success makes the version).
    with session_scope(app.state.session_factory) as session:
        row = session.get(Job, job["id"])
        row.state, row.lease_token = "running", 1
    with session_scope(app.state.session_factory) as session:
        claim = lease.Claim(job_id=job["id"], token=1, attempt=1)
        blob = app.state.store.put(helpers.safetensors_blob([1.0]))
        lease.finish_success(
            session, claim, blob_sha256=blob.sha256, size_bytes=blob.size, metrics={}
        )
    version = client.get(f"/v1/adapters/{job['adapter_id']}/versions/1", headers=auth).json()
    assert (version["description"], version["tags"]) == ("nightly retrain", ["exp:7", "nightly"])
    users = client.get("/v1/users", headers=auth).json()["items"]
    assert users[0]["adapters"][0]["live_version"] == 1
    # The same Idempotency-Key and body give the same job back.
    first = client.post("/v1/jobs", json=body, headers={**auth, "Idempotency-Key": "k1"})
    again = client.post("/v1/jobs", json=body, headers={**auth, "Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_users_lists_adapters_with_live_versions_and_filters(client, app, tenant):
    auth = tenant.auth()
    carol = _adapter(app, tenant, "carol")
    alice = _adapter(app, tenant, "alice")
    bob = _adapter(app, tenant, "bob", versions=1)
    client.put(f"/v1/adapters/{carol}/aliases/live", json={"version": 2}, headers=auth)
    client.patch(f"/v1/adapters/{alice}", json={"tags": ["de"]}, headers=auth)
    client.patch(f"/v1/adapters/{bob}", json={"tags": ["de", "beta"]}, headers=auth)

    listed = client.get("/v1/users", headers=tenant.auth("read")).json()
    assert [u["user_id"] for u in listed["items"]] == ["alice", "bob", "carol"]
    assert listed["next_cursor"] is None
    carol_row = listed["items"][2]["adapters"][0]
    assert (carol_row["id"], carol_row["live_version"], carol_row["name"]) == (carol, 2, "default")
    assert listed["items"][0]["adapters"][0]["live_version"] is None
    assert listed["items"][1]["adapters"][0]["tags"] == ["beta", "de"]

    def users(**params) -> list[str]:
        page = client.get("/v1/users", params=params, headers=auth).json()
        return [u["user_id"] for u in page["items"]]

    assert users(tag="de") == ["alice", "bob"]
    assert users(tag="beta") == ["bob"]
    assert users(tag="none") == []
    base_model_id = listed["items"][0]["adapters"][0]["base_model_id"]
    assert users(base_model_id=base_model_id) == ["alice"]
    assert users(base_model_id="0" * 32) == []
    time.sleep(0.01)
    mark = datetime.now(UTC)
    time.sleep(0.01)
    client.put(f"/v1/adapters/{alice}/aliases/live", json={"version": 1}, headers=auth)
    assert users(updated_since=mark.isoformat()) == ["alice"]
    assert users(updated_since=(mark + timedelta(hours=1)).isoformat()) == []
    for not_a_time in ("2024-01-01T00:00:00", "0.5", "1700000000", "yesterday"):
        answer = client.get("/v1/users", params={"updated_since": not_a_time}, headers=auth)
        assert answer.status_code == 422, (not_a_time, answer.text)

    first = client.get("/v1/users", params={"limit": 2}, headers=auth).json()
    assert [u["user_id"] for u in first["items"]] == ["alice", "bob"]
    rest = client.get(
        "/v1/users", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth
    ).json()
    assert [u["user_id"] for u in rest["items"]] == ["carol"] and rest["next_cursor"] is None


def _walk(client, url: str, auth: dict, limit: int, key: str, **params) -> list:
    """Every item of a list route, `limit` at a time, with the page shape checked."""
    seen, cursor = [], None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(url, params=query, headers=auth)
        assert response.status_code == 200, (url, response.text)
        page = response.json()
        assert set(page) == {"items", "next_cursor"}, url
        assert len(page["items"]) <= limit
        seen.extend(item[key] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError(f"{url} never ended")


def test_every_list_route_pages_in_one_shape(client, app, tenant):
    auth = tenant.auth()
    base = helpers.register_base_model(client, auth)
    projections = [helpers.register_projection(client, auth, base["id"])]
    for seed in (8, 9):
        body = {
            "seed": seed,
            "r": 16,
            "max_d_in": 384,
            "max_d_out": 384,
            "generator": "g",
            "fingerprint": f"sha256:{seed:064d}",
            "torch_version": "2.13.0",
        }
        answer = client.post(f"/v1/base-models/{base['id']}/projections", json=body, headers=auth)
        projections.append(answer.json())
    datasets = [helpers.upload_dataset(client, auth, user_id="alice") for _ in range(3)]
    for name in ("k1", "k2"):
        client.post("/v1/keys", json={"name": name, "scopes": ["read"]}, headers=auth)
    adapter_id = _adapter(app, tenant, versions=3)
    for number in (1, 2, 3, 1):
        client.put(
            f"/v1/adapters/{adapter_id}/aliases/live", json={"version": number}, headers=auth
        )
    for user in ("bob", "carol"):
        _adapter(app, tenant, user, versions=1)
    with session_scope(app.state.session_factory) as session:
        for name in ("second", "third"):
            factories.adapter(session, tenant.id, user_id="alice", name=name)

    assert _walk(client, "/v1/users", auth, 2, "user_id") == ["alice", "bob", "carol"]
    names = _walk(client, "/v1/users/alice/adapters", auth, 2, "name")
    assert names == ["default", "second", "third"]
    numbers = _walk(client, f"/v1/adapters/{adapter_id}/versions", auth, 2, "number")
    assert numbers == [1, 2, 3]
    moves = _walk(client, f"/v1/adapters/{adapter_id}/aliases/live/history", auth, 3, "to_version")
    assert moves == [1, 2, 3, 1]
    keys = _walk(client, "/v1/keys", auth, 2, "id")
    assert len(keys) == 5 and len(set(keys)) == 5  # the fixture's three, then k1 and k2
    found = _walk(client, "/v1/datasets", auth, 2, "id", user_id="alice")
    assert found == [d["id"] for d in reversed(datasets)]  # newest first
    assert _walk(client, "/v1/datasets", auth, 2, "id", user_id="bob") == []
    ids = _walk(client, f"/v1/base-models/{base['id']}/projections", auth, 2, "id")
    assert ids == [p["id"] for p in projections]
    base_ids = _walk(client, "/v1/base-models", auth, 2, "id")
    assert base["id"] in base_ids and len(base_ids) == len(set(base_ids)) == 6
    assert _walk(client, "/v1/jobs", auth, 1, "id") == []
    bad = client.get("/v1/keys", params={"cursor": "garbage"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"
    too_many = client.get("/v1/users", params={"limit": 501}, headers=auth)
    assert too_many.status_code == 422


def test_concurrent_tag_additions_all_stay(client, app, tenant):
    from concurrent.futures import ThreadPoolExecutor

    adapter_id = _adapter(app, tenant, versions=1)
    url = f"/v1/adapters/{adapter_id}"

    def add(i: int) -> int:
        return client.patch(url, json={"add_tags": [f"t{i}"]}, headers=tenant.auth()).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(add, range(8))) == {200}
    assert client.get(url, headers=tenant.auth()).json()["tags"] == [f"t{i}" for i in range(8)]


def test_times_beyond_utcs_range_are_refused_not_500(client, tenant):
    import base64
    import json

    auth = tenant.auth()
    for edge in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-14:00"):
        response = client.get("/v1/users", params={"updated_since": edge}, headers=auth)
        assert response.status_code == 422, response.text
        cursor = base64.urlsafe_b64encode(json.dumps([edge, "x"]).encode()).decode()
        for url in ("/v1/jobs", "/v1/datasets", "/v1/keys"):
            response = client.get(url, params={"cursor": cursor}, headers=auth)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["error"]["code"] == "bad_cursor"
