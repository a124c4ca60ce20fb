"""GET /v1/base-models/{id}/files/{path}: manifest files only, streamed and checked, from the
store or the model's allowed source; RegistryClient.download_base_model writes the folder."""

from __future__ import annotations

import hashlib
import importlib
import os

import pytest

from registry.base_models.manifest import scan_folder
from registry.base_models.reader import BaseModelMismatch
from registry.client.api import IntegrityError, RegistryClient
from registry.config import Settings
from tests.api import helpers

FILES = {"model.safetensors": 3 * 1024 * 1024 + 5, "config.json": 40, "tok/vocab.txt": 300}


@pytest.fixture
def shared(tmp_path):
    root = tmp_path / "shared-models"
    root.mkdir()
    return root


@pytest.fixture
def settings(db_url, tmp_path, shared):
    return Settings(
        _env_file=None,
        database_url=db_url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        max_model_file_bytes=8 * 1024 * 1024,
        model_sources=[str(shared)],
    )


def _folder(root, name: str = "minilm"):
    folder = root / name
    for path, size in FILES.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(os.urandom(size))
    return folder


def _register(client, auth, folder, source: bool) -> dict:
    files = [vars(f) for f in scan_folder(folder)]
    if not source:
        for file in files:
            helpers.upload_model_file(client, auth, (folder / file["path"]).read_bytes())
    body = {
        "name": "m",
        "architecture": "Bert",
        "layers": helpers.LAYERS,
        "weights_hash": "sha256:" + "a" * 64,
        "files": files,
        **({"source_uri": str(folder)} if source else {}),
    }
    response = client.post("/v1/base-models", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("source", [False, True], ids=["stored", "source"])
def test_manifest_files_stream_with_their_sha256(client, tenant, shared, source):
    folder = _folder(shared)
    model = _register(client, tenant.auth(), folder, source)
    base = f"/v1/base-models/{model['id']}/files"
    data = (folder / "tok/vocab.txt").read_bytes()
    response = client.get(f"{base}/tok/vocab.txt", headers=tenant.auth("read"))
    assert response.status_code == 200 and response.content == data
    sha256 = hashlib.sha256(data).hexdigest()
    assert response.headers["etag"] == f'"{sha256}"'
    assert response.headers["content-length"] == str(len(data))
    cached = {**tenant.auth("read"), "If-None-Match": f'"{sha256}"'}
    assert client.get(f"{base}/tok/vocab.txt", headers=cached).status_code == 304
    big = client.get(f"{base}/model.safetensors", headers=tenant.auth("read"))
    assert big.content == (folder / "model.safetensors").read_bytes()


# Clients normalise "a/../b" themselves; the encoded forms reach the route as they are.
ESCAPES = [
    "missing.txt",
    "tok",
    "../secret.txt",
    "%2E%2E/secret.txt",
    "..%2Fsecret.txt",
    "%2E%2E%2F%2E%2E%2Fshared-models%2Fsecret.txt",
    "/etc/passwd",
    "tok//vocab.txt",
]


def test_only_manifest_paths_exist(client, tenant, other_tenant, shared):
    folder = _folder(shared)
    (shared / "secret.txt").write_text("operator's file")
    model = _register(client, tenant.auth(), folder, source=True)
    base = f"/v1/base-models/{model['id']}/files"
    for path in ESCAPES:
        response = client.get(f"{base}/{path}", headers=tenant.auth())
        assert response.status_code == 404, (path, response.text)
        assert "operator" not in response.text
    theirs = client.get(f"{base}/config.json", headers=other_tenant.auth())
    assert theirs.status_code == 404


def test_a_changed_source_file_is_never_served_whole(client, tenant, shared):
    folder = _folder(shared)
    model = _register(client, tenant.auth(), folder, source=True)
    url = f"/v1/base-models/{model['id']}/files/config.json"
    (folder / "config.json").write_bytes(b"x" * FILES["config.json"])  # same size, new bytes
    with pytest.raises(BaseModelMismatch, match=r"config\.json.*register it again"):
        client.get(url, headers=tenant.auth())
    (folder / "config.json").unlink()
    response = client.get(url, headers=tenant.auth())
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "base_model_files_unavailable"


def test_client_downloads_verifies_and_skips_good_files(client, tenant, shared, tmp_path):
    folder = _folder(shared)
    model = _register(client, tenant.auth(), folder, source=False)
    rc = RegistryClient(api_key=tenant.keys["read"], http=client)
    target = tmp_path / "copy"
    assert rc.download_base_model(model["id"], target) == target
    assert {f.path: f.sha256 for f in scan_folder(target)} == {
        f.path: f.sha256 for f in scan_folder(folder)
    }
    (target / "tok/vocab.txt").write_bytes(b"damaged")
    events: list[tuple[str, int]] = []
    rc.download_base_model(model["id"], target, lambda event, n: events.append((event, n)))
    assert ("skip", FILES["model.safetensors"]) in events and ("skip", 40) in events
    assert sum(n for event, n in events if event == "received") == FILES["tok/vocab.txt"]
    assert (target / "tok/vocab.txt").read_bytes() == (folder / "tok/vocab.txt").read_bytes()
    assert not [p for p in target.rglob(".*")]  # no temporary files left behind


def test_client_refuses_bytes_that_do_not_match_the_manifest(client, tenant, shared, tmp_path):
    folder = _folder(shared)
    model = _register(client, tenant.auth(), folder, source=False)
    rc = RegistryClient(api_key=tenant.keys["read"], http=client)
    # A proxy (or a store) hands back other bytes: nothing unverified lands in the folder.
    client.event_hooks["response"] = [_replace_body_of("vocab.txt")]
    with pytest.raises(IntegrityError):
        rc.download_base_model(model["id"], tmp_path / "copy")
    assert not (tmp_path / "copy" / "tok" / "vocab.txt").exists()


def _replace_body_of(name: str):
    def hook(response):
        if response.request.url.path.endswith(name):
            # The test client's own httpx flavour: its ByteStream reads both ways.
            httpx_module = importlib.import_module(type(response).__module__.split(".")[0])
            response.stream = httpx_module.ByteStream(b"not the vocabulary")

    return hook
