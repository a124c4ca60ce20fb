"""GET /v1/usage: the caller's tenant, its usage against its quotas and its retention."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from registry.api.deps import ReadDep, SessionDep, SettingsDep
from registry.tenants import quotas
from registry.tenants.policy import RETENTION_FIELDS, effective_policy

router = APIRouter(tags=["usage"])


class QuotaUsage(BaseModel):
    limit: int | float | None = Field(description="null: no limit.")
    used: int | None = Field(description="null for max_requests_per_s (a rate, not stored).")


class UsageOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "quotas": {
                        "max_active_jobs": {"limit": 20, "used": 3},
                        "max_stored_bytes": {"limit": 10737418240, "used": 52428800},
                        "max_users": {"limit": None, "used": 41},
                        "max_requests_per_s": {"limit": 50.0, "used": None},
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

    quotas: dict[str, QuotaUsage] = Field(
        description="max_active_jobs (queued + running), max_stored_bytes (versions and "
        "unpurged datasets), max_users, max_requests_per_s (per API key)."
    )
    retention: dict[str, int]


@router.get("/v1/usage", response_model=UsageOut, summary="Show usage against quotas")
def get_usage(principal: ReadDep, session: SessionDep, settings: SettingsDep) -> UsageOut:
    """This tenant's usage against its limits, and its retention policy."""
    report = quotas.quota_report(session, principal.tenant_id, settings)
    policy = effective_policy(session, principal.tenant_id, settings)
    return UsageOut(
        quotas={name: QuotaUsage(limit=q["limit"], used=q["used"]) for name, q in report.items()},
        retention={field: getattr(policy, field) for field in RETENTION_FIELDS},
    )
