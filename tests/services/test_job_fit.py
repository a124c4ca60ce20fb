"""A job must fit its base model: the task it trains, the positions, the targets (422)."""

from __future__ import annotations

import pytest

from registry.errors import Conflict, Invalid
from registry.jobs import service as jobs
from registry.jobs.schemas import Hyperparameters, JobRequest
from registry.vera.capabilities import job_problems
from registry.vera.config import VeraConfig
from tests import factories

# What describe_base_model records for a tiny Llama: the causal-LM class has `model.` paths
# and an lm_head (vocab 96), which the headless backbone (`layers`) lacks.
BACKBONE = {
    "layers.0.self_attn.q_proj": [64, 64],
    "layers.0.self_attn.v_proj": [64, 32],
}
CLASSIFIER = {f"model.{path}": dims for path, dims in BACKBONE.items()}
LLAMA = {
    "max_positions": 64,
    "tasks": {
        "causal-lm": {"layers": CLASSIFIER | {"lm_head": [64, 96]}},
        "sequence-classification": {"layers": CLASSIFIER},
    },
    "unsupported": {},
}
ENCODER_WITHOUT_LM_HEAD = {
    "max_positions": 512,
    "tasks": {"sequence-classification": {"layers": {"bert.encoder.layer.0.query": [384, 384]}}},
    "unsupported": {"causal-lm": "the checkpoint has no weights for cls.predictions.bias: …"},
}


def _setup(session, capabilities, *, dims, task):
    tenant = factories.tenant(session)
    base = factories.base_model(session, tenant.id, layers=BACKBONE, capabilities=capabilities)
    projection = factories.projection(session, tenant.id, base.id, dims=dims)
    dataset = factories.dataset(session, tenant.id, "alice", task=task)
    return tenant, base, projection, dataset


def _submit(session, tenant, base, projection, dataset, targets, **hyper):
    request = JobRequest(
        user_id="alice",
        dataset_id=dataset.id,
        base_model_id=base.id,
        projection_id=projection.id,
        target_modules=targets,
        hyperparameters=Hyperparameters(**{"max_seq_len": 32, **hyper}),
    )
    return jobs.submit_job(session, tenant.id, request)[0]


def test_lm_head_targets_are_sized_on_the_causal_lm_class(session):
    # Sized on the backbone, q/v/lm_head would need 64×64 and be accepted, then fail on
    # the worker; the causal-LM class has lm_head (d_out 96).
    tenant, base, projection, dataset = _setup(session, LLAMA, dims=(64, 96), task="causal-lm")
    job = _submit(
        session, tenant, base, projection, dataset, ["q_proj", "v_proj", "lm_head"], max_seq_len=64
    )
    assert job.state == "queued"
    small = factories.projection(session, tenant.id, base.id, dims=(64, 64), seed=8)
    with pytest.raises(Invalid, match="max_d_out=96") as error:
        _submit(session, tenant, base, small, dataset, ["q_proj", "v_proj", "lm_head"])
    assert [problem["field"] for problem in error.value.details] == ["projection_id"]


def test_max_seq_len_beyond_positions_is_refused_naming_the_limit(session):
    tenant, base, projection, dataset = _setup(session, LLAMA, dims=(64, 32), task="causal-lm")
    with pytest.raises(Invalid) as error:
        _submit(session, tenant, base, projection, dataset, ["v_proj"], max_seq_len=128)
    [problem] = error.value.details
    assert problem["field"] == "hyperparameters.max_seq_len"
    assert "128" in problem["message"] and "at most 64" in problem["message"]


def test_causal_lm_on_an_encoder_without_lm_head_is_refused(session):
    tenant, base, projection, dataset = _setup(
        session, ENCODER_WITHOUT_LM_HEAD, dims=(384, 384), task="causal-lm"
    )
    with pytest.raises(Invalid) as error:
        _submit(session, tenant, base, projection, dataset, ["query"])
    [problem] = error.value.details
    assert problem["field"] == "base_model_id"
    assert "cannot train causal-lm" in problem["message"]
    assert "cls.predictions" in problem["message"]


def test_targets_are_matched_on_the_task_layers(session):
    tenant, base, projection, dataset = _setup(
        session, LLAMA, dims=(64, 32), task="sequence-classification"
    )
    with pytest.raises(Invalid) as error:  # no lm_head on the classification class
        _submit(session, tenant, base, projection, dataset, ["lm_head"])
    [problem] = error.value.details
    assert problem["field"] == "target_modules" and "q_proj" in problem["message"]


def test_a_row_without_capabilities_is_checked_on_its_layers(session):
    tenant, base, projection, dataset = _setup(session, None, dims=(64, 32), task="causal-lm")
    assert _submit(session, tenant, base, projection, dataset, ["v_proj"], max_seq_len=4096)


def test_capabilities_fill_in_an_older_registration_and_conflict_when_different(session):
    tenant = factories.tenant(session)
    base = factories.base_model(session, tenant.id, layers=BACKBONE)
    again, created = _register(session, tenant.id, base, LLAMA)
    assert again.id == base.id and not created and again.capabilities == LLAMA
    with pytest.raises(Conflict, match="capabilities"):
        _register(session, tenant.id, base, ENCODER_WITHOUT_LM_HEAD)


def test_capability_layers_are_validated(session):
    tenant = factories.tenant(session)
    bad = {"tasks": {"causal-lm": {"layers": {"lm_head": [64]}}}, "unsupported": {}}
    with pytest.raises(Invalid, match=r"capabilities\.tasks\.causal-lm"):
        factories.base_model(session, tenant.id, capabilities=bad)


def _register(session, tenant_id, base, capabilities):
    """The same content as `base` registered again, described with `capabilities`."""
    from registry.base_models import service

    return service.register_base_model(
        session,
        tenant_id,
        name="minilm",
        weights_hash=base.weights_hash,
        files=[{"path": f.path, "sha256": f.sha256, "size": f.size} for f in base.files],
        architecture="BertModel",
        layers=BACKBONE,
        source_uri=base.source_uri,
        capabilities=capabilities,
        allowed_sources=["/models"],
    )


def test_one_matching_rule_follows_peft():
    layers = {"a.q_proj": [1, 1], "a.k_proj": [1, 1], "b.q_proj": [1, 1], "q_proj": [1, 1]}
    assert sorted(VeraConfig(target_modules=["q_proj"]).select(layers)) == [
        "a.q_proj",
        "b.q_proj",
        "q_proj",
    ]
    assert sorted(VeraConfig(target_modules=r"a\..*_proj").select(layers)) == [
        "a.k_proj",
        "a.q_proj",
    ]
    assert VeraConfig(target_modules=["proj"]).select(layers) == {}
    # A classification head is trained whole, never adapted.
    head = {"classifier": [4, 2], "x.query": [4, 4]}
    task = "sequence-classification"
    assert list(VeraConfig(target_modules=".*", task=task).select(head)) == ["x.query"]
    problems = job_problems(
        None,
        layers=head,
        task=task,
        target_modules=["classifier"],
        max_seq_len=8,
        projection_dims=None,
    )
    assert [p["field"] for p in problems] == ["target_modules"]
