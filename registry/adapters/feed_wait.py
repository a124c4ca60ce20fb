"""Long-poll waiters of the change feed: one source of events per process wakes them all.

A waiter registers before its first read, so an event that commits after that read still
wakes it. Waiters are woken per tenant, only by events past their `after`, and waiters
asking the same question share one read: N clients waiting on a tenant cost one query per
change, not one each per poll interval.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# On a backend without push, one task per process polls this often while anyone waits.
FEED_POLL_S = 0.2
MAX_SHARED_READS = 1000  # finished reads kept for waiters woken after they finished


Mark = tuple[int, int]  # (wake-alls so far, highest seq known to be committed)


def _covers(read: Mark, needed: Mark) -> bool:
    return read[0] >= needed[0] and read[1] >= needed[1]


class Waiter:
    def __init__(self, tenant_id: str, after: int, needed: Mark) -> None:
        self.tenant_id = tenant_id
        self.after = after
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        # What a read must have started after to answer this waiter: commit order is seq
        # order, so a read that began once seq N was known to be committed sees all <= N.
        self.needed = needed
        self.woken = False


class FeedWaiters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[Waiter]] = {}
        self._mark: Mark = (0, 0)
        self._reads: dict[Any, tuple[Mark, asyncio.Future]] = {}
        self._poller: asyncio.Task | None = None

    def __len__(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._waiting.values())

    def wake(self, tenant_id: str | None, seq: int | None) -> None:
        """From any thread, once event `seq` is committed: the tenant's waiters behind it
        read again (with None, every waiter: events may have been missed)."""
        with self._lock:
            resets, known = self._mark
            if tenant_id is None:
                self._mark = (resets + 1, known)
                groups = list(self._waiting.values())
            else:
                self._mark = (resets, max(known, seq or 0))
                groups = [self._waiting.get(tenant_id, ())]
            for group in groups:
                for waiter in group:
                    if seq is None or seq > waiter.after:
                        needed = waiter.needed
                        waiter.needed = (self._mark[0], max(needed[1], seq or 0))
                        waiter.loop.call_soon_threadsafe(waiter.event.set)

    @contextmanager
    def waiting(self, tenant_id: str, after: int) -> Iterator[Waiter]:
        with self._lock:
            waiter = Waiter(tenant_id, after, self._mark)
            self._waiting.setdefault(tenant_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                group = self._waiting[tenant_id]
                group.discard(waiter)
                if not group:
                    del self._waiting[tenant_id]

    async def wait(self, waiter: Waiter, timeout: float) -> bool:
        """True once woken (False at the timeout)."""
        try:
            await asyncio.wait_for(waiter.event.wait(), timeout)
        except TimeoutError:
            return False
        waiter.event.clear()
        waiter.woken = True
        return True

    async def read(self, key: Any, waiter: Waiter, run: Callable[[], Awaitable]) -> Any:
        """`run()`'s answer, or that of a read of the same `key` that started late enough
        to see every event that has woken `waiter`. A first read shares only one still
        under way: a finished one may predate events that nothing has announced yet."""
        started, future = self._reads.get(key, ((-1, -1), None))
        with self._lock:
            needed, now = waiter.needed, self._mark
        shareable = future is not None and (waiter.woken or not future.done())
        if shareable and future.done() and (future.cancelled() or future.exception()):
            shareable = False  # a failed read is tried again, not handed on
        if not shareable or not _covers(started, needed):
            if len(self._reads) >= MAX_SHARED_READS:
                self._reads = {k: v for k, v in self._reads.items() if not v[1].done()}
            future = asyncio.ensure_future(run())
            self._reads[key] = (now, future)
        return await asyncio.shield(future)

    def keep_polling(self, poll: Callable[[], Awaitable], pushed: Callable[[], bool]) -> None:
        """Where nothing pushes events, run one poller for this process while anyone waits."""
        if pushed() or (self._poller is not None and not self._poller.done()):
            return

        async def loop() -> None:
            while len(self) and not pushed():
                try:
                    await poll()
                except Exception:  # the database away: waiters time out, polling goes on
                    log.warning("feed poll failed", exc_info=True)
                await asyncio.sleep(FEED_POLL_S)

        self._poller = asyncio.get_running_loop().create_task(loop())
