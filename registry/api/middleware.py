"""ASGI middleware: request body limits (413 before the body is read) and metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import error_envelope

REQUESTS = Counter(
    "vera_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "vera_http_request_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class BodyError(HTTPException):
    """Raised from `receive` while a body is read (FastAPI re-raises these). The connection
    is closed after the answer: the rest of the body is never read."""

    code = "bad_request"

    def __init__(self, status: int, message: str, details: dict) -> None:
        super().__init__(status, message, headers={"Connection": "close"})
        self.details = details


class BodyTooLarge(BodyError):
    code = "too_large"

    def __init__(self, limit: int) -> None:
        message = f"request body exceeds the limit of {limit} bytes"
        super().__init__(413, message, {"limit_bytes": limit})
        self.limit = limit


class BodyTimeout(BodyError):
    """A client that sends its body too slowly must not hold a connection for ever."""

    code = "request_timeout"

    def __init__(self, message: str, timeout_s: float) -> None:
        super().__init__(408, message, {"timeout_s": timeout_s})


async def _send_error(send: Send, error: BodyError) -> None:
    body = json.dumps(error_envelope(error.code, error.detail, error.details)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Bounds every request body: over `limit_for(path)` bytes is a 413 (by Content-Length up
    front, else while read); slower than `timeout_s` in all, or silent for `idle_timeout_s`
    between two reads, is a 408.

    Starlette reads request bodies without bound; this stops an oversized upload before
    the route sees it, so nothing is stored. The timeouts end once the body is complete
    (a long-poll or event stream then waits on `receive` for a disconnect, legitimately).
    """

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str], int],
        timeout_s: float,
        idle_timeout_s: float,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.timeout_s = timeout_s
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_error(send, BodyTooLarge(limit))
            return
        received = 0
        started = False
        body_done = False
        deadline = time.monotonic() + self.timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()
            message = await self._receive_in_time(receive, deadline)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyError as error:
            if not started:
                await _send_error(send, error)

    async def _receive_in_time(self, receive: Receive, deadline: float) -> Message:
        left = deadline - time.monotonic()
        try:
            # asyncio.timeout, not wait_for: no second task, so a read inside a cancelled
            # scope (Starlette's is_disconnected) behaves exactly as a bare receive() would.
            async with asyncio.timeout(max(0.0, min(self.idle_timeout_s, left))):
                return await receive()
        except TimeoutError:
            if left <= self.idle_timeout_s:
                raise BodyTimeout(
                    f"the request body took longer than {self.timeout_s:g} s to arrive",
                    self.timeout_s,
                ) from None
            raise BodyTimeout(
                f"no bytes of the request body arrived for {self.idle_timeout_s:g} s",
                self.idle_timeout_s,
            ) from None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class MetricsMiddleware:
    """Counts requests and latency per route template (not per raw path: bounded labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started_at)
