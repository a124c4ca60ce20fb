"""The CLI refuses user ids and names outside the registry's rules before it sends anything
(usage error, exit status 2), with the rule in the message."""

from __future__ import annotations

import pytest

from tests.cli.conftest import app, cli, dispatcher, live_url, settings, tenant  # noqa: F401

CASES = [
    (("adapters", "list", "--user", "org/alice"), "a user id must be"),
    (("adapters", "versions", "--user", "../etc"), "a user id must be"),
    (("adapters", "versions", "--user", "alice", "--name", "l\u0456ve"), "an adapter name must"),
    (("adapters", "publish", "x", "--version", "1", "--alias", "Live"), "an alias name must"),
    (("adapters", "rollback", "x", "--alias", "\uff4c\uff49\uff56\uff45"), "an alias name must"),
    (("adapters", "history", "x", "--alias", "a b"), "an alias name must"),
    (("jobs", "list", "--user", "a?b#c"), "a user id must be"),
    (("jobs", "submit", "--user", "a%b", "--dataset", "d"), "a user id must be"),
    (("jobs", "submit", "--user", "bob", "--dataset", "d", "--adapter-name", "A"), "adapter name"),
]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_bad_ids_and_names_are_usage_errors(cli, tmp_path, args, message):  # noqa: F811
    result = cli(*args, ok=False)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_dataset_upload_checks_the_user_first(cli, tmp_path):  # noqa: F811
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    result = cli("datasets", "upload", str(data), "--user", "org/alice", ok=False)
    assert result.exit_code == 2 and "a user id must be" in result.output
    ok = cli.json("datasets", "upload", str(data), "--user", "alice@corp.example")
    assert ok["user_id"] == "alice@corp.example"
