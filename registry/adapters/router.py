"""Adapters, versions, blobs, aliases (publish, rollback), resolve and the change feed."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from registry.adapters import service
from registry.adapters.blobs import blob_response, etag_matches
from registry.adapters.peft_export import peft_zip
from registry.adapters.schemas import (
    AdapterOut,
    AliasEventOut,
    AliasOut,
    FeedOut,
    Manifest,
    PublishIn,
    RollbackIn,
    VersionOut,
)
from registry.api.deps import ReadDep, SessionDep, SettingsDep, StoreDep, TrainDep
from registry.api.pagination import MAX_LIMIT, ByNumber, Page, decode_cursor, encode_cursor
from registry.db import after_commit, session_scope
from registry.errors import BadRequest

router = APIRouter(tags=["adapters"])

FEED_POLL_S = 0.2
VERSION_INDEX_MAX = 200_000
MAX_WAIT_S = 60.0


def _version_out(adapter_id: str, version) -> VersionOut:
    data = VersionOut.model_validate(version, from_attributes=True)
    return data.model_copy(update={"adapter_id": adapter_id})


@router.get("/v1/users/{user_id}/adapters", response_model=list[AdapterOut])
def list_user_adapters(user_id: str, principal: ReadDep, session: SessionDep) -> list[AdapterOut]:
    """A user's adapters."""
    rows = service.list_user_adapters(session, principal.tenant_id, user_id)
    return [AdapterOut.model_validate(r) for r in rows]


@router.get("/v1/adapters/{adapter_id}", response_model=AdapterOut)
def get_adapter(adapter_id: str, principal: ReadDep, session: SessionDep) -> AdapterOut:
    """One adapter and what it is bound to."""
    return AdapterOut.model_validate(service.get_adapter(session, principal.tenant_id, adapter_id))


@router.get("/v1/adapters/{adapter_id}/versions", response_model=Page[VersionOut])
def list_versions(
    adapter_id: str,
    principal: ReadDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
) -> Page[VersionOut]:
    """Versions, oldest first."""
    after = decode_cursor(cursor, ByNumber) or 0
    rows = service.list_versions(
        session, principal.tenant_id, adapter_id, after_number=after, limit=limit
    )
    next_cursor = encode_cursor(rows[-1].number) if len(rows) == limit else None
    return Page(items=[_version_out(adapter_id, r) for r in rows], next_cursor=next_cursor)


@router.get("/v1/adapters/{adapter_id}/versions/{number}", response_model=VersionOut)
def get_version(adapter_id: str, number: int, principal: ReadDep, session: SessionDep):
    """One immutable version."""
    _check_number(number)
    return _version_out(
        adapter_id, service.get_version(session, principal.tenant_id, adapter_id, number)
    )


def _check_number(number: int) -> None:
    if not 1 <= number <= 2**31 - 1:
        raise BadRequest(f"version numbers start at 1, got {number}", code="bad_version")


@router.get(
    "/v1/adapters/{adapter_id}/versions/{number}/blob",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {}, 304: {}, 307: {}},
)
async def download_blob(
    adapter_id: str,
    number: int,
    request: Request,
    principal: ReadDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    """The version's safetensors file (ETag = sha256; If-None-Match → 304; Range → 206)."""
    _check_number(number)
    # Versions are immutable, so where a version's blob lives can be remembered for good;
    # with the blob bytes cached too, a repeated download touches neither database nor disk.
    key = (principal.tenant_id, adapter_id, number)
    index = request.app.state.version_index
    found = index.get(key)
    if found is None:
        found = await run_in_threadpool(_version_blob, request, *key)
        if len(index) > VERSION_INDEX_MAX:
            index.clear()
        index[key] = found
    sha256, size = found
    presign = settings.s3_presign_ttl_s if settings.s3_presign_downloads else None
    cache = request.app.state.blob_cache
    respond = functools.partial(
        blob_response, request, store, cache, sha256, size, presign_ttl=presign
    )
    if cache.peek(sha256) is not None:
        return respond()
    return await run_in_threadpool(respond)


def _version_blob(request: Request, tenant_id: str, adapter_id: str, number: int):
    with session_scope(request.app.state.session_factory) as session:
        version = service.get_version(session, tenant_id, adapter_id, number)
        return version.blob_sha256, version.size_bytes


@router.get(
    "/v1/adapters/{adapter_id}/versions/{number}/peft",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, 304: {}},
)
def download_peft(
    adapter_id: str,
    number: int,
    request: Request,
    principal: ReadDep,
    session: SessionDep,
    store: StoreDep,
) -> Response:
    """A zip of adapter_config.json + adapter_model.safetensors for PeftModel.from_pretrained."""
    _check_number(number)
    version = service.get_version(session, principal.tenant_id, adapter_id, number)
    etag = f'"{version.blob_sha256}-peft"'
    headers = {
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="{adapter_id}-v{number}.zip"',
    }
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    blob = request.app.state.blob_cache.get(store, version.blob_sha256)
    return Response(peft_zip(blob), media_type="application/zip", headers=headers)


