import pytest

from registry.base_models import service as base_models
from registry.errors import Conflict, Invalid, NotFound, Unauthorized
from registry.tenants import service as tenants
from tests import factories


def test_api_key_is_shown_once_and_stored_hashed(session):
    tenant = factories.tenant(session)
    key, plaintext = tenants.create_api_key(session, tenant.id, ["train", "read"], "ci")
    assert plaintext.startswith("vera_") and plaintext.split("_", 2)[2] not in key.secret_sha256
    assert plaintext not in (key.secret_sha256, key.prefix)
    principal = tenants.authenticate(session, plaintext)
    assert principal.tenant_id == tenant.id and principal.scopes == ("train", "read")


@pytest.mark.parametrize("bad", ["", "nope", "vera_x_y", "vera__", "Bearer vera_a_b"])
def test_bad_keys_are_rejected(session, bad):
    factories.api_key(session, factories.tenant(session).id)
    with pytest.raises(Unauthorized):
        tenants.authenticate(session, bad)


def test_wrong_secret_and_revoked_key_are_rejected(session):
    tenant = factories.tenant(session)
    key, plaintext = factories.api_key(session, tenant.id)
    with pytest.raises(Unauthorized):
        tenants.authenticate(session, plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"))
    tenants.revoke_api_key(session, tenant.id, key.id)
    with pytest.raises(Unauthorized, match="revoked"):
        tenants.authenticate(session, plaintext)


def test_unknown_scopes_are_invalid(session):
    tenant = factories.tenant(session)
    with pytest.raises(Invalid):
        tenants.create_api_key(session, tenant.id, ["root"])
    with pytest.raises(Invalid):
        tenants.create_api_key(session, tenant.id, [])


def test_duplicate_tenant_name_conflicts(session):
    factories.tenant(session, "acme")
    with pytest.raises(Conflict):
        tenants.create_tenant(session, "acme")


EXTERNAL = dict(
    source_uri="/m/x",
    allowed_sources=["/m"],
    files=[{"path": "model.safetensors", "sha256": "c" * 64, "size": 1}],
)


def test_register_base_model_checks_hash_and_layers(session):
    tenant = factories.tenant(session)
    args = dict(name="m", architecture="Bert", **EXTERNAL)
    with pytest.raises(Invalid, match="weights_hash"):
        base_models.register_base_model(
            session, tenant.id, weights_hash="md5:abc", layers={"a": [1, 2]}, **args
        )
    for layers in ({}, {"a": [1]}, {"a": [0, 3]}, {"a": ["1", 2]}, {"a": [True, 2]}):
        with pytest.raises(Invalid):
            base_models.register_base_model(
                session, tenant.id, weights_hash="sha256:" + "a" * 64, layers=layers, **args
            )


def test_register_same_hash_is_idempotent_but_other_layers_conflict(session):
    tenant = factories.tenant(session)
    args = dict(name="m", architecture="Bert", weights_hash="sha256:" + "b" * 64, **EXTERNAL)
    first, created = base_models.register_base_model(
        session, tenant.id, layers={"q": [4, 4]}, **args
    )
    again, created_again = base_models.register_base_model(
        session, tenant.id, layers={"q": [4, 4]}, **args
    )
    assert created and not created_again and again.id == first.id
    with pytest.raises(Conflict):
        base_models.register_base_model(session, tenant.id, layers={"q": [4, 8]}, **args)


def test_projection_fingerprint_mismatch_is_refused(session):
    tenant = factories.tenant(session)
    model = factories.base_model(session, tenant.id)
    params = dict(seed=1, r=8, max_d_in=384, max_d_out=384, generator="g", torch_version="2.13")
    first, created = base_models.get_or_create_projection(
        session, tenant.id, model.id, fingerprint="sha256:" + "1" * 64, **params
    )
    same, created_again = base_models.get_or_create_projection(
        session, tenant.id, model.id, fingerprint="sha256:" + "1" * 64, **params
    )
    assert created and not created_again and same.id == first.id
    with pytest.raises(Conflict, match="fingerprint"):
        base_models.get_or_create_projection(
            session, tenant.id, model.id, fingerprint="sha256:" + "2" * 64, **params
        )


def test_base_model_of_another_tenant_is_not_found(session):
    owner, other = factories.tenant(session), factories.tenant(session)
    model = factories.base_model(session, owner.id)
    with pytest.raises(NotFound):
        base_models.get_base_model(session, other.id, model.id)
    assert base_models.list_base_models(session, other.id) == []
