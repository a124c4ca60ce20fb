"""Descriptions and tags (PATCH); browsing: the tenant's users with their adapters
(search), an adapter's aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry.adapters import metadata, service, users
from registry.adapters.router import VersionNumber, _version_out
from registry.adapters.schemas import (
    AdapterOut,
    AliasSummaryOut,
    MetadataIn,
    UserAdapterOut,
    UserOut,
    VersionOut,
)
from registry.api.deps import ReadDep, SessionDep, TrainDep
from registry.api.pagination import DEFAULT_LIMIT, ByName, Limit, Page, decode_cursor, next_cursor
from registry.input_rules import IsoUtcDatetime
from registry.names import Tag, UserId

router = APIRouter(tags=["adapters"])


@router.get("/v1/users", response_model=Page[UserOut], summary="List users and their adapters")
def list_users(
    principal: ReadDep,
    session: SessionDep,
    tag: Annotated[Tag | None, Query(description="Only adapters with this tag.")] = None,
    user_id_prefix: Annotated[
        UserId | None, Query(description="Only users whose id starts with this text.")
    ] = None,
    base_model_id: Annotated[
        str | None, Query(max_length=64, description="Only adapters of this base model.")
    ] = None,
    updated_since: Annotated[
        IsoUtcDatetime | None,
        Query(description="Only adapters updated (version, alias move, metadata) since."),
    ] = None,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[UserOut]:
    """The tenant's users by id, each with their adapters (and live version) that match the
    filters; users with none are left out."""
    rows = users.list_users(
        session,
        principal.tenant_id,
        tag=tag,
        user_id_prefix=user_id_prefix,
        base_model_id=base_model_id,
        updated_since=updated_since,
        after_user_id=decode_cursor(cursor, ByName),
        limit=limit,
    )
    items = [
        UserOut(
            user_id=user.user_id,
            adapters=[
                UserAdapterOut(
                    id=a.adapter.id,
                    name=a.adapter.name,
                    base_model_id=a.adapter.base_model_id,
                    task=a.adapter.task,
                    description=a.adapter.description,
                    tags=a.adapter.tags,
                    live_version=a.live_version,
                    updated_at=a.adapter.updated_at,
                )
                for a in user.adapters
            ],
        )
        for user in rows
    ]
    return Page(items=items, next_cursor=next_cursor(rows, limit, lambda u: u.user_id))


@router.patch(
    "/v1/adapters/{adapter_id}",
    response_model=AdapterOut,
    summary="Change an adapter's description and tags",
)
def update_adapter(
    adapter_id: str, body: MetadataIn, principal: TrainDep, session: SessionDep
) -> AdapterOut:
    """Change the adapter's description and tags (fields left out stay)."""
    adapter = service.get_adapter(session, principal.tenant_id, adapter_id)
    metadata.update(session, adapter, **body.changes())
    return AdapterOut.model_validate(adapter)


@router.patch(
    "/v1/adapters/{adapter_id}/versions/{number}",
    response_model=VersionOut,
    summary="Change a version's description and tags",
)
def update_version(
    adapter_id: str,
    number: VersionNumber,
    body: MetadataIn,
    principal: TrainDep,
    session: SessionDep,
) -> VersionOut:
    """Change a version's description and tags; its content (vectors, metrics) never
    changes."""
    adapter = service.get_adapter(session, principal.tenant_id, adapter_id)
    version = service.get_version(session, principal.tenant_id, adapter_id, number)
    metadata.update(session, adapter, version, **body.changes())
    return _version_out(adapter_id, version)


@router.get(
    "/v1/adapters/{adapter_id}/aliases",
    response_model=Page[AliasSummaryOut],
    summary="List an adapter's aliases",
)
def list_aliases(
    adapter_id: str,
    principal: ReadDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[AliasSummaryOut]:
    """The adapter's aliases by name: the version each points at and its generation."""
    rows = service.list_aliases(
        session,
        principal.tenant_id,
        adapter_id,
        after_name=decode_cursor(cursor, ByName),
        limit=limit,
    )
    items = [
        AliasSummaryOut(
            alias=alias.name,
            version=number,
            generation=alias.generation,
            updated_at=alias.updated_at,
        )
        for alias, number in rows
    ]
    return Page(items=items, next_cursor=next_cursor(items, limit, lambda a: a.alias))
