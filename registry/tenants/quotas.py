"""Tenant quotas: what a tenant uses, and the checks at job submit and dataset upload.

The one home of capacity limits (the rate limit is registry/api/rate_limit.py). Limits come
from `effective_policy`; usage is counted with indexed SUM/COUNT queries at check time, so
there is no counter to drift. A check that may admit something takes the tenant row's lock
first (`FOR NO KEY UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serializes writers),
so concurrent submits or uploads cannot both slip under a limit.
"""

from __future__ import annotations

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from registry.adapters.models import Adapter, AdapterVersion
from registry.audit import service as audit
from registry.config import Settings
from registry.db import utcnow
from registry.errors import Conflict, Invalid, TooLarge
from registry.jobs.models import Dataset, Job
from registry.tenants.models import Tenant, TenantPolicy
from registry.tenants.policy import QUOTA_FIELDS, Policy, effective_policy, policy_row

CAPACITY_FIELDS = ("max_active_jobs", "max_stored_bytes", "max_users")


class QuotaExceeded(Conflict):
    """409: admitting this would take the tenant over a capacity limit."""

    code = "quota_exceeded"


class StorageQuotaExceeded(TooLarge):
    """413: an upload that would take the tenant over its stored-bytes limit."""

    code = "quota_exceeded"


def active_jobs(session: Session, tenant_id: str) -> int:
    """Queued and running jobs (index jobs(tenant_id, state))."""
    query = select(func.count()).where(
        Job.tenant_id == tenant_id, Job.state.in_(("queued", "running"))
    )
    return int(session.scalar(query) or 0)


def stored_bytes(session: Session, tenant_id: str) -> int:
    """Bytes of the tenant's versions and unpurged datasets, as uploaded or trained (a blob
    two rows share counts twice: the limit is on what a tenant stores, not on the dedup)."""
    versions = select(func.coalesce(func.sum(AdapterVersion.size_bytes), 0)).where(
        AdapterVersion.tenant_id == tenant_id
    )
    datasets = select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(
        Dataset.tenant_id == tenant_id, Dataset.purged_at.is_(None)
    )
    return int(session.scalar(versions) or 0) + int(session.scalar(datasets) or 0)


def _user_ids(tenant_id: str):
    # Every job names an adapter of its own user (jobs.adapter_id), so adapters ∪ datasets
    # covers adapters ∪ datasets ∪ jobs without reading the (longest) jobs table.
    return union(
        select(Adapter.user_id).where(Adapter.tenant_id == tenant_id),
        select(Dataset.user_id).where(Dataset.tenant_id == tenant_id),
    ).subquery()


def users(session: Session, tenant_id: str) -> int:
    """Distinct user ids that own an adapter, a dataset or a job."""
    return int(session.scalar(select(func.count()).select_from(_user_ids(tenant_id))) or 0)


def known_user(session: Session, tenant_id: str, user_id: str) -> bool:
    """The user owns an adapter or a dataset here already (two index probes)."""
    adapter = select(Adapter.id).where(Adapter.tenant_id == tenant_id, Adapter.user_id == user_id)
    dataset = select(Dataset.id).where(Dataset.tenant_id == tenant_id, Dataset.user_id == user_id)
    return bool(session.scalar(select(adapter.exists() | dataset.exists())))


def usage(session: Session, tenant_id: str) -> dict[str, int | None]:
    """Usage per quota field (the rate limit has no stored usage: None)."""
    return {
        "max_active_jobs": active_jobs(session, tenant_id),
        "max_stored_bytes": stored_bytes(session, tenant_id),
        "max_users": users(session, tenant_id),
        "max_requests_per_s": None,
    }


def quota_report(session: Session, tenant_id: str, settings: Settings) -> dict[str, dict]:
    """{field: {"limit", "used", "own"}} for every quota field (GET /v1/usage, the operator
    API); `own`: the tenant's value, not the operator's default."""
    policy = effective_policy(session, tenant_id, settings)
    own = session.get(TenantPolicy, tenant_id)
    used = usage(session, tenant_id)
    return {
        name: {
            "limit": getattr(policy, name),
            "used": used[name],
            "own": own is not None and getattr(own, name) is not None,
        }
        for name in QUOTA_FIELDS
    }


