"""Quotas: `tenants quotas` (server side, the operator's) and `usage` (a tenant's, remote)."""

from __future__ import annotations

import click

from registry.cli import output
from registry.cli.admin import _session, tenants
from registry.cli.app import json_option, main
from registry.cli.remote import Remote, remote_command
from registry.tenants.policy import QUOTA_FIELDS

USAGE_COLUMNS = [("quota", "quota"), ("limit", "limit"), ("used", "used")]


def _quota_rows(quotas: dict) -> list[dict]:
    rows = []
    for name, quota in quotas.items():
        limit = "none" if quota["limit"] is None else quota["limit"]
        if quota.get("own") is False:
            limit = f"{limit} (default)"
        rows.append({"quota": name, "limit": limit, "used": quota["used"]})
    return rows


@tenants.command("quotas")
@click.argument("name")
@click.option("--max-active-jobs", type=click.IntRange(1, 2**31 - 1), help="Queued + running.")
@click.option("--max-stored-bytes", type=click.IntRange(0, 2**63 - 1), help="Versions + datasets.")
@click.option("--max-users", type=click.IntRange(1, 2**31 - 1), help="Distinct user ids.")
@click.option(
    "--max-requests-per-s", type=click.FloatRange(0, 1e6, min_open=True), help="Per API key."
)
@click.option(
    "--reset",
    "resets",
    multiple=True,
    type=click.Choice(QUOTA_FIELDS),
    help="Back to the operator's default (VERA_MAX_…); repeatable.",
)
@json_option
def tenants_quotas(name: str, resets: tuple[str, ...], as_json: bool, **values) -> None:
    """Show tenant NAME's quotas and usage; with options, set them first (audited)."""
    from registry.config import get_settings
    from registry.tenants import quotas, service

    changes = {field: value for field, value in values.items() if value is not None}
    both = sorted(set(changes) & set(resets))
    if both:
        raise click.UsageError(f"both set and reset: {', '.join(both)}")
    changes.update(dict.fromkeys(resets))
    with _session() as session:
        tenant = service.get_tenant_by_name(session, name)
        quotas.set_quotas(session, tenant.id, changes)
        report = quotas.quota_report(session, tenant.id, get_settings())
    if as_json:
        output.echo_json({"tenant": name, "quotas": report})
    else:
        output.table(_quota_rows(report), USAGE_COLUMNS, title=f"tenant {name}")


@main.command()
@remote_command
def usage(remote: Remote) -> None:
    """This tenant's usage against its quotas, and its retention."""
    from registry.client.usage import get_usage

    data = get_usage(remote.client)
    if remote.as_json:
        output.echo_json(data)
        return
    output.table(_quota_rows(data["quotas"]), USAGE_COLUMNS, title="quotas")
    output.record(data["retention"], title="retention")
