"""Concurrent writers on PostgreSQL: numbering, compare-and-swap, replayable history."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from registry.adapters import service as adapters
from registry.db import session_scope
from registry.errors import Conflict
from tests import factories


@pytest.fixture
def setup(pg_session_factory):
    with session_scope(pg_session_factory) as session:
        tenant = factories.tenant(session)
        adapter = factories.adapter(session, tenant.id)
        return pg_session_factory, tenant.id, adapter.id


def _run_together(count, fn):
    barrier = threading.Barrier(count)

    def call(index):
        barrier.wait()
        try:
            return fn(index)
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def test_twenty_concurrent_versions_get_one_to_twenty(setup):
    factory, tenant_id, adapter_id = setup

    def add(_):
        with session_scope(factory) as session:
            adapter = adapters.get_adapter(session, tenant_id, adapter_id)
            return factories.version(session, adapter).number

    numbers = _run_together(20, add)
    assert sorted(numbers) == list(range(1, 21))


def test_concurrent_alias_moves_with_same_generation_one_wins(setup):
    factory, tenant_id, adapter_id = setup
    with session_scope(factory) as session:
        adapter = adapters.get_adapter(session, tenant_id, adapter_id)
        for _ in range(20):
            factories.version(session, adapter)
        adapters.set_alias(session, tenant_id, adapter_id, "live", 1)

    def move(index):
        with session_scope(factory) as session:
            return adapters.set_alias(session, tenant_id, adapter_id, "live", index + 1, 1)

    results = _run_together(20, move)
    winners = [r for r in results if not isinstance(r, Conflict)]
    assert len(winners) == 1 and winners[0].generation == 2
    assert sum(isinstance(r, Conflict) for r in results) == 19


def test_interleaved_publishes_and_rollbacks_replay_to_final_state(setup):
    factory, tenant_id, adapter_id = setup
    with session_scope(factory) as session:
        adapter = adapters.get_adapter(session, tenant_id, adapter_id)
        for _ in range(5):
            factories.version(session, adapter)
        adapters.set_alias(session, tenant_id, adapter_id, "live", 1)

    def work(index):
        rng = random.Random(index)
        for _ in range(6):
            rollback, number = rng.random() < 0.4, rng.randint(1, 5)
            for _attempt in range(50):  # a stale undo is read again and retried, as a client would
                try:
                    with session_scope(factory) as session:
                        if rollback:
                            adapters.rollback_alias(session, tenant_id, adapter_id, "live")
                        else:
                            adapters.set_alias(session, tenant_id, adapter_id, "live", number)
                    break
                except Conflict as exc:
                    if exc.code != "stale_generation":
                        break

    _run_together(6, work)
    with session_scope(factory) as session:
        history = adapters.alias_history(session, tenant_id, adapter_id, "live")
        alias = adapters.get_alias(session, tenant_id, adapter_id, "live")
        final = adapters._number_of(session, alias.version_id)
    assert [e.generation for e in history] == list(range(1, len(history) + 1))
    assert alias.generation == len(history)
    state = None
    for event in history:
        assert event.from_version == state
        state = event.to_version
    assert state == final
    assert [e.seq for e in history] == sorted(e.seq for e in history)
    assert any(e.kind == "rollback" for e in history)
    undo_stack: list[int] = []  # every rollback here is an undo of the history before it
    for event in history:
        if event.kind == "rollback":
            assert len(undo_stack) >= 2 and event.to_version == undo_stack[-2], event.seq
            undo_stack.pop()
        else:
            undo_stack.append(event.to_version)
