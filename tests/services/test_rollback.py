"""Rollback is undo over the alias history (docs/api.md, "Rollback semantics"), checked
against a plain model of that definition on random publish/rollback sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.adapters import service as adapters
from registry.errors import Conflict
from tests import factories

VERSIONS = 4
ALIAS_NUMBERS = itertools.count()


class UndoModel:
    """The definition, with no database: the states the alias went through, as a stack."""

    def __init__(self) -> None:
        self.stack: list[int] = []

    def publish(self, version: int) -> int:
        self.stack.append(version)
        return version

    def rollback(self, to_version: int | None = None) -> int | None:
        """The version the alias moves to, or None when there is nothing to undo."""
        undo_target = self.stack[-2] if len(self.stack) >= 2 else None
        if to_version is None:
            if undo_target is None:
                return None
            to_version = undo_target
        if to_version == undo_target:
            self.stack.pop()  # undoes the latest move not yet undone
        else:
            self.stack.append(to_version)  # a named version that is not the undo: a move
        return to_version


def _adapter_with_versions(session):
    tenant = factories.tenant(session)
    adapter = factories.adapter(session, tenant.id)
    for _ in range(VERSIONS):
        factories.version(session, adapter)
    return tenant.id, adapter.id


def _live(session, tenant_id: str, adapter_id: str, alias_name: str = "live") -> int:
    alias = adapters.get_alias(session, tenant_id, adapter_id, alias_name)
    session.refresh(alias)
    return adapters._number_of(session, alias.version_id)


def _rollback(session, tenant_id, adapter_id, to_version=None, alias_name="live") -> int | None:
    try:
        alias = adapters.rollback_alias(session, tenant_id, adapter_id, alias_name, to_version)
    except Conflict as exc:
        assert exc.code == "nothing_to_roll_back"
        return None
    return adapters._number_of(session, alias.version_id)


def test_issue_example_publish_31214_then_roll_back_to_1_2_1_3(session):
    tenant_id, adapter_id = _adapter_with_versions(session)
    for number in (3, 1, 2, 1, 4):
        adapters.set_alias(session, tenant_id, adapter_id, "live", number)
    walked = [_rollback(session, tenant_id, adapter_id) for _ in range(5)]
    assert walked == [1, 2, 1, 3, None]
    assert _live(session, tenant_id, adapter_id) == 3


def test_publish_after_rollbacks_starts_a_new_branch(session):
    tenant_id, adapter_id = _adapter_with_versions(session)
    for number in (1, 2, 3):
        adapters.set_alias(session, tenant_id, adapter_id, "live", number)
    assert _rollback(session, tenant_id, adapter_id) == 2
    adapters.set_alias(session, tenant_id, adapter_id, "live", 4)
    # 3 was undone and is forgotten: undoing the publish of 4 lands on 2, then 1.
    assert [_rollback(session, tenant_id, adapter_id) for _ in range(3)] == [2, 1, None]


def test_named_rollback_to_the_undo_target_is_an_undo(session):
    tenant_id, adapter_id = _adapter_with_versions(session)
    for number in (1, 2, 3):
        adapters.set_alias(session, tenant_id, adapter_id, "live", number)
    assert _rollback(session, tenant_id, adapter_id, to_version=2) == 2  # same as plain undo
    assert _rollback(session, tenant_id, adapter_id) == 1
    assert _rollback(session, tenant_id, adapter_id, to_version=4) == 4  # a move
    assert _rollback(session, tenant_id, adapter_id) == 1


operations = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(1, VERSIONS)),
        st.tuples(st.just("rollback"), st.none()),
        st.tuples(st.just("rollback"), st.integers(1, VERSIONS)),
    ),
    max_size=14,
)


@pytest.fixture
def adapter_ids(session):
    return _adapter_with_versions(session)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_rollback_matches_the_undo_model(session, adapter_ids, ops):
    tenant_id, adapter_id = adapter_ids
    alias = f"a{next(ALIAS_NUMBERS)}"  # a fresh alias per example
    model = UndoModel()
    for kind, number in ops:
        if kind == "publish":
            adapters.set_alias(session, tenant_id, adapter_id, alias, number)
            expected = model.publish(number)
        elif not model.stack:
            continue  # rolling back an alias that does not exist yet is a 404, not history
        else:
            expected = model.rollback(number)
            assert _rollback(session, tenant_id, adapter_id, number, alias) == expected
        if expected is not None:
            assert _live(session, tenant_id, adapter_id, alias) == expected
    if model.stack:
        history = adapters.alias_history(session, tenant_id, adapter_id, alias)
        assert adapters.target_stack(history) == model.stack
