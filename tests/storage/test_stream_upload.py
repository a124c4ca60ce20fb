"""Streaming a large file into either store: bounded memory, multipart on S3, nothing visible
unless the whole body hashed right and fit the limit."""

from __future__ import annotations

import hashlib
import os

import pytest

from registry.errors import BadRequest, TooLarge
from registry.storage import LocalBlobStore, open_store
from tests.storage.conftest import raw_client, s3_settings

MiB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def big_store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs", MiB)
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = request.getfixturevalue("bucket")
    # Blobs of other kinds stay small; streamed files go in 5 MiB parts.
    return open_store(s3_settings(endpoint, bucket, max_blob_bytes=MiB, s3_part_bytes=5 * MiB))


def _chunks(data: bytes, size: int = 256 * 1024):
    return (data[i : i + size] for i in range(0, len(data), size))


def _pending_multipart(store) -> list:
    if isinstance(store, LocalBlobStore):
        return [p for p in store.root.rglob(".tmp-*")]
    client = raw_client(store.client.meta.endpoint_url)
    return client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


def test_a_multi_part_file_streams_in_and_reads_back_verified(big_store):
    data = os.urandom(11 * MiB + 123)  # three S3 parts, the last one short
    sha256 = hashlib.sha256(data).hexdigest()
    info = big_store.put_stream(_chunks(data), sha256=sha256, max_bytes=64 * MiB)
    assert (info.sha256, info.size) == (sha256, len(data))
    assert b"".join(big_store.iter_bytes(sha256)) == data
    # Again: the body is read and checked, nothing is written twice.
    assert big_store.put_stream(_chunks(data), sha256=sha256, max_bytes=64 * MiB) == info
    with pytest.raises(BadRequest):
        big_store.put_stream(_chunks(data[:-1]), sha256=sha256, max_bytes=64 * MiB)


def test_wrong_or_oversized_streams_leave_nothing(big_store):
    data = os.urandom(6 * MiB)
    sha256 = hashlib.sha256(data).hexdigest()
    with pytest.raises(BadRequest, match="does not match"):
        big_store.put_stream(_chunks(data + b"x"), sha256=sha256, max_bytes=64 * MiB)
    with pytest.raises(TooLarge):
        big_store.put_stream(_chunks(data), sha256=sha256, max_bytes=5 * MiB + 1)
    assert not big_store.exists(sha256)
    assert _pending_multipart(big_store) == []  # aborted, not left to cost storage
