"""Server-side commands: they read Settings and talk to the database and broker directly."""

from __future__ import annotations

import json

import click

from registry.cli.app import json_option, main
from registry.config import get_settings


@main.command()
@click.option("--revision", default="head", show_default=True, help="Target Alembic revision.")
def migrate(revision: str) -> None:
    """Bring the database schema to REVISION (run before starting a new release)."""
    from registry.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}: {_redact(settings.database_url)}")


def _redact(url) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url.get_secret_value()).render_as_string(hide_password=True)


@main.group()
def tenants() -> None:
    """Create tenants and their API keys (talks to the database directly)."""


def _session():
    from registry.db import make_engine, make_sessionmaker, session_scope

    return session_scope(make_sessionmaker(make_engine(get_settings().database_url)))


@tenants.command("create")
@click.argument("name")
@click.option("--scopes", default="admin", show_default=True, help="Comma-separated scopes.")
@json_option
def tenants_create(name: str, scopes: str, as_json: bool) -> None:
    """Create tenant NAME and a first API key (shown once)."""
    from registry.tenants import service

    with _session() as session:
        tenant = service.create_tenant(session, name)
        key, plaintext = service.create_api_key(session, tenant.id, scopes.split(","), "initial")
        out = {
            "tenant_id": tenant.id,
            "name": tenant.name,
            "key_id": key.id,
            "scopes": key.scopes,
            "api_key": plaintext,
        }
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(f"tenant {name} ({out['tenant_id']})\nAPI key (shown once): {plaintext}")


@tenants.command("list")
@json_option
def tenants_list(as_json: bool) -> None:
    """Every tenant."""
    from registry.cli import output
    from registry.tenants import service

    with _session() as session:
        rows = [
            {"id": t.id, "name": t.name, "created_at": t.created_at.isoformat()}
            for t in service.list_tenants(session)
        ]
    output.show(
        as_json, rows, [("id", "id"), ("name", "name"), ("created_at", "created", output.when)]
    )


@tenants.command("add-key")
@click.argument("name")
@click.option("--scopes", default="read", show_default=True, help="Comma-separated scopes.")
@click.option("--key-name", default="cli", show_default=True)
def tenants_add_key(name: str, scopes: str, key_name: str) -> None:
    """Create another API key for tenant NAME (shown once)."""
    from registry.tenants import service

    with _session() as session:
        tenant = service.get_tenant_by_name(session, name)
        _, plaintext = service.create_api_key(session, tenant.id, scopes.split(","), key_name)
    click.echo(plaintext)


@main.command()
@click.option("--host", default=None, help="Bind address (default: VERA_API_HOST).")
@click.option("--port", default=None, type=int, help="Port (default: VERA_API_PORT).")
@click.option("--workers", default=1, show_default=True, help="uvicorn worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Run the HTTP API."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "registry.main:create_app",
        factory=True,
        workers=workers,
        host=host or settings.api_host,
        port=port or settings.api_port,
    )


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--queues",
    default="train,maintenance",
    show_default=True,
    help="Comma-separated queues, e.g. train-a100 for one GPU pool.",
)
@click.option("--concurrency", default=1, show_default=True, help="Jobs at once (1 per GPU).")
@click.option("--beat", is_flag=True, help="Also run the periodic sweeper (one per cluster).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(queues: str, concurrency: int, beat: bool, celery_args: tuple[str, ...]) -> None:
    """Run a training worker (Celery); extra arguments go to `celery worker`."""
    from workers.tasks import app

    argv = [
        "worker",
        "--queues",
        queues,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv.append("--beat")
    app.worker_main(argv + list(celery_args))


@main.command()
def sweep() -> None:
    """Run the sweeper, retention and blob GC once: send lost jobs, recover dead workers'
    jobs, delete versions and purge datasets past retention, collect unreferenced blobs."""
    from workers.tasks import blob_gc_task, retention_task, sweep_task

    click.echo(json.dumps({**sweep_task(), **retention_task(), **blob_gc_task()}))
