"""RegistryClient against the real app: errors, resolve, verified cached blobs, feed resume."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from registry.client.api import ClientError, Manifest, RegistryClient
from tests.api.helpers import adapter_with_versions, safetensors_blob


def _mock_client(handler, **kwargs) -> tuple[RegistryClient, list[float]]:
    slept: list[float] = []
    rc = RegistryClient(
        "http://registry.test",
        "key",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        **kwargs,
    )
    return rc, slept


def test_retries_5xx_and_connection_errors_with_exponential_backoff():
    answers = iter(
        [
            httpx.ConnectError("refused"),
            httpx.Response(503, json={"error": {"code": "unavailable", "message": "db down"}}),
            httpx.Response(502, text="bad gateway"),
            httpx.Response(200, json={"id": "j1"}),
        ]
    )
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    rc, slept = _mock_client(handler, retries=3, backoff=0.1)
    assert rc.get_job("j1") == {"id": "j1"}
    assert len(seen) == 4 and slept == [0.1, 0.2, 0.4]
    assert seen[0].headers["Authorization"] == "Bearer key"


def test_gives_up_after_retries_with_the_last_error():
    def handler(request):
        return httpx.Response(503, json={"error": {"code": "unavailable", "message": "m"}})

    rc, slept = _mock_client(handler, retries=2, backoff=1, max_backoff=1.5)
    with pytest.raises(ClientError) as info:
        rc.get_job("j1")
    assert (info.value.status, info.value.code) == (503, "unavailable")
    assert slept == [1, 1.5]


def test_never_retries_4xx():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(409, json={"error": {"code": "conflict", "message": "m"}})

    rc, slept = _mock_client(handler)
    with pytest.raises(ClientError):
        rc.publish("a", "live", 2, if_match=3)
    assert len(calls) == 1 and slept == []
    assert calls[0].headers["If-Match"] == '"3"'


def test_error_body_is_parsed_from_the_real_app(registry):
    with pytest.raises(ClientError) as info:
        registry.resolve("nobody")
    assert info.value.status == 404 and info.value.code and info.value.message
    with pytest.raises(ClientError) as info:
        registry.submit_job({"user_id": "alice"})
    assert info.value.status == 422 and info.value.details


def _published(app, registry, blobs, user_id="alice") -> str:
    adapter_id = adapter_with_versions(app, registry.tenant.id, blobs, user_id=user_id)
    registry.publish(adapter_id, "live", len(blobs))
    return adapter_id


def _counting(rc: RegistryClient) -> list[str]:
    urls: list[str] = []
    original = rc.request

    def request(method, path, **kwargs):
        urls.append(path)
        return original(method, path, **kwargs)

    rc.request = request
    return urls


def test_resolve_download_verify_and_cache(app, registry):
    blob = safetensors_blob([1.0, 2.0])
    adapter_id = _published(app, registry, [blob])
    manifest = registry.resolve("alice")
    assert isinstance(manifest, Manifest)
    assert (manifest.adapter_id, manifest.version, manifest.alias) == (adapter_id, 1, "live")
    sha = hashlib.sha256(blob).hexdigest()
    assert manifest.blob_sha256 == sha and manifest.projection.fingerprint
    urls = _counting(registry)
    assert registry.download_blob(manifest) == blob
    path = registry.cache_path(sha)
    assert path == registry.cache_dir / "sha256" / sha[:2] / sha and path.read_bytes() == blob
    assert registry.download_blob(sha256=sha, url=manifest.blob_url) == blob
    assert len(urls) == 1, "the second download must come from the cache"
    path.write_bytes(b"corrupt" + blob[7:])
    assert registry.download_blob(manifest) == blob
    assert len(urls) == 2 and path.read_bytes() == blob


def test_download_refuses_bytes_that_do_not_match(app, registry):
    from registry.client.api import IntegrityError

    blob = safetensors_blob([3.0])
    _published(app, registry, [blob])
    manifest = registry.resolve("alice")
    with pytest.raises(IntegrityError):
        registry.download_blob(sha256="0" * 64, url=manifest.blob_url)
    assert not registry.cache_path("0" * 64).exists()


def test_feed_follower_resumes_from_the_persisted_seq(app, registry, client, tenant, tmp_path):
    adapter_id = _published(app, registry, [safetensors_blob([1.0]), safetensors_blob([2.0])])
    registry.publish(adapter_id, "live", 1)
    registry.rollback(adapter_id, "live")
    state = tmp_path / "feed.seq"
    follower = registry.follow_feed(wait=0, state_file=state)
    first, second = next(follower), next(follower)  # asking for the second commits the first
    assert (first.kind, first.to_version) == ("set", 2)
    assert (second.from_version, second.to_version) == (2, 1)
    follower.close()  # "crash" while handling the second event
    assert int(state.read_text()) == first.seq

    restarted = RegistryClient(api_key=tenant.keys["read"], http=client)
    seen = []
    for event in restarted.follow_feed(wait=0, state_file=state, stop=lambda: len(seen) >= 2):
        seen.append(event)
    assert [e.seq for e in seen] == [second.seq, second.seq + 1]
    assert seen[-1].kind == "rollback" and int(state.read_text()) == seen[-1].seq
    assert [h["to_version"] for h in registry.history(adapter_id, "live")] == [2, 1, 2]


def test_feed_long_poll_returns_empty_after_wait(registry):
    events, last = registry.feed(after=0, wait=0.3)
    assert events == [] and last == 0


def test_export_peft_and_listing_wrappers(app, registry, tmp_path):
    config = {"peft_type": "VERA", "r": 2, "target_modules": ["layer"], "task_type": "SEQ_CLS"}
    adapter_id = _published(app, registry, [safetensors_blob([1.0, 2.0], config)])
    out = registry.export_peft(
        adapter_id, 1, tmp_path / "peft", base_model_name_or_path=str(tmp_path)
    )
    exported = json.loads((out / "adapter_config.json").read_text())
    assert exported["peft_type"] == "VERA"
    assert (out / "adapter_model.safetensors").stat().st_size > 0
    assert [a["id"] for a in registry.list_adapters("alice")] == [adapter_id]
    assert [v["number"] for v in registry.list_versions(adapter_id)] == [1]
    assert registry.get_alias(adapter_id, "live")["version"] == 1
    rows = b'{"text": "a", "label": 1}\n{"text": "b", "label": 0}'
    dataset = registry.upload_dataset("alice", "sequence-classification", rows)
    assert registry.get_dataset(dataset["id"])["user_id"] == "alice"
    assert registry.list_jobs(user_id="alice")["items"] == []


def test_client_module_is_torch_free():
    import subprocess
    import sys

    code = (
        "import sys, registry.client, registry.client.api\n"
        "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not leaked, leaked[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
