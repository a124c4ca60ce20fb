"""Serving adapter blobs: verified bytes, a small in-memory cache, ranges and ETags."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

from fastapi import Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from registry.api.etags import etag_matches
from registry.errors import RegistryError

# Blobs are content-addressed, so a cached copy is never stale; deletions clear the cache.
CACHE_BYTES = 64 * 1024 * 1024
STREAM_ABOVE = 8 * 1024 * 1024
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(RegistryError):
    status_code = 416
    code = "range_not_satisfiable"


class BlobCache:
    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._max = max_bytes
        self._size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget every blob (a deletion: the bytes of what was deleted leave memory too)."""
        with self._lock:
            self._items.clear()
            self._size = 0

    def peek(self, sha256: str) -> bytes | None:
        with self._lock:
            return self._items.get(sha256)

    def get(self, store, sha256: str) -> bytes:
        with self._lock:
            data = self._items.get(sha256)
            if data is not None:
                self._items.move_to_end(sha256)
                return data
        data = store.get(sha256)  # verifies the hash
        with self._lock:
            if sha256 not in self._items and len(data) <= self._max // 4:
                self._items[sha256] = data
                self._size += len(data)
                while self._size > self._max:
                    _, evicted = self._items.popitem(last=False)
                    self._size -= len(evicted)
        return data


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single `bytes=` range; None to serve the whole blob."""
    match = RANGE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None  # a multi-range or malformed header may be ignored (RFC 9110 §14.2)
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise RangeNotSatisfiable(
            f"range {header!r} is outside the blob of {size} bytes",
            details={"size": size},
        )
    return start, end


def blob_response(
    request: Request,
    store,
    cache: BlobCache,
    sha256: str,
    size: int,
    *,
    presign_ttl: int | None,
    filename: str = "adapter_model.safetensors",
) -> Response:
    etag = f'"{sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=31536000, immutable",
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    if presign_ttl is not None:
        url = store.presigned_get_url(sha256, presign_ttl)
        if url:
            return RedirectResponse(url, status_code=307, headers={"ETag": etag})
    byte_range = parse_range(request.headers.get("range", ""), size)
    if byte_range is None and size > STREAM_ABOVE:
        return StreamingResponse(
            store.iter_bytes(sha256),
            media_type="application/octet-stream",
            headers={**headers, "Content-Length": str(size)},
        )
    data = cache.get(store, sha256) if size <= STREAM_ABOVE else None
    if byte_range is None:
        return Response(data, media_type="application/octet-stream", headers=headers)
    start, end = byte_range
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    body = (
        data[start:end]
        if data is not None
        else b"".join(store.iter_bytes(sha256, start=start, end=end))
    )
    return Response(body, status_code=206, media_type="application/octet-stream", headers=headers)
