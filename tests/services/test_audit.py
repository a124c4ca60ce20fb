"""The audit log of alias moves mirrors a plain model: random publishes and rollbacks (some
refused) by random keys with random reasons leave exactly the rows the model predicts. A
job's publish is audited with no actor and the job as its reason."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.adapters import service as adapters
from registry.audit import service as audit_log
from registry.db import session_scope
from registry.errors import Conflict, NotFound
from registry.jobs import lease
from registry.jobs import service as jobs
from registry.jobs.schemas import JobRequest
from tests import factories
from tests.services.test_rollback import UndoModel

VERSIONS = 3
ALIASES = ("live", "canary")
ACTORS = (None, "k" * 32, "0123456789abcdef" * 2)  # None: a job's publish

reasons = st.none() | st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
operations = st.lists(
    st.tuples(
        st.sampled_from(["publish", "publish_if", "rollback", "rollback_to"]),
        st.sampled_from(ALIASES),
        st.integers(1, VERSIONS),  # the version (publish, rollback_to) or generation (_if)
        st.sampled_from(ACTORS),
        reasons,
    ),
    max_size=12,
)


@dataclass
class AliasModel:
    """One alias as the definition says: its version, generation and undo stack."""

    version: int | None = None
    generation: int = 0
    undo: UndoModel = field(default_factory=UndoModel)


class AuditModel:
    """What the log must hold: one row per move that happened, none for a refused one."""

    def __init__(self) -> None:
        self.aliases = {name: AliasModel() for name in ALIASES}
        self.rows: list[tuple] = []

    def apply(self, op: str, alias: str, number: int, actor, reason) -> int | None:
        """The version the alias moves to, or None when the registry must refuse."""
        state = self.aliases[alias]
        if op == "publish_if" and state.generation != number:
            return None  # stale (or absent) generation: 409 / 412
        if op.startswith("rollback") and state.version is None:
            return None  # no alias to roll back: 404
        if op in ("publish", "publish_if"):
            target = state.undo.publish(number if op == "publish" else 1)
        else:
            target = state.undo.rollback(number if op == "rollback_to" else None)
            if target is None:
                return None  # nothing to undo: 409
        action = "alias.rollback" if op.startswith("rollback") else "alias.set"
        details = {
            "from_version": state.version,
            "to_version": target,
            "generation": state.generation + 1,
            "reason": reason,
        }
        state.version, state.generation = target, state.generation + 1
        self.rows.append((action, actor, alias, details))
        return target


def _act(session, tenant_id, adapter_id, op, alias, number, actor, reason) -> bool:
    who = {"actor_key_id": actor, "reason": reason}
    try:
        if op == "publish":
            adapters.set_alias(session, tenant_id, adapter_id, alias, number, **who)
        elif op == "publish_if":
            adapters.set_alias(session, tenant_id, adapter_id, alias, 1, number, **who)
        elif op == "rollback":
            adapters.rollback_alias(session, tenant_id, adapter_id, alias, **who)
        else:
            adapters.rollback_alias(session, tenant_id, adapter_id, alias, number, **who)
    except (Conflict, NotFound):
        return False
    return True


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_audit_rows_of_alias_moves_equal_the_model(session, ops):
    tenant = factories.tenant(session)  # a fresh log per example
    adapter = factories.adapter(session, tenant.id)
    for _ in range(VERSIONS):
        factories.version(session, adapter)
    model = AuditModel()
    for op in ops:
        moved_to = model.apply(*op)
        assert _act(session, tenant.id, adapter.id, *op) == (moved_to is not None), op
    rows = audit_log.list_events(session, tenant.id, limit=100)
    assert [(r.action, r.actor_key_id, r.target, r.details) for r in rows] == model.rows
    assert {r.adapter_id for r in rows} <= {adapter.id}
    for alias in ALIASES:  # the history says the same, per alias
        history = adapters.alias_history(session, tenant.id, adapter.id, alias)
        expected = [(row[1], row[3]["reason"]) for row in model.rows if row[2] == alias]
        assert [(e.actor_key_id, e.reason) for e in history] == expected


def test_a_jobs_publish_names_the_job_and_no_key(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    dataset = factories.dataset(session, tenant.id, adapter.user_id)
    request = JobRequest(
        user_id=adapter.user_id,
        dataset_id=dataset.id,
        base_model_id=adapter.base_model_id,
        projection_id=adapter.projection_id,
        target_modules=["query", "value"],
    )
    job, _ = jobs.submit_job(session, tenant.id, request)
    claim = factories.claim_alone(session, job.id, "w1")
    lease.finish_success(session, claim, blob_sha256="a" * 64, size_bytes=1, metrics={})
    (event,) = adapters.alias_history(session, tenant.id, adapter.id, "live")
    assert (event.actor_key_id, event.reason) == (None, f"published by job {job.id}")
    (row,) = audit_log.list_events(session, tenant.id, action="alias.set")
    assert row.actor_key_id is None and row.adapter_id == adapter.id
    assert row.details["reason"] == f"published by job {job.id}"


def test_concurrent_moves_on_postgresql_leave_one_audit_row_per_move(pg_session_factory):
    """Twenty writers race on one generation: one move wins, and the log holds that one
    move and no trace of the nineteen refused ones."""
    with session_scope(pg_session_factory) as session:
        tenant = factories.tenant(session)
        adapter = factories.adapter(session, tenant.id)
        for _ in range(20):
            factories.version(session, adapter)
        adapters.set_alias(session, tenant.id, adapter.id, "live", 1)
        tenant_id, adapter_id = tenant.id, adapter.id
    barrier = threading.Barrier(20)

    def move(index: int) -> bool:
        barrier.wait()
        try:
            with session_scope(pg_session_factory) as session:
                adapters.set_alias(
                    session, tenant_id, adapter_id, "live", index + 1, 1, actor_key_id=f"k{index}"
                )
        except Conflict:
            return False
        return True

    with ThreadPoolExecutor(20) as pool:
        won = [i for i, ok in enumerate(pool.map(move, range(20))) if ok]
    assert len(won) == 1
    with session_scope(pg_session_factory) as session:
        rows = audit_log.list_events(session, tenant_id, action="alias.set")
        history = adapters.alias_history(session, tenant_id, adapter_id, "live")
        assert [(r.actor_key_id, r.details["generation"]) for r in rows] == [
            (None, 1),
            (f"k{won[0]}", 2),
        ]
        assert [(e.actor_key_id, e.generation) for e in history] == [
            (r.actor_key_id, r.details["generation"]) for r in rows
        ]
