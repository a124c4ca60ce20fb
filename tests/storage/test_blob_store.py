"""One suite for both backends."""

import hashlib
import os
import threading
import time

import httpx
import pytest

from registry.config import Settings
from registry.errors import BadRequest, BlobCorrupt, BlobNotFound, StorageError, TooLarge
from registry.storage import LocalBlobStore, open_store
from tests.storage.conftest import LIMIT, overwrite, s3_settings


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_roundtrip_and_idempotent_put(store):
    data = b"vector bytes" * 100
    info = store.put(data)
    assert (info.sha256, info.size) == (sha(data), len(data))
    assert store.put(data).sha256 == info.sha256
    assert store.get(info.sha256) == data
    assert b"".join(store.iter_bytes(info.sha256, chunk_size=7)) == data
    assert store.exists(info.sha256) and store.stat(info.sha256).size == len(data)
    assert store.verify(info.sha256).size == len(data)


def test_declared_hash_must_match_and_nothing_is_written(store):
    data = b"abc"
    with pytest.raises(BadRequest):
        store.put(data, sha256=sha(b"other"))
    assert not store.exists(sha(data))
    assert store.put(data, sha256=sha(data)).sha256 == sha(data)


def test_missing_blob(store):
    missing = sha(b"never stored")
    with pytest.raises(BlobNotFound):
        store.get(missing)
    with pytest.raises(BlobNotFound):
        list(store.iter_bytes(missing))
    with pytest.raises(BlobNotFound):
        store.stat(missing)
    assert not store.exists(missing)


def test_corrupted_bytes_are_detected_on_every_full_read(store):
    data = b"the real bytes"
    info = store.put(data)
    overwrite(store, info.sha256, b"tampered bytes")
    with pytest.raises(BlobCorrupt):
        store.get(info.sha256)
    with pytest.raises(BlobCorrupt):
        list(store.iter_bytes(info.sha256))
    with pytest.raises(BlobCorrupt):
        store.verify(info.sha256)


@pytest.mark.parametrize(
    ("start", "end"), [(0, 1), (3, 10), (10, None), (0, 26), (25, 26), (5, 5), (0, 100)]
)
def test_ranged_reads(store, start, end):
    data = b"abcdefghijklmnopqrstuvwxyz"
    info = store.put(data)
    assert b"".join(store.iter_bytes(info.sha256, start=start, end=end)) == data[start:end]


def test_bad_ranges_and_keys(store):
    info = store.put(b"x")
    with pytest.raises(BadRequest):
        list(store.iter_bytes(info.sha256, start=-1))
    with pytest.raises(BadRequest):
        list(store.iter_bytes(info.sha256, start=5, end=2))
    for bad in ("../etc/passwd", "A" * 64, "a" * 63, "", "a" * 64 + "/.."):
        with pytest.raises(BadRequest):
            store.get(bad)
        with pytest.raises(BadRequest):
            store.put(b"x", sha256=bad)


def test_delete_is_idempotent_and_list(store):
    first, second = store.put(b"one"), store.put(b"two")
    assert {b.sha256 for b in store.list_blobs()} == {first.sha256, second.sha256}
    assert all(b.created_at is not None for b in store.list_blobs())
    store.delete(first.sha256)
    store.delete(first.sha256)
    assert not store.exists(first.sha256)
    assert [b.sha256 for b in store.list_blobs()] == [second.sha256]


def test_put_file_streams_a_large_file(store, tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    info = store.put_file(path)
    assert info.sha256 == sha(data) and info.size == len(data)
    assert store.get(info.sha256) == data


def test_too_large(store, tmp_path):
    with pytest.raises(TooLarge):
        store.put(b"x" * (LIMIT + 1))
    path = tmp_path / "huge.bin"
    path.write_bytes(b"y" * (LIMIT + 1))
    with pytest.raises(TooLarge):
        store.put_file(path)
    assert list(store.list_blobs()) == []


def test_concurrent_puts_of_the_same_bytes(store):
    data = os.urandom(200_000)
    errors: list[Exception] = []

    def put():
        try:
            store.put(data)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and store.get(sha(data)) == data
    assert len(list(store.list_blobs())) == 1


def test_presigned_url(store):
    info = store.put(b"presigned payload")
    url = store.presigned_get_url(info.sha256, 60)
    if isinstance(store, LocalBlobStore):
        assert url is None
    else:
        assert httpx.get(url).content == b"presigned payload"


def test_check(store):
    store.check()


def test_unreachable_s3_fails_fast_with_a_clear_error():
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    from registry.s3 import S3BlobStore, make_client

    settings = s3_settings(f"http://127.0.0.1:{port}", "nowhere")
    client = make_client(settings, connect_timeout=0.5, read_timeout=0.5, max_attempts=1)
    store = S3BlobStore("nowhere", "blobs", settings, client=client)
    started = time.monotonic()
    with pytest.raises(StorageError, match="VERA_S3_ENDPOINT_URL"):
        store.check()
    with pytest.raises(StorageError):
        store.put(b"x")
    assert time.monotonic() - started < 10


def test_s3_without_checksums_or_conditional_writes(moto_endpoint, bucket):
    store = open_store(
        s3_settings(moto_endpoint, bucket, s3_checksums=False, s3_conditional_writes=False)
    )
    info = store.put(b"plain")
    assert store.put(b"plain").sha256 == info.sha256 and store.get(info.sha256) == b"plain"


def test_open_store_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = open_store(Settings(_env_file=None, storage_url="file://./blobs"))
    assert isinstance(relative, LocalBlobStore) and not relative.root.is_absolute()
    absolute = open_store(Settings(_env_file=None, storage_url=f"file://{tmp_path}/b"))
    assert absolute.root == tmp_path / "b"
    bare = open_store(Settings(_env_file=None, storage_url="s3://bucket", s3_region="eu-west-1"))
    assert (bare.bucket, bare.prefix) == ("bucket", "")
    prefixed = open_store(Settings(_env_file=None, storage_url="s3://bucket/a/b/"))
    assert prefixed._key("0" * 64) == "a/b/sha256/00/" + "0" * 64
    for bad in ("ftp://x", "s3://", "/just/a/path"):
        with pytest.raises(BadRequest):
            open_store(Settings(_env_file=None, storage_url=bad))
