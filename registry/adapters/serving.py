"""What downstream servers read: resolve (cached, pushed invalidation, min_generation)
and the change feed's long-poll."""

from __future__ import annotations

import functools
import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from registry.adapters import service
from registry.adapters.schemas import AliasEventOut, FeedOut, Manifest
from registry.api.deps import ReadDep
from registry.api.etags import etag_matches
from registry.db import session_scope
from registry.errors import Conflict
from registry.names import AdapterName, AliasName, UserId

router = APIRouter(tags=["adapters"])

MAX_WAIT_S = 60.0
DISCONNECT_CHECK_S = 1.0  # how often a long-poll looks whether its client is still there


def manifest_out(manifest: dict) -> Manifest:
    """A service.resolve() manifest with its download URLs."""
    base = f"/v1/adapters/{manifest['adapter_id']}/versions/{manifest['version']}"
    return Manifest(**manifest, blob_url=f"{base}/blob", peft_url=f"{base}/peft")


def _resolve(request: Request, tenant_id: str, user_id: str, adapter: str, alias: str) -> dict:
    with session_scope(request.app.state.session_factory) as session:
        return service.resolve(session, tenant_id, user_id, adapter, alias)


@router.get(
    "/v1/resolve",
    responses={
        304: {},
        404: {"description": "The user has no such adapter, or it has no such alias."},
        409: {"description": "`min_generation` is not visible here yet: retry shortly."},
    },
    response_model=Manifest,
    summary="Resolve a user's live adapter to its manifest",
)
async def resolve(
    request: Request,
    response: Response,
    principal: ReadDep,
    user_id: Annotated[UserId, Query()],
    adapter: Annotated[AdapterName, Query()] = "default",
    alias: Annotated[AliasName, Query()] = "live",
    min_generation: int | None = Query(
        None,
        ge=1,
        le=2**31 - 1,
        description="Read your writes: only the alias at this generation or later (from a "
        "publish answer or a feed event); 409 generation_not_visible if it is not here yet.",
    ),
):
    """The manifest a downstream server loads a user's adapter from (ETag; 304 when unchanged)."""
    # The hottest read path: served from the feed-invalidated cache when it can be, else
    # one thread-pool hop for all of its database work.
    cache = request.app.state.manifests
    key = (principal.tenant_id, user_id, adapter, alias)
    if cache.enabled and cache.needs_refresh():
        await run_in_threadpool(cache.refresh)
    manifest = cache.get(key)
    if manifest is None or manifest["alias_generation"] < (min_generation or 0):
        epoch = cache.epoch
        manifest = await run_in_threadpool(
            _resolve, request, principal.tenant_id, user_id, adapter, alias
        )
        cache.put(key, manifest, epoch)
    if manifest["alias_generation"] < (min_generation or 0):
        raise Conflict(
            f"alias {alias!r} of user {user_id!r}'s adapter {adapter!r} is at generation "
            f"{manifest['alias_generation']} here, before min_generation {min_generation}: "
            "the move has not reached this server's database yet (retry shortly), or "
            "min_generation belongs to another alias",
            code="generation_not_visible",
            details={
                "alias_generation": manifest["alias_generation"],
                "min_generation": min_generation,
            },
        )
    tag = hashlib.sha256(
        f"{manifest['adapter_id']}:{alias}:{manifest['alias_generation']}".encode()
    ).hexdigest()[:32]
    etag = f'"{tag}"'
    if etag_matches(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return manifest_out(manifest)


def _read_feed(request: Request, tenant_id: str, after: int, limit: int) -> list[AliasEventOut]:
    with session_scope(request.app.state.session_factory) as session:
        events = service.read_feed(session, tenant_id, after, limit)
        return [AliasEventOut.model_validate(e) for e in events]


@router.get("/v1/feed", response_model=FeedOut, summary="Follow alias moves and deletions")
async def feed(
    request: Request,
    principal: ReadDep,
    after: int = Query(0, ge=0, le=2**62),
    wait: float = Query(0, ge=0, le=MAX_WAIT_S, description="Long-poll up to this many seconds."),
    limit: int = Query(100, ge=1, le=1000),
) -> FeedOut:
    """Alias changes after sequence `after`, in order; with `wait`, answers as soon as one
    arrives or when the wait is over."""
    deadline = time.monotonic() + wait
    tenant_id = principal.tenant_id
    waiters = request.app.state.feed_waiters
    read = functools.partial(run_in_threadpool, _read_feed, request, tenant_id, after, limit)
    # Registered before the first read, so nothing committed after that read is missed.
    with waiters.waiting(tenant_id, after) as waiter:
        while True:
            events = await waiters.read((tenant_id, after, limit), waiter, read)
            if events or time.monotonic() >= deadline:
                break
            if not await _woken(request, waiter, deadline):
                break
    return FeedOut(events=events, last_seq=events[-1].seq if events else after)


async def _woken(request: Request, waiter, deadline: float) -> bool:
    """True once an event for the waiter may have arrived; False at the deadline or when
    the client has gone."""
    waiters, cache = request.app.state.feed_waiters, request.app.state.manifests
    while (remaining := deadline - time.monotonic()) > 0:
        waiters.keep_polling(functools.partial(run_in_threadpool, cache.refresh), cache.push_live)
        if await waiters.wait(waiter, min(remaining, DISCONNECT_CHECK_S)):
            return True
        if await request.is_disconnected():
            return False
    return False
