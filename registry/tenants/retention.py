"""The tenant's retention policy: GET /v1/retention (read), PATCH /v1/retention (admin).

Retention itself runs in the workers (workers/retention.py); this only shows and sets the
three keep_* values over the operator's defaults (registry/tenants/policy.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from registry.api.deps import AdminDep, ReadDep, SessionDep, SettingsDep
from registry.audit import service as audit
from registry.db import utcnow
from registry.input_rules import INT32_MAX
from registry.tenants.models import TenantPolicy
from registry.tenants.policy import RETENTION_FIELDS, effective_policy, policy_row

router = APIRouter(prefix="/v1/retention", tags=["retention"])

MAX_DAYS = 36_500

# Strict: JSON `true` is no number of days.
Versions = Annotated[int, Field(ge=1, le=INT32_MAX, strict=True)]
Days = Annotated[int, Field(ge=0, le=MAX_DAYS, strict=True)]


class RetentionOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "keep_versions": 10,
                    "keep_alias_days": 90,
                    "keep_dataset_days": 30,
                    "tenant_set": ["keep_versions"],
                }
            ]
        }
    )

    keep_versions: int = Field(description="Newest versions of each adapter always kept.")
    keep_alias_days: int = Field(description="Versions an alias pointed at this recently stay.")
    keep_dataset_days: int = Field(description="Days an idle dataset is kept before purging.")
    tenant_set: list[str] = Field(
        description="The fields this tenant set; the others follow the operator's defaults."
    )


class RetentionIn(BaseModel):
    """Only the fields sent change; null resets one to the operator's default."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"keep_versions": 10, "keep_alias_days": 90}, {"keep_dataset_days": None}]
        },
    )

    keep_versions: Versions | None = None
    keep_alias_days: Days | None = None
    keep_dataset_days: Days | None = None


def _out(session, tenant_id: str, settings) -> RetentionOut:
    policy = effective_policy(session, tenant_id, settings)
    row = session.get(TenantPolicy, tenant_id)
    return RetentionOut(
        **{name: getattr(policy, name) for name in RETENTION_FIELDS},
        tenant_set=[n for n in RETENTION_FIELDS if row is not None and getattr(row, n) is not None],
    )


@router.get("", response_model=RetentionOut, summary="Show the retention policy")
def get_retention(principal: ReadDep, session: SessionDep, settings: SettingsDep) -> RetentionOut:
    """The retention policy in force for this tenant."""
    return _out(session, principal.tenant_id, settings)


@router.patch("", response_model=RetentionOut, summary="Change the retention policy")
def set_retention(
    body: RetentionIn, principal: AdminDep, session: SessionDep, settings: SettingsDep
) -> RetentionOut:
    """Set (or with null, reset to the default) the tenant's keep_* values; audited as
    `retention.changed`."""
    row = policy_row(session, principal.tenant_id)
    changed = {name: getattr(body, name) for name in sorted(body.model_fields_set)}
    for name, value in changed.items():
        setattr(row, name, value)
    if changed:
        row.updated_at = utcnow()
        audit.record(
            session,
            principal.tenant_id,
            "retention.changed",
            actor_key_id=principal.key_id,
            details=changed,
        )
    session.flush()
    return _out(session, principal.tenant_id, settings)
