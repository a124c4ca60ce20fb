"""Retention: which versions stay (newest N, aliased now or lately, warm starts), idle
datasets purged, their blobs gone from the store, every deletion audited and on the feed."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import select

from registry.adapters import service as adapters
from registry.adapters.models import AdapterVersion, AliasEvent
from registry.audit.models import AuditEvent
from registry.blob_refs import remove_freed_on_commit
from registry.config import Settings
from registry.db import session_scope, utcnow
from registry.errors import Invalid
from registry.jobs import service as jobs
from registry.jobs.models import Dataset, Job
from registry.jobs.schemas import JobRequest
from registry.storage import LocalBlobStore
from registry.tenants.policy import policy_row
from tests import factories
from workers.retention import apply_retention

SETTINGS = Settings(_env_file=None)


@pytest.fixture
def store(tmp_path, session_factory):
    store = LocalBlobStore(tmp_path / "blobs", 1 << 20)
    remove_freed_on_commit(session_factory, store)
    return store


def _job(session, tenant_id, adapter, dataset_id, state, **values) -> Job:
    job = Job(
        tenant_id=tenant_id,
        user_id=adapter.user_id,
        adapter_id=adapter.id,
        dataset_id=dataset_id,
        base_model_id=adapter.base_model_id,
        projection_id=adapter.projection_id,
        hyperparameters={},
        request_sha256=factories.sha(),
        state=state,
        **values,
    )
    session.add(job)
    session.flush()
    return job


def _numbers(session, adapter_id) -> list[int]:
    query = select(AdapterVersion.number).where(AdapterVersion.adapter_id == adapter_id)
    return sorted(session.scalars(query))


def test_versions_kept_newest_aliased_recent_and_warm_starts(session_factory, store):
    with session_scope(session_factory) as session:
        tenant = factories.tenant(session)
        policy_row(session, tenant.id).keep_versions = 2
        adapter = factories.adapter(session, tenant.id, user_id="ana")
        blobs = [store.put(os.urandom(64)).sha256 for _ in range(8)]
        versions = [factories.version(session, adapter, blob_sha256=b) for b in blobs]
        adapters.set_alias(session, tenant.id, adapter.id, "live", 1)
        adapters.set_alias(session, tenant.id, adapter.id, "live", 3)
        dataset = factories.dataset(session, tenant.id, user_id="ana")
        _job(
            session, tenant.id, adapter, dataset.id, "queued", warm_start_version_id=versions[4].id
        )
        tenant_id, adapter_id = tenant.id, adapter.id

    report = apply_retention(session_factory, SETTINGS)
    assert sorted(report.versions_deleted) == [(adapter_id, 2), (adapter_id, 4), (adapter_id, 6)]
    # A month on, the move away from version 1 has left the window; 3 is still live.
    apply_retention(session_factory, SETTINGS, now=utcnow() + timedelta(days=31))
    with session_scope(session_factory) as session:
        assert _numbers(session, adapter_id) == [3, 5, 7, 8]
        audits = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "version.deleted")
        ).all()
        assert {a.details["version"] for a in audits} == {1, 2, 4, 6}
        assert all(a.actor_key_id is None and a.details["reason"] == "retention" for a in audits)
        feed = adapters.read_feed(session, tenant_id)
        deleted = [e.from_version for e in feed if e.kind == "version_deleted"]
        assert sorted(deleted) == [1, 2, 4, 6]
        # The next version is 9: deleted numbers are not given again.
        assert factories.version(session, session.get(type(adapter), adapter_id)).number == 9
    assert [store.exists(b) for b in blobs] == [False, False, True, False, True, False, True, True]


def test_a_tenant_policy_overrides_the_default(session_factory, store):
    with session_scope(session_factory) as session:
        tenant = factories.tenant(session)
        adapter = factories.adapter(session, tenant.id)
        for _ in range(4):
            factories.version(session, adapter)
        other = factories.tenant(session)
        policy_row(session, other.id).keep_versions = 1
        crowded = factories.adapter(session, other.id)
        for _ in range(4):
            factories.version(session, crowded)
        ids = adapter.id, crowded.id
    apply_retention(session_factory, SETTINGS)  # default keep_versions: 10
    with session_scope(session_factory) as session:
        assert _numbers(session, ids[0]) == [1, 2, 3, 4]
        assert _numbers(session, ids[1]) == [4]


def test_idle_datasets_are_purged_and_leave_the_store(session_factory, store):
    now = utcnow()
    with session_scope(session_factory) as session:
        tenant = factories.tenant(session)
        adapter = factories.adapter(session, tenant.id, user_id="ana")
        rows = {}
        for name in ("old", "recent", "in_use", "never_used_old", "shared"):
            rows[name] = factories.dataset(session, tenant.id, user_id="ana")
            rows[name].blob_sha256 = store.put(name.encode() + os.urandom(8)).sha256
        rows["never_used_old"].created_at = now - timedelta(days=40)
        rows["shared"].blob_sha256 = rows["old"].blob_sha256  # the same bytes, uploaded twice
        rows["shared"].created_at = now  # ...the second time just now
        old_finish = {"finished_at": now - timedelta(days=40)}
        _job(session, tenant.id, adapter, rows["old"].id, "succeeded", **old_finish)
        _job(session, tenant.id, adapter, rows["recent"].id, "failed", finished_at=now)
        _job(session, tenant.id, adapter, rows["in_use"].id, "succeeded", **old_finish)
        _job(session, tenant.id, adapter, rows["in_use"].id, "running")
        ids = {name: row.id for name, row in rows.items()}
        shas = {name: row.blob_sha256 for name, row in rows.items()}

    report = apply_retention(session_factory, SETTINGS)
    assert sorted(report.datasets_purged) == sorted([ids["old"], ids["never_used_old"]])
    with session_scope(session_factory) as session:
        purged = session.get(Dataset, ids["old"])
        assert purged.blob_sha256 is None and purged.purged_at is not None
        assert session.get(Dataset, ids["in_use"]).blob_sha256 == shas["in_use"]
        request = JobRequest(
            user_id="ana",
            dataset_id=ids["old"],
            base_model_id=adapter.base_model_id,
            projection_id=adapter.projection_id,
            target_modules=["query", "value"],
        )
        with pytest.raises(Invalid, match="purged by retention"):
            jobs.submit_job(session, tenant.id, request)
    assert not store.exists(shas["never_used_old"])
    assert store.exists(shas["old"])  # still referenced by the "shared" upload
    assert store.exists(shas["recent"]) and store.exists(shas["in_use"])
    with session_scope(session_factory) as session:
        assert session.scalars(select(AliasEvent)).all() == []  # no version went
