import json

import pytest

from registry.errors import Conflict, Invalid, NotFound, TooLarge
from registry.jobs import service as jobs
from registry.jobs.datasets import validate_jsonl
from registry.jobs.schemas import Hyperparameters, JobRequest
from tests import factories


def _lines(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def test_validate_classification_dataset():
    stats = validate_jsonl(
        _lines({"text": "a", "label": 1}, "", {"text": "b", "label": 0}),
        "sequence-classification",
        100,
    )
    assert stats.rows == 2 and stats.labels == [1, 0]


def test_validate_causal_lm_both_shapes():
    data = _lines({"text": "hello"}, {"prompt": "q", "completion": "a"})
    assert validate_jsonl(data, "causal-lm", 100).rows == 2


def test_bad_rows_are_reported_with_line_numbers():
    data = _lines(
        {"text": "ok", "label": 1},
        "{not json",
        {"text": "", "label": 0},
        {"text": "x", "label": True},
        [1, 2],
        {"text": "y", "label": 2},
    )
    with pytest.raises(Invalid) as error:
        validate_jsonl(data, "sequence-classification", 100)
    assert [e["line"] for e in error.value.details] == [2, 3, 4, 5]


@pytest.mark.parametrize(
    ("data", "task"),
    [
        (b"", "causal-lm"),
        (b"\xff\xfe", "causal-lm"),
        (_lines({"text": "a", "label": 1}), "nope"),
        (_lines({"text": "a", "label": 1}, {"text": "b", "label": 1}), "sequence-classification"),
        (_lines({"prompt": "p"}), "causal-lm"),
    ],
)
def test_invalid_datasets(data, task):
    with pytest.raises(Invalid):
        validate_jsonl(data, task, 100)


def test_row_limit():
    with pytest.raises(TooLarge):
        validate_jsonl(_lines(*[{"text": "t"}] * 5), "causal-lm", 4)


def _request(adapter, dataset, **overrides) -> JobRequest:
    fields = dict(
        user_id=adapter.user_id,
        dataset_id=dataset.id,
        base_model_id=adapter.base_model_id,
        projection_id=adapter.projection_id,
        target_modules=["query", "value"],
    )
    fields.update(overrides)
    return JobRequest(**fields)


@pytest.fixture
def ready(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    dataset = factories.dataset(session, tenant.id, adapter.user_id)
    return session, tenant, adapter, dataset


def test_submit_and_idempotency(ready):
    session, tenant, adapter, dataset = ready
    job, created = jobs.submit_job(
        session, tenant.id, _request(adapter, dataset), idempotency_key="k1"
    )
    again, created_again = jobs.submit_job(
        session, tenant.id, _request(adapter, dataset), idempotency_key="k1"
    )
    assert created and not created_again and again.id == job.id
    assert job.state == "queued" and job.adapter_id == adapter.id
    with pytest.raises(Conflict, match="Idempotency-Key"):
        jobs.submit_job(
            session,
            tenant.id,
            _request(adapter, dataset, hyperparameters=Hyperparameters(epochs=9)),
            idempotency_key="k1",
        )
    events = jobs.list_job_events(session, tenant.id, job.id)
    assert [(e.seq, e.kind, e.data) for e in events] == [(1, "state", {"state": "queued"})]


def test_submit_checks_everything(ready):
    session, tenant, adapter, dataset = ready
    other = factories.dataset(session, tenant.id, "someone-else")
    with pytest.raises(Invalid) as error:
        jobs.submit_job(
            session,
            tenant.id,
            _request(adapter, other, base_model_id="missing", projection_id="missing"),
        )
    fields = {e["field"] for e in error.value.details}
    assert fields == {"dataset_id", "base_model_id", "projection_id"}
    with pytest.raises(Invalid, match="target_modules"):
        jobs.submit_job(session, tenant.id, _request(adapter, dataset, target_modules=["nope"]))
    with pytest.raises(Invalid, match="max_d_out"):  # dense layers need a bigger projection
        jobs.submit_job(session, tenant.id, _request(adapter, dataset, target_modules=["dense"]))
    with pytest.raises(Invalid, match="warm_start"):
        jobs.submit_job(session, tenant.id, _request(adapter, dataset, warm_start=True))


def test_state_machine_is_guarded(ready):
    session, tenant, adapter, dataset = ready
    job, _ = jobs.submit_job(session, tenant.id, _request(adapter, dataset))
    with pytest.raises(Conflict):
        jobs.transition_job(session, job, "succeeded")
    jobs.transition_job(session, job, "running")
    jobs.transition_job(
        session, job, "failed", error_code="oom", error_kind="system", error_message="out of memory"
    )
    for state in ("running", "queued", "succeeded", "cancelled"):
        with pytest.raises(Conflict):
            jobs.transition_job(session, job, state)
    kinds = [e.data["state"] for e in jobs.list_job_events(session, tenant.id, job.id)]
    assert kinds == ["queued", "running", "failed"]
    assert job.finished_at is not None


def test_cancel_queued_job_and_list(ready):
    session, tenant, adapter, dataset = ready
    first, _ = jobs.submit_job(session, tenant.id, _request(adapter, dataset))
    second, _ = jobs.submit_job(session, tenant.id, _request(adapter, dataset))
    assert jobs.request_cancel(session, tenant.id, first.id).state == "cancelled"
    with pytest.raises(Conflict):
        jobs.request_cancel(session, tenant.id, first.id)
    assert [j.id for j in jobs.list_jobs(session, tenant.id, state="queued")] == [second.id]
    page = jobs.list_jobs(session, tenant.id, limit=1)
    rest = jobs.list_jobs(session, tenant.id, limit=5, before=(page[0].created_at, page[0].id))
    assert {j.id for j in page + rest} == {first.id, second.id} and len(rest) == 1


def test_missing_job_is_not_found(session):
    tenant = factories.tenant(session)
    with pytest.raises(NotFound):
        jobs.get_job(session, tenant.id, "nope")
