"""`vera-registry users`: a tenant's users with their adapters and live versions."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from registry.cli import output
from registry.cli.app import main
from registry.cli.params import TAG
from registry.cli.remote import Remote, remote_command

USER_COLUMNS = [
    ("user_id", "user"),
    ("name", "adapter"),
    ("id", "adapter id"),
    ("live_version", "live"),
    ("task", "task"),
    ("tags", "tags", ",".join),
    ("updated_at", "updated", output.when),
]


@main.group()
def users() -> None:
    """End users: who has adapters, and what is live for them."""


@users.command("list")
@click.option("--tag", type=TAG, help="Only adapters with this tag.")
@click.option("--base-model", "base_model_id", help="Only adapters of this base model (id).")
@click.option(
    "--updated-since",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    metavar="TIME",
    help="Only adapters changed since this time (UTC unless it has an offset).",
)
@remote_command
def users_list(
    remote: Remote, tag: str | None, base_model_id: str | None, updated_since: datetime | None
) -> None:
    """Users with their adapters matching the filters (one row an adapter)."""
    if updated_since is not None and updated_since.tzinfo is None:
        updated_since = updated_since.replace(tzinfo=UTC)
    found = remote.client.list_users(
        tag=tag, base_model_id=base_model_id, updated_since=updated_since
    )
    if remote.as_json:
        output.echo_json(found)
        return
    rows = [{"user_id": u["user_id"], **a} for u in found for a in u["adapters"]]
    remote.show(rows, USER_COLUMNS)
