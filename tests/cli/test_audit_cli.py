"""`--reason` on publish and rollback, actor and reason in `adapters history`, `audit`."""

from __future__ import annotations

from registry.db import session_scope
from registry.tenants import service as tenants
from tests.api import helpers


def test_reasons_show_in_history_and_audit(cli, app, tenant):
    blobs = [helpers.safetensors_blob([0.1 * i, 0.2]) for i in (1, 2)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)
    with session_scope(app.state.session_factory) as session:
        admin_key = tenants.authenticate(session, tenant.keys["admin"]).key_id
    cli("adapters", "publish", adapter_id, "--version", "1")
    cli("adapters", "publish", adapter_id, "--version", "2", "--reason", "new data")
    rolled = cli.json("adapters", "rollback", "--user", "alice", "--reason", "regressed")
    assert rolled["version"] == 1

    history = cli.json("adapters", "history", adapter_id)
    history = history["items"] if isinstance(history, dict) else history
    assert [(e["kind"], e["actor_key_id"], e["reason"]) for e in history] == [
        ("set", admin_key, None),
        ("set", admin_key, "new data"),
        ("rollback", admin_key, "regressed"),
    ]
    table = cli("adapters", "history", adapter_id).output
    assert "actor" in table and "reason" in table
    assert admin_key in table and "regressed" in table and "new data" in table

    moves = cli.json("audit", "--action", "alias.rollback")
    assert [(e["actor_key_id"], e["target"], e["details"]["reason"]) for e in moves] == [
        (admin_key, "live", "regressed")
    ]
    table = cli("audit").output
    assert "key.created" in table and "alias.set" in table and "alias.rollback" in table
    assert cli.json("audit", "--since", "2999-01-01T00:00:00Z") == []


def test_audit_errors_name_the_problem(cli, tenant):
    result = cli("audit", "--action", "alias.exploded", ok=False)
    assert result.exit_code == 1 and "alias.set" in result.output  # lists the known ones
    result = cli("audit", VERA_API_KEY=tenant.keys["read"], ok=False)
    assert result.exit_code == 1 and "admin" in result.output