def set_quotas(session: Session, tenant_id: str, changes: dict) -> dict:
    """Write these quota fields on the tenant's own policy (None: back to the default) and
    audit `quotas.changed` (actor None: the operator). The API and the CLI both come here."""
    unknown = sorted(set(changes) - set(QUOTA_FIELDS))
    if unknown:
        raise Invalid(f"not quota fields: {unknown}; known: {list(QUOTA_FIELDS)}")
    if not changes:
        return changes
    row = policy_row(session, tenant_id)
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.flush()
    audit.record(session, tenant_id, "quotas.changed", details=dict(changes))
    return changes


def _lock_tenant(session: Session, tenant_id: str) -> None:
    # FOR NO KEY UPDATE: quota checks of one tenant wait for each other, while inserts that
    # merely reference the tenant (their foreign keys take KEY SHARE) never wait for it.
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))


def begin_submit(session: Session, tenant_id: str, settings: Settings) -> Policy | None:
    """Before a job submit looks for its idempotent replay: lock the tenant when a capacity
    limit applies, so the replay check and the count see every committed submit. Returns the
    policy to check with (None: nothing to check)."""
    policy = effective_policy(session, tenant_id, settings)
    if all(getattr(policy, name) is None for name in CAPACITY_FIELDS):
        return None
    _lock_tenant(session, tenant_id)
    return policy


def check_submit(session: Session, tenant_id: str, user_id: str, policy: Policy) -> None:
    """A new job: room for one more active job, storage not full, and room for a new user."""
    if policy.max_active_jobs is not None:
        used = active_jobs(session, tenant_id)
        if used >= policy.max_active_jobs:
            raise _exceeded(
                "max_active_jobs",
                policy.max_active_jobs,
                used,
                f"the tenant has {used} queued or running jobs, its limit "
                f"(max_active_jobs) is {policy.max_active_jobs}; wait for jobs to finish or "
                "cancel some, or ask the operator to raise the limit",
            )
    if policy.max_stored_bytes is not None:
        used = stored_bytes(session, tenant_id)
        if used >= policy.max_stored_bytes:
            raise _exceeded(
                "max_stored_bytes",
                policy.max_stored_bytes,
                used,
                f"the tenant stores {used} bytes, its limit (max_stored_bytes) is "
                f"{policy.max_stored_bytes}, so the version this job would create has no "
                "room; delete versions or datasets, or ask the operator to raise the limit",
            )
    _check_new_user(session, tenant_id, user_id, policy)


def check_upload(
    session: Session, tenant_id: str, user_id: str, size: int, settings: Settings, *, lock: bool
) -> None:
    """A dataset of `size` bytes: 413 when it does not fit the stored-bytes limit, 409 when
    its user is new and the tenant has its limit of users. `lock` for the final check made
    in the transaction that records the dataset (an early one fails fast unlocked)."""
    policy = effective_policy(session, tenant_id, settings)
    if policy.max_stored_bytes is None and policy.max_users is None:
        return
    if lock:
        _lock_tenant(session, tenant_id)
    if policy.max_stored_bytes is not None:
        used = stored_bytes(session, tenant_id)
        if used + size > policy.max_stored_bytes:
            raise StorageQuotaExceeded(
                f"this dataset ({size} bytes) does not fit: the tenant stores {used} bytes and "
                f"its limit (max_stored_bytes) is {policy.max_stored_bytes}; delete versions "
                "or datasets, or ask the operator to raise the limit",
                details=_details("max_stored_bytes", policy.max_stored_bytes, used)
                | {"requested": size},
            )
    _check_new_user(session, tenant_id, user_id, policy)


def _check_new_user(session: Session, tenant_id: str, user_id: str, policy: Policy) -> None:
    if policy.max_users is None or known_user(session, tenant_id, user_id):
        return
    used = users(session, tenant_id)
    if used >= policy.max_users:
        raise _exceeded(
            "max_users",
            policy.max_users,
            used,
            f"user {user_id!r} would be new, and the tenant has {used} users, its limit "
            f"(max_users) is {policy.max_users}; erase users it no longer serves, or ask the "
            "operator to raise the limit",
        )


def _details(limit: str, allowed: int | float, used: int) -> dict:
    return {"limit": limit, "allowed": allowed, "used": used}


def _exceeded(limit: str, allowed: int, used: int, message: str) -> QuotaExceeded:
    return QuotaExceeded(message, details=_details(limit, allowed, used))
