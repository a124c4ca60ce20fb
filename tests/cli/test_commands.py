"""Every API command of the CLI against the real app over HTTP: tables, --json, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.api import helpers


@pytest.fixture
def base(live_url, tenant):
    """A base model with one projection, registered through the API."""
    import httpx

    with httpx.Client(base_url=live_url) as http:
        model = helpers.register_base_model(http, tenant.auth())
        projection = helpers.register_projection(http, tenant.auth(), model["id"])
    return model, projection


def write_dataset(tmp_path, rows: int = 6, **fields) -> str:
    path = tmp_path / "data.jsonl"
    lines = [
        json.dumps({"text": f"row {i}", "label": ["no", "yes"][i % 2], **fields})
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_datasets_upload_guesses_the_task_and_prints_a_record(cli, tmp_path):
    result = cli("datasets", "upload", write_dataset(tmp_path), "--user", "alice")
    assert "sequence-classification" in result.output and "alice" in result.output
    lm = tmp_path / "lm.jsonl"
    lm.write_text('{"text": "once upon a time"}\n{"text": "the end"}\n')
    data = cli.json("datasets", "upload", str(lm), "--user", "alice")
    assert data["task"] == "causal-lm" and data["rows"] == 2
    assert cli.json("datasets", "show", data["id"])["blob_sha256"] == data["blob_sha256"]


def test_a_bad_dataset_names_the_line_and_stores_nothing(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "a"}\n{"text": 3, "label": "b"}\n')
    result = cli("datasets", "upload", str(bad), "--user", "alice", ok=False)
    assert result.exit_code == 1
    assert "line 2" in result.output and "Traceback" not in result.output


def test_jobs_submit_defaults_list_show_events_cancel(cli, base, dispatcher, tmp_path):
    model, projection = base
    job = cli.json(
        "jobs",
        "submit",
        "--user",
        "alice",
        "--dataset",
        write_dataset(tmp_path),
        "--steps",
        "5",
        "--lr",
        "0.03",
        "--set",
        "warmup_ratio=0.1",
        "--no-publish",
    )
    assert job["base_model_id"] == model["id"] and job["projection_id"] == projection["id"]
    assert job["hyperparameters"]["max_steps"] == 5
    assert job["hyperparameters"]["learning_rate"] == 0.03
    assert job["hyperparameters"]["warmup_ratio"] == 0.1
    assert job["publish"] is False and job["state"] == "queued"
    assert dispatcher.sent == [(job["id"], None)]  # sent to the broker after commit

    table = cli("jobs", "list").output
    assert job["id"] in table and "queued" in table
    assert [j["id"] for j in cli.json("jobs", "list", "--user", "alice")] == [job["id"]]
    assert cli.json("jobs", "list", "--user", "bob") == []
    assert "queued" in cli("jobs", "show", job["id"]).output
    cancelled = cli.json("jobs", "cancel", job["id"])
    assert cancelled["state"] == "cancelled"
    states = [
        e["data"]["state"] for e in cli.json("jobs", "events", job["id"]) if e["kind"] == "state"
    ]
    assert states == ["queued", "cancelled"]
    assert cli.json("jobs", "list", "--state", "cancelled")[0]["id"] == job["id"]


def test_jobs_submit_errors_say_what_to_fix_and_store_nothing(cli, base, settings, tmp_path):
    data = write_dataset(tmp_path)
    result = cli("jobs", "submit", "--user", "a", "--dataset", data, "--lr", "5", ok=False)
    assert result.exit_code == 2
    assert "learning_rate: Input should be less than or equal to 1" in result.output
    result = cli("jobs", "submit", "--user", "a", "--dataset", data, "--lr", "fast", ok=False)
    assert result.exit_code == 2 and 'neither a number nor "auto"' in result.output
    result = cli(
        "jobs", "submit", "--user", "a", "--dataset", data, "--set", "optimizer=sgd", ok=False
    )
    assert result.exit_code == 2 and "optimizer: Extra inputs are not permitted" in result.output
    result = cli(
        "jobs", "submit", "--user", "a", "--dataset", data, "--base-model", "nope", ok=False
    )
    assert result.exit_code == 2 and "base-models register" in result.output
    result = cli("jobs", "submit", "--user", "a", "--dataset", data, "--r", "99", ok=False)
    assert result.exit_code == 2 and "r=16" in result.output
    assert cli.json("jobs", "list") == []  # nothing was submitted
    blobs = settings.storage_url.removeprefix("file://")
    model_files = {f["sha256"] for f in base[0]["files"]}
    stored = [p for p in Path(blobs).rglob("*") if p.is_file() and p.name not in model_files]
    assert not stored  # nor any dataset uploaded


def test_watch_returns_the_outcome_of_a_finished_job(cli, base, tmp_path):
    job = cli.json("jobs", "submit", "--user", "alice", "--dataset", write_dataset(tmp_path))
    cli("jobs", "cancel", job["id"])
    result = cli("jobs", "watch", job["id"], ok=False)
    assert result.exit_code == 1 and "cancelled" in result.output
    lines = cli("jobs", "watch", job["id"], "--json", ok=False).output.splitlines()
    assert json.loads(lines[0])["data"] == {"state": "queued"}


@pytest.fixture
def adapter(app, tenant):
    blobs = [helpers.safetensors_blob([0.1 * i, 0.2, 0.3]) for i in (1, 2, 3)]
    return helpers.adapter_with_versions(app, tenant.id, blobs), blobs


def test_adapters_publish_rollback_history(cli, adapter):
    adapter_id, _ = adapter
    assert [a["id"] for a in cli.json("adapters", "list", "--user", "alice")] == [adapter_id]
    versions = cli.json("adapters", "versions", adapter_id)
    assert [v["number"] for v in versions] == [1, 2, 3]
    assert cli.json("adapters", "publish", adapter_id, "--version", "2")["version"] == 2
    moved = cli.json("adapters", "publish", "--user", "alice", "--version", "3")
    assert moved["version"] == 3
    stale = cli(
        "adapters", "publish", adapter_id, "--version", "1", "--if-generation", "1", ok=False
    )
    assert stale.exit_code == 1 and "moved since generation 1" in stale.output
    assert cli.json("adapters", "rollback", "--user", "alice")["version"] == 2
    history = cli.json("adapters", "history", adapter_id)
    assert [(e["kind"], e["to_version"]) for e in history] == [
        ("set", 2),
        ("set", 3),
        ("rollback", 2),
    ]
    assert "rollback" in cli("adapters", "history", "--user", "alice").output
    assert cli.json("adapters", "rollback", adapter_id, "--to", "3")["version"] == 3


def test_adapters_download_blob_and_peft_folder(cli, adapter, tmp_path):
    adapter_id, blobs = adapter
    cli("adapters", "publish", adapter_id, "--version", "2")
    target = tmp_path / "out.safetensors"
    result = cli("adapters", "download", "--user", "alice", "-o", str(target))
    assert target.read_bytes() == blobs[1] and "sha256 verified" in result.output
    info = cli.json("adapters", "download", adapter_id, "--version", "3", "-o", str(target))
    assert info["sha256"] == hashlib.sha256(blobs[2]).hexdigest()
    assert target.read_bytes() == blobs[2]
    folder = tmp_path / "peft"
    base = str(tmp_path)
    cli(
        "adapters",
        "download",
        adapter_id,
        "--version",
        "1",
        "--peft",
        str(folder),
        "--base-model-path",
        base,
    )
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "VERA" and config["base_model_name_or_path"] == base
    result = cli("adapters", "download", adapter_id, "--format", "lora", ok=False)
    assert result.exit_code == 2 and "--peft" in result.output
    assert (folder / "adapter_model.safetensors").stat().st_size > 0


def test_unknown_things_and_missing_arguments(cli):
    result = cli("adapters", "versions", "0" * 32, ok=False)
    assert result.exit_code == 1 and "404" in result.output
    result = cli("adapters", "versions", ok=False)
    assert result.exit_code == 2 and "--user" in result.output
    result = cli("adapters", "rollback", "--user", "nobody", ok=False)
    assert result.exit_code == 2 and "no adapter named 'default'" in result.output


def test_credentials_errors_carry_a_hint(cli, live_url):
    result = cli("jobs", "list", ok=False, VERA_API_KEY="vera_nope_nope")
    assert result.exit_code == 1 and "401" in result.output and "hint:" in result.output
    result = cli("jobs", "list", ok=False, VERA_API_KEY="")
    assert result.exit_code == 2 and "no API key" in result.output
    result = cli("jobs", "list", "--url", "http://127.0.0.1:9", ok=False)
    assert result.exit_code == 1
    assert (
        "cannot reach http://127.0.0.1:9" in result.output and "vera-registry up" in result.output
    )


def test_read_keys_cannot_submit_and_are_told_why(cli, tenant, base, tmp_path):
    result = cli(
        "jobs",
        "submit",
        "--user",
        "a",
        "--dataset",
        write_dataset(tmp_path),
        ok=False,
        VERA_API_KEY=tenant.keys["read"],
    )
    assert result.exit_code == 1 and "403" in result.output and "--scopes" in result.output


def test_keys_create_list_revoke(cli):
    key = cli.json("keys", "create", "--name", "ci", "--scopes", "read")
    assert key["api_key"].startswith("vera_") and key["scopes"] == ["read"]
    assert "ci" in cli("keys", "list").output
    assert cli("jobs", "list", VERA_API_KEY=key["api_key"]).exit_code == 0
    assert cli.json("keys", "revoke", key["id"])["revoked_at"]
    assert cli("jobs", "list", ok=False, VERA_API_KEY=key["api_key"]).exit_code == 1


def test_base_models_list_and_show(cli, base):
    model, projection = base
    assert cli.json("base-models", "list")[0]["id"] == model["id"]
    shown = cli.json("base-models", "show", "minilm")
    assert shown["projections"][0]["id"] == projection["id"]
    table = cli("base-models", "show", model["id"]).output
    assert "encoder.layer.0.attention.self.query" in table and "projections" in table


def test_jobs_show_prints_the_pack_a_job_trains_in(cli, app, base, tmp_path):
    from registry.db import session_scope
    from registry.jobs import lease

    data = write_dataset(tmp_path)
    ids = [
        cli.json("jobs", "submit", "--user", user, "--dataset", data, "--steps", "5")["id"]
        for user in ("alice", "bob", "carol")
    ]
    assert "pack" in cli("jobs", "show", ids[0]).output  # the line is there, empty while queued
    with session_scope(app.state.session_factory) as session:
        lease.claim_pack(session, ids[1], "w", 60, pack_id="p" * 32, room=8)
    shown = cli("jobs", "show", ids[1]).output
    assert f"{'p' * 32} (with 2 other jobs at its latest step)" in " ".join(shown.split())
    assert cli.json("jobs", "show", ids[0])["pack_size"] == 3
