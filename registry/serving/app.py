"""The inference server's HTTP app: OpenAI-compatible completions and chat (with SSE
streaming), classification, models, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from registry.api.errors import install_error_handlers
from registry.api.middleware import BodyLimitMiddleware
from registry.client.api import RegistryClient
from registry.errors import RegistryError
from registry.serving import requests as prep
from registry.serving.auth import KeyChecker
from registry.serving.batcher import Batcher, Row, settle_in
from registry.serving.follower import Follower
from registry.serving.metrics import ServeMetrics
from registry.serving.model import LoadedModel
from registry.serving.openai_schemas import (
    ChatIn,
    ClassifyIn,
    CompletionIn,
    chat_chunk,
    chat_out,
    completion_chunk,
    completion_out,
    new_id,
)
from registry.serving.users import UserCache


@dataclass(frozen=True)
class ServeOptions:
    max_batch_tokens: int = 4096
    max_wait_ms: float = 5.0
    max_users: int = 1024
    max_queue: int = 256  # rows waiting; beyond: 429
    limits: prep.Limits = field(default_factory=prep.Limits)
    max_body_bytes: int = 4 * 1024 * 1024
    feed_wait_s: float = 5.0


@dataclass
class Server:
    loaded: LoadedModel
    users: UserCache
    batcher: Batcher
    follower: Follower
    keys: KeyChecker
    metrics: ServeMetrics
    options: ServeOptions


def create_serving_app(
    loaded: LoadedModel, client: RegistryClient, options: ServeOptions = ServeOptions()
) -> FastAPI:
    """The app around a loaded model; `client` (the server's own key) loads users. Its
    lifespan starts and stops the model thread and the feed follower."""
    me = client.me()
    metrics = ServeMetrics()
    users = UserCache(loaded.runtime, options.max_users, metrics)
    follower_client = RegistryClient(client.base_url, api_key=_key(client), timeout=client.timeout)
    registry_http = httpx.AsyncClient(base_url=client.base_url, timeout=10)
    server = Server(
        loaded,
        users,
        Batcher(
            loaded.runtime,
            metrics,
            max_batch_tokens=options.max_batch_tokens,
            max_wait_ms=options.max_wait_ms,
            max_queue=options.max_queue,
        ),
        Follower(follower_client, users, options.feed_wait_s),
        KeyChecker(registry_http, me["tenant_id"], me["tenant_name"]),
        metrics,
        options,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        server.batcher.start()
        server.follower.start()
        try:
            yield
        finally:
            server.follower.stop()
            await run_in_threadpool(server.batcher.stop)
            await registry_http.aclose()
            follower_client.close()

    app = FastAPI(title="VeRA inference server", lifespan=lifespan)
    app.state.server = server
    install_error_handlers(app)
    _routes(app, server)
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=lambda _path: options.max_body_bytes,
        timeout_s=60,
        idle_timeout_s=30,
    )
    return app


def _key(client: RegistryClient) -> str | None:
    _scheme, _, key = client.headers.get("Authorization", "").partition(" ")
    return key or None


async def principal(request: Request) -> dict:
    """The caller's /v1/me: a key of this server's tenant (401, 403 otherwise)."""
    return await request.app.state.server.keys.check(request.headers.get("authorization"))


Auth = Annotated[dict, Depends(principal)]


def _routes(app: FastAPI, server: Server) -> None:
    loaded, limits = server.loaded, server.options.limits

    @app.post("/v1/completions")
    async def completions(body: CompletionIn, _me: Auth):
        """Text completion (OpenAI); `stream: true` answers with server-sent events."""
        user = prep.pick_user(loaded, body.model, body.user)
        rows = prep.completion_rows(loaded, limits, body, user)
        request_id = new_id("cmpl")
        if body.stream:

            def chunk(index: int, text: str, finish: str | None) -> dict:
                return completion_chunk(request_id, body.model, index, text, finish)

            return await _stream(server, user, rows, chunk)
        results = await _run(server, user, rows)
        return completion_out(request_id, body.model, results)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatIn, _me: Auth):
        """Chat completion (OpenAI): the tokenizer's chat template, or "role: content" lines."""
        user = prep.pick_user(loaded, body.model, body.user)
        row = prep.chat_row(loaded, limits, body, user)
        request_id = new_id("chatcmpl")
        if body.stream:

            def chunk(_i: int, text: str | None, finish: str | None) -> dict:
                delta = {"role": "assistant", "content": ""} if text is None else {"content": text}
                return chat_chunk(request_id, body.model, {} if finish else delta, finish)

            return await _stream(server, user, [row], chunk, opening=True)
        results = await _run(server, user, [row])
        return chat_out(request_id, body.model, results[0])

    @app.post("/v1/classify")
    async def classify(body: ClassifyIn, _me: Auth):
        """Label each input with the user's classifier (scores: softmax per label)."""
        user = prep.pick_user(loaded, body.model, body.user)
        results = await _run(server, user, prep.classify_rows(loaded, limits, body, user))
        data = [
            {"index": i, "label": r.label, "label_index": r.index, "scores": r.scores}
            for i, r in enumerate(results)
        ]
        return {"object": "list", "model": body.model, "data": data}

    @app.get("/v1/models")
    async def models(me: Auth):
        """The base model served here (a user's adapter: '<id>:<user_id>')."""
        base = loaded.base
        item = {"id": base["name"], "object": "model", "created": 0, "owned_by": me["tenant_name"]}
        return {"object": "list", "data": [{**item, "root": base["id"]}]}

    @app.get("/healthz")
    async def healthz():
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        """The model is loaded, the model thread runs, the feed follower is caught up."""
        checks = {"model": True, "model_thread": server.batcher.alive()}
        checks["feed"] = server.follower.healthy()
        if all(checks.values()):
            return {"status": "ready", "checks": checks}
        reason = server.follower.error or "catching up with the registry's change feed"
        body = {"code": "not_ready", "message": f"not ready: {reason}", "details": checks}
        return JSONResponse({"error": body}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics():
        """Prometheus text: queue, batch sizes, tokens, loaded users, adapter swaps."""
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")


async def _acquire(server: Server, user: str | None) -> None:
    if user is not None:
        await run_in_threadpool(server.users.acquire, user)


async def _release(server: Server, user: str | None) -> None:
    if user is not None:
        await run_in_threadpool(server.users.release, user)


async def _run(server: Server, user: str | None, rows: list[Row]) -> list[Any]:
    """Queue the rows (after loading the user) and await their results."""
    await _acquire(server, user)
    try:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in rows]
        for row, future in zip(rows, futures, strict=True):
            row.done = settle_in(loop, future)
        server.batcher.submit(rows)
        return await asyncio.gather(*futures)
    finally:
        await _release(server, user)


async def _stream(server, user, rows: list[Row], chunk, opening: bool = False):
    """Server-sent events: a chunk per text delta of each row, a last chunk per row with its
    finish reason, then `data: [DONE]`. Errors before the first byte are plain answers."""
    await _acquire(server, user)
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    for index, row in enumerate(rows):
        row.on_text = lambda text, i=index: loop.call_soon_threadsafe(events.put_nowait, (i, text))
        row.done = lambda result, error, i=index: loop.call_soon_threadsafe(
            events.put_nowait, (i, result if error is None else error)
        )
    try:
        server.batcher.submit(rows)
    except RegistryError:
        await _release(server, user)
        raise

    async def body() -> AsyncIterator[str]:
        try:
            if opening:
                yield _sse(chunk(0, None, None))
            left = len(rows)
            while left:
                index, item = await events.get()
                if isinstance(item, str):
                    yield _sse(chunk(index, item, None))
                elif isinstance(item, BaseException):
                    yield _sse({"error": _error_body(item)})
                    left = 0
                else:
                    yield _sse(chunk(index, "", item.finish_reason))
                    left -= 1
            yield "data: [DONE]\n\n"
        finally:
            await _release(server, user)

    return StreamingResponse(body(), media_type="text/event-stream")


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _error_body(error: BaseException) -> dict:
    if isinstance(error, RegistryError):
        return {"code": error.code, "message": error.message, "details": error.details}
    return {"code": "internal", "message": "generation failed; see the server log", "details": None}
