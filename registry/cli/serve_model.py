"""`vera-registry serve-model`: the mixed-user inference server (registry/serving)."""

from __future__ import annotations

import logging

import click

from registry.cli.app import main
from registry.cli.params import ADAPTER_NAME, ALIAS_NAME, USER_ID


@main.command("serve-model")
@click.option("--base-model", "base_model_id", required=True, help="The base model's id.")
@click.option(
    "--registry",
    "registry_url",
    envvar="VERA_REGISTRY_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The registry's URL (VERA_REGISTRY_URL).",
)
@click.option("--api-key", envvar="VERA_API_KEY", help="A read key of the tenant (VERA_API_KEY).")
@click.option(
    "--model-path",
    type=click.Path(exists=True, file_okay=False),
    help="The base model's folder (checked against the registry's weights hash); "
    "default: download it into --cache-dir.",
)
@click.option("--adapter", type=ADAPTER_NAME, default="default", show_default=True)
@click.option("--alias", type=ALIAS_NAME, default="live", show_default=True)
@click.option(
    "--user",
    type=USER_ID,
    help="Take the projection and target modules from this user's adapter "
    "(default: the adapter most recently published for the base model).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=int)
@click.option("--max-batch-tokens", default=4096, show_default=True, type=click.IntRange(1))
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0))
@click.option("--max-users", default=1024, show_default=True, type=click.IntRange(1))
@click.option("--max-queue", default=256, show_default=True, type=click.IntRange(1))
@click.option("--max-new-tokens", default=512, show_default=True, type=click.IntRange(1))
@click.option("--max-prompt-tokens", default=4096, show_default=True, type=click.IntRange(1))
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda:0.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default="~/.cache/vera-serve",
    show_default=True,
    help="Adapter blobs and downloaded base models.",
)
def serve_model(**options) -> None:
    """Serve a base model with every user's adapter: OpenAI-compatible HTTP, users mixed
    per batch (docs/client.md, "Serving")."""
    import uvicorn

    from registry.client.api import RegistryClient
    from registry.serving.app import ServeOptions, create_serving_app
    from registry.serving.model import load_model
    from registry.serving.requests import Limits

    if not options["api_key"]:
        raise click.UsageError("no API key: pass --api-key or set VERA_API_KEY")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = RegistryClient(
        options["registry_url"].rstrip("/"), options["api_key"], cache_dir=options["cache_dir"]
    )
    loaded = load_model(
        client,
        options["base_model_id"],
        model_path=options["model_path"],
        cache_dir=client.cache_dir,
        adapter=options["adapter"],
        alias=options["alias"],
        user=options["user"],
        device=options["device"],
        capacity=min(options["max_users"] + 1, 64),
    )
    serve = ServeOptions(
        max_batch_tokens=options["max_batch_tokens"],
        max_wait_ms=options["max_wait_ms"],
        max_users=options["max_users"],
        max_queue=options["max_queue"],
        limits=Limits(options["max_new_tokens"], options["max_prompt_tokens"]),
    )
    app = create_serving_app(loaded, client, serve)
    click.echo(f"serving {loaded.base['name']} on http://{options['host']}:{options['port']}")
    uvicorn.run(app, host=options["host"], port=options["port"], log_level="info")
