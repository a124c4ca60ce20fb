"""Shared fixtures: a database per backend (SQLite file and real PostgreSQL), sessions."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from registry.db import make_engine, make_sessionmaker
from registry.migrate import upgrade
from registry.models import Base
from tests.cores import threads_per_worker
from tests.pgdb import temporary_database


def pytest_configure(config):
    """Child processes (Celery workers, `up`, the demo) inherit OMP_NUM_THREADS: with two
    xdist workers each worker's torch and its children share one core instead of fighting
    over two (oversubscribed OpenMP threads spin: the MiniLM tests ran 3× slower). Not in
    xdist's controller: it runs no tests, and its workers inherit its environment."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_worker()))


def pytest_collection_modifyitems(config, items):
    """Tests marked slow (real training, real worker processes) go first: started last,
    one of them would leave the other xdist workers idle at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test run, migrated to head, dropped at the end."""
    with temporary_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'registry.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    return request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_url")


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    _clean(engine)
    engine.dispose()


def _clean(engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def session_factory(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def session(session_factory):
    with session_factory() as session:
        yield session
        session.rollback()


@pytest.fixture
def pg_session_factory(pg_url):
    engine = make_engine(pg_url, pool_size=25, max_overflow=5)
    yield make_sessionmaker(engine)
    _clean(engine)
    engine.dispose()
