"""Adapters, versions, blobs and aliases (publish, rollback); resolve and the feed: serving.py."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor

from registry.adapters import service
from registry.adapters.blobs import blob_response
from registry.adapters.pg_listener import EVENT_SEQS
from registry.adapters.schemas import (
    AdapterOut,
    AliasEventOut,
    AliasOut,
    PublishIn,
    RollbackIn,
    VersionOut,
)
from registry.adapters.serving import manifest_out
from registry.api.deps import (
    PrincipalDep,
    ReadDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    TrainDep,
)
from registry.api.etags import alias_precondition
from registry.api.openapi import answers
from registry.api.pagination import (
    DEFAULT_LIMIT,
    ByName,
    ByNumber,
    BySeq,
    Limit,
    Page,
    decode_cursor,
    next_cursor,
)
from registry.db import after_commit, session_scope
from registry.errors import BadRequest
from registry.names import AliasName, Tag, UserId

router = APIRouter(tags=["adapters"])

VERSION_INDEX_MAX = 200_000
PUSH_WAIT_S = 0.5  # most a publish waits for every process to apply it (normally ~1 ms)


def _version_out(adapter_id: str, version) -> VersionOut:
    data = VersionOut.model_validate(version, from_attributes=True)
    return data.model_copy(update={"adapter_id": adapter_id})


class _AnyText(PathConvertor):
    """Any text, `/` and newlines too: every user id reaches validation and its 422."""

    regex = "(?s:.+)"


register_url_convertor("any_text", _AnyText())


@router.get(
    "/v1/users/{user_id:any_text}/adapters",
    response_model=Page[AdapterOut],
    summary="List a user's adapters",
)
def list_user_adapters(
    user_id: UserId,
    principal: ReadDep,
    session: SessionDep,
    tag: Annotated[Tag | None, Query(description="Only adapters with this tag.")] = None,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[AdapterOut]:
    """A user's adapters, by name."""
    rows = service.list_user_adapters(
        session,
        principal.tenant_id,
        user_id,
        tag=tag,
        after_name=decode_cursor(cursor, ByName),
        limit=limit,
    )
    return Page(
        items=[AdapterOut.model_validate(r) for r in rows],
        next_cursor=next_cursor(rows, limit, lambda r: r.name),
    )


@router.get("/v1/adapters/{adapter_id}", response_model=AdapterOut, summary="Show an adapter")
def get_adapter(adapter_id: str, principal: ReadDep, session: SessionDep) -> AdapterOut:
    """One adapter and what it is bound to."""
    return AdapterOut.model_validate(service.get_adapter(session, principal.tenant_id, adapter_id))


