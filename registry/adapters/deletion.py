"""Deleting versions, adapters and everything of a user: the one home of "forget this".

Each function works inside the caller's transaction: it deletes the rows, appends one feed
event (so every API process and downstream server forgets too), records the audit event,
and returns a `Deletion` (counts). The blobs the rows referenced go from the store right
after the commit (blob_refs.note_freed), and only where no other row references them then:
blobs are content-addressed, so another user's identical bytes stay.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from registry import blob_refs
from registry.adapters.models import (
    Adapter,
    AdapterTag,
    AdapterVersion,
    Alias,
    AliasEvent,
    VersionTag,
)
from registry.adapters.pg_listener import notify_alias_event
from registry.adapters.service import _lock_feed, get_adapter, get_version
from registry.audit import service as audit
from registry.audit.models import AuditEvent
from registry.errors import Conflict, NotFound
from registry.jobs.models import Dataset, Job, JobEvent
from registry.webhooks import outbox
from registry.webhooks.models import WebhookDelivery

UNFINISHED = ("queued", "running")


@dataclass
class Deletion:
    """What one deletion removed: counts (for the audit log and the answer), the adapters
    it removed (or changed), the blobs its rows referenced, and its feed event."""

    counts: dict[str, int] = field(default_factory=dict)
    adapter_ids: list[str] = field(default_factory=list)
    blobs: set[str] = field(default_factory=set)
    feed_seq: int | None = None

    def add(self, name: str, count: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + max(count, 0)


def delete_version(
    session: Session,
    tenant_id: str,
    adapter_id: str,
    number: int,
    *,
    actor_key_id: str | None,
    reason: str | None = None,
) -> Deletion:
    """Delete one version; refused (409 version_in_use) while an alias points at it or an
    unfinished job warm-starts from it. Its number is never given out again."""
    adapter = get_adapter(session, tenant_id, adapter_id)
    version = get_version(session, tenant_id, adapter_id, number)
    # The feed lock first, as an alias move takes it before reading its version: a publish
    # onto this version waits until the delete has committed, then finds no version.
    _lock_feed(session)
    session.execute(
        select(AdapterVersion.id).where(AdapterVersion.id == version.id).with_for_update()
    )
    aliases = sorted(session.scalars(select(Alias.name).where(Alias.version_id == version.id)))
    jobs = sorted(
        session.scalars(
            select(Job.id).where(Job.warm_start_version_id == version.id, Job.state.in_(UNFINISHED))
        )
    )
    if aliases or jobs:
        using = [f"alias {a!r}" for a in aliases] + [f"job {j} (warm start)" for j in jobs]
        raise Conflict(
            f"version {number} of adapter {adapter_id} is in use by {', '.join(using)}: "
            "move the aliases to another version (or wait for the jobs) first",
            code="version_in_use",
            details={"aliases": aliases, "jobs": jobs},
        )
    deletion = Deletion(adapter_ids=[adapter_id])
    deletion.blobs.add(version.blob_sha256)
    _forget_versions(session, [version.id])
    deletion.add("versions", _delete(session, AdapterVersion, AdapterVersion.id == version.id))
    _feed_event(
        session,
        deletion,
        tenant_id,
        "version_deleted",
        adapter_id=adapter_id,
        user_id=adapter.user_id,
        adapter_name=adapter.name,
        from_version=number,
        actor_key_id=actor_key_id,
        reason=reason,
    )
    audit.record(
        session,
        tenant_id,
        "version.deleted",
        actor_key_id=actor_key_id,
        adapter_id=adapter_id,
        target=f"{adapter_id}/{number}",
        details={"version": number, "reason": reason},
    )
    _count_freed(session, deletion)
    return deletion


def delete_adapter(
    session: Session, tenant_id: str, adapter_id: str, *, actor_key_id: str | None
) -> Deletion:
    """Delete an adapter with its versions, aliases, tags, alias history and jobs (unfinished
    ones cancelled: their workers lose the lease). The user's datasets stay."""
    adapter = get_adapter(session, tenant_id, adapter_id)
    _lock(session, tenant_id, Adapter.id == adapter_id, Job.adapter_id == adapter_id)
    deletion = Deletion(adapter_ids=[adapter_id])
    user_id, name = adapter.user_id, adapter.name
    _purge_adapters(session, deletion, [adapter_id], Job.adapter_id == adapter_id)
    _feed_event(
        session,
        deletion,
        tenant_id,
        "adapter_deleted",
        user_id=user_id,
        adapter_name=name,
        actor_key_id=actor_key_id,
    )
    # Tied to the adapter's id: erasing its user removes this record too.
    audit.record(
        session,
        tenant_id,
        "adapter.deleted",
        actor_key_id=actor_key_id,
        adapter_id=adapter_id,
        target=adapter_id,
        details=dict(deletion.counts),
    )
    _count_freed(session, deletion)
    return deletion


