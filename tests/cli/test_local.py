"""The environment `up` gives its worker child."""

from registry.cli.local import worker_environment
from registry.config import Settings


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
