"""Schema migrations (Alembic) callable from code, the CLI and tests.

The migration scripts ship inside the package (`registry/migrations`), so a regular
`pip install` can migrate as well as a source checkout.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from pydantic import SecretStr

from registry.config import reveal

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | SecretStr) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["url"] = reveal(url)
    return config


def upgrade(url: str | SecretStr, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | SecretStr, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
