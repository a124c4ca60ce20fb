"""Blob GC never deletes a blob that is referenced, or re-written, while it runs; it runs on
its own slow schedule."""

from __future__ import annotations

import os
import time

import pytest

from registry.blob_refs import BLOB_REFERENCES, remove_freed
from registry.config import Settings
from registry.db import Base, session_scope, utcnow
from registry.storage import LocalBlobStore
from tests import factories
from workers.blob_gc import collect_garbage
from workers.celery_app import BLOB_GC_TASK, SWEEP_TASK, make_celery

GRACE_S = 2.0  # S3's LastModified is truncated to whole seconds


def during_gc(store, action):
    """The same store, running `action()` once, just before GC deletes its first blob: the
    moment another process could reference the blob or store its bytes again."""

    class Interleaved(type(store)):
        def _before_delete(self) -> None:
            nonlocal action
            if action is not None:
                run, action = action, None
                run()

        def delete(self, sha256):
            self._before_delete()
            super().delete(sha256)

        def delete_unless(self, sha256, keep):
            self._before_delete()
            return super().delete_unless(sha256, keep)

    store.__class__ = Interleaved
    return store


def _old_orphans(store, count: int = 1) -> list[tuple[bytes, str]]:
    blobs = [os.urandom(256) for _ in range(count)]
    stored = [(data, store.put(data).sha256) for data in blobs]
    time.sleep(GRACE_S + 1.1)
    return stored


def _reference(factory, sha256: str) -> None:
    with session_scope(factory) as session:
        tenant = factories.tenant(session)
        factories.dataset(session, tenant.id).blob_sha256 = sha256


def test_a_reference_made_during_gc_keeps_the_blob(store, pg_session_factory):
    ((data, sha256),) = _old_orphans(store)
    during_gc(store, lambda: _reference(pg_session_factory, sha256))
    assert collect_garbage(pg_session_factory, store, GRACE_S) == []
    assert store.get(sha256) == data


def test_bytes_stored_again_during_gc_are_kept(store, pg_session_factory):
    # A dataset upload of the same bytes: put (a no-op write) now, its row commits later.
    ((data, sha256),) = _old_orphans(store)
    during_gc(store, lambda: store.put(data))
    assert collect_garbage(pg_session_factory, store, GRACE_S) == []
    _reference(pg_session_factory, sha256)
    assert store.get(sha256) == data


def test_unreferenced_old_blob_goes_and_young_or_referenced_stay(store, pg_session_factory):
    (_, old), (_, kept) = _old_orphans(store, 2)
    _reference(pg_session_factory, kept)
    young = store.put(os.urandom(64)).sha256
    assert collect_garbage(pg_session_factory, store, GRACE_S) == [old]
    assert {b.sha256 for b in store.list_blobs()} == {kept, young}


def test_writing_stored_bytes_again_refreshes_their_age(store):
    data = os.urandom(128)
    first = store.put(data)
    before = store.stat(first.sha256).created_at
    time.sleep(1.1)  # S3's LastModified has whole seconds
    store.put(data)
    assert store.stat(first.sha256).created_at > before


def test_gc_taken_key_is_written_fresh(tmp_path):
    # Between GC taking the key away and deciding, a writer stores the bytes anew.
    store = LocalBlobStore(tmp_path / "blobs", 1 << 20)
    data = os.urandom(32)
    sha256 = store.put(data).sha256

    def keep(info) -> bool:
        store.put(data)  # a writer stores the bytes while GC holds its copy aside
        return False

    assert store.delete_unless(sha256, keep)  # GC deleted the copy it took...
    assert store.get(sha256) == data  # ...and the writer's stands


def test_every_blob_column_is_a_gc_reference():
    # Convention: a column holding a blob's sha256 is named *blob_sha256.
    columns = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("blob_sha256")
    }
    listed = {f"{c.class_.__tablename__}.{c.name}" for c in BLOB_REFERENCES}
    assert columns <= listed  # base-model files name their column plain `sha256`


@pytest.mark.parametrize("sweep_s, gc_s", [(5.0, 3600.0), (2.0, 600.0)])
def test_gc_has_its_own_slow_schedule(sweep_s, gc_s):
    settings = Settings(_env_file=None, sweep_interval_s=sweep_s, blob_gc_interval_s=gc_s)
    schedule = make_celery(settings).conf.beat_schedule
    by_task = {entry["task"]: entry for entry in schedule.values()}
    assert by_task[SWEEP_TASK]["schedule"] == sweep_s
    assert by_task[BLOB_GC_TASK]["schedule"] == gc_s


# Deletions (erasure, retention) remove the blobs they freed at once, with the same safety.


def test_a_freed_blob_goes_unless_referenced_when_it_is_deleted(store, pg_session_factory):
    gone, kept = os.urandom(128), os.urandom(128)
    gone_sha, kept_sha = store.put(gone).sha256, store.put(kept).sha256
    freed_at = utcnow()
    during_gc(store, lambda: _reference(pg_session_factory, kept_sha))
    deleted = remove_freed(pg_session_factory, store, [gone_sha, kept_sha], freed_at=freed_at)
    assert deleted == [gone_sha]
    assert not store.exists(gone_sha) and store.get(kept_sha) == kept


def test_a_freed_blob_stored_again_after_the_deletion_stays(store, pg_session_factory):
    # Another user uploads the same bytes after the erasure began; their row commits later.
    data = os.urandom(128)
    sha256 = store.put(data).sha256
    freed_at = utcnow()
    time.sleep(1.1)  # S3's LastModified has whole seconds
    store.put(data)
    assert remove_freed(pg_session_factory, store, [sha256], freed_at=freed_at) == []
    assert store.get(sha256) == data
