"""The `vera-registry` group, and how an error becomes a message that says what to fix."""

from __future__ import annotations

import click

from registry import __version__
from registry.client.api import ClientError
from registry.errors import RegistryError


def _hint(error: ClientError) -> str | None:
    if error.status == 0 and error.code == "connection_error":
        return (
            "is the registry running? Start one with `vera-registry up`, or point --url "
            "(VERA_URL) at it"
        )
    if error.status == 401:
        return (
            "pass --api-key or set VERA_API_KEY (`vera-registry up` saves one for the CLI; "
            "`vera-registry tenants create NAME` makes one)"
        )
    if error.status == 403:
        return (
            "use a key with the scope this needs "
            "(`vera-registry tenants add-key NAME --scopes train`)"
        )
    return None


def describe_error(error: ClientError) -> str:
    lines = [f"{error.message} ({error.status} {error.code})" if error.status else error.message]
    details = error.details if isinstance(error.details, list) else []
    for detail in details[:10]:
        if isinstance(detail, dict) and "msg" in detail:
            where = ".".join(str(p) for p in detail.get("loc", []) if p != "body")
            lines.append(f"  {where}: {detail['msg']}" if where else f"  {detail['msg']}")
    hint = _hint(error)
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


class VeraGroup(click.Group):
    """Turns a registry error anywhere below into a one-screen message and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClientError as error:
            raise click.ClickException(describe_error(error)) from error
        except RegistryError as error:  # from the server commands that use services directly
            raise click.ClickException(f"{error.message} ({error.code})") from error


@click.group(cls=VeraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vera-registry")
def main() -> None:
    """VeRA Registry: train, version and publish per-user VeRA adapters.

    Start everything on this machine with `vera-registry up`, or see it all work with
    `vera-registry demo`. Commands that talk to a registry take --url/--api-key (or
    VERA_URL/VERA_API_KEY; after `up`, neither is needed) and --json for scripts.
    """
