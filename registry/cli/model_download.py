"""`vera-registry base-models download`: a base model's folder, every file sha256-checked."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from registry.cli import output
from registry.cli.remote import Remote, base_models, find_base_model, remote_command


@base_models.command("download")
@click.argument("base_model")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@remote_command
def base_models_download(remote: Remote, base_model: str, directory: Path) -> None:
    """Download a base model (id or name) into DIRECTORY; intact files are kept, so a re-run
    resumes. The folder is what transformers' from_pretrained and inference servers load."""
    model = find_base_model(remote, base_model)
    columns = (
        TextColumn("{task.fields[skipped]} files already there"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    total = sum(f["size"] for f in model["files"])
    with Progress(*columns, console=output.console(stderr=True), disable=remote.as_json) as bar:
        task = bar.add_task("download", total=total, skipped=0)

        def advance(event: str, size: int) -> None:
            if event == "skip":
                bar.update(task, skipped=bar.tasks[task].fields["skipped"] + 1)
            bar.advance(task, size)

        remote.client.download_base_model(model["id"], directory, advance)
    result = {"base_model_id": model["id"], "path": str(directory), "files": len(model["files"])}
    if remote.as_json:
        output.echo_json(result)
    else:
        click.echo(f"{model['name']} → {directory}/ ({len(model['files'])} files, sha256 verified)")
