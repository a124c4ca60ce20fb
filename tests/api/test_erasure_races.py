"""On PostgreSQL, an erasure racing a worker's auto-publish, and a version delete racing an
API publish, end cleanly: one waits for the other (no deadlock, no foreign-key error)."""

from __future__ import annotations

import threading
from functools import partial

import pytest

from registry.adapters import deletion
from registry.adapters import service as adapters
from registry.db import session_scope
from registry.errors import NotFound
from registry.jobs import lease
from tests import factories
from tests.workers.test_retention import _job

ROUNDS = 8


def _race(*actions) -> list[BaseException | None]:
    """Run the actions at once (a barrier lines them up); what each raised, or None."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[BaseException | None] = [None] * len(actions)

    def run(index: int, action) -> None:
        barrier.wait()
        try:
            action()
        except BaseException as exc:  # reported to the test
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def _finish(factory, claim) -> None:
    with session_scope(factory) as session:
        lease.finish_success(session, claim, blob_sha256=factories.sha(), size_bytes=1, metrics={})


def _erase(factory, tenant_id: str) -> None:
    with session_scope(factory) as session:
        deletion.erase_user(session, tenant_id, "erin", actor_key_id=None)


def _publish(factory, tenant_id: str, adapter_id: str) -> None:
    with session_scope(factory) as session:
        adapters.set_alias(session, tenant_id, adapter_id, "live", 2)


def _delete(factory, tenant_id: str, adapter_id: str) -> None:
    with session_scope(factory) as session:
        deletion.delete_version(session, tenant_id, adapter_id, 2, actor_key_id=None)


def test_erasure_against_a_finishing_job(pg_session_factory):
    factory = pg_session_factory
    for _ in range(ROUNDS):
        with session_scope(factory) as session:
            tenant = factories.tenant(session)
            adapter = factories.adapter(session, tenant.id, user_id="erin")
            factories.version(session, adapter)
            adapters.set_alias(session, tenant.id, adapter.id, "live", 1)
            dataset = factories.dataset(session, tenant.id, user_id="erin")
            job = _job(session, tenant.id, adapter, dataset.id, "queued")
            claim = factories.claim_alone(session, job.id, "worker-1")
            tenant_id = tenant.id
        finished, erased = _race(
            partial(_finish, factory, claim), partial(_erase, factory, tenant_id)
        )
        assert erased is None, erased
        assert finished is None or isinstance(finished, lease.LeaseLost), finished
        with session_scope(factory) as session, pytest.raises(NotFound):
            adapters.resolve(session, tenant_id, "erin")


def test_version_delete_against_a_publish_onto_it(pg_session_factory):
    factory = pg_session_factory
    for _ in range(ROUNDS):
        with session_scope(factory) as session:
            tenant = factories.tenant(session)
            adapter = factories.adapter(session, tenant.id)
            factories.version(session, adapter)
            factories.version(session, adapter)
            adapters.set_alias(session, tenant.id, adapter.id, "live", 1)
            ids = tenant.id, adapter.id
        published, deleted = _race(
            partial(_publish, factory, *ids), partial(_delete, factory, *ids)
        )
        # Either the publish came first (the delete is refused: version_in_use), or the
        # delete did (the publish finds no version 2): never both, never a database error.
        if published is None:
            assert getattr(deleted, "code", None) == "version_in_use", deleted
        else:
            assert isinstance(published, NotFound) and deleted is None, (published, deleted)
