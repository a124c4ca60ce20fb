"""`vera-registry demo` end to end, as the README tells a new user to run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.workers.conftest import REPO

pytestmark = pytest.mark.slow


def test_demo_personalizes_three_users_and_rolls_one_back(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERA_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "registry.cli", "demo", "--report", str(report)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    measured = json.loads(report.read_text())

    assert measured["packs"] == 1  # the three users trained as one pack
    users = measured["users"]
    assert set(users) == {"alice", "bob", "carol"}
    for user in users.values():
        assert user["accuracy_before"] <= 0.75, users  # the base model knows no one's rule
        assert user["accuracy_after"] >= 0.9, users  # each adapter learned its user's rule
        assert user["blob_bytes"] < 64 * 1024
    assert measured["peft_max_abs_diff"] < 1e-4  # the PEFT folder gives the runtime's logits

    rollback = measured["rollback"]
    assert rollback["reloaded_on_publish"] == ["carol"]  # the runtime followed the feed
    assert rollback["reloaded_on_rollback"] == ["carol"]
    assert rollback["accuracy_bad"]["carol"] <= 0.75  # the shuffled-label version is bad
    for uid in ("alice", "bob"):  # nobody else moved
        assert rollback["accuracy_bad"][uid] == users[uid]["accuracy_after"]
    assert rollback["accuracy_restored"] == {u: users[u]["accuracy_after"] for u in users}
    assert rollback["live_version"] == 1
    assert rollback["live_versions"] == {"alice": 1, "bob": 1, "carol": 1}  # GET /v1/users

    sizes = measured["sizes"]
    assert sizes["lora_params"] > 5 * sizes["vera_params"]
    assert sizes["lora_bytes"] > 5 * sizes["vera_bytes"]
    assert measured["seconds"] < 300  # the budget on 2 CPU cores
    assert not list((tmp_path / "tmp").iterdir())  # its registry and files are gone
