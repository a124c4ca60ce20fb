"""An app per backend over a real database and a local blob directory."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry.config import Settings
from registry.db import session_scope
from registry.main import create_app
from tests import factories


class RecordingDispatcher:
    """Stands in for the broker (the API's only outside dependency here): records sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []
        self.fail = False

    def send_job(self, job_id: str, *, queue: str | None = None) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((job_id, queue))

    def check(self) -> None:
        if self.fail:
            raise ConnectionError("broker down")

    def messages_intact(self) -> bool:
        self.check()
        return True

    def mark_intact(self) -> None:
        self.check()


@pytest.fixture
def settings(db_url, tmp_path):
    return Settings(
        _env_file=None,
        database_url=db_url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        max_dataset_bytes=64 * 1024,
        max_dataset_rows=1000,
    )


@pytest.fixture
def dispatcher():
    return RecordingDispatcher()


@pytest.fixture
def app(settings, engine, dispatcher):  # `engine` cleans the tables after each test
    app = create_app(settings, dispatcher=dispatcher)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


class Tenant:
    def __init__(self, app, name: str) -> None:
        with session_scope(app.state.session_factory) as session:
            tenant = factories.tenant(session, name)
            self.id = tenant.id
            self.keys = {
                scope: factories.api_key(session, tenant.id, [scope])[1]
                for scope in ("admin", "train", "read")
            }

    def auth(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}


@pytest.fixture
def tenant(app):
    return Tenant(app, "acme")


@pytest.fixture
def other_tenant(app):
    return Tenant(app, "globex")
