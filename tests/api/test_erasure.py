"""DELETE of a version, an adapter and a user: refusals, cascades, numbers never reused, the
feed's deletion events and caches that stop serving what was deleted."""

from __future__ import annotations

import os

from registry.db import session_scope
from tests import factories
from tests.api.helpers import adapter_with_versions, safetensors_blob


def _blob() -> bytes:
    return safetensors_blob([float(b) for b in os.urandom(8)])


def _publish(client, tenant, adapter_id: str, version: int, alias: str = "live") -> None:
    response = client.put(
        f"/v1/adapters/{adapter_id}/aliases/{alias}",
        json={"version": version},
        headers=tenant.auth("train"),
    )
    assert response.status_code == 200, response.text


def _feed(client, tenant) -> list[dict]:
    return client.get("/v1/feed", headers=tenant.auth("read")).json()["events"]


def test_a_version_an_alias_points_at_is_refused(client, app, tenant):
    adapter_id = adapter_with_versions(app, tenant.id, [_blob(), _blob()])
    _publish(client, tenant, adapter_id, 2)
    response = client.delete(f"/v1/adapters/{adapter_id}/versions/2", headers=tenant.auth("train"))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "version_in_use" and error["details"]["aliases"] == ["live"]
    assert "'live'" in error["message"]


def test_deleted_version_numbers_are_never_given_again(client, app, tenant):
    blobs = [_blob(), _blob(), _blob()]
    adapter_id = adapter_with_versions(app, tenant.id, blobs)
    _publish(client, tenant, adapter_id, 1)
    for number in (3, 2):
        response = client.delete(
            f"/v1/adapters/{adapter_id}/versions/{number}", headers=tenant.auth("train")
        )
        assert response.status_code == 200, response.text
        assert response.json()["counts"]["versions"] == 1
    # Version 2's and 3's blobs are gone from the store; version 1's stays.
    store = app.state.store
    assert [store.exists(factories.sha(b)) for b in blobs] == [True, False, False]
    from registry.adapters import service
    from registry.adapters.models import Adapter

    with session_scope(app.state.session_factory) as session:
        adapter = session.get(Adapter, adapter_id)
        assert (
            service.create_version(session, adapter, blob_sha256="a" * 64, size_bytes=1).number == 4
        )
    listed = client.get(f"/v1/adapters/{adapter_id}/versions", headers=tenant.auth("read")).json()
    assert [v["number"] for v in listed["items"]] == [1, 4]
    gone = client.get(f"/v1/adapters/{adapter_id}/versions/2/blob", headers=tenant.auth("read"))
    assert gone.status_code == 404
    kinds = [(e["kind"], e["from_version"]) for e in _feed(client, tenant)]
    assert kinds[-2:] == [("version_deleted", 3), ("version_deleted", 2)]


def test_a_deleted_version_is_not_served_from_the_version_index(client, app, tenant):
    adapter_id = adapter_with_versions(app, tenant.id, [_blob(), _blob()])
    _publish(client, tenant, adapter_id, 1)
    url = f"/v1/adapters/{adapter_id}/versions/2/blob"
    assert client.get(url, headers=tenant.auth("read")).status_code == 200  # now remembered
    assert client.delete(url.removesuffix("/blob"), headers=tenant.auth("train")).status_code == 200
    assert client.get(url, headers=tenant.auth("read")).status_code == 404


def test_deleting_an_adapter_removes_it_its_jobs_and_history(client, app, tenant):
    shared = _blob()
    adapter_id = adapter_with_versions(app, tenant.id, [shared, _blob()], user_id="carol")
    kept_id = adapter_with_versions(app, tenant.id, [shared], user_id="dave")
    _publish(client, tenant, adapter_id, 2)
    resolve = {"user_id": "carol"}
    assert client.get("/v1/resolve", params=resolve, headers=tenant.auth("read")).status_code == 200
    assert (
        client.delete(f"/v1/adapters/{adapter_id}", headers=tenant.auth("train")).status_code == 403
    )
    response = client.delete(f"/v1/adapters/{adapter_id}", headers=tenant.auth())
    assert response.status_code == 200, response.text
    counts = response.json()["counts"]
    assert counts["versions"] == 2 and counts["aliases"] == 1 and counts["adapters"] == 1
    assert counts["blobs_freed"] == 1  # the shared blob stays: dave's version holds it
    assert client.get(f"/v1/adapters/{adapter_id}", headers=tenant.auth()).status_code == 404
    assert client.get("/v1/resolve", params=resolve, headers=tenant.auth("read")).status_code == 404
    assert app.state.store.exists(factories.sha(shared))
    dave = client.get(f"/v1/adapters/{kept_id}/versions/1/blob", headers=tenant.auth("read"))
    assert dave.content == shared
    event = _feed(client, tenant)[-1]
    assert event["kind"] == "adapter_deleted" and event["adapter_ids"] == [adapter_id]
    assert event["adapter_id"] is None and event["user_id"] == "carol"


def test_erasing_a_user_leaves_only_adapter_ids(client, app, tenant, other_tenant):
    adapter_id = adapter_with_versions(app, tenant.id, [_blob()], user_id="erin")
    _publish(client, tenant, adapter_id, 1)
    assert client.delete("/v1/users/erin", headers=tenant.auth("train")).status_code == 403
    assert client.delete("/v1/users/erin", headers=other_tenant.auth()).status_code == 404
    response = client.delete("/v1/users/erin", headers=tenant.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["adapter_ids"] == [adapter_id]
    assert body["counts"]["adapters"] == 1 and body["counts"]["blobs_freed"] == 1
    events = _feed(client, tenant)
    assert [e["kind"] for e in events] == ["user_deleted"]  # the user's history went too
    assert events[0]["user_id"] is None and events[0]["adapter_ids"] == [adapter_id]
    assert client.delete("/v1/users/erin", headers=tenant.auth()).status_code == 404
    resolve = client.get("/v1/resolve", params={"user_id": "erin"}, headers=tenant.auth("read"))
    assert resolve.status_code == 404


def test_a_path_below_a_user_is_not_a_user_to_erase(client, app, tenant):
    adapter_id = adapter_with_versions(app, tenant.id, [_blob()], user_id="team")
    response = client.delete("/v1/users/team/adapters", headers=tenant.auth())
    assert response.status_code == 405  # "team/adapters" is no user id: nothing erased
    assert client.get(f"/v1/adapters/{adapter_id}", headers=tenant.auth()).status_code == 200
