"""The environment `up` gives its worker child."""

import json

from click.testing import CliRunner

from registry.cli import main
from registry.cli.local import worker_environment
from registry.config import Settings, get_settings


def test_the_worker_child_sees_exactly_these_settings_with_real_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("VERA_API_PORT", "1")  # the parent's own setting must not leak through
    monkeypatch.setenv("VERA_NOT_A_SETTING", "x")
    settings = Settings(_env_file=None, home=tmp_path, api_port=9000, s3_secret_access_key="s3cr")
    env = worker_environment(settings, {"VERA_HEARTBEAT_INTERVAL_S": "0.5"})
    assert env["VERA_S3_SECRET_ACCESS_KEY"] == "s3cr"  # not SecretStr's '**********'
    assert env["VERA_API_PORT"] == "9000" and "VERA_NOT_A_SETTING" not in env
    assert env["VERA_DATABASE_URL"] == f"sqlite:///{tmp_path}/registry.db"
    assert env["VERA_HEARTBEAT_INTERVAL_S"] == "0.5"
    assert "VERA_S3_REGION" not in env  # unset stays unset
    child = Settings(
        _env_file=None, **{k[5:].lower(): v for k, v in env.items() if k.startswith("VERA_")}
    )
    assert child.database_url == settings.database_url and child.api_port == 9000


def test_the_key_up_saved_goes_only_to_the_url_it_was_saved_for(tmp_path):
    (tmp_path / "credentials.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9", "api_key": "vera_abc_def"})
    )
    env = {"VERA_HOME": str(tmp_path), "VERA_URL": None, "VERA_API_KEY": None}

    def run(*args: str):
        get_settings.cache_clear()
        return CliRunner().invoke(main, ["jobs", "list", *args], env=env)

    elsewhere = run("--url", "http://127.0.0.1:10")
    assert elsewhere.exit_code == 2 and "no API key" in elsewhere.output
    saved = run()  # the saved URL, with the saved key: nobody listens there
    assert saved.exit_code == 1 and "cannot reach http://127.0.0.1:9" in saved.output
    get_settings.cache_clear()
