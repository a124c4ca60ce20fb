"""A live registry (uvicorn in a thread, SQLite) with a tiny Llama registered as a base
model, users' adapter versions made of random vectors, and the inference server on it in a
real uvicorn server. Built once per module: loading models is the slow part."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from registry.cli.local import free_port
from registry.client.api import RegistryClient
from registry.config import Settings
from registry.db import session_scope
from registry.main import create_app
from registry.migrate import upgrade
from registry.vera.config import VeraConfig
from tests.api.conftest import RecordingDispatcher, Tenant
from tests.cores import threads_per_worker

torch = pytest.importorskip("torch")
torch.set_num_threads(threads_per_worker())

SEED, R = 7, 8


class Live:
    """An ASGI app served by uvicorn in a thread, on a free port."""

    def __init__(self, app) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{config.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class Publisher:
    """A registered base model + projection; publishes adapter versions of random vectors
    (as a finished job leaves them) straight through the service layer."""

    def __init__(self, app, rc: RegistryClient, folder: Path, config: VeraConfig) -> None:
        from registry.vera.describe import describe_base_model, describe_projection, layers_for
        from registry.vera.inject import adapter_state_dict, inject_vera

        self.app, self.rc, self.config = app, rc, config
        description = describe_base_model(folder)
        self.base = rc.upload_base_model(folder, description)
        layers = layers_for(description, config.task)
        body = describe_projection(layers, config.target_modules, SEED, R, config.task)
        self.projection = rc.register_projection(self.base["id"], body)
        model = load_for(folder, config.task)
        inject_vera(model, config)
        self.shapes = {k: tuple(v.shape) for k, v in adapter_state_dict(model).items()}
        self.adapters: dict[str, str] = {}

    def vectors(self, seed: int, scale: float = 1.0) -> dict:
        generator = torch.Generator().manual_seed(seed)
        return {k: torch.randn(s, generator=generator) * scale for k, s in self.shapes.items()}

    def add_version(self, user: str, seed: int, labels: list | None = None) -> int:
        """A new version of `user`'s adapter from random vectors, published to `live`."""
        from registry.adapters import service
        from registry.vera.peft_io import adapter_blob

        identity = {"user_id": user}
        if labels is not None:
            identity["labels"] = json.dumps(labels)
        blob = adapter_blob(
            self.vectors(seed),
            base_model_hash=self.base["content_hash"],
            projection_fingerprint=self.projection["fingerprint"],
            identity=identity,
            config=self.config,
        )
        with session_scope(self.app.state.session_factory) as session:
            adapter = service.get_or_create_adapter(
                session,
                self.rc.tenant.id,
                user_id=user,
                name="default",
                base_model_id=self.base["id"],
                projection_id=self.projection["id"],
                target_modules=self.config.target_modules,
                task=self.config.task,
            )
            info = self.app.state.store.put(blob)
            version = service.create_version(
                session, adapter, blob_sha256=info.sha256, size_bytes=info.size
            )
            self.adapters[user], number = adapter.id, version.number
        self.rc.publish(self.adapters[user], "live", number)
        return number


def load_for(folder: Path, task: str):
    from registry.vera.describe import task_model_class

    return task_model_class(task).from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def registry_live(tmp_path_factory):
    """The registry over a fresh SQLite file, a tenant (and another), an admin client."""
    work = tmp_path_factory.mktemp("registry")
    url = f"sqlite:///{work / 'registry.db'}"
    upgrade(url)
    settings = Settings(_env_file=None, database_url=url, storage_url=f"file://{work / 'blobs'}")
    app = create_app(settings, dispatcher=RecordingDispatcher())
    live = Live(app)
    tenant, other = Tenant(app, "acme"), Tenant(app, "globex")
    rc = RegistryClient(live.url, tenant.keys["admin"], cache_dir=work / "cache")
    rc.tenant = tenant
    yield app, live, rc, other
    live.stop()
    rc.close()
    app.state.engine.dispose()


def serve(rc: RegistryClient, base_id: str, folder: Path, cache: Path, **options):
    """The inference server for `base_id` in a live uvicorn (stop() it)."""
    from registry.serving.app import ServeOptions, create_serving_app
    from registry.serving.model import load_model

    client = RegistryClient(rc.base_url, rc.tenant.keys["read"], cache_dir=cache)
    loaded = load_model(client, base_id, model_path=folder)
    options.setdefault("feed_wait_s", 1.0)  # the registry's shutdown waits on a long-poll
    app = create_serving_app(loaded, client, ServeOptions(**options))
    live = Live(app)
    live.loaded, live.state = loaded, app.state.server
    return live
