"""Retention: per tenant (its `effective_policy`), delete old versions and purge idle datasets.

Runs as its own periodic task (`vera.retention`, every `VERA_RETENTION_INTERVAL_S`, beside
the sweeper on the maintenance queue) and from `vera-registry sweep`.

Versions: of each adapter, retention keeps the newest `keep_versions`, every version an
alias points at now or pointed at within `keep_alias_days` (its history's from/to versions
in that window), and every version a queued or running job warm-starts from; the rest go
through `deletion.delete_version` (feed event `version_deleted`, audit `version.deleted` with
actor null and reason "retention"). Numbers are never reused.

Datasets: one that no queued or running job uses, and whose last use (the latest finish of
a job that trained on it, or its upload if none did) is more than `keep_dataset_days` ago, is
purged: the row stays for the jobs that name it, its blob reference goes (`purged_at` set).

Blobs either frees leave the store right after each commit where no row references them
(registry/blob_refs.py); blob GC is the fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from registry.adapters import deletion
from registry.adapters.models import AdapterVersion, Alias, AliasEvent
from registry.blob_refs import note_freed
from registry.config import Settings
from registry.db import session_scope, utcnow
from registry.errors import Conflict
from registry.jobs.models import Dataset, Job
from registry.tenants.models import Tenant
from registry.tenants.policy import Policy, effective_policy

log = logging.getLogger(__name__)

BATCH = 50  # adapters (or datasets) per transaction: each holds the feed lock till commit
UNFINISHED = ("queued", "running")


@dataclass
class RetentionReport:
    versions_deleted: list[tuple[str, int]] = field(default_factory=list)
    datasets_purged: list[str] = field(default_factory=list)


def apply_retention(
    factory: sessionmaker[Session], settings: Settings, *, now: datetime | None = None
) -> RetentionReport:
    """One pass over every tenant."""
    now = now or utcnow()
    report = RetentionReport()
    with session_scope(factory) as session:
        tenant_ids = list(session.scalars(select(Tenant.id).order_by(Tenant.id)))
    for tenant_id in tenant_ids:
        with session_scope(factory) as session:
            policy = effective_policy(session, tenant_id, settings)
            crowded = _crowded_adapters(session, tenant_id, policy)
        for start in range(0, len(crowded), BATCH):
            with session_scope(factory) as session:
                for adapter_id in crowded[start : start + BATCH]:
                    _trim_adapter(session, tenant_id, adapter_id, policy, now, report)
        while True:
            with session_scope(factory) as session:
                purged = _purge_datasets(session, tenant_id, policy, now)
            report.datasets_purged += purged
            if len(purged) < BATCH:
                break
    if report.versions_deleted or report.datasets_purged:
        log.info(
            "retention deleted %d version(s), purged %d dataset(s)",
            len(report.versions_deleted),
            len(report.datasets_purged),
        )
    return report


def _crowded_adapters(session: Session, tenant_id: str, policy: Policy) -> list[str]:
    """Adapters with more versions than the policy keeps by number alone."""
    return list(
        session.scalars(
            select(AdapterVersion.adapter_id)
            .where(AdapterVersion.tenant_id == tenant_id)
            .group_by(AdapterVersion.adapter_id)
            .having(func.count() > policy.keep_versions)
            .order_by(AdapterVersion.adapter_id)
        )
    )


def kept_versions(
    session: Session, adapter_id: str, policy: Policy, now: datetime
) -> tuple[list[int], set[int]]:
    """(every version number of the adapter, the numbers retention keeps)."""
    numbers = list(
        session.scalars(
            select(AdapterVersion.number)
            .where(AdapterVersion.adapter_id == adapter_id)
            .order_by(AdapterVersion.number.desc())
        )
    )
    keep = set(numbers[: policy.keep_versions])
    keep.update(
        session.scalars(
            select(AdapterVersion.number)
            .join(Alias, Alias.version_id == AdapterVersion.id)
            .where(Alias.adapter_id == adapter_id)
        )
    )
    since = now - timedelta(days=policy.keep_alias_days)
    moves = session.execute(
        select(AliasEvent.from_version, AliasEvent.to_version).where(
            AliasEvent.adapter_id == adapter_id,
            AliasEvent.kind.in_(("set", "rollback")),
            AliasEvent.created_at >= since,
        )
    ).all()
    keep.update(n for move in moves for n in move if n is not None)
    keep.update(
        session.scalars(
            select(AdapterVersion.number)
            .join(Job, Job.warm_start_version_id == AdapterVersion.id)
            .where(AdapterVersion.adapter_id == adapter_id, Job.state.in_(UNFINISHED))
        )
    )
    return numbers, keep


def _trim_adapter(session, tenant_id, adapter_id, policy, now, report) -> None:
    numbers, keep = kept_versions(session, adapter_id, policy, now)
    for number in sorted(set(numbers) - keep):
        try:
            with session.begin_nested():
                deletion.delete_version(
                    session, tenant_id, adapter_id, number, actor_key_id=None, reason="retention"
                )
        except Conflict:  # an alias moved to it, or a job took it up, since we looked
            continue
        report.versions_deleted.append((adapter_id, number))


def _purge_datasets(session: Session, tenant_id: str, policy: Policy, now: datetime) -> list[str]:
    cutoff = now - timedelta(days=policy.keep_dataset_days)
    in_use = select(Job.id).where(Job.dataset_id == Dataset.id, Job.state.in_(UNFINISHED))
    last_finish = (
        select(func.max(Job.finished_at)).where(Job.dataset_id == Dataset.id).scalar_subquery()
    )
    idle_since = func.coalesce(last_finish, Dataset.created_at)
    datasets = session.scalars(
        select(Dataset)
        .where(
            Dataset.tenant_id == tenant_id,
            Dataset.blob_sha256.is_not(None),
            ~in_use.exists(),
            idle_since < cutoff,
        )
        .order_by(Dataset.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    for dataset in datasets:
        note_freed(session, [dataset.blob_sha256])
        dataset.blob_sha256, dataset.purged_at = None, now
    session.flush()
    return [d.id for d in datasets]
