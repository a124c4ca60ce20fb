"""The operator API: every tenant's quotas and usage, behind `VERA_OPERATOR_TOKEN`.

Not a tenant-key API: the operator runs the service for all tenants, so these routes take
the operator's bearer token (compared in constant time), never an API key, and address
tenants by name. No token sent: 401; the setting unset: 404 `operator_api_off`.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from registry.api.deps import SessionDep, SettingsDep
from registry.api.openapi import answers
from registry.api.pagination import MAX_LIMIT, ByCreatedAt, Page, decode_cursor, encode_cursor
from registry.db import after_commit
from registry.errors import NotFound, Unauthorized
from registry.input_rules import Text
from registry.tenants import quotas
from registry.tenants.models import Tenant
from registry.tenants.policy import RETENTION_FIELDS, effective_policy
from registry.tenants.service import get_tenant_by_name

_bearer = HTTPBearer(auto_error=False, description="The operator token (VERA_OPERATOR_TOKEN).")


@answers(401, 404)  # 404: the operator API is off
async def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "missing operator token: send 'Authorization: Bearer <VERA_OPERATOR_TOKEN>'",
            code="missing_operator_token",
        )
    token = request.app.state.settings.operator_token
    if token is None or not token.get_secret_value():
        raise NotFound(
            "the operator API is off: set VERA_OPERATOR_TOKEN on the API servers to turn it on",
            code="operator_api_off",
        )
    if not hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode()):
        raise Unauthorized(
            "wrong operator token: the operator API takes 'Authorization: Bearer "
            "<VERA_OPERATOR_TOKEN>' (an API key is not accepted here)",
            code="bad_operator_token",
        )


router = APIRouter(
    prefix="/v1/operator", tags=["operator"], dependencies=[Depends(require_operator)]
)
TenantName = Annotated[Text, Field(min_length=1, max_length=200)]


class QuotaOut(BaseModel):
    limit: int | float | None = Field(description="null: no limit.")
    used: int | None = Field(description="null for max_requests_per_s (a rate, not stored).")
    own: bool = Field(False, description="Set for this tenant (else the operator's default).")


class OperatorTenantOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01J9ZY8W6U4S2Q0O8M6K4I2G0E",
                    "name": "acme",
                    "created_at": "2026-11-30T09:15:02.481Z",
                }
            ]
        },
    )

    id: str
    name: str
    created_at: datetime


class OperatorTenantDetail(OperatorTenantOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01J9ZY8W6U4S2Q0O8M6K4I2G0E",
                    "name": "acme",
                    "created_at": "2026-11-30T09:15:02.481Z",
                    "quotas": {
                        "max_active_jobs": {"limit": 20, "used": 3, "own": True},
                        "max_users": {"limit": None, "used": 41, "own": False},
                    },
                    "retention": {
                        "keep_versions": 10,
                        "keep_alias_days": 90,
                        "keep_dataset_days": 30,
                    },
                }
            ]
        }
    )

    quotas: dict[str, QuotaOut]
    retention: dict[str, int]


class QuotasIn(BaseModel):
    """The fields to change; null resets a field to the operator's default (Settings)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"max_active_jobs": 20, "max_requests_per_s": 50.0}, {"max_users": None}]
        },
    )

    max_active_jobs: int | None = Field(None, ge=1, le=2**31 - 1)
    max_stored_bytes: int | None = Field(None, ge=0, le=2**63 - 1)
    max_users: int | None = Field(None, ge=1, le=2**31 - 1)
    max_requests_per_s: float | None = Field(None, gt=0, le=1e6)


@router.get(
    "/tenants", response_model=Page[OperatorTenantOut], summary="List every tenant (operator)"
)
def list_tenants(
    session: SessionDep,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
) -> Page[OperatorTenantOut]:
    """Every tenant, oldest first."""
    query = select(Tenant).order_by(Tenant.created_at, Tenant.id).limit(limit)
    after = decode_cursor(cursor, ByCreatedAt)
    if after is not None:
        created_at, tenant_id = after
        query = query.where(
            (Tenant.created_at > created_at)
            | ((Tenant.created_at == created_at) & (Tenant.id > tenant_id))
        )
    rows = list(session.scalars(query))
    last = rows[-1] if len(rows) == limit else None
    next_cursor = encode_cursor([last.created_at.isoformat(), last.id]) if last else None
    return Page(items=[OperatorTenantOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/tenants/{name}",
    response_model=OperatorTenantDetail,
    summary="Show a tenant's quotas and retention (operator)",
)
def get_tenant(
    name: TenantName, session: SessionDep, settings: SettingsDep
) -> OperatorTenantDetail:
    """One tenant's quotas (limit, usage, own or default) and retention."""
    return _detail(session, get_tenant_by_name(session, name), settings)


@router.patch(
    "/tenants/{name}/quotas",
    response_model=OperatorTenantDetail,
    summary="Set a tenant's quotas (operator)",
)
def set_quotas(
    name: TenantName, body: QuotasIn, session: SessionDep, settings: SettingsDep, request: Request
) -> OperatorTenantDetail:
    """Set a tenant's own limits (null: back to the default). Audited as `quotas.changed`."""
    tenant = get_tenant_by_name(session, name)
    changes = quotas.set_quotas(session, tenant.id, body.model_dump(exclude_unset=True))
    if "max_requests_per_s" in changes:  # this process at once, the others within their TTL
        after_commit(session, lambda: request.app.state.rate_limiter.forget_tenant(tenant.id))
    return _detail(session, tenant, settings)


def _detail(session, tenant: Tenant, settings) -> OperatorTenantDetail:
    policy = effective_policy(session, tenant.id, settings)
    return OperatorTenantDetail(
        id=tenant.id,
        name=tenant.name,
        created_at=tenant.created_at,
        quotas={
            k: QuotaOut(**v) for k, v in quotas.quota_report(session, tenant.id, settings).items()
        },
        retention={field: getattr(policy, field) for field in RETENTION_FIELDS},
    )
