"""Request bodies read chunk by chunk from a worker thread (blocking stores, bounded memory)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
from fastapi import Request


def body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as an iterator for code running in a worker thread (started with
    `run_in_threadpool`): each chunk is pulled from the event loop as it is needed, so only
    one chunk at a time is held, whatever the body's length."""
    stream = request.stream().__aiter__()

    async def next_chunk() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        yield chunk
