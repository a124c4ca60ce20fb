"""Base models by upload (content-addressed files, per tenant, resumable) and from external
sources only under the operator's allow-list."""

from __future__ import annotations

import hashlib
import os

import pytest

from registry.client.api import ClientError, RegistryClient
from registry.config import Settings
from tests import factories
from tests.api import helpers


@pytest.fixture
def shared(tmp_path):
    """An operator's shared model volume, with one model folder in it."""
    root = tmp_path / "shared-models"
    (root / "minilm").mkdir(parents=True)
    return root


@pytest.fixture
def settings(db_url, tmp_path, shared):
    return Settings(
        _env_file=None,
        database_url=db_url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        max_model_file_bytes=64 * 1024,
        model_sources=[str(shared), "s3://models-bucket/shared"],
    )


def _body(files: list[dict], **extra) -> dict:
    return {
        "name": "m",
        "architecture": "Bert",
        "layers": helpers.LAYERS,
        "weights_hash": "sha256:" + "a" * 64,
        "files": files,
        **extra,
    }


def _folder(tmp_path, sizes: dict[str, int]):
    folder = tmp_path / "checkpoint"
    for name, size in sizes.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(os.urandom(size))
    from registry.base_models.manifest import scan_folder

    files = [vars(f) for f in scan_folder(folder)]
    return folder, _body(files)


def _client(client, tenant) -> tuple[RegistryClient, list[tuple[str, str]]]:
    sent: list[tuple[str, str]] = []
    client.event_hooks["request"] = [lambda r: sent.append((r.method, r.url.path))]
    return RegistryClient(api_key=tenant.keys["admin"], http=client), sent


def test_upload_is_verified_and_resumes_with_only_the_missing_files(client, tenant, tmp_path):
    folder, body = _folder(
        tmp_path, {"model.safetensors": 40_000, "config.json": 300, "tok/vocab.txt": 2000}
    )
    rc, sent = _client(client, tenant)

    class Interrupted(Exception):
        pass

    def cut_after_first_file(event: str, size: int) -> None:
        if sum(1 for m, _ in sent if m == "PUT") == 2:
            raise Interrupted  # the laptop's connection drops during the second file

    with pytest.raises(Interrupted):
        rc.upload_base_model(folder, body, cut_after_first_file)
    sent.clear()
    model = rc.upload_base_model(folder, body)
    puts = [path for method, path in sent if method == "PUT"]
    assert len(puts) == 2  # the first file was not sent again
    assert model["source_uri"] is None and len(model["files"]) == 3
    assert {f["path"] for f in model["files"]} == {
        "model.safetensors",
        "config.json",
        "tok/vocab.txt",
    }
    from registry.base_models.manifest import ModelFile, manifest_hash

    expected = manifest_hash(body["weights_hash"], [ModelFile(**f) for f in body["files"]])
    assert model["content_hash"] == expected
    # Config and tokenizer files are part of the identity: another vocab, another model.
    (folder / "tok/vocab.txt").write_bytes(b"other vocabulary")
    _, changed = _folder(tmp_path, {})
    assert rc.upload_base_model(folder, changed)["content_hash"] != expected


def test_a_wrong_or_oversized_body_stores_nothing(client, app, tenant):
    data = b"weights" * 100
    sha256 = hashlib.sha256(data).hexdigest()
    url = f"/v1/base-models/files/{sha256}"
    response = client.put(url, content=data + b"!", headers=tenant.auth())
    assert response.status_code == 400 and response.json()["error"]["code"] == "sha256_mismatch"
    big = os.urandom(65 * 1024)
    big_url = f"/v1/base-models/files/{hashlib.sha256(big).hexdigest()}"
    assert client.put(big_url, content=big, headers=tenant.auth()).status_code == 413
    chunked = iter([big[:40_000], big[40_000:]])  # no Content-Length: counted while streaming
    assert client.put(big_url, content=chunked, headers=tenant.auth()).status_code == 413
    assert list(app.state.store.list_blobs()) == []
    assert client.get(url, headers=tenant.auth()).status_code == 404
    assert client.put(url, content=data, headers=tenant.auth()).json() == {
        "sha256": sha256,
        "size": len(data),
    }
    assert client.get(url, headers=tenant.auth()).status_code == 200


