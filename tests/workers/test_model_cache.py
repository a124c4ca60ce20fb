"""The worker's base-model cache: files fetched by content hash from the registry's store or an
allow-listed source, each verified; damage is found and repaired, foreign paths refused."""

from __future__ import annotations

import json

import pytest

from registry.base_models.manifest import manifest_hash, scan_folder
from registry.config import Settings
from registry.storage import LocalBlobStore
from tests.storage.conftest import bucket, moto_endpoint, raw_client, s3_settings  # noqa: F401
from workers.model_cache import BaseModelMismatch, ModelCache, ModelSpec

torch = pytest.importorskip("torch")


@pytest.fixture
def folder(tmp_path):
    """A tiny checkpoint folder: weights, config and a tokenizer file."""
    from safetensors.torch import save_file

    path = tmp_path / "uploader" / "tiny"
    path.mkdir(parents=True)
    save_file({"layer.weight": torch.arange(12.0).reshape(3, 4)}, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (path / "tokenizer").mkdir()
    (path / "tokenizer" / "vocab.txt").write_text("[PAD]\nhello\n")
    return path


def _spec(folder, source_uri: str | None = None) -> ModelSpec:
    from registry.vera.hashing import hash_safetensors_dir

    files = tuple(scan_folder(folder))
    weights = hash_safetensors_dir(folder)
    return ModelSpec(manifest_hash(weights, files), weights, source_uri, files)


def _uploaded(folder, store) -> ModelSpec:
    for file in scan_folder(folder):
        store.put_file(folder / file.path)
    return _spec(folder)


def test_fetched_from_the_store_by_content_hash_and_repaired_file_by_file(folder, tmp_path):
    store = LocalBlobStore(tmp_path / "blobs", 1 << 20)
    spec = _uploaded(folder, store)
    cache = ModelCache(Settings(_env_file=None, home=tmp_path / "worker-home"), store)
    path = cache.fetch(spec)
    assert path == tmp_path / "worker-home" / "models" / spec.content_hash.removeprefix("sha256:")
    assert {f.path for f in scan_folder(path)} == {f.path for f in spec.files}
    # One file damaged in the cache, one deleted, a stranger added: found and put right.
    (path / "config.json").write_text('{"model_type": "gpt2"}')
    (path / "tokenizer" / "vocab.txt").unlink()
    (path / "extra.safetensors").write_bytes(b"not listed")
    assert cache.fetch(spec) == path
    assert scan_folder(path) == scan_folder(folder)


def test_damage_in_the_store_fails_without_naming_what_was_read(folder, tmp_path):
    store = LocalBlobStore(tmp_path / "blobs", 1 << 20)
    spec = _uploaded(folder, store)
    config = next(f for f in spec.files if f.path == "config.json")
    stored = store._path(config.sha256)
    stored.chmod(0o644)
    other = b'{"model_type": "someone-else"}'
    stored.write_bytes(other)
    cache = ModelCache(Settings(_env_file=None, home=tmp_path / "home"), store)
    with pytest.raises(BaseModelMismatch, match=r"config\.json") as caught:
        cache.fetch(spec)
    import hashlib

    assert hashlib.sha256(other).hexdigest()[:12] not in str(caught.value)


def test_external_local_source_is_rechecked_on_the_worker(folder, tmp_path):
    settings = Settings(_env_file=None, home=tmp_path / "home", model_sources=[str(folder.parent)])
    cache = ModelCache(settings, store=None)
    spec = _spec(folder, source_uri=str(folder))
    assert scan_folder(cache.fetch(spec)) == scan_folder(folder)
    # The operator narrows the allow-list after registration: the worker refuses, even
    # with the files already in its cache.
    narrowed = settings.model_copy(update={"model_sources": [str(tmp_path / "x")]})
    with pytest.raises(BaseModelMismatch, match="VERA_MODEL_SOURCES"):
        ModelCache(narrowed, store=None).fetch(spec)
    # A file of the source swapped for a symlink that leads outside the allowed root.
    secret = tmp_path / "secret.txt"
    secret.write_text("[PAD]\nhello\n")
    (folder / "tokenizer" / "vocab.txt").unlink()
    (folder / "tokenizer" / "vocab.txt").symlink_to(secret)
    with pytest.raises(BaseModelMismatch, match="not under an allowed directory"):
        ModelCache(settings.model_copy(update={"home": tmp_path / "home3"}), None).fetch(spec)


def test_external_s3_source_is_fetched_and_verified(folder, tmp_path, moto_endpoint, bucket):  # noqa: F811
    client = raw_client(moto_endpoint)
    for file in scan_folder(folder):
        client.upload_file(str(folder / file.path), bucket, f"shared/tiny/{file.path}")
    settings = s3_settings(
        moto_endpoint, bucket, home=tmp_path / "home", model_sources=[f"s3://{bucket}/shared"]
    )
    spec = _spec(folder, source_uri=f"s3://{bucket}/shared/tiny")
    assert scan_folder(ModelCache(settings, None).fetch(spec)) == scan_folder(folder)
    client.put_object(Bucket=bucket, Key="shared/tiny/config.json", Body=b"{}")
    fresh = settings.model_copy(update={"home": tmp_path / "home2"})
    with pytest.raises(BaseModelMismatch, match=r"config\.json.*register it again"):
        ModelCache(fresh, None).fetch(spec)


def test_a_model_registered_before_manifests_asks_to_be_registered_again(tmp_path):
    cache = ModelCache(Settings(_env_file=None, home=tmp_path / "home"), store=None)
    old = ModelSpec("sha256:" + "a" * 64, "sha256:" + "a" * 64, "/models/m", ())
    with pytest.raises(BaseModelMismatch, match="register it again"):
        cache.fetch(old)
