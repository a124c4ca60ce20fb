"""`users list`, `adapters update` and the --tag filters and submit options, over HTTP."""

from __future__ import annotations

from tests.api import helpers
from tests.cli.test_commands import base, write_dataset  # noqa: F401  (fixture)


def test_update_tags_and_filter_adapters_versions_and_users(cli, app, tenant):
    blobs = [helpers.safetensors_blob([0.1 * i, 0.2]) for i in (1, 2)]
    adapter_id = helpers.adapter_with_versions(app, tenant.id, blobs)
    helpers.adapter_with_versions(app, tenant.id, blobs[:1], user_id="bob")
    updated = cli.json(
        "adapters", "update", adapter_id, "--description", "support bot", "--add-tag", "de"
    )
    assert (updated["description"], updated["tags"]) == ("support bot", ["de"])
    both = cli.json("adapters", "update", "--user", "alice", "--add-tag", "prod")
    assert both["tags"] == ["de", "prod"]
    assert cli.json("adapters", "update", adapter_id, "--remove-tag", "de")["tags"] == ["prod"]
    version = cli.json("adapters", "update", adapter_id, "--version", "2", "--add-tag", "rc")
    assert (version["number"], version["tags"]) == (2, ["rc"])
    assert [v["number"] for v in cli.json("adapters", "versions", adapter_id, "--tag", "rc")] == [2]
    assert cli.json("adapters", "list", "--user", "alice", "--tag", "nope") == []
    table = cli("adapters", "list", "--user", "alice").output
    assert "prod" in table and "support bot" in table
    cli.json("adapters", "publish", adapter_id, "--version", "2")

    users = cli.json("users", "list")
    assert [u["user_id"] for u in users] == ["alice", "bob"]
    assert users[0]["adapters"][0]["live_version"] == 2
    assert [u["user_id"] for u in cli.json("users", "list", "--tag", "prod")] == ["alice"]
    assert cli.json("users", "list", "--updated-since", "2999-01-01") == []
    assert len(cli.json("users", "list", "--updated-since", "2000-01-01T00:00:00")) == 2
    table = cli("users", "list").output
    assert "alice" in table and adapter_id in table and "bob" in table

    bad = cli("adapters", "update", adapter_id, "--add-tag", "Not A Tag", ok=False)
    assert bad.exit_code == 2 and "a tag must be" in bad.output
    nothing = cli("adapters", "update", adapter_id, ok=False)
    assert nothing.exit_code == 2 and "say what to change" in nothing.output


def test_submit_with_description_and_tags(cli, base, tmp_path):  # noqa: F811
    job = cli.json(
        "jobs",
        "submit",
        "--user",
        "alice",
        "--dataset",
        write_dataset(tmp_path),
        "--description",
        "first try",
        "--tag",
        "exp:1",
        "--tag",
        "nightly",
        "--adapter-tag",
        "prod",
    )
    assert (job["description"], job["tags"]) == ("first try", ["exp:1", "nightly"])
    assert cli.json("adapters", "list", "--user", "alice")[0]["tags"] == ["prod"]
    assert "nightly" in cli("jobs", "show", job["id"]).output
    datasets = cli.json("datasets", "list", "--user", "alice")
    assert [d["id"] for d in datasets] == [job["dataset_id"]]
