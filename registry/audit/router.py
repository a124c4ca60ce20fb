"""The tenant's audit log (admin scope)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from registry.api.deps import AdminDep, SessionDep
from registry.api.pagination import MAX_LIMIT, Page, decode_cursor, encode_cursor
from registry.audit import service
from registry.audit.schemas import AuditEventOut
from registry.input_rules import IsoUtcDatetime

router = APIRouter(tags=["audit"])

Action = Literal[service.ACTIONS]  # an unknown action is a 422 naming the known ones
ByEventId = Annotated[int, Field(ge=0, le=2**63 - 1)]


@router.get("/v1/audit", response_model=Page[AuditEventOut], summary="Read the audit log")
def list_audit(
    principal: AdminDep,
    session: SessionDep,
    action: Action | None = None,
    since: Annotated[IsoUtcDatetime | None, Query(description="Events at or after this.")] = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
) -> Page[AuditEventOut]:
    """Who did what: key changes, alias moves, deletions, policy changes; oldest first."""
    rows = service.list_events(
        session,
        principal.tenant_id,
        after_id=decode_cursor(cursor, ByEventId) or 0,
        limit=limit,
        action=action,
        since=since,
    )
    next_cursor = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page(items=[AuditEventOut.model_validate(r) for r in rows], next_cursor=next_cursor)
