"""Server-side commands on a database of their own: migrate and tenants."""

from __future__ import annotations

import json

from click.testing import CliRunner

from registry.cli import main
from registry.config import get_settings


def run(tmp_path, *args: str):
    get_settings.cache_clear()
    env = {"VERA_HOME": str(tmp_path / "state"), "VERA_DATABASE_URL": None}
    result = CliRunner().invoke(main, list(args), env=env)
    get_settings.cache_clear()
    return result


def test_migrate_then_tenants_create_list_add_key(tmp_path):
    result = run(tmp_path, "migrate")
    assert result.exit_code == 0 and "registry.db" in result.output
    assert (tmp_path / "state" / "registry.db").is_file()  # the default follows VERA_HOME
    created = json.loads(run(tmp_path, "tenants", "create", "acme", "--json").output)
    assert created["api_key"].startswith("vera_") and created["scopes"] == ["admin"]
    again = run(tmp_path, "tenants", "create", "acme")
    assert again.exit_code == 1 and "already exists" in again.output
    assert "Traceback" not in again.output
    listed = json.loads(run(tmp_path, "tenants", "list", "--json").output)
    assert [t["name"] for t in listed] == ["acme"]
    key = run(tmp_path, "tenants", "add-key", "acme", "--scopes", "read").output.strip()
    assert key.startswith("vera_") and key != created["api_key"]
    missing = run(tmp_path, "tenants", "add-key", "nobody")
    assert missing.exit_code == 1 and "no tenant named 'nobody'" in missing.output
