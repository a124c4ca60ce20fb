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


# Declared dependencies loaded by name rather than imported: the SQLAlchemy driver of
# postgresql+psycopg:// URLs and kombu's redis:// transport.
LOADED_BY_URL = {"psycopg", "redis"}


def _normalized(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements() -> dict[str, str]:
    import re
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    specs = {}
    for requirement in project["project"]["dependencies"]:
        specs[_normalized(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))] = requirement
    return specs


def test_every_base_dependency_is_used() -> None:
    import re
    from importlib.metadata import packages_distributions
    from pathlib import Path

    root = Path(__file__).parents[1]
    source = "\n".join(
        p.read_text() for d in ("registry", "workers") for p in (root / d).rglob("*.py")
    )
    imported = set(re.findall(r"^\s*(?:from|import)\s+(\w+)", source, re.M))
    owners = packages_distributions()
    used = {_normalized(dist) for module in imported for dist in owners.get(module, [])}
    unused = set(_requirements()) - used - LOADED_BY_URL
    assert not unused, f"declared but never imported: {sorted(unused)}"


def test_fastapi_lower_bound_has_depends_scope() -> None:
    # registry/api/deps.py uses Depends(scope="function"), new in FastAPI 0.121.1.
    import re

    bound = re.search(r">=\s*([\d.]+)", _requirements()["fastapi"]).group(1)
    assert tuple(map(int, bound.split("."))) >= (0, 121, 1)


def test_local_env_files_are_not_committed() -> None:
    from pathlib import Path

    ignored = (Path(__file__).parents[1] / ".gitignore").read_text().split()
    assert ".env" in ignored
