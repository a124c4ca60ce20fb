"""`vera-registry audit`: the tenant's audit log (needs an admin key)."""

from __future__ import annotations

import json

import click

from registry.cli import output
from registry.cli.app import main
from registry.cli.remote import Remote, remote_command

AUDIT_COLUMNS = [
    ("id", "id"),
    ("created_at", "at", output.when),
    ("actor_key_id", "actor", lambda k: k or "(server)"),
    ("action", "action"),
    ("adapter_id", "adapter"),
    ("target", "target"),
    ("details", "details", lambda d: _pairs(d or {})),
]


def _pairs(details: dict) -> str:
    """`key=value` pairs (values as JSON, so a reason with spaces stays one value)."""
    return " ".join(f"{k}={json.dumps(v)}" for k, v in details.items() if v is not None)


@main.command("audit")
@click.option("--action", help="Only this action, e.g. alias.set, key.revoked, user.erased.")
@click.option("--since", help="Only events at or after this time (ISO 8601 with a zone).")
@remote_command
def audit(remote: Remote, action: str | None, since: str | None) -> None:
    """Who did what, oldest first: key changes, alias moves, deletions, policy changes."""
    remote.show(list(remote.client.audit_events(action, since)), AUDIT_COLUMNS)
