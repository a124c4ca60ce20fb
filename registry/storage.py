"""Content-addressed blob storage: a local directory or any S3-compatible store.

Keys are `<prefix>/sha256/<2 hex>/<64 hex>`. Writes are create-only and idempotent; every
full read checks the bytes against their name, because S3-compatible stores (moto's server
among them) may accept a wrong checksum and keep what they were sent. Writing bytes that are
already stored refreshes their age, so garbage collection never takes a blob that a row is
about to reference (workers/blob_gc.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from registry.config import Settings
from registry.errors import BadRequest, BlobCorrupt, BlobNotFound, StorageError, TooLarge

log = logging.getLogger(__name__)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    created_at: datetime | None = None  # when the bytes were last written (or re-written)


def check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        raise BadRequest(
            f"not a sha256 (64 lowercase hex digits): {str(sha256)[:80]!r}", code="bad_sha256"
        )
    return sha256


def blob_key(prefix: str, sha256: str) -> str:
    check_sha256(sha256)
    return "/".join(p for p in (prefix.strip("/"), "sha256", sha256[:2], sha256) if p)


class BlobStore(ABC):
    """Create-only, content-addressed bytes. `end` in ranges is exclusive."""

    def __init__(self, max_blob_bytes: int) -> None:
        self.max_blob_bytes = max_blob_bytes

    def put(self, data: bytes, *, sha256: str | None = None) -> BlobInfo:
        """Store bytes under their sha256 (same bytes again: a no-op)."""
        self._check_size(len(data))
        actual = hashlib.sha256(data).hexdigest()
        if sha256 is not None and check_sha256(sha256) != actual:
            raise BadRequest(
                f"declared sha256 {sha256} does not match the bytes ({actual})",
                code="sha256_mismatch",
            )
        self._write(actual, data)
        return BlobInfo(actual, len(data))

    def put_file(self, path: Path) -> BlobInfo:
        """Store a file, hashing it in chunks first (large datasets, checkpoints)."""
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        self._check_size(size)
        self._write_file(digest.hexdigest(), Path(path), size)
        return BlobInfo(digest.hexdigest(), size)

    def put_stream(self, chunks: Iterable[bytes], *, sha256: str, max_bytes: int) -> BlobInfo:
        """Store a body of unknown length in bounded memory (multi-GB base-model files). It
        must hash to `sha256` and fit `max_bytes`, else nothing becomes visible. Bytes already
        stored are still read and checked (the sender proves it has them), not written again."""
        checked = CheckedStream(chunks, check_sha256(sha256), max_bytes)
        if self.exists(sha256):
            for _ in checked:
                pass
            checked.verify()
        else:
            self._write_stream(sha256, checked)
        return BlobInfo(sha256, checked.size)

    def get(self, sha256: str) -> bytes:
        """The blob's bytes, verified against their name."""
        data = b"".join(self._read(check_sha256(sha256), 0, None))
        if hashlib.sha256(data).hexdigest() != sha256:
            raise _corrupt(sha256)
        return data

    def iter_bytes(
        self, sha256: str, *, start: int = 0, end: int | None = None, chunk_size: int = 64 * 1024
    ) -> Iterator[bytes]:
        """Stream a blob or a range of it. A full read is verified at its end (BlobCorrupt
        after the last chunk); a ranged read cannot be, so call verify() where it matters."""
        check_sha256(sha256)
        if start < 0 or (end is not None and end < start):
            raise BadRequest(f"bad byte range {start}..{end}", code="bad_range")
        whole = start == 0 and end is None
        digest = hashlib.sha256()
        for chunk in self._read(sha256, start, end, chunk_size):
            if whole:
                digest.update(chunk)
            yield chunk
        if whole and digest.hexdigest() != sha256:
            raise _corrupt(sha256)

    def verify(self, sha256: str) -> BlobInfo:
        size = sum(len(c) for c in self.iter_bytes(sha256))
        return BlobInfo(sha256, size)

    def exists(self, sha256: str) -> bool:
        try:
            self.stat(sha256)
        except BlobNotFound:
            return False
        return True

    def _check_size(self, size: int) -> None:
        if size > self.max_blob_bytes:
            raise TooLarge(
                f"blob of {size} bytes exceeds the limit of {self.max_blob_bytes}",
                details={"limit_bytes": self.max_blob_bytes},
            )

    @abstractmethod
    def _write(self, sha256: str, data: bytes) -> None: ...

    @abstractmethod
    def _write_file(self, sha256: str, path: Path, size: int) -> None: ...

    @abstractmethod
    def _write_stream(self, sha256: str, checked: CheckedStream) -> None:
        """Write the stream; make it visible only after `checked.verify()` passed."""

    @abstractmethod
    def _read(
        self, sha256: str, start: int, end: int | None, chunk_size: int = CHUNK
    ) -> Iterator[bytes]: ...

    @abstractmethod
    def stat(self, sha256: str) -> BlobInfo: ...

    @abstractmethod
    def delete(self, sha256: str) -> None: ...

    def delete_unless(self, sha256: str, keep: Callable[[BlobInfo], bool]) -> bool:
        """Delete the blob unless `keep(its info now)` is true; whether it was deleted.

        Decides as late as the store allows; a store that can take the key away atomically
        first (LocalBlobStore) makes a concurrent re-write safe, others leave a window of
        one round trip between this stat and the delete."""
        try:
            info = self.stat(sha256)
        except BlobNotFound:
            return False
        if keep(info):
            return False
        self.delete(sha256)
        return True

    @abstractmethod
    def list_blobs(self) -> Iterator[BlobInfo]: ...

    @abstractmethod
    def check(self) -> None: ...

    def presigned_get_url(self, sha256: str, ttl_s: int) -> str | None:
        return None

    def presigned_put_url(self, owner: str, token: str, ttl_s: int) -> str | None:
        """A URL the client PUTs a file to (staged, adopted by `adopt_staged`); None when
        the store cannot presign."""
        return None

    def adopt_staged(self, owner: str, token: str, sha256: str, max_bytes: int) -> BlobInfo:
        raise BlobNotFound("this store takes no presigned uploads")


