"""Request bodies too large for memory: streamed to a temporary file as they arrive."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

FLUSH_BYTES = 1024 * 1024  # what an upload holds in memory before it goes to the file


@asynccontextmanager
async def spooled_body(request: Request) -> AsyncIterator[Path]:
    """The whole body in a temporary file, deleted on exit (an abort or error included).

    Memory stays at about FLUSH_BYTES per upload whatever its size. Size limits and the
    slow-client timeouts apply while reading (registry.api.middleware.BodyLimitMiddleware);
    a client that disconnects raises starlette's ClientDisconnect.
    """
    with tempfile.NamedTemporaryFile(prefix="vera-upload-") as spool:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= FLUSH_BYTES:
                await run_in_threadpool(spool.write, pending)
                pending.clear()
        await run_in_threadpool(_finish, spool, pending)
        yield Path(spool.name)


def _finish(spool, pending: bytearray) -> None:
    spool.write(pending)
    spool.flush()
