"""The distribution: console script and a torch-free API side."""

import subprocess
import sys

# Every module the API process imports; none may pull in torch.
API_MODULES = [
    "registry.config",
    "registry.errors",
    "registry.db",
    "registry.cli",
    "registry.main",
    "registry.storage",
    "registry.s3",
    "registry.models",
]


def test_console_script_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "registry.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "vera-registry" in result.stdout or "Usage" in result.stdout


def test_api_side_imports_without_torch() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {API_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "from registry.config import Settings\n"
        "from registry.main import create_app\n"
        "create_app(Settings(_env_file=None, database_url='sqlite://', storage_url='file://./b'))\n"
        "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not leaked, leaked[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
