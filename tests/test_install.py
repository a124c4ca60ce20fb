"""A regular (non-editable) install works on its own: migrate, then `up`, from any folder.

The fresh venv sees the shared venv's already-installed dependencies through a .pth path
line (no network, seconds instead of minutes); only this project is built and installed,
from a copy holding just what the distribution ships, so nothing can lean on the checkout.
"""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from registry.cli.local import free_port
from tests.processes import get_when_up

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("pyproject.toml", "README.md", "registry", "workers")

pytestmark = pytest.mark.slow


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VERA_", "PYTHON", "VIRTUAL_ENV", "PIP_"))
    }
    return {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding a wheel-style install of this project and nothing of the checkout."""
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    source.mkdir()
    for name in SHIPPED:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name, **({"ignore": _ignore} if copy is shutil.copytree else {}))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # A path line adds the shared packages without running their .pth hooks, so the
    # shared venv's editable finder (pointing at a checkout) stays out.
    (purelib / "shared-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", source],
        check=True,
        cwd=root,
        env=_clean_env(),
        timeout=240,
    )
    shutil.rmtree(source)  # the install must not need its source any more
    return venv


def _ignore(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


def test_installed_package_imports_from_the_venv_not_a_checkout(installed):
    code = "import registry, workers.tasks; print(registry.__file__)"
    result = subprocess.run(
        [installed / "bin" / "python", "-c", code],
        capture_output=True,
        text=True,
        cwd=installed,
        env=_clean_env(VERA_HOME=str(installed / "home")),
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed), result.stdout


def test_installed_migrate_then_up_serves_healthz(installed, tmp_path):
    env = _clean_env(VERA_HOME=str(tmp_path / "home"))
    script = installed / "bin" / "vera-registry"
    migrated = subprocess.run(
        [script, "migrate"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "home" / "registry.db").exists()
    port = free_port()
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        up = subprocess.Popen(
            [script, "up", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert '"ready"' in get_when_up(f"http://127.0.0.1:{port}/readyz", up, log)
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