def test_a_manifest_naming_files_not_uploaded_is_refused(client, tenant, other_tenant):
    data = os.urandom(100)
    file = {"path": "model.safetensors", **helpers.upload_model_file(client, tenant.auth(), data)}
    # Another tenant who knows the sha256 must send the bytes itself.
    assert (
        client.get(
            f"/v1/base-models/files/{file['sha256']}", headers=other_tenant.auth()
        ).status_code
        == 404
    )
    response = client.post("/v1/base-models", json=_body([file]), headers=other_tenant.auth())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "files_not_uploaded"
    wrong_size = {**file, "size": 99}
    response = client.post("/v1/base-models", json=_body([wrong_size]), headers=tenant.auth())
    assert response.status_code == 422
    assert (
        client.post("/v1/base-models", json=_body([file]), headers=tenant.auth()).status_code == 201
    )


@pytest.mark.parametrize(
    ("files", "field"),
    [
        ([{"path": "../model.safetensors", "sha256": "b" * 64, "size": 1}], "files.path"),
        ([{"path": "/etc/model.safetensors", "sha256": "b" * 64, "size": 1}], "files.path"),
        ([{"path": "a\\..\\model.safetensors", "sha256": "b" * 64, "size": 1}], "files.path"),
        ([{"path": "config.json", "sha256": "b" * 64, "size": 1}], "files"),
    ],
)
def test_manifest_paths_and_weights_are_checked(client, tenant, shared, files, field):
    body = _body(files, source_uri=str(shared / "minilm"))
    response = client.post("/v1/base-models", json=body, headers=tenant.auth())
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == field


def test_content_hash_must_match_the_manifest(client, tenant, shared):
    files = [{"path": "model.safetensors", "sha256": "b" * 64, "size": 1}]
    body = _body(files, source_uri=str(shared / "minilm"), content_hash="sha256:" + "c" * 64)
    response = client.post("/v1/base-models", json=body, headers=tenant.auth())
    assert response.status_code == 422 and "content_hash" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "source",
    [
        "{shared}/minilm/../../outside",  # '..' climbs out of the allowed root
        "{shared}/../shared-models-evil/minilm",  # a sibling that shares the prefix
        "/etc",  # an absolute path outside the allow-list
        "relative/minilm",
        "file:///etc",
        "{shared}/escape",  # a symlink inside the root that points outside it
        "s3://someone-elses-bucket/models",  # a foreign bucket
        "s3://models-bucket/other",  # the right bucket, another prefix
        "s3://models-bucket/shared-evil",  # a prefix that only starts the same
        "s3://models-bucket/shared/../other",
    ],
)
def test_sources_outside_the_allow_list_are_refused(client, tenant, shared, tmp_path, source):
    (tmp_path / "outside").mkdir()
    (shared / "escape").symlink_to(tmp_path / "outside")
    files = [{"path": "model.safetensors", "sha256": "b" * 64, "size": 1}]
    body = _body(files, source_uri=source.format(shared=shared))
    response = client.post("/v1/base-models", json=body, headers=tenant.auth())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "source_not_allowed" and "VERA_MODEL_SOURCES" in error["message"]
    assert str(shared) not in error["message"].replace(source.format(shared=shared), "")


@pytest.mark.parametrize(
    ("source", "stored"),
    [
        ("{shared}/minilm", "{shared}/minilm"),
        ("file://{shared}/x/../minilm", "{shared}/minilm"),
        ("s3://models-bucket/shared/minilm/", "s3://models-bucket/shared/minilm"),
    ],
)
def test_sources_under_the_allow_list_are_recorded_normalised(
    client, tenant, shared, source, stored
):
    files = [{"path": "model.safetensors", "sha256": factories.sha(), "size": 1}]
    body = _body(files, source_uri=source.format(shared=shared))
    response = client.post("/v1/base-models", json=body, headers=tenant.auth())
    assert response.status_code == 201, response.text
    assert response.json()["source_uri"] == stored.format(shared=shared.resolve())


def test_read_keys_cannot_upload_or_register(client, tenant):
    data = b"x"
    url = f"/v1/base-models/files/{hashlib.sha256(data).hexdigest()}"
    assert client.put(url, content=data, headers=tenant.auth("train")).status_code == 403
    with pytest.raises(ClientError):
        RegistryClient(api_key=tenant.keys["read"], http=client).has_model_file("0" * 64)
