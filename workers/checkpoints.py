"""A job's checkpoint: one blob holding each of its members' trainer checkpoints, written
on a timer and at hand-back, pointed at by the job's row (a write fenced by its lease)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from sqlalchemy.orm import Session

from registry.blob_refs import remove_freed
from registry.db import session_scope
from registry.jobs import lease
from registry.jobs.models import Job

CHECKPOINT_FORMAT = "vera-job-checkpoint/1"


def save(
    ctx,
    claim: lease.Claim,
    members: dict[str, bytes] | None,
    step: int,
    then: Callable[[Session], None] | None = None,
) -> None:
    """Store the members' checkpoints (None: nothing new, no write) and point the job at
    them, then `then(session)` in the same transaction."""
    info = ctx.store.put(bundle(members)) if members else None
    try:
        with session_scope(ctx.session_factory) as session:
            if info is not None:
                lease.save_checkpoint(session, claim, blob_sha256=info.sha256, step=step)
            if then is not None:
                then(session)
    except lease.LeaseLost:
        discard_if_erased(ctx, claim.job_id, info.sha256 if info else None)
        raise


def discard_if_erased(ctx, job_id: str, sha256: str | None) -> None:
    """A blob stored for a job whose row has gone meanwhile (its user or adapter was
    erased): remove it unless some row references it. A job taken over by another copy
    keeps its row; that copy may store the same bytes, so there blob GC decides."""
    if sha256 is None:
        return
    with session_scope(ctx.session_factory) as session:
        if session.get(Job, job_id) is not None:
            return
    remove_freed(ctx.session_factory, ctx.store, [sha256])


def load(store, sha256: str) -> dict[str, bytes]:
    """Member key → trainer checkpoint, from a job's checkpoint blob."""
    return unbundle(store.get(sha256))


def bundle(members: dict[str, bytes]) -> bytes:
    """One job's checkpoint blob: each of its members' trainer checkpoints, by member key."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("format", CHECKPOINT_FORMAT)
        for key, data in sorted(members.items()):
            archive.writestr(f"members/{key}", data)
    return out.getvalue()


def unbundle(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        if archive.read("format").decode() != CHECKPOINT_FORMAT:
            raise ValueError("not a job checkpoint of this format")
        return {
            name.removeprefix("members/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith("members/")
        }
