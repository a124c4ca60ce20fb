"""`vera-registry users delete`, `adapters delete`, `adapters delete-version`: erasure, and
`vera-registry retention show|set`."""

from __future__ import annotations

import click

from registry.cli import output
from registry.cli.adapters import adapter_argument, adapter_id, adapters
from registry.cli.app import main
from registry.cli.params import USER_ID
from registry.cli.remote import Remote, remote_command
from registry.cli.users import users
from registry.client import erasure, retention
from registry.tenants.policy import RETENTION_FIELDS

yes_option = click.option("--yes", is_flag=True, help="Do not ask for confirmation.")


def _confirm(yes: bool, what: str) -> None:
    if not yes:
        click.confirm(f"Delete {what}? This cannot be undone", abort=True, err=True)


def _report(remote: Remote, what: str, done: dict) -> None:
    if remote.as_json:
        output.echo_json(done)
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(done["counts"].items()) if v)
    click.echo(f"deleted {what}: {counts or 'nothing'} (feed seq {done['feed_seq']})")


@users.command("delete")
@click.argument("user", type=USER_ID)
@yes_option
@remote_command
def users_delete(remote: Remote, user: str, yes: bool) -> None:
    """Erase USER: every adapter, version, alias, dataset, job and checkpoint of theirs in
    this tenant (admin key). Servers following the feed drop the user."""
    _confirm(yes, f"everything of user {user!r}")
    _report(remote, f"user {user!r}", erasure.delete_user(remote.client, user))


@adapters.command("delete")
@adapter_argument
@yes_option
@remote_command
def adapters_delete(
    remote: Remote, adapter: str | None, user: str | None, name: str, yes: bool
) -> None:
    """Delete an adapter with its versions, aliases, history and jobs (admin key)."""
    ident = adapter_id(remote, adapter, user, name)
    _confirm(yes, f"adapter {ident} with all its versions")
    _report(remote, f"adapter {ident}", erasure.delete_adapter(remote.client, ident))


@adapters.command("delete-version")
@adapter_argument
@click.option("--version", "number", type=int, required=True, help="Version to delete.")
@yes_option
@remote_command
def adapters_delete_version(
    remote: Remote, adapter: str | None, user: str | None, name: str, number: int, yes: bool
) -> None:
    """Delete one version (refused while an alias points at it); its number is not reused."""
    ident = adapter_id(remote, adapter, user, name)
    _confirm(yes, f"version {number} of adapter {ident}")
    done = erasure.delete_version(remote.client, ident, number)
    _report(remote, f"version {number} of adapter {ident}", done)


@main.group("retention")
def retention_group() -> None:
    """The tenant's retention policy (docs/operations.md, "Retention")."""


@retention_group.command("show")
@remote_command
def retention_show(remote: Remote) -> None:
    """The keep_* values in force, and which the tenant set itself."""
    remote.show(retention.get_retention(remote.client))


@retention_group.command("set")
@click.option("--keep-versions", type=click.IntRange(1), help="Newest versions kept per adapter.")
@click.option(
    "--keep-alias-days", type=click.IntRange(0), help="Keep versions aliased this recently."
)
@click.option("--keep-dataset-days", type=click.IntRange(0), help="Days idle datasets are kept.")
@click.option(
    "--reset",
    multiple=True,
    type=click.Choice([f.replace("_", "-") for f in RETENTION_FIELDS]),
    help="Back to the operator's default (repeatable).",
)
@remote_command
def retention_set(remote: Remote, reset: tuple[str, ...], **values: int | None) -> None:
    """Set the tenant's retention (admin key); unnamed fields stay as they are."""
    fields: dict[str, int | None] = {k: v for k, v in values.items() if v is not None}
    fields.update({name.replace("-", "_"): None for name in reset})
    if not fields:
        raise click.UsageError("nothing to set: pass --keep-versions, --keep-*-days or --reset")
    remote.show(retention.set_retention(remote.client, **fields))