def _generation_header(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if text == "*":
        return None
    try:
        generation = int(text)
    except ValueError as exc:
        raise BadRequest(
            f"If-Match must be the alias generation as a number, got {value!r}",
            code="bad_if_match",
        ) from exc
    if generation < 0:
        raise BadRequest("If-Match generation must be >= 0", code="bad_if_match")
    return generation


def _alias_out(session, tenant_id: str, adapter_id: str, alias, response: Response) -> AliasOut:
    response.headers["ETag"] = f'"{alias.generation}"'
    number = service._number_of(session, alias.version_id)
    return AliasOut(
        adapter_id=adapter_id, alias=alias.name, version=number, generation=alias.generation
    )


def _forget_manifest(request: Request, session, tenant_id: str, adapter_id: str, alias: str):
    """Once the move commits, this process serves the new target at once (others within
    the cache's max age, through the feed)."""
    adapter = service.get_adapter(session, tenant_id, adapter_id)
    key = (tenant_id, adapter.user_id, adapter.name, alias)
    after_commit(session, lambda: request.app.state.manifests.forget(key))


@router.put("/v1/adapters/{adapter_id}/aliases/{alias}", response_model=AliasOut)
def publish(
    request: Request,
    adapter_id: str,
    alias: str,
    body: PublishIn,
    principal: TrainDep,
    session: SessionDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> AliasOut:
    """Point an alias at a version. If-Match: <generation> moves only an alias still at that
    generation (409 otherwise); If-None-Match: * only creates. Without either it just moves."""
    expected = _generation_header(if_match)
    if if_none_match is not None and if_none_match.strip() == "*":
        expected = 0
    row = service.set_alias(session, principal.tenant_id, adapter_id, alias, body.version, expected)
    _forget_manifest(request, session, principal.tenant_id, adapter_id, alias)
    return _alias_out(session, principal.tenant_id, adapter_id, row, response)


@router.get("/v1/adapters/{adapter_id}/aliases/{alias}", response_model=AliasOut)
def get_alias(
    adapter_id: str, alias: str, principal: ReadDep, session: SessionDep, response: Response
) -> AliasOut:
    """Where an alias points now, with its generation (also as the ETag)."""
    row = service.get_alias(session, principal.tenant_id, adapter_id, alias)
    return _alias_out(session, principal.tenant_id, adapter_id, row, response)


@router.post("/v1/adapters/{adapter_id}/aliases/{alias}/rollback", response_model=AliasOut)
def rollback(
    request: Request,
    adapter_id: str,
    alias: str,
    principal: TrainDep,
    session: SessionDep,
    response: Response,
    body: Annotated[RollbackIn | None, Body()] = None,
    if_match: Annotated[str | None, Header()] = None,
) -> AliasOut:
    """Move the alias back to the version live before the current one, or to `to_version`."""
    row = service.rollback_alias(
        session,
        principal.tenant_id,
        adapter_id,
        alias,
        to_version=body.to_version if body else None,
        expected_generation=_generation_header(if_match),
    )
    _forget_manifest(request, session, principal.tenant_id, adapter_id, alias)
    return _alias_out(session, principal.tenant_id, adapter_id, row, response)


@router.get("/v1/adapters/{adapter_id}/aliases/{alias}/history", response_model=list[AliasEventOut])
def alias_history(
    adapter_id: str, alias: str, principal: ReadDep, session: SessionDep
) -> list[AliasEventOut]:
    """Every move of the alias, oldest first."""
    events = service.alias_history(session, principal.tenant_id, adapter_id, alias)
    return [AliasEventOut.model_validate(e) for e in events]


def _resolve(request: Request, tenant_id: str, user_id: str, adapter: str, alias: str) -> dict:
    with session_scope(request.app.state.session_factory) as session:
        return service.resolve(session, tenant_id, user_id, adapter, alias)


@router.get("/v1/resolve", response_model=Manifest, responses={304: {}})
async def resolve(
    request: Request,
    response: Response,
    principal: ReadDep,
    user_id: str = Query(min_length=1, max_length=200),
    adapter: str = Query("default", min_length=1, max_length=200),
    alias: str = Query("live", min_length=1, max_length=64),
):
    """The manifest a downstream server loads a user's adapter from (ETag; 304 when unchanged)."""
    # The hottest read path: served from the feed-invalidated cache when it can be, else
    # one thread-pool hop for all of its database work.
    cache = request.app.state.manifests
    key = (principal.tenant_id, user_id, adapter, alias)
    if cache.enabled and cache.needs_refresh():
        await run_in_threadpool(cache.refresh)
    manifest = cache.get(key) if cache.enabled else None
    if manifest is None:
        high_water = cache.high_water
        manifest = await run_in_threadpool(
            _resolve, request, principal.tenant_id, user_id, adapter, alias
        )
        if cache.enabled:
            cache.put(key, manifest, high_water)
    tag = hashlib.sha256(
        f"{manifest['adapter_id']}:{alias}:{manifest['alias_generation']}".encode()
    ).hexdigest()[:32]
    etag = f'"{tag}"'
    if etag_matches(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    base = f"/v1/adapters/{manifest['adapter_id']}/versions/{manifest['version']}"
    return Manifest(**manifest, blob_url=f"{base}/blob", peft_url=f"{base}/peft")


def _read_feed(request: Request, tenant_id: str, after: int, limit: int) -> list[AliasEventOut]:
    with session_scope(request.app.state.session_factory) as session:
        events = service.read_feed(session, tenant_id, after, limit)
        return [AliasEventOut.model_validate(e) for e in events]


@router.get("/v1/feed", response_model=FeedOut)
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
    while True:
        events = await run_in_threadpool(_read_feed, request, principal.tenant_id, after, limit)
        if events or time.monotonic() >= deadline or await request.is_disconnected():
            last = events[-1].seq if events else after
            return FeedOut(events=events, last_seq=last)
        await asyncio.sleep(min(FEED_POLL_S, max(0.0, deadline - time.monotonic())))
