"""Uploading a checkpoint folder for `base-models register`, with a progress bar."""

from __future__ import annotations

from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from registry.cli import output
from registry.client.api import RegistryClient


def upload_base_model(
    client: RegistryClient, folder: Path, body: dict, *, quiet: bool = False
) -> dict:
    """Send the files the registry does not hold yet (a re-run resumes), then register.
    Files already there count as done at once, so the bar shows what is left to send."""
    columns = (
        TextColumn("uploading {task.fields[files]} files ({task.fields[skipped]} already there)"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    total = sum(f["size"] for f in body["files"])
    with Progress(*columns, console=output.console(stderr=True), disable=quiet) as progress:
        bar = progress.add_task("upload", total=total, files=len(body["files"]), skipped=0)

        def advance(event: str, size: int) -> None:
            if event == "skip":
                progress.update(bar, skipped=progress.tasks[bar].fields["skipped"] + 1)
            progress.advance(bar, size)

        return client.upload_base_model(folder, body, advance)
