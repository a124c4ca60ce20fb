"""How the CLI reports errors: every detail the server sends, JSON with --json, and a
folder that is not a model as a message instead of a traceback."""

from __future__ import annotations

import json

import pytest


def test_every_detail_of_a_validation_error_is_printed(cli):
    result = cli("keys", "create", "--name", "k", "--scopes", "read,bogus", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    # The server sends details as {"field", "message"}.
    assert "  scopes: unknown: ['bogus']" in result.output, result.output


def test_every_bad_line_of_a_dataset_is_printed(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 1}\n{"text": 3}\n{"text": "b", "label": 2}\n[1]\n')
    result = cli("datasets", "upload", str(bad), "--user", "alice", ok=False)
    assert result.exit_code == 1
    assert "  line 2: sequence-classification rows need" in result.output, result.output
    assert "  line 4: each line must be a JSON object" in result.output


def test_with_json_an_error_is_the_servers_envelope_on_stderr(cli):
    result = cli("keys", "revoke", "nope", "--json", ok=False)
    assert result.exit_code == 1 and result.stdout == ""
    error = json.loads(result.stderr)
    assert error["status"] == 404 and error["error"]["code"] == "not_found"
    assert set(error["error"]) == {"code", "message", "details"}
    invalid = json.loads(
        cli("keys", "create", "--name", "k", "--scopes", "bogus", "--json", ok=False).stderr
    )
    assert invalid["status"] == 422
    assert invalid["error"]["details"] == [{"field": "scopes", "message": "unknown: ['bogus']"}]


def test_with_json_an_unreachable_server_is_json_too(cli):
    result = cli("keys", "list", "--json", ok=False, VERA_URL="http://127.0.0.1:9")
    error = json.loads(result.stderr)
    assert error["status"] == 0 and error["error"]["code"] == "connection_error"


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({"notes.txt": "hello"}, "it has no config.json"),
        ({"config.json": "{not json"}, "config.json is not readable JSON"),
        ({"config.json": '{"hidden_size": 8}'}, "config.json names no model_type"),
        ({"config.json": '{"model_type": "bert"}'}, "it has no *.safetensors weights"),
        ({"config.json": '{"model_type": "nope"}', "w.safetensors": ""}, "is not a model folder"),
    ],
)
def test_registering_a_folder_that_is_not_a_model_says_so(cli, tmp_path, files, why):
    pytest.importorskip("transformers")
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    result = cli("base-models", "register", str(folder), ok=False)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert f"{folder} is not a model folder" in result.output and why in result.output
    assert "(not_a_model)" in result.output
    as_json = json.loads(cli("base-models", "register", str(folder), "--json", ok=False).stderr)
    assert as_json["error"]["code"] == "not_a_model" and as_json["status"] is None
