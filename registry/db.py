"""Declarative base, engines and the one transaction owner (`session_scope`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Integer,
    MetaData,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from registry.config import reveal

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use registry.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str | SecretStr, **kwargs) -> Engine:
    """An engine with per-backend settings: SQLite gets WAL, foreign keys and a busy timeout.

    Takes `Settings.database_url` as it is (a SecretStr); the engine's URL hides the password."""
    url = reveal(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # Autocommit mode off in the driver; SQLAlchemy emits BEGIN itself so that
            # BEGIN IMMEDIATE below takes the write lock up front (no upgrade deadlocks).
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on error: the only place outside requests that commits."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.info.pop("after_commit", None)
        session.rollback()
        raise
    else:
        run_after_commit(session)
    finally:
        session.close()


def after_commit(session: Session, callback) -> None:
    """Run `callback()` once the session's transaction has committed (never on rollback).

    Used to send a task only after the row it reads is visible to the worker.
    """
    session.info.setdefault("after_commit", []).append(callback)


def run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("after_commit", [])
    for callback in callbacks:
        callback()


def new_id() -> str:
    """A random 128-bit id as 32 hex characters: unguessable, no cross-tenant counts leak."""
    return uuid.uuid4().hex


BigIntPK = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only
JSONType = JSON().with_variant(JSONB(), "postgresql")


def get_owned(session: Session, model: type[T], tenant_id: str, object_id: str, what: str) -> T:
    """The row of `model` with this id *in this tenant*; another tenant's row is not found."""
    from registry.errors import NotFound

    row = session.scalar(select(model).where(model.id == object_id, model.tenant_id == tenant_id))
    if row is None:
        raise NotFound(f"{what} {object_id} not found")
    return row


def created_after(model, after: tuple[datetime, str]):
    """Keyset condition for lists ordered by (created_at, id): rows after `after`."""
    created_at, row_id = after
    return (model.created_at > created_at) | (
        (model.created_at == created_at) & (model.id > row_id)
    )


def created_before(model, before: tuple[datetime, str]):
    """Keyset condition for lists ordered newest first by (created_at, id)."""
    created_at, row_id = before
    return (model.created_at < created_at) | (
        (model.created_at == created_at) & (model.id < row_id)
    )
