"""A tenant's effective quotas and retention: its own row over the operator's defaults.

The one home of "which limit applies": quota checks, /v1/usage, the rate limiter and the
retention sweep all read `effective_policy`."""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy.orm import Session

from registry.config import Settings
from registry.tenants.models import TenantPolicy

QUOTA_FIELDS = ("max_active_jobs", "max_stored_bytes", "max_users", "max_requests_per_s")
RETENTION_FIELDS = ("keep_versions", "keep_alias_days", "keep_dataset_days")


@dataclass(frozen=True)
class Policy:
    max_active_jobs: int | None  # None: no limit
    max_stored_bytes: int | None
    max_users: int | None
    max_requests_per_s: float | None
    keep_versions: int
    keep_alias_days: int
    keep_dataset_days: int


def effective_policy(session: Session, tenant_id: str, settings: Settings) -> Policy:
    """The tenant's value where it set one, else the Settings default, for every field."""
    row = session.get(TenantPolicy, tenant_id)
    values = {}
    for field in fields(Policy):
        own = getattr(row, field.name) if row is not None else None
        values[field.name] = own if own is not None else getattr(settings, field.name)
    return Policy(**values)


def policy_row(session: Session, tenant_id: str) -> TenantPolicy:
    """The tenant's own policy row, created empty (all defaults) on first use."""
    row = session.get(TenantPolicy, tenant_id)
    if row is None:
        row = TenantPolicy(tenant_id=tenant_id)
        session.add(row)
        session.flush()
    return row
