"""`vera-registry webhooks …`: the tenant's webhook endpoints and their deliveries."""

from __future__ import annotations

import click

from registry.cli import output
from registry.cli.app import main
from registry.cli.remote import Remote, remote_command
from registry.client import webhooks as api
from registry.webhooks.models import DELIVERY_STATES, WEBHOOK_EVENTS

WEBHOOK_COLUMNS = [
    ("id", "id"),
    ("url", "url"),
    ("event_types", "events", ",".join),
    ("description", "description"),
    ("created_at", "created", output.when),
]
DELIVERY_COLUMNS = [
    ("id", "id"),
    ("event_type", "event"),
    ("state", "state"),
    ("attempts", "attempts"),
    ("last_status", "status"),
    ("next_attempt_at", "next attempt", output.when),
    ("delivered_at", "delivered", output.when),
    ("last_error", "last error"),
    ("created_at", "created", output.when),
]


@main.group()
def webhooks() -> None:
    """Endpoints that receive signed events (job.succeeded, job.failed, alias.moved,
    user.deleted); creating and deleting them needs an admin key."""


@webhooks.command("create")
@click.argument("endpoint_url", metavar="URL")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Choice(WEBHOOK_EVENTS),
    help="An event type to receive (repeat for several).",
)
@click.option("--description", help="What the endpoint is for.")
@remote_command
def webhooks_create(
    remote: Remote, endpoint_url: str, events: tuple[str, ...], description: str | None
) -> None:
    """Register an https:// endpoint URL; its signing secret is shown this once."""
    created = api.create_webhook(remote.client, endpoint_url, list(events), description)
    remote.show(created, [*WEBHOOK_COLUMNS, ("secret", "secret")])
    if not remote.as_json:
        click.echo(
            "Keep the secret: receivers check each delivery's Vera-Signature header with it "
            "(registry.webhooks.verify).",
            err=True,
        )


@webhooks.command("list")
@remote_command
def webhooks_list(remote: Remote) -> None:
    """Every endpoint of the tenant (never the secrets)."""
    remote.show(api.list_webhooks(remote.client), WEBHOOK_COLUMNS)


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--state", type=click.Choice(DELIVERY_STATES), help="Only deliveries in this state.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@remote_command
def webhooks_deliveries(remote: Remote, webhook_id: str, state: str | None, limit: int) -> None:
    """The endpoint's deliveries, newest first: state, attempts, last answer."""
    rows = api.list_deliveries(remote.client, webhook_id, state=state, limit=limit)
    remote.show(rows, DELIVERY_COLUMNS)


@webhooks.command("redeliver")
@click.argument("webhook_id")
@click.argument("delivery_id")
@remote_command
def webhooks_redeliver(remote: Remote, webhook_id: str, delivery_id: str) -> None:
    """Send a delivery again now (same event id), with a fresh retry schedule."""
    remote.show(api.redeliver(remote.client, webhook_id, delivery_id), DELIVERY_COLUMNS)


@webhooks.command("ping")
@click.argument("webhook_id")
@remote_command
def webhooks_ping(remote: Remote, webhook_id: str) -> None:
    """Queue a webhook.ping event for this endpoint, to test the receiver."""
    remote.show(api.ping(remote.client, webhook_id), DELIVERY_COLUMNS)


@webhooks.command("delete")
@click.argument("webhook_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@remote_command
def webhooks_delete(remote: Remote, webhook_id: str, yes: bool) -> None:
    """Delete an endpoint and its deliveries (pending ones are never sent)."""
    if not yes:
        click.confirm(f"Delete webhook {webhook_id} and its deliveries?", abort=True)
    remote.show(api.delete_webhook(remote.client, webhook_id), WEBHOOK_COLUMNS)