class CheckedStream:
    """Chunks that are counted and hashed as they pass; too many bytes raise TooLarge."""

    def __init__(self, chunks: Iterable[bytes], sha256: str, max_bytes: int) -> None:
        self.chunks, self.sha256, self.max_bytes = chunks, sha256, max_bytes
        self.digest, self.size = hashlib.sha256(), 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise TooLarge(
                    f"file exceeds the limit of {self.max_bytes} bytes",
                    details={"limit_bytes": self.max_bytes},
                )
            self.digest.update(chunk)
            yield chunk

    def verify(self) -> None:
        actual = self.digest.hexdigest()
        if actual != self.sha256:
            raise BadRequest(
                f"declared sha256 {self.sha256} does not match the bytes ({actual}): the "
                "upload was damaged or the wrong file was sent",
                code="sha256_mismatch",
            )


def _corrupt(sha256: str) -> BlobCorrupt:
    return BlobCorrupt(
        f"blob {sha256} no longer hashes to its name: the stored bytes are "
        "damaged; restore it from a backup or retrain that version"
    )


class LocalBlobStore(BlobStore):
    """Blobs as files; writes go to a temp file and are linked into place (create-only)."""

    def __init__(self, root: Path, max_blob_bytes: int) -> None:
        super().__init__(max_blob_bytes)
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        return self.root / blob_key("", sha256)

    def _write(self, sha256: str, data: bytes) -> None:
        self._place(sha256, lambda handle: handle.write(data))

    def _write_file(self, sha256: str, path: Path, size: int) -> None:
        def copy(handle) -> None:
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK):
                    handle.write(chunk)

        self._place(sha256, copy)

    def _write_stream(self, sha256: str, checked: CheckedStream) -> None:
        def copy(handle) -> None:
            for chunk in checked:
                handle.write(chunk)
            checked.verify()

        self._place(sha256, copy, always=True)

    def _place(self, sha256: str, write, *, always: bool = False) -> None:
        target = self._path(sha256)
        if not always:  # a stream is read to its end either way: that is its verification
            try:
                os.utime(target)  # already stored: the write counts as new (GC's grace period)
                return
            except FileNotFoundError:
                pass
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, target)
            except FileExistsError:  # the key exists: never overwrite it, but it counts as new
                with contextlib.suppress(FileNotFoundError):
                    os.utime(target)
        finally:
            os.unlink(temp)

    def _read(self, sha256, start, end, chunk_size=CHUNK):
        path = self._path(sha256)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, after streaming
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} not found in {self.root}") from None
        with handle:
            handle.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                chunk = handle.read(chunk_size if remaining is None else min(chunk_size, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def stat(self, sha256: str) -> BlobInfo:
        try:
            info = self._path(sha256).stat()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} not found in {self.root}") from None
        return BlobInfo(sha256, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def delete_unless(self, sha256: str, keep: Callable[[BlobInfo], bool]) -> bool:
        # Move the key away first (atomic): a writer from now on stores a fresh copy, and one
        # that re-wrote the bytes before shows in the moved file's mtime, read after the move.
        path = self._path(sha256)
        moved = path.with_name(f".gc-{uuid.uuid4().hex}")
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            return False
        deleting = False
        try:
            status = moved.stat()
            mtime = datetime.fromtimestamp(status.st_mtime, UTC)
            deleting = not keep(BlobInfo(sha256, status.st_size, mtime))
        finally:
            if not deleting:  # put it back, unless a writer stored it again meanwhile
                with contextlib.suppress(FileExistsError):
                    os.link(moved, path)
            moved.unlink()
        return deleting

    def list_blobs(self) -> Iterator[BlobInfo]:
        base = self.root / "sha256"
        if not base.exists():
            return
        for path in sorted(base.glob("??/*")):
            if SHA256.match(path.name):
                yield self.stat(path.name)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise StorageError(f"blob directory {self.root} is not writable: {exc}") from exc


def open_store(settings: Settings) -> BlobStore:
    """The store `VERA_STORAGE_URL` names: file://DIR or s3://bucket[/prefix]."""
    url = settings.storage_url
    if url.startswith("file://"):
        return LocalBlobStore(Path(url.removeprefix("file://")), settings.max_blob_bytes)
    if url.startswith("s3://"):
        from registry.s3 import S3BlobStore

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise BadRequest(f"VERA_STORAGE_URL {url!r} names no bucket: use s3://bucket/prefix")
        return S3BlobStore(bucket, prefix, settings)
    raise BadRequest(
        f"VERA_STORAGE_URL must start with file:// or s3://, got {url!r}", code="bad_storage_url"
    )
