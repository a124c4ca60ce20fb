import io
import json
import threading
import time
import zipfile

from tests.api import helpers


def _published(client, app, tenant, count=3):
    blobs = [helpers.safetensors_blob([float(i), 2.0, 3.0]) for i in range(count)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)
    return adapter_id, blobs


def test_blob_download_etag_304_range(client, app, tenant):
    adapter_id, blobs = _published(client, app, tenant, 1)
    auth = tenant.auth("read")
    url = f"/v1/adapters/{adapter_id}/versions/1/blob"
    full = client.get(url, headers=auth)
    assert full.status_code == 200 and full.content == blobs[0]
    assert full.headers["content-length"] == str(len(blobs[0]))
    import hashlib

    etag = full.headers["etag"]
    assert etag == f'"{hashlib.sha256(blobs[0]).hexdigest()}"'
    assert client.get(url, headers={**auth, "If-None-Match": etag}).status_code == 304
    part = client.get(url, headers={**auth, "Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == blobs[0][2:10]
    assert part.headers["content-range"] == f"bytes 2-9/{len(blobs[0])}"
    assert part.headers["content-length"] == "8"
    tail = client.get(url, headers={**auth, "Range": "bytes=-4"})
    assert tail.content == blobs[0][-4:]
    beyond = client.get(url, headers={**auth, "Range": f"bytes={len(blobs[0])}-"})
    assert beyond.status_code == 416
    assert client.get(f"/v1/adapters/{adapter_id}/versions/9/blob", headers=auth).status_code == 404
    assert client.get(f"/v1/adapters/{adapter_id}/versions/0/blob", headers=auth).status_code == 400


def test_peft_zip_holds_config_and_weights(client, app, tenant):
    adapter_id, blobs = _published(client, app, tenant, 1)
    response = client.get(f"/v1/adapters/{adapter_id}/versions/1/peft", headers=tenant.auth())
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["adapter_config.json", "adapter_model.safetensors"]
        assert archive.read("adapter_model.safetensors") == blobs[0]
        assert json.loads(archive.read("adapter_config.json"))["peft_type"] == "VERA"


def test_publish_with_if_match_rollback_history_resolve(client, app, tenant):
    adapter_id, _ = _published(client, app, tenant)
    auth = tenant.auth("train")
    alias_url = f"/v1/adapters/{adapter_id}/aliases/live"
    created = client.put(alias_url, json={"version": 1}, headers={**auth, "If-None-Match": "*"})
    assert created.status_code == 200 and created.json()["generation"] == 1
    assert created.headers["etag"] == '"1"'
    again = client.put(alias_url, json={"version": 2}, headers={**auth, "If-None-Match": "*"})
    assert again.status_code == 412  # RFC 9110 §13.1.2: a false If-None-Match on a PUT
    stale = client.put(alias_url, json={"version": 2}, headers={**auth, "If-Match": '"7"'})
    assert stale.status_code == 409
    assert stale.json()["error"]["details"]["current_generation"] == 1
    moved = client.put(alias_url, json={"version": 2}, headers={**auth, "If-Match": '"1"'}).json()
    assert moved.pop("manifest")["version"] == 2  # see test_read_your_writes.py
    assert moved == {
        "adapter_id": adapter_id,
        "alias": "live",
        "version": 2,
        "generation": 2,
    }
    assert client.put(alias_url, json={"version": 99}, headers=auth).status_code == 404
    manifest = client.get("/v1/resolve", params={"user_id": "alice"}, headers=auth)
    assert manifest.status_code == 200 and manifest.json()["version"] == 2
    assert manifest.json()["blob_url"] == f"/v1/adapters/{adapter_id}/versions/2/blob"
    etag = manifest.headers["etag"]
    unchanged = client.get(
        "/v1/resolve", params={"user_id": "alice"}, headers={**auth, "If-None-Match": etag}
    )
    assert unchanged.status_code == 304
    rolled = client.post(f"{alias_url}/rollback", headers=auth)
    assert rolled.status_code == 200 and rolled.json()["version"] == 1
    after = client.get(
        "/v1/resolve", params={"user_id": "alice"}, headers={**auth, "If-None-Match": etag}
    )
    assert after.status_code == 200 and after.json()["version"] == 1
    history = client.get(f"{alias_url}/history", headers=auth).json()["items"]
    assert [(h["kind"], h["to_version"]) for h in history] == [
        ("set", 1),
        ("set", 2),
        ("rollback", 1),
    ]
    assert client.post(f"{alias_url}/rollback", headers=auth).status_code == 409
    named = client.post(f"{alias_url}/rollback", json={"to_version": 3}, headers=auth)
    assert named.json()["version"] == 3


def test_feed_in_order_and_long_poll_wakes_on_publish(client, app, tenant):
    adapter_id, _ = _published(client, app, tenant)
    auth = tenant.auth("train")
    client.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 1}, headers=auth)
    first = client.get("/v1/feed", headers=auth).json()
    assert [e["to_version"] for e in first["events"]] == [1]
    cursor = first["last_seq"]
    assert client.get("/v1/feed", params={"after": cursor}, headers=auth).json()["events"] == []

    def publish_soon():
        time.sleep(0.5)
        client.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 2}, headers=auth)

    thread = threading.Thread(target=publish_soon)
    started = time.monotonic()
    thread.start()
    waited = client.get("/v1/feed", params={"after": cursor, "wait": 10}, headers=auth).json()
    elapsed = time.monotonic() - started
    thread.join()
    assert [e["to_version"] for e in waited["events"]] == [2]
    assert elapsed < 1.5, elapsed  # published at 0.5 s; answered well within a second of it
    assert waited["last_seq"] > cursor


def test_lists_and_version_pages(client, app, tenant):
    adapter_id, _ = _published(client, app, tenant)
    auth = tenant.auth("read")
    adapters = client.get("/v1/users/alice/adapters", headers=auth).json()["items"]
    assert [a["id"] for a in adapters] == [adapter_id]
    page = client.get(
        f"/v1/adapters/{adapter_id}/versions", params={"limit": 2}, headers=auth
    ).json()
    rest = client.get(
        f"/v1/adapters/{adapter_id}/versions",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=auth,
    ).json()
    assert [v["number"] for v in page["items"] + rest["items"]] == [1, 2, 3]
    assert rest["next_cursor"] is None


def test_resolve_cache_follows_moves_made_by_other_processes(client, app, tenant):
    from registry.adapters import service as adapters
    from registry.db import session_scope

    adapter_id, _ = _published(client, app, tenant)
    auth = tenant.auth("train")
    client.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 1}, headers=auth)
    resolve = lambda: client.get("/v1/resolve", params={"user_id": "alice"}, headers=auth)  # noqa: E731
    assert resolve().json()["version"] == 1
    assert resolve().json()["version"] == 1  # now cached
    # A worker (another process) publishes straight through the database.
    with session_scope(app.state.session_factory) as session:
        adapters.set_alias(session, tenant.id, adapter_id, "live", 2)
    time.sleep(app.state.settings.resolve_cache_s + 0.05)
    assert resolve().json()["version"] == 2
    # Through this process the move shows at once.
    moved = client.put(f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 3}, headers=auth)
    assert moved.status_code == 200, moved.text
    assert resolve().json()["version"] == 3
