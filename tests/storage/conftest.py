"""Both blob stores: a local directory, and S3 over HTTP against moto's standalone server."""

from __future__ import annotations

import secrets
import socket

import boto3
import pytest

from registry.config import Settings
from registry.storage import LocalBlobStore, open_store

LIMIT = 8 * 1024 * 1024


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_settings(endpoint: str, bucket: str, **overrides) -> Settings:
    values = dict(
        storage_url=f"s3://{bucket}/blobs",
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_access_key_id="test",
        s3_secret_access_key="test",
        max_blob_bytes=LIMIT,
    )
    return Settings(_env_file=None, **{**values, **overrides})


def raw_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def bucket(moto_endpoint):
    name = f"vera-{secrets.token_hex(4)}"
    raw_client(moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs", LIMIT)
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = request.getfixturevalue("bucket")
    return open_store(s3_settings(endpoint, bucket))


def overwrite(store, sha256: str, data: bytes) -> None:
    """Damage a stored blob behind the store's back."""
    if isinstance(store, LocalBlobStore):
        path = store._path(sha256)
        path.chmod(0o644)
        path.write_bytes(data)
    else:
        client = raw_client(store.client.meta.endpoint_url)
        client.put_object(Bucket=store.bucket, Key=store._key(sha256), Body=data)