@router.get(
    "/v1/adapters/{adapter_id}/versions",
    response_model=Page[VersionOut],
    summary="List an adapter's versions",
)
def list_versions(
    adapter_id: str,
    principal: ReadDep,
    session: SessionDep,
    tag: Annotated[Tag | None, Query(description="Only versions with this tag.")] = None,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[VersionOut]:
    """Versions, oldest first."""
    after = decode_cursor(cursor, ByNumber) or 0
    rows = service.list_versions(
        session, principal.tenant_id, adapter_id, after_number=after, limit=limit, tag=tag
    )
    return Page(
        items=[_version_out(adapter_id, r) for r in rows],
        next_cursor=next_cursor(rows, limit, lambda r: r.number),
    )


@answers(400)
async def version_number(number: int, _: PrincipalDep) -> int:
    """The `{number}` of a version path: 400 bad_version outside 1..2**31-1 (after the
    key is checked: a caller without one learns nothing, 401)."""
    if not 1 <= number <= 2**31 - 1:
        raise BadRequest(f"version numbers start at 1, got {number}", code="bad_version")
    return number


VersionNumber = Annotated[int, Depends(version_number)]


@router.get(
    "/v1/adapters/{adapter_id}/versions/{number}",
    response_model=VersionOut,
    summary="Show an adapter version",
)
def get_version(adapter_id: str, number: VersionNumber, principal: ReadDep, session: SessionDep):
    """One immutable version."""
    return _version_out(
        adapter_id, service.get_version(session, principal.tenant_id, adapter_id, number)
    )


@router.get(
    "/v1/adapters/{adapter_id}/versions/{number}/blob",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        206: {},
        304: {},
        307: {},
        400: {"description": "A malformed `Range` header or version number."},
        416: {"description": "The `Range` lies outside the file."},
    },
    summary="Download a version's safetensors file",
)
async def download_blob(
    adapter_id: str,
    number: VersionNumber,
    request: Request,
    principal: ReadDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    """The version's safetensors file (ETag = sha256; If-None-Match → 304; Range → 206)."""
    # Versions are immutable, so where a version's blob lives can be remembered until the
    # feed says it was deleted (manifest_cache: on_delete); with the blob bytes cached too,
    # a repeated download touches neither database nor disk.
    key = (principal.tenant_id, adapter_id, number)
    manifests = request.app.state.manifests
    if manifests.enabled and manifests.needs_refresh():
        await run_in_threadpool(manifests.refresh)
    index = request.app.state.version_index if manifests.enabled else {}
    found = index.get(key)
    if found is None:
        epoch = manifests.epoch
        found = await run_in_threadpool(_version_blob, request, *key)
        if len(index) > VERSION_INDEX_MAX:
            index.clear()
        if epoch == manifests.epoch:  # no deletion applied meanwhile
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


def _alias_out(session, tenant_id: str, adapter_id: str, alias, response: Response) -> AliasOut:
    response.headers["ETag"] = f'"{alias.generation}"'
    number = service._number_of(session, alias.version_id)
    # The writer gets what resolve serves from now on (read your writes, even elsewhere).
    adapter = service.get_adapter(session, tenant_id, adapter_id)
    manifest = service.resolve(session, tenant_id, adapter.user_id, adapter.name, alias.name)
    return AliasOut(
        adapter_id=adapter_id,
        alias=alias.name,
        version=number,
        generation=alias.generation,
        manifest=manifest_out(manifest),
    )


def _forget_manifest(request: Request, session, tenant_id: str, adapter_id: str, alias: str):
    """Once the move commits, this process serves the new target at once; with push, the
    answer waits (briefly) until every API process has applied it too. Without push they
    see it at their next poll."""
    adapter = service.get_adapter(session, tenant_id, adapter_id)
    key = (tenant_id, adapter.user_id, adapter.name, alias)
    state = request.app.state
    seqs = session.info.get(EVENT_SEQS, [])

    def published() -> None:
        state.manifests.forget(key)
        if not seqs:
            return
        state.feed_waiters.wake(tenant_id, max(seqs))  # this process's waiters: at once
        if state.pg_listener is not None:
            state.pg_listener.wait_everywhere(state.engine, max(seqs), PUSH_WAIT_S)

    after_commit(session, published)


@router.put(
    "/v1/adapters/{adapter_id}/aliases/{alias}",
    response_model=AliasOut,
    responses={
        400: {"description": "A malformed `If-Match` or `If-None-Match`."},
        409: {"description": "`If-Match` names another generation: the alias moved meanwhile."},
        412: {
            "description": "`If-Match: *` and no such alias, or `If-None-Match: *` and it exists."
        },
    },
    summary="Publish a version under an alias",
)
def publish(
    request: Request,
    adapter_id: str,
    alias: AliasName,
    body: PublishIn,
    principal: TrainDep,
    session: SessionDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> AliasOut:
    """Point an alias at a version. If-Match: "<generation>" moves only an alias still at that
    generation (409 otherwise), If-Match: * only an existing one (412 otherwise);
    If-None-Match: * only creates. Without either it just moves."""
    expected = alias_precondition(if_match, if_none_match)
    row = service.set_alias(
        session,
        principal.tenant_id,
        adapter_id,
        alias,
        body.version,
        expected,
        actor_key_id=principal.key_id,
        reason=body.reason,
    )
    _forget_manifest(request, session, principal.tenant_id, adapter_id, alias)
    return _alias_out(session, principal.tenant_id, adapter_id, row, response)


@router.get(
    "/v1/adapters/{adapter_id}/aliases/{alias}",
    response_model=AliasOut,
    summary="Show where an alias points",
)
def get_alias(
    adapter_id: str, alias: AliasName, principal: ReadDep, session: SessionDep, response: Response
) -> AliasOut:
    """Where an alias points now, with its generation (also as the ETag)."""
    row = service.get_alias(session, principal.tenant_id, adapter_id, alias)
    return _alias_out(session, principal.tenant_id, adapter_id, row, response)


@router.post(
    "/v1/adapters/{adapter_id}/aliases/{alias}/rollback",
    response_model=AliasOut,
    responses={
        400: {"description": "A malformed `If-Match` or `If-None-Match`."},
        409: {
            "description": "No earlier version to roll back to, or the alias moved "
            "meanwhile (`If-Match`)."
        },
        412: {
            "description": "`If-Match: *` and no such alias, or `If-None-Match: *` and it exists."
        },
    },
    summary="Roll an alias back",
)
def rollback(
    request: Request,
    adapter_id: str,
    alias: AliasName,
    principal: TrainDep,
    session: SessionDep,
    response: Response,
    body: Annotated[RollbackIn | None, Body()] = None,
    if_match: Annotated[str | None, Header()] = None,
) -> AliasOut:
    """Undo the alias's latest move not yet undone (docs/api.md, "Rollback semantics"), or
    move it to `to_version`."""
    row = service.rollback_alias(
        session,
        principal.tenant_id,
        adapter_id,
        alias,
        to_version=body.to_version if body else None,
        expected_generation=alias_precondition(if_match, None),
        actor_key_id=principal.key_id,
        reason=body.reason if body else None,
    )
    _forget_manifest(request, session, principal.tenant_id, adapter_id, alias)
    return _alias_out(session, principal.tenant_id, adapter_id, row, response)


@router.get(
    "/v1/adapters/{adapter_id}/aliases/{alias}/history",
    response_model=Page[AliasEventOut],
    summary="List an alias's moves",
)
def alias_history(
    adapter_id: str,
    alias: AliasName,
    principal: ReadDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[AliasEventOut]:
    """Every move of the alias, oldest first."""
    events = service.alias_history(
        session,
        principal.tenant_id,
        adapter_id,
        alias,
        after_seq=decode_cursor(cursor, BySeq) or 0,
        limit=limit,
    )
    return Page(
        items=[AliasEventOut.model_validate(e) for e in events],
        next_cursor=next_cursor(events, limit, lambda e: e.seq),
    )
