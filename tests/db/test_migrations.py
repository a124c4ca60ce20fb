"""Migrations: empty → head → base → head on both backends, and no drift from the models."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from registry.db import make_engine
from registry.migrate import downgrade, upgrade
from registry.models import Base
from tests.pgdb import temporary_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    with temporary_database("vera_mig") as url:
        yield url


def test_up_down_up_and_no_drift(empty_url):
    upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        downgrade(empty_url, "base")
        assert not set(Base.metadata.tables) & set(inspect(engine).get_table_names())
        upgrade(empty_url)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
