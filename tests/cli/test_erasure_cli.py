"""`users delete`, `adapters delete`, `adapters delete-version` and `retention show|set`
against the real app over HTTP."""

from __future__ import annotations

import httpx

from tests.api import helpers


def _adapter(app, tenant, live_url, user: str, versions: int = 2) -> str:
    blobs = [helpers.safetensors_blob([1.0, float(n)]) for n in range(versions)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs, user_id=user)
    with httpx.Client(base_url=live_url) as http:
        response = http.put(
            f"/v1/adapters/{adapter_id}/aliases/live", json={"version": 1}, headers=tenant.auth()
        )
        assert response.status_code == 200
    return adapter_id


def test_delete_version_adapter_and_user(cli, app, tenant, live_url):
    adapter_id = _adapter(app, tenant, live_url, "alice")
    refused = cli("adapters", "delete-version", adapter_id, "--version", "1", "--yes", ok=False)
    assert refused.exit_code != 0 and "alias 'live'" in refused.output
    done = cli("adapters", "delete-version", "--user", "alice", "--version", "2", "--yes")
    assert "versions 1" in done.output
    asked = cli("adapters", "delete", adapter_id, ok=False)  # no --yes, no answer: aborted
    assert asked.exit_code == 1 and "cannot be undone" in asked.output
    deleted = cli.json("adapters", "delete", adapter_id, "--yes")
    assert deleted["adapter_ids"] == [adapter_id] and deleted["counts"]["versions"] == 1

    _adapter(app, tenant, live_url, "bob")
    erased = cli.json("users", "delete", "bob", "--yes")
    assert erased["counts"]["adapters"] == 1
    again = cli("users", "delete", "bob", "--yes", ok=False)
    assert "has nothing in this tenant" in again.output and "404" in again.output


def test_retention_show_and_set(cli):
    assert cli.json("retention", "show")["keep_versions"] == 10
    shown = cli.json("retention", "set", "--keep-versions", "4", "--keep-dataset-days", "7")
    assert shown["keep_versions"] == 4 and shown["keep_dataset_days"] == 7
    reset = cli.json("retention", "set", "--reset", "keep-versions")
    assert reset["keep_versions"] == 10 and reset["tenant_set"] == ["keep_dataset_days"]
    assert "nothing to set" in cli("retention", "set", ok=False).output
