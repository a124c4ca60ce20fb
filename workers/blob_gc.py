"""Blob garbage collection: delete blobs that nothing references and nobody wrote lately.

Runs on its own slow schedule (`VERA_BLOB_GC_INTERVAL_S`), apart from the job sweeper. Safe
against a reference made while it runs: a writer re-stores the bytes (which refreshes their
age, see BlobStore.put) before its row commits, and each deletion decides at the last moment
(`BlobStore.delete_unless`), from the blob's current age and the references in the database
at that time.
"""

from __future__ import annotations

import itertools
import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from registry.blob_refs import referenced
from registry.db import session_scope, utcnow
from registry.storage import BlobInfo, BlobStore

log = logging.getLogger(__name__)

PAGE = 500


def collect_garbage(factory: sessionmaker[Session], store: BlobStore, grace_s: float) -> list[str]:
    """Delete unreferenced blobs older than `grace_s` (a blob is stored before the row that
    references it commits); the sha256s deleted. Reads the store a page at a time."""
    deleted: list[str] = []
    blobs = iter(store.list_blobs())
    while page := list(itertools.islice(blobs, PAGE)):
        cutoff = utcnow() - timedelta(seconds=grace_s)
        old = [b.sha256 for b in page if _is_old(b, cutoff)]
        if not old:
            continue
        with session_scope(factory) as session:
            candidates = sorted(set(old) - referenced(session, old))
        for sha256 in candidates:
            if store.delete_unless(sha256, lambda info: _keep(factory, info, grace_s)):
                deleted.append(sha256)
    if deleted:
        log.info("blob GC deleted %d unreferenced blob(s)", len(deleted))
    return deleted


def _is_old(blob: BlobInfo, cutoff: datetime) -> bool:
    return blob.created_at is None or blob.created_at <= cutoff


def _keep(factory: sessionmaker[Session], info: BlobInfo, grace_s: float) -> bool:
    """At delete time: written again within the grace period, or referenced by now."""
    if not _is_old(info, utcnow() - timedelta(seconds=grace_s)):
        return True
    with session_scope(factory) as session:
        return bool(referenced(session, [info.sha256]))
