"""Which blobs rows reference, and removing blobs that rows stopped referencing.

Blobs are content-addressed: two rows (two users' identical datasets, say) may share one.
A blob goes only when no row references it at the moment of deletion; blob GC
(workers/blob_gc.py) and deletions (registry/adapters/deletion.py) both decide here.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from registry.adapters.models import AdapterVersion
from registry.base_models.models import BaseModelFile, ModelFileUpload
from registry.db import session_scope, utcnow
from registry.jobs.models import Dataset, Job
from registry.storage import BlobInfo, BlobStore

log = logging.getLogger(__name__)

FREED = "freed_blobs"  # session.info key: (sha256, when) of references this transaction dropped

# Every column that holds a blob's sha256. A new kind of row that references blobs adds its
# column here, and neither GC nor a deletion removes those blobs.
BLOB_REFERENCES = [
    AdapterVersion.blob_sha256,
    Dataset.blob_sha256,
    BaseModelFile.sha256,
    ModelFileUpload.sha256,  # uploaded, its manifest still to come
    Job.checkpoint_blob_sha256,  # a running or queued job's latest checkpoint
]


def referenced(session: Session, sha256s: Collection[str]) -> set[str]:
    """Those of `sha256s` that some row references now."""
    found: set[str] = set()
    for column in BLOB_REFERENCES:
        found.update(session.scalars(select(column).where(column.in_(sha256s)).distinct()))
    return found


def remove_freed(
    factory: sessionmaker[Session],
    store: BlobStore,
    sha256s: Collection[str],
    *,
    freed_at: datetime | None = None,
) -> list[str]:
    """After a deletion has committed: delete those of `sha256s` that no row references at the
    moment of deletion and nobody stored again after `freed_at` (an identical upload whose
    row is about to commit); the sha256s deleted. A blob left behind (a storage error, a
    re-write) is blob GC's to collect once unreferenced and old.

    S3's LastModified has whole seconds, so there a re-write counts from the next second on;
    a writer that stored identical bytes before that and commits its row after the delete
    would reference a missing blob (reads then answer blob_not_found). That takes another
    user's identical content stored within the same second as the erasure."""
    since = freed_at
    deleted: list[str] = []
    for sha256 in sorted(set(sha256s)):

        def keep(info: BlobInfo) -> bool:
            if since is not None and info.created_at is not None and info.created_at > since:
                return True
            with session_scope(factory) as session:
                return bool(referenced(session, [info.sha256]))

        try:
            if store.delete_unless(sha256, keep):
                deleted.append(sha256)
        except Exception:  # the store is away: GC removes it once it is old enough
            log.warning("could not remove freed blob %s; blob GC will", sha256, exc_info=True)
    return deleted


def note_freed(session: Session, sha256s: Collection[str | None]) -> None:
    """These blobs lose a reference in this transaction: once it commits, the ones no row
    references go from the store (where the session's factory removes them, see
    `remove_freed_on_commit`; elsewhere blob GC does, after its grace period)."""
    now = utcnow()
    session.info.setdefault(FREED, []).extend((sha256, now) for sha256 in sha256s if sha256)


def remove_freed_on_commit(factory: sessionmaker[Session], store: BlobStore) -> None:
    """Sessions of `factory` remove the blobs they freed (`note_freed`) right after commit."""

    def committed(session: Session) -> None:
        if session.in_nested_transaction():  # a savepoint: the outer transaction may still fail
            return
        freed = session.info.pop(FREED, None)
        if freed:
            since = min(when for _, when in freed)
            remove_freed(factory, store, {sha256 for sha256, _ in freed}, freed_at=since)

    def rolled_back(session: Session) -> None:
        session.info.pop(FREED, None)

    event.listen(factory, "after_commit", committed)
    event.listen(factory, "after_rollback", rolled_back)
