"""A live registry (uvicorn in a thread, SQLite) with a tiny Llama registered as a base
model, users' adapter versions made of random vectors, and the inference server on it in a
real uvicorn server. Built once per module: loading models is the slow part."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import uvicorn

from registry.cli.local import free_port
from registry.client.api import RegistryClient
from registry.config import Settings
from registry.main import create_app
from registry.migrate import upgrade
from registry.vera.config import VeraConfig
from tests.api.conftest import RecordingDispatcher, Tenant
from tests.client.test_runtime import Registry, minilm_path
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


class Publisher(Registry):
    """A base model registered from its folder + a projection; publishes adapter versions
    of random vectors (as a finished job leaves them) straight through the service layer."""

    def __init__(self, app, rc: RegistryClient, folder: Path, config: VeraConfig) -> None:
        from registry.vera.describe import describe_base_model, describe_projection, layers_for
        from registry.vera.inject import adapter_state_dict, inject_vera

        self.app, self.rc, self.config, self.folder = app, rc, config, folder
        description = describe_base_model(folder)
        # From an allow-listed folder: no upload of the weights through the API.
        self.base = rc.register_base_model({**description, "source_uri": str(folder)})
        layers = layers_for(description, config.task)
        body = describe_projection(layers, config.target_modules, SEED, R, config.task)
        self.projection = rc.register_projection(self.base["id"], body)
        self.model = load_for(folder, config.task)  # injected: a reference for any user
        inject_vera(self.model, config)
        self.shapes = {k: tuple(v.shape) for k, v in adapter_state_dict(self.model).items()}
        self.adapters: dict[str, str] = {}

    def vectors(self, seed: int) -> dict:
        generator = torch.Generator().manual_seed(seed)
        return {k: torch.randn(s, generator=generator) for k, s in self.shapes.items()}

    def add_version(self, user: str, seed: int, labels: list | None = None) -> int:
        """A new version of `user`'s adapter from the vectors of `seed`, published."""
        return super().add_version(user, self.vectors(seed), labels)


def load_for(folder: Path, task: str):
    from registry.vera.describe import task_model_class

    return task_model_class(task).from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def registry_live(tmp_path_factory):
    """The registry over a fresh SQLite file, a tenant (and another), an admin client."""
    work = tmp_path_factory.mktemp("registry")
    url = f"sqlite:///{work / 'registry.db'}"
    upgrade(url)
    sources = [str(tmp_path_factory.getbasetemp()), str(minilm_path())]
    settings = Settings(
        _env_file=None,
        database_url=url,
        storage_url=f"file://{work / 'blobs'}",
        model_sources=sources,
    )
    app = create_app(settings, dispatcher=RecordingDispatcher())
    live = Live(app)
    tenant, other = Tenant(app, "acme"), Tenant(app, "globex")
    rc = RegistryClient(live.url, tenant.keys["admin"], cache_dir=work / "cache")
    rc.tenant = tenant
    yield app, live, rc, other
    live.stop()
    rc.close()
    app.state.engine.dispose()


def serve(rc: RegistryClient, base_id: str, folder: Path | None, cache: Path, **options):
    """The inference server for `base_id` in a live uvicorn (stop() it); without `folder`
    it downloads the base model from the registry, as `serve-model` does by default."""
    from registry.serving.app import ServeOptions, create_serving_app
    from registry.serving.model import load_model

    client = RegistryClient(rc.base_url, rc.tenant.keys["read"], cache_dir=cache)
    loaded = load_model(client, base_id, model_path=folder, cache_dir=cache)
    if folder is None:
        assert (cache / "models" / base_id / "config.json").is_file()
    options.setdefault("feed_wait_s", 1.0)  # the registry's shutdown waits on a long-poll
    app = create_serving_app(loaded, client, ServeOptions(**options))
    live = Live(app)
    live.loaded, live.state = loaded, app.state.server
    return live
