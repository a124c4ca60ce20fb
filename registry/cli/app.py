"""The `vera-registry` group, and how an error becomes a message that says what to fix."""

from __future__ import annotations

import json
from typing import Any

import click

from registry import __version__
from registry.client.api import ClientError
from registry.errors import RegistryError, error_envelope

# Set in the context's shared meta by commands given --json: their errors are JSON too.
JSON_ERRORS = "vera.json_errors"


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[JSON_ERRORS] = value
    return value


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    callback=_remember_json,
    help="Print JSON for scripts (errors too, on stderr).",
)


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


def _detail_line(detail: Any) -> str:
    """One entry of an error's details: {field, message}, {line, message} or anything else."""
    if not isinstance(detail, dict):
        return f"  {detail}"
    rest = dict(detail)
    message = rest.pop("message", None)
    field = rest.pop("field", None)
    where = str(field).removeprefix("body.") if field else None
    if where is None and "line" in rest:
        where = f"line {rest.pop('line')}"
    text = ", ".join(f"{k}: {v}" for k, v in rest.items())
    text = "; ".join(str(part) for part in (message, text) if part not in (None, ""))
    return f"  {where}: {text}" if where else f"  {text}"


def describe_error(error: ClientError) -> str:
    """The server's message, status and code, then every detail it sent, then a hint."""
    lines = [f"{error.message} ({error.status} {error.code})" if error.status else error.message]
    details = error.details
    if isinstance(details, dict):
        details = [details]
    lines.extend(_detail_line(detail) for detail in details or [])
    hint = _hint(error)
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


class JsonError(click.ClickException):
    """An error as one JSON object on stderr, for scripts that passed --json."""

    def __init__(self, status: int | None, code: str, message: str, details: Any) -> None:
        super().__init__(message)
        self.body = error_envelope(code, message, details)
        self.body["status"] = status

    def show(self, file=None) -> None:
        click.echo(json.dumps(self.body, default=str), err=True)


class VeraGroup(click.Group):
    """Turns a registry error anywhere below into a one-screen message (JSON on stderr with
    --json) and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClientError as error:
            if ctx.meta.get(JSON_ERRORS):
                raise JsonError(error.status, error.code, error.message, error.details) from error
            raise click.ClickException(describe_error(error)) from error
        except RegistryError as error:  # found here: a local check, or a server-side command
            if ctx.meta.get(JSON_ERRORS):
                raise JsonError(None, error.code, error.message, error.details) from error
            raise click.ClickException(f"{error.message} ({error.code})") from error
        except (click.UsageError, JsonError):
            raise  # usage errors stay text (exit status 2)
        except click.ClickException as error:
            if ctx.meta.get(JSON_ERRORS):
                raise JsonError(None, "cli_error", error.message, None) from error
            raise


@click.group(cls=VeraGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vera-registry")
def main() -> None:
    """VeRA Registry: train, version and publish per-user VeRA adapters.

    Start everything on this machine with `vera-registry up`, or see it all work with
    `vera-registry demo`. Commands that talk to a registry take --url/--api-key (or
    VERA_URL/VERA_API_KEY; after `up`, neither is needed) and --json for scripts.
    """
