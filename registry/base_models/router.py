"""Base models and their projections."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from registry.api.deps import AdminDep, ReadDep, SessionDep
from registry.api.pagination import MAX_LIMIT, ById, Page, decode_cursor, encode_cursor
from registry.base_models import service
from registry.base_models.schemas import BaseModelIn, BaseModelOut, ProjectionIn, ProjectionOut

router = APIRouter(prefix="/v1/base-models", tags=["base models"])


@router.post("", status_code=201, response_model=BaseModelOut)
def register_base_model(
    body: BaseModelIn, principal: AdminDep, session: SessionDep, response: Response
) -> BaseModelOut:
    """Register base weights by content hash (the same registration again returns it, 200)."""
    model, created = service.register_base_model(session, principal.tenant_id, **body.model_dump())
    if not created:
        response.status_code = 200
    return BaseModelOut.model_validate(model)


@router.get("", response_model=Page[BaseModelOut])
def list_base_models(
    principal: ReadDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
) -> Page[BaseModelOut]:
    """Base models of this tenant."""
    rows = service.list_base_models(
        session, principal.tenant_id, after_id=decode_cursor(cursor, ById), limit=limit
    )
    next_cursor = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page(items=[BaseModelOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{base_model_id}", response_model=BaseModelOut)
def get_base_model(base_model_id: str, principal: ReadDep, session: SessionDep) -> BaseModelOut:
    """One base model with its targetable layers."""
    return BaseModelOut.model_validate(
        service.get_base_model(session, principal.tenant_id, base_model_id)
    )


@router.post("/{base_model_id}/projections", status_code=201, response_model=ProjectionOut)
def register_projection(
    base_model_id: str,
    body: ProjectionIn,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
) -> ProjectionOut:
    """Record a projection (seed, r, dims) and its fingerprint; a different fingerprint for
    the same parameters is refused (409)."""
    projection, created = service.get_or_create_projection(
        session, principal.tenant_id, base_model_id, **body.model_dump()
    )
    if not created:
        response.status_code = 200
    return ProjectionOut.model_validate(projection)


@router.get("/{base_model_id}/projections", response_model=list[ProjectionOut])
def list_projections(
    base_model_id: str, principal: ReadDep, session: SessionDep
) -> list[ProjectionOut]:
    """Projections registered for a base model."""
    rows = service.list_projections(session, principal.tenant_id, base_model_id)
    return [ProjectionOut.model_validate(r) for r in rows]
