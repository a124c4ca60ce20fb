"""`tenants quotas` (server side) and `usage` (remote)."""

from __future__ import annotations

import json

from tests.cli.test_admin import run


def test_tenants_quotas_sets_resets_and_shows(tmp_path):
    assert run(tmp_path, "migrate").exit_code == 0
    run(tmp_path, "tenants", "create", "acme")
    result = run(
        tmp_path, "tenants", "quotas", "acme", "--max-active-jobs", "7", "--max-users", "2"
    )
    assert result.exit_code == 0, result.output
    assert "max_active_jobs" in result.output and "7" in result.output
    shown = json.loads(run(tmp_path, "tenants", "quotas", "acme", "--json").output)["quotas"]
    assert shown["max_active_jobs"] == {"limit": 7, "used": 0, "own": True}
    assert shown["max_users"]["limit"] == 2
    reset = run(tmp_path, "tenants", "quotas", "acme", "--reset", "max_users", "--json")
    shown = json.loads(reset.output)["quotas"]
    assert shown["max_users"] == {"limit": None, "used": 0, "own": False}
    assert shown["max_active_jobs"]["limit"] == 7
    bad = run(tmp_path, "tenants", "quotas", "acme", "--max-users", "0")
    assert bad.exit_code == 2 and "--max-users" in bad.output
    both = run(tmp_path, "tenants", "quotas", "acme", "--max-users", "3", "--reset", "max_users")
    assert both.exit_code == 2 and "both set and reset" in both.output
    missing = run(tmp_path, "tenants", "quotas", "nobody")
    assert missing.exit_code == 1 and "no tenant named 'nobody'" in missing.output


def test_usage_shows_limits_and_usage(cli):
    cli("datasets", "upload", str(_dataset(cli)), "--user", "alice")
    data = cli.json("usage")
    assert data["quotas"]["max_users"] == {"limit": None, "used": 1}
    assert data["quotas"]["max_stored_bytes"]["used"] > 0
    assert "keep_versions" in data["retention"]
    table = cli("usage").output
    assert "max_active_jobs" in table and "keep_versions" in table


def _dataset(cli):
    from pathlib import Path

    path = Path(cli.env["VERA_HOME"]).parent / "data.jsonl"
    path.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    return path
