"""Reading one file of a base model's manifest, wherever it lives (torch-free).

A base model's files are blobs of the registry's store, or files under the operator-allowed
external root it was registered with (`VERA_MODEL_SOURCES`, re-checked here on every read so
a shrunk allow-list or a symlink added later still holds). The worker's model cache and the
API's file download both read through `open_model_file`; both check what they read against
the manifest's sha256 and size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from registry.base_models.manifest import ModelFile
from registry.base_models.sources import S3, check_source, resolve_local, s3_key
from registry.config import Settings
from registry.errors import BlobCorrupt, BlobNotFound, Invalid

CHUNK = 1024 * 1024


class BaseModelMismatch(Exception):
    """The files of a base model cannot be had as registered. Messages name the file and
    the model's own registered hash, never what the bytes actually hashed to."""


@dataclass(frozen=True)
class ModelSpec:
    """A base model's manifest and where its files live."""

    content_hash: str
    weights_hash: str
    source_uri: str | None
    files: tuple[ModelFile, ...]

    @classmethod
    def of(cls, row) -> ModelSpec:
        files = tuple(ModelFile(f.path, f.sha256, f.size) for f in row.files)
        return cls(row.content_hash, row.weights_hash, row.source_uri, files)

    def where(self) -> str:
        return "the registry's store" if self.source_uri is None else "its source"


def checked_source(spec: ModelSpec, settings: Settings) -> str:
    """The spec's external source, normalised, if it is still allowed here."""
    try:
        return check_source(spec.source_uri, settings.model_sources)
    except Invalid as exc:
        raise BaseModelMismatch(
            f"base model {spec.content_hash}: {exc.message} (checked on this host)"
        ) from exc


def open_model_file(spec: ModelSpec, file: ModelFile, settings: Settings, store) -> Iterator[bytes]:
    """The file's bytes in chunks. The source is opened before this returns (a missing file
    or a refused source raises here, not mid-stream); the bytes are not verified: callers
    check sha256 and size as they consume them (`verified`)."""
    source = spec.source_uri
    if source is None:
        try:
            store.stat(file.sha256)
        except BlobNotFound as exc:
            raise BaseModelMismatch(
                f"file {file.path!r} of base model {spec.content_hash} is missing from "
                "the registry's store: upload the folder again"
            ) from exc
        return _store_chunks(store, file.sha256)
    source = checked_source(spec, settings)
    if source.startswith(S3):
        return _s3_chunks(settings, source, file)
    return _local_chunks(settings, source, file)


def verified(chunks: Iterator[bytes], spec: ModelSpec, file: ModelFile) -> Iterator[bytes]:
    """The chunks passed through, checked against the manifest's sha256 and size. The last
    chunk is held back until the check passed, so a consumer streaming them on (an HTTP
    body) never delivers a complete-looking copy of wrong bytes: BaseModelMismatch instead."""
    digest, size, held = hashlib.sha256(), 0, None
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if held is not None:
            yield held
        held = chunk
    if (digest.hexdigest(), size) != (file.sha256, file.size):
        raise BaseModelMismatch(
            f"file {file.path!r} of base model {spec.content_hash} from {spec.where()} is not "
            "the file it was registered with: the source changed since registration or the "
            "copy is damaged; register it again"
        )
    if held is not None:
        yield held


def _store_chunks(store, sha256: str) -> Iterator[bytes]:
    try:
        yield from store.iter_bytes(sha256, chunk_size=CHUNK)
    except BlobCorrupt:
        return  # `verified` names the file and the model, which the store cannot


def _local_chunks(settings: Settings, source: str, file: ModelFile) -> Iterator[bytes]:
    # Resolved per file: a symlink inside the source folder must not lead outside.
    real = resolve_local(Path(source) / file.path, settings.model_sources)
    if real is None:
        raise BaseModelMismatch(
            f"file {file.path!r} of the base model's source is not under an allowed "
            "directory of VERA_MODEL_SOURCES on this host"
        )
    try:
        handle = open(real, "rb")  # noqa: SIM115 - closed by the generator
    except (FileNotFoundError, IsADirectoryError):
        raise BaseModelMismatch(
            f"file {file.path!r} is missing from the base model's source on this host"
        ) from None
    return _file_chunks(handle)


def _file_chunks(handle) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _s3_chunks(settings: Settings, source: str, file: ModelFile) -> Iterator[bytes]:
    from botocore.exceptions import ClientError

    from registry.s3 import make_client

    bucket, key = s3_key(source, file.path)
    client = make_client(settings, read_timeout=120)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        raise BaseModelMismatch(
            f"file {file.path!r} cannot be read from the base model's source ({code})"
        ) from exc
    return _body_chunks(body)


def _body_chunks(body) -> Iterator[bytes]:
    with body:
        yield from body.iter_chunks(CHUNK)
