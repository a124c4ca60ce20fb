"""DELETE routes: a version, an adapter, a user's everything (registry/adapters/deletion.py).

Each answers once its rows are gone (committed), its freed blobs removed from the store, and
this API process (with push: every API process, briefly waited for) has forgotten what it
cached; downstream servers learn it from the feed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from registry.adapters import deletion
from registry.adapters.pg_listener import EVENT_SEQS
from registry.adapters.router import PUSH_WAIT_S, VersionNumber
from registry.api.deps import AdminDep, SessionDep, TrainDep
from registry.db import after_commit
from registry.names import UserId

router = APIRouter(tags=["erasure"])


class DeletionOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "adapter_ids": ["01JA4K7Q3V9X2B6N8M5C1D0F7H"],
                    "counts": {"versions": 1, "blobs_freed": 1},
                    "feed_seq": 1813,
                }
            ]
        }
    )

    adapter_ids: list[str] = Field(description="The adapters this deletion removed or changed.")
    counts: dict[str, int] = Field(description="Rows deleted by kind, and blobs freed.")
    feed_seq: int | None = Field(description="The feed event that announces the deletion.")


def _finish(request: Request, session, tenant_id: str, done: deletion.Deletion) -> DeletionOut:
    """After the commit (its freed blobs are gone by then: blob_refs.remove_freed_on_commit):
    forget caches here, wake feed waiters, and (with push) wait until every API process has
    applied the event."""
    state = request.app.state
    seqs = session.info.get(EVENT_SEQS, [])

    def committed() -> None:
        state.manifests.forget_adapters(tenant_id, done.adapter_ids)
        if seqs:
            state.feed_waiters.wake(tenant_id, max(seqs))
            if state.pg_listener is not None:
                state.pg_listener.wait_everywhere(state.engine, max(seqs), PUSH_WAIT_S)

    after_commit(session, committed)
    return DeletionOut(adapter_ids=done.adapter_ids, counts=done.counts, feed_seq=done.feed_seq)


@router.delete(
    "/v1/adapters/{adapter_id}/versions/{number}",
    responses={409: {"description": "An alias or a warm-starting job uses it (`version_in_use`)."}},
    response_model=DeletionOut,
    summary="Delete an adapter version",
)
def delete_version(
    request: Request,
    adapter_id: str,
    number: VersionNumber,
    principal: TrainDep,
    session: SessionDep,
) -> DeletionOut:
    """Delete a version (409 version_in_use while an alias points at it). Its number is
    never given out again."""
    done = deletion.delete_version(
        session, principal.tenant_id, adapter_id, number, actor_key_id=principal.key_id
    )
    return _finish(request, session, principal.tenant_id, done)


@router.delete("/v1/adapters/{adapter_id}", response_model=DeletionOut, summary="Delete an adapter")
def delete_adapter(
    request: Request, adapter_id: str, principal: AdminDep, session: SessionDep
) -> DeletionOut:
    """Delete an adapter: its versions, aliases, tags, history and jobs (running ones lose
    their lease). The feed announces `adapter_deleted`."""
    done = deletion.delete_adapter(
        session, principal.tenant_id, adapter_id, actor_key_id=principal.key_id
    )
    return _finish(request, session, principal.tenant_id, done)


# A plain segment, unlike GET /v1/users/{user_id:any_text}/adapters: a user id never holds
# `/` (names.UserId), and DELETE .../users/u/adapters must answer 405, not erase "u/adapters".
@router.delete(
    "/v1/users/{user_id}", response_model=DeletionOut, summary="Erase everything of a user"
)
def erase_user(
    request: Request, user_id: UserId, principal: AdminDep, session: SessionDep
) -> DeletionOut:
    """Erase a user: every adapter, version, alias, dataset, job and checkpoint of theirs in
    this tenant; blobs no other row references leave the store. The feed announces
    `user_deleted` (adapter ids only), the audit log records counts."""
    done = deletion.erase_user(session, principal.tenant_id, user_id, actor_key_id=principal.key_id)
    return _finish(request, session, principal.tenant_id, done)
