"""Every lookup takes the tenant: another tenant's objects are simply not found."""

import pytest

from registry.adapters import service as adapters
from registry.base_models import service as base_models
from registry.errors import NotFound
from registry.jobs import datasets
from registry.jobs import service as jobs
from registry.jobs.schemas import JobRequest
from registry.tenants import service as tenants
from tests import factories


@pytest.fixture
def world(session):
    owner, intruder = factories.tenant(session), factories.tenant(session)
    adapter = factories.adapter(session, owner.id, user_id="alice")
    factories.version(session, adapter)
    adapters.set_alias(session, owner.id, adapter.id, "live", 1)
    dataset = factories.dataset(session, owner.id, "alice")
    job, _ = jobs.submit_job(
        session,
        owner.id,
        JobRequest(
            user_id="alice",
            dataset_id=dataset.id,
            base_model_id=adapter.base_model_id,
            projection_id=adapter.projection_id,
            target_modules=["query", "value"],
        ),
    )
    key, _ = factories.api_key(session, owner.id)
    return dict(owner=owner, other=intruder.id, adapter=adapter, dataset=dataset, job=job, key=key)


LOOKUPS = {
    "base model": lambda s, t, w: base_models.get_base_model(s, t, w["adapter"].base_model_id),
    "projection": lambda s, t, w: base_models.get_projection(s, t, w["adapter"].projection_id),
    "projections": lambda s, t, w: base_models.list_projections(s, t, w["adapter"].base_model_id),
    "adapter": lambda s, t, w: adapters.get_adapter(s, t, w["adapter"].id),
    "versions": lambda s, t, w: adapters.list_versions(s, t, w["adapter"].id),
    "version": lambda s, t, w: adapters.get_version(s, t, w["adapter"].id, 1),
    "alias": lambda s, t, w: adapters.get_alias(s, t, w["adapter"].id, "live"),
    "set alias": lambda s, t, w: adapters.set_alias(s, t, w["adapter"].id, "live", 1),
    "rollback": lambda s, t, w: adapters.rollback_alias(s, t, w["adapter"].id, "live", 1),
    "history": lambda s, t, w: adapters.alias_history(s, t, w["adapter"].id, "live"),
    "resolve": lambda s, t, w: adapters.resolve(s, t, "alice"),
    "dataset": lambda s, t, w: datasets.get_dataset(s, t, w["dataset"].id),
    "job": lambda s, t, w: jobs.get_job(s, t, w["job"].id),
    "job events": lambda s, t, w: jobs.list_job_events(s, t, w["job"].id),
    "cancel": lambda s, t, w: jobs.request_cancel(s, t, w["job"].id),
    "revoke key": lambda s, t, w: tenants.revoke_api_key(s, t, w["key"].id),
}


@pytest.mark.parametrize("kind", sorted(LOOKUPS))
def test_other_tenant_gets_not_found(world, session, kind):
    LOOKUPS[kind](session, world["owner"].id, world)  # the owner can
    with pytest.raises(NotFound):
        LOOKUPS[kind](session, world["other"], world)


def test_lists_and_feed_show_nothing_of_other_tenants(world, session):
    other = world["other"]
    assert adapters.read_feed(session, other) == []
    assert adapters.list_user_adapters(session, other, "alice") == []
    assert jobs.list_jobs(session, other) == []
    assert tenants.list_api_keys(session, other) == []
    assert base_models.list_base_models(session, other) == []
    assert len(adapters.read_feed(session, world["owner"].id)) == 1
