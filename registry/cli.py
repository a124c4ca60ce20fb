"""The `vera-registry` command."""

from __future__ import annotations

import click

from registry import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vera-registry")
def main() -> None:
    """VeRA Registry: train, version and publish per-user VeRA adapters."""


if __name__ == "__main__":
    main()
