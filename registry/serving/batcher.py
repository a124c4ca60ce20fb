"""Dynamic batching: one model thread merges queued rows of many users into one
`runtime.generate` (or `classify`) call.

The asyncio side only appends to a bounded queue and awaits a future; the model thread
takes the oldest row, waits up to `max_wait_ms` for company while the batch holds fewer
than `max_batch_tokens` (prompt plus new tokens per row), and runs the rows of the same
kind it can fit. A row's results (and streamed text) go back through the event loop's
thread-safe callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.errors import NotFound, RegistryError
from registry.serving.metrics import ServeMetrics

log = logging.getLogger(__name__)

GENERATE, CLASSIFY = "generate", "classify"


class QueueFull(RegistryError):
    status_code = 429
    code = "overloaded"

    def __init__(self, depth: int) -> None:
        super().__init__(
            f"the server has {depth} requests waiting, its limit: retry after a second",
            details={"queue_depth": depth, "retry_after_s": 1},
        )
        self.headers = {"Retry-After": "1"}


@dataclass
class Row:
    """One prompt (or text to classify) of one user; `params` are generate()'s per-row
    arguments. `on_text` and `done` run on the model thread."""

    kind: str
    user: str | None
    prompt: Sequence[int] | str
    cost: int
    params: dict[str, Any] = field(default_factory=dict)
    on_text: Callable[[str], None] | None = None
    done: Callable[[Any, BaseException | None], None] = lambda result, error: None


class Batcher:
    def __init__(
        self,
        runtime: Any,
        metrics: ServeMetrics,
        *,
        max_batch_tokens: int = 4096,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
    ) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue = max_queue
        self._queue: deque[tuple[float, Row]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="vera-model", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(30)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, rows: list[Row]) -> None:
        """Queue a request's rows together, or refuse them all (429)."""
        with self._cond:
            if len(self._queue) + len(rows) > self.max_queue:
                self.metrics.rejected.inc()
                raise QueueFull(len(self._queue))
            now = time.monotonic()
            self._queue.extend((now, row) for row in rows)
            self.metrics.queue_depth.set(len(self._queue))
            self._cond.notify()

    # -- the model thread ----------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._run(batch)

    def _take(self) -> list[Row] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            deadline = self._queue[0][0] + self.max_wait_s
            while self._queued_cost() < self.max_batch_tokens and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = self._pick()
            self.metrics.queue_depth.set(len(self._queue))
            return batch

    def _queued_cost(self) -> int:
        return sum(row.cost for _, row in self._queue)

    def _pick(self) -> list[Row]:
        """The oldest row, then every later row of its kind that still fits."""
        kind = self._queue[0][1].kind
        batch, cost, rest = [], 0, deque()
        for arrived, row in self._queue:
            if row.kind == kind and (not batch or cost + row.cost <= self.max_batch_tokens):
                batch.append(row)
                cost += row.cost
            else:
                rest.append((arrived, row))
        self._queue = rest
        return batch

    def _run(self, batch: list[Row]) -> None:
        # A user dropped since the request was queued (an erasure, a deleted adapter).
        runnable = []
        for row in batch:
            if row.user is not None and row.user not in self.runtime.users:
                row.done(None, NotFound(f"user {row.user!r}'s adapter was removed"))
            else:
                runnable.append(row)
        if not runnable:
            return
        started = time.monotonic()
        try:
            results = self._call(runnable)
        except Exception as exc:  # handed to every request of the batch
            log.exception("batch of %d rows failed", len(runnable))
            for row in runnable:
                row.done(None, exc)
            return
        self.metrics.batch_size.labels(runnable[0].kind).observe(len(runnable))
        if runnable[0].kind == GENERATE:
            tokens = sum(result.completion_tokens for result in results)
            self.metrics.generated_tokens.inc(tokens)
            self.metrics.tokens_per_second.set(tokens / max(time.monotonic() - started, 1e-6))
        for row, result in zip(runnable, results, strict=True):
            row.done(result, None)

    def _call(self, rows: list[Row]) -> list[Any]:
        users = [row.user for row in rows]
        if rows[0].kind == CLASSIFY:
            return self.runtime.classify(users, [row.prompt for row in rows])
        params = {
            name: [row.params[name] for row in rows]
            for name in ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "seed")
        }
        stops = [row.params.get("stop") or [] for row in rows]
        streamed = [row.on_text for row in rows]

        def on_token(index: int, text: str) -> None:
            if streamed[index] is not None:
                streamed[index](text)

        return self.runtime.generate(
            users,
            [row.prompt for row in rows],
            stop=stops if any(stops) else None,
            on_token=on_token if any(streamed) else None,
            **params,
        )


def settle_in(loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> Callable:
    """A `Row.done` that completes `future` on its event loop (unless it was cancelled)."""

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    return lambda result, error: loop.call_soon_threadsafe(settle, result, error)
