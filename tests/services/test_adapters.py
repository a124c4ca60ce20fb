import pytest

from registry.adapters import service as adapters
from registry.errors import Conflict, Invalid, NotFound, PreconditionFailed
from tests import factories


def test_versions_are_numbered_without_gaps(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    numbers = [factories.version(session, adapter).number for _ in range(3)]
    assert numbers == [1, 2, 3]
    listed = adapters.list_versions(session, tenant.id, adapter.id)
    assert [v.number for v in listed] == [1, 2, 3]


def test_adapter_binding_cannot_change(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    with pytest.raises(Conflict, match="bound"):
        adapters.get_or_create_adapter(
            session,
            tenant.id,
            user_id=adapter.user_id,
            name=adapter.name,
            base_model_id=adapter.base_model_id,
            projection_id=adapter.projection_id,
            target_modules=["query"],
            task=adapter.task,
        )


def test_one_version_per_job(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    job = _job(session, tenant.id, adapter)
    factories.version(session, adapter, job_id=job.id)
    with pytest.raises(Conflict, match="already"):
        factories.version(session, adapter, job_id=job.id)


def _job(session, tenant_id, adapter):
    from registry.jobs.models import Job

    dataset = factories.dataset(session, tenant_id, adapter.user_id)
    job = Job(
        tenant_id=tenant_id,
        user_id=adapter.user_id,
        adapter_id=adapter.id,
        dataset_id=dataset.id,
        base_model_id=adapter.base_model_id,
        projection_id=adapter.projection_id,
        hyperparameters={},
        request_sha256="0" * 64,
    )
    session.add(job)
    session.flush()
    return job


def test_alias_compare_and_swap(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    for _ in range(3):
        factories.version(session, adapter)
    alias = adapters.set_alias(session, tenant.id, adapter.id, "live", 1, expected_generation=0)
    assert (alias.generation, alias.version_id) == (
        1,
        adapters.get_version(session, tenant.id, adapter.id, 1).id,
    )
    with pytest.raises(PreconditionFailed, match="exists already"):
        adapters.set_alias(session, tenant.id, adapter.id, "live", 2, expected_generation=0)
    with pytest.raises(Conflict) as stale:
        adapters.set_alias(session, tenant.id, adapter.id, "live", 2, expected_generation=3)
    assert stale.value.code == "stale_generation"
    alias = adapters.set_alias(session, tenant.id, adapter.id, "live", 2, expected_generation=1)
    assert alias.generation == 2
    with pytest.raises(Conflict):
        adapters.set_alias(session, tenant.id, adapter.id, "live", 3, expected_generation=1)
    alias = adapters.set_alias(session, tenant.id, adapter.id, "live", 3)
    assert alias.generation == 3
    with pytest.raises(NotFound):
        adapters.set_alias(session, tenant.id, adapter.id, "live", 9)
    with pytest.raises(Invalid):
        adapters.set_alias(session, tenant.id, adapter.id, "bad name/..", 1)


def test_rollback_walks_back_through_publishes(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    for _ in range(3):
        factories.version(session, adapter)
    with pytest.raises(NotFound):
        adapters.rollback_alias(session, tenant.id, adapter.id, "live")
    for number in (1, 2, 3):
        adapters.set_alias(session, tenant.id, adapter.id, "live", number)
    assert _live(session, tenant.id, adapter.id) == 3
    adapters.rollback_alias(session, tenant.id, adapter.id, "live")
    assert _live(session, tenant.id, adapter.id) == 2
    adapters.rollback_alias(session, tenant.id, adapter.id, "live")
    assert _live(session, tenant.id, adapter.id) == 1
    with pytest.raises(Conflict, match="no earlier version"):
        adapters.rollback_alias(session, tenant.id, adapter.id, "live")
    adapters.rollback_alias(session, tenant.id, adapter.id, "live", to_version=3)
    assert _live(session, tenant.id, adapter.id) == 3
    history = adapters.alias_history(session, tenant.id, adapter.id, "live")
    assert [(e.kind, e.from_version, e.to_version, e.generation) for e in history] == [
        ("set", None, 1, 1),
        ("set", 1, 2, 2),
        ("set", 2, 3, 3),
        ("rollback", 3, 2, 4),
        ("rollback", 2, 1, 5),
        ("rollback", 1, 3, 6),
    ]


def _live(session, tenant_id, adapter_id):
    alias = adapters.get_alias(session, tenant_id, adapter_id, "live")
    session.refresh(alias)
    return adapters._number_of(session, alias.version_id)


def test_feed_and_resolve(session):
    tenant = factories.tenant(session)
    first = factories.adapter(session, tenant.id, user_id="alice")
    second = factories.adapter(session, tenant.id, user_id="bob")
    for adapter in (first, second):
        factories.version(session, adapter)
        adapters.set_alias(session, tenant.id, adapter.id, "live", 1)
    feed = adapters.read_feed(session, tenant.id)
    assert [e.user_id for e in feed] == ["alice", "bob"]
    assert feed[0].seq < feed[1].seq
    assert [e.user_id for e in adapters.read_feed(session, tenant.id, feed[0].seq)] == ["bob"]
    manifest = adapters.resolve(session, tenant.id, "bob")
    assert manifest["version"] == 1 and manifest["alias_generation"] == 1
    assert manifest["projection"]["r"] == 16 and manifest["base_model"]["content_hash"]
    with pytest.raises(NotFound):
        adapters.resolve(session, tenant.id, "carol")
