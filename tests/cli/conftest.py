"""The CLI against the real app served over HTTP (uvicorn in a thread), both databases."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn
from click.testing import CliRunner

from registry.cli import main
from registry.config import get_settings
from tests.api.conftest import app, dispatcher, settings, tenant  # noqa: F401
from tests.workers.conftest import free_port


@pytest.fixture
def live_url(app):  # noqa: F811
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)


class Cli:
    """Runs `vera-registry …` in process, as a user with this URL and key would."""

    def __init__(self, url: str, api_key: str, home) -> None:
        self.env = {"VERA_URL": url, "VERA_API_KEY": api_key, "VERA_HOME": str(home)}

    def __call__(self, *args: str, ok: bool = True, input: str | None = None, **env: str):
        get_settings.cache_clear()  # VERA_HOME of this test, not of an earlier one
        result = CliRunner().invoke(main, list(args), input=input, env={**self.env, **env})
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def json(self, *args: str):
        import json

        return json.loads(self(*args, "--json").output)


@pytest.fixture
def cli(live_url, tenant, tmp_path):  # noqa: F811
    return Cli(live_url, tenant.keys["admin"], tmp_path / "home")
