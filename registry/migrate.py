"""Schema migrations (Alembic) callable from code, the CLI and tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    ini = REPO_ROOT / "alembic.ini"
    if not ini.exists():
        raise FileNotFoundError(
            f"{ini} not found: run migrations from a source checkout or an image that ships "
            "alembic.ini and migrations/"
        )
    config = Config(str(ini))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
