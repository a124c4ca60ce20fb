"""Interim local blob store (replaced by the full local + S3 implementation)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from registry.config import Settings
from registry.errors import BadRequest, BlobCorrupt, BlobNotFound

SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    created_at: datetime | None = None


class BlobStore(ABC):  # noqa: B024
    pass


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        if not SHA256.match(sha256 or ""):
            raise BadRequest(f"not a sha256: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes, *, sha256: str | None = None) -> BlobInfo:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return BlobInfo(digest, len(data))

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        if not path.exists():
            raise BlobNotFound(f"blob {sha256} not found")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobCorrupt(f"blob {sha256} is corrupt")
        return data

    def iter_bytes(
        self, sha256: str, *, start: int = 0, end: int | None = None, chunk_size: int = 65536
    ) -> Iterator[bytes]:
        yield self.get(sha256)[start:end]

    def presigned_get_url(self, sha256: str, ttl_s: int) -> str | None:
        return None

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)


def open_store(settings: Settings) -> BlobStore:
    return LocalBlobStore(Path(settings.storage_url.removeprefix("file://")))