def erase_user(
    session: Session, tenant_id: str, user_id: str, *, actor_key_id: str | None
) -> Deletion:
    """Delete every row that holds the user's id or content in this tenant (adapters,
    versions, aliases, history, jobs, datasets, and the audit records and webhook deliveries
    about those adapters). What stays names only adapter ids and counts."""
    adapter_ids = _lock(session, tenant_id, Adapter.user_id == user_id, Job.user_id == user_id)
    user_jobs = (Job.tenant_id == tenant_id) & (Job.user_id == user_id)
    user_datasets = (Dataset.tenant_id == tenant_id) & (Dataset.user_id == user_id)
    user_events = (AliasEvent.tenant_id == tenant_id) & (AliasEvent.user_id == user_id)
    if not adapter_ids and not any(
        session.scalar(select(func.count()).where(where))
        for where in (user_jobs, user_datasets, user_events)
    ):
        raise NotFound(f"user {user_id!r} has nothing in this tenant")
    deletion = Deletion(adapter_ids=adapter_ids)
    deletion.add("jobs_cancelled", _count(session, user_jobs & Job.state.in_(UNFINISHED)))
    _purge_adapters(session, deletion, adapter_ids, user_jobs)
    deletion.blobs.update(
        b for b in session.scalars(select(Dataset.blob_sha256).where(user_datasets)) if b
    )
    deletion.add("datasets", _delete(session, Dataset, user_datasets))
    # adapter_deleted events of adapters deleted earlier still name the user.
    deletion.add("alias_events", _delete(session, AliasEvent, user_events))
    _feed_event(session, deletion, tenant_id, "user_deleted", actor_key_id=actor_key_id)
    _count_freed(session, deletion)
    audit.record(
        session, tenant_id, "user.erased", actor_key_id=actor_key_id, details=deletion.counts
    )
    outbox.emit(
        session,
        tenant_id,
        "user.deleted",
        {"adapter_ids": adapter_ids, "counts": deletion.counts, "feed_seq": deletion.feed_seq},
    )
    return deletion


def _lock(session: Session, tenant_id: str, adapters_where, jobs_where) -> list[str]:
    """Lock the jobs, the feed and the adapters about to go, in that order: a worker
    finishing one of the jobs (it locks the job first) waits, then finds its lease gone; an
    alias move (it takes the feed lock first) waits, then finds no adapter. The adapters'
    ids."""
    session.execute(
        select(Job.id).where(Job.tenant_id == tenant_id, jobs_where).with_for_update()
    ).all()
    _lock_feed(session)
    return list(
        session.scalars(
            select(Adapter.id)
            .where(Adapter.tenant_id == tenant_id, adapters_where)
            .order_by(Adapter.id)
            .with_for_update()
        )
    )


def _purge_adapters(session: Session, deletion: Deletion, adapter_ids: list[str], jobs_where):
    """Delete the adapters and every row under them, and the jobs matching `jobs_where`."""
    in_adapters = AdapterVersion.adapter_id.in_(adapter_ids)
    versions = session.execute(
        select(AdapterVersion.id, AdapterVersion.blob_sha256).where(in_adapters)
    ).all()
    version_ids = [v for v, _ in versions]
    deletion.blobs.update(sha for _, sha in versions)
    jobs = session.execute(
        select(Job.id, Job.checkpoint_blob_sha256).where(
            or_(jobs_where, Job.adapter_id.in_(adapter_ids))
        )
    ).all()
    job_ids = [j for j, _ in jobs]
    deletion.blobs.update(sha for _, sha in jobs if sha)
    deletion.add("aliases", _delete(session, Alias, Alias.adapter_id.in_(adapter_ids)))
    _forget_versions(session, version_ids)
    session.execute(
        update(AdapterVersion)
        .where(AdapterVersion.job_id.in_(job_ids))
        .values(job_id=None)
        .execution_options(synchronize_session=False)
    )
    deletion.add("versions", _delete(session, AdapterVersion, in_adapters))
    _delete(session, JobEvent, JobEvent.job_id.in_(job_ids))
    deletion.add("jobs", _delete(session, Job, Job.id.in_(job_ids)))
    _delete(session, AdapterTag, AdapterTag.adapter_id.in_(adapter_ids))
    deletion.add(
        "alias_events", _delete(session, AliasEvent, AliasEvent.adapter_id.in_(adapter_ids))
    )
    deletion.add(
        "audit_events", _delete(session, AuditEvent, AuditEvent.adapter_id.in_(adapter_ids))
    )
    deletion.add(
        "webhook_deliveries",
        _delete(session, WebhookDelivery, WebhookDelivery.adapter_id.in_(adapter_ids)),
    )
    deletion.add("adapters", _delete(session, Adapter, Adapter.id.in_(adapter_ids)))


def _forget_versions(session: Session, version_ids: Collection[str]) -> None:
    """Null every reference to these versions (jobs' results and warm starts, children's
    parents) and drop their tags, so the rows can go."""
    if not version_ids:
        return
    for column in (Job.result_version_id, Job.warm_start_version_id):
        session.execute(
            update(Job)
            .where(column.in_(version_ids))
            .values({column.key: None})
            .execution_options(synchronize_session=False)
        )
    session.execute(
        update(AdapterVersion)
        .where(AdapterVersion.parent_version_id.in_(version_ids))
        .values(parent_version_id=None)
        .execution_options(synchronize_session=False)
    )
    _delete(session, VersionTag, VersionTag.version_id.in_(version_ids))


def _feed_event(
    session: Session, deletion: Deletion, tenant_id: str, kind: str, **values
) -> AliasEvent:
    _lock_feed(session)
    event = AliasEvent(tenant_id=tenant_id, kind=kind, adapter_ids=deletion.adapter_ids, **values)
    session.add(event)
    session.flush()
    notify_alias_event(session, event)  # every API process drops what it cached, on commit
    deletion.feed_seq = event.seq
    return event


def _count_freed(session: Session, deletion: Deletion) -> None:
    blob_refs.note_freed(session, deletion.blobs)
    still = blob_refs.referenced(session, deletion.blobs) if deletion.blobs else set()
    deletion.add("blobs_freed", len(deletion.blobs - still))


def _count(session: Session, where) -> int:
    return session.scalar(select(func.count()).where(where)) or 0


def _delete(session: Session, model, where) -> int:
    result = session.execute(
        delete(model).where(where).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
