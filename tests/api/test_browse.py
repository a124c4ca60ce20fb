"""What the console browses by: an adapter's aliases, users by id prefix."""

from __future__ import annotations

from tests.api import helpers


def test_aliases_list_by_name_with_version_and_generation(client, app, tenant, other_tenant):
    blobs = [helpers.safetensors_blob([float(i)]) for i in range(3)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)
    auth = tenant.auth("train")
    url = f"/v1/adapters/{adapter_id}/aliases"
    assert client.get(url, headers=auth).json() == {"items": [], "next_cursor": None}
    for alias, version in (("live", 1), ("live", 3), ("canary", 2), ("beta", 1)):
        put = client.put(f"{url}/{alias}", json={"version": version}, headers=auth)
        assert put.status_code == 200, put.text

    first = client.get(url, params={"limit": 2}, headers=tenant.auth("read")).json()
    assert [(a["alias"], a["version"], a["generation"]) for a in first["items"]] == [
        ("beta", 1, 1),
        ("canary", 2, 1),
    ]
    rest = client.get(url, params={"cursor": first["next_cursor"]}, headers=auth).json()
    assert [(a["alias"], a["version"], a["generation"]) for a in rest["items"]] == [("live", 3, 2)]
    assert rest["next_cursor"] is None and rest["items"][0]["updated_at"]

    foreign = client.get(url, headers=other_tenant.auth("admin"))
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"


def test_users_filter_by_id_prefix_literally(client, app, tenant):
    for user_id in ("alice", "alina", "al_x", "alpha", "bob"):
        helpers.adapter_with_versions(app, tenant.id, [], user_id=user_id)
    auth = tenant.auth("read")

    def users(prefix: str) -> list[str]:
        page = client.get("/v1/users", params={"user_id_prefix": prefix}, headers=auth)
        assert page.status_code == 200, page.text
        return [u["user_id"] for u in page.json()["items"]]

    assert users("al") == ["al_x", "alice", "alina", "alpha"]
    assert users("ali") == ["alice", "alina"]
    assert users("al_") == ["al_x"]  # `_` is a character here, not a LIKE wildcard
    assert users("z") == []
    bad = client.get("/v1/users", params={"user_id_prefix": "a%"}, headers=auth)
    assert bad.status_code == 422 and "user id" in bad.json()["error"]["message"]
