"""`vera-registry jobs`: submit, follow (a live progress bar), list, show, cancel."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from registry.cli import output
from registry.cli.app import main
from registry.cli.params import ADAPTER_NAME, TAG, USER_ID
from registry.cli.remote import (
    Remote,
    default_targets,
    find_base_model,
    remote_command,
    split_list,
    upload,
)
from registry.client.api import RegistryClient
from registry.jobs.schemas import Hyperparameters
from registry.vera.auto_lr import AUTO

TERMINAL = ("succeeded", "failed", "cancelled")
JOB_COLUMNS = [
    ("id", "id"),
    ("user_id", "user"),
    ("state", "state"),
    ("step", "step", str),
    ("total_steps", "of"),
    ("attempts", "attempts"),
    ("created_at", "created", output.when),
    ("finished_at", "finished", output.when),
]
JOB_FIELDS = [
    *JOB_COLUMNS[:3],
    ("progress", "progress", lambda p: f"{p:.0%}"),
    *JOB_COLUMNS[3:6],
    ("adapter_id", "adapter"),
    ("dataset_id", "dataset"),
    ("base_model_id", "base model"),
    ("projection_id", "projection"),
    ("publish", "publish"),
    ("queue", "queue"),
    ("description", "description"),
    ("tags", "tags", ",".join),
    ("hyperparameters", "hyperparameters"),
    ("result_version_id", "result version"),
    ("pack", "pack"),
    ("error_code", "error"),
    ("error_message", "error message"),
    ("created_at", "created", output.when),
    ("started_at", "started", output.when),
    ("finished_at", "finished", output.when),
]
EVENT_COLUMNS = [
    ("seq", "seq"),
    ("created_at", "at", output.when),
    ("kind", "kind"),
    ("data", "data"),
]


@main.group()
def jobs() -> None:
    """Training jobs: one user's dataset in, one adapter version out."""


def _projection(remote: Remote, base_model_id: str, ref: str | None, rank: int | None) -> dict:
    projections = remote.client.list_projections(base_model_id)
    matches = [p for p in projections if (ref in (None, p["id"])) and (rank in (None, p["r"]))]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(f"{p['id']} (r={p['r']}, seed={p['seed']})" for p in projections)
    if not matches:
        raise click.UsageError(
            f"no such projection of base model {base_model_id} (it has: {listed or 'none'}); "
            "register one with `vera-registry base-models register PATH --r R`"
        )
    raise click.UsageError(f"pass --projection: base model {base_model_id} has {listed}")


class _LearningRate(click.ParamType):
    """A number, or "auto" (candidate rates trained side by side, the best one kept)."""

    name = "RATE|auto"

    def convert(self, value: Any, param, ctx) -> float | str:
        if value == AUTO or isinstance(value, float):
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f'{value!r} is neither a number nor "{AUTO}"', param, ctx)


def _hyperparameters(values: dict[str, Any], extra: tuple[str, ...]) -> dict[str, Any]:
    """The chosen hyperparameters, checked against the server's own ranges."""
    chosen = {k: v for k, v in values.items() if v is not None}
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.UsageError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            chosen[key.strip()] = json.loads(raw)
        except ValueError:
            chosen[key.strip()] = raw
    try:
        Hyperparameters.model_validate(chosen)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(f"bad hyperparameters: {problems}") from None
    return chosen


@jobs.command("submit")
@click.option("--user", type=USER_ID, required=True, help="The user to personalize for.")
@click.option("--dataset", required=True, help="A dataset id, or a .jsonl file to upload.")
@click.option("--base-model", help="Id or name [default: the only one registered].")
@click.option("--projection", help="Projection id [default: the base model's only one].")
@click.option("--r", "rank", type=int, help="Pick the base model's projection of this rank.")
@click.option("--targets", help="Comma-separated layers [default: attention q/v].")
@click.option("--adapter-name", type=ADAPTER_NAME, default="default", show_default=True)
@click.option("--steps", "max_steps", type=int, help="Training steps (overrides --epochs).")
@click.option("--epochs", type=int)
@click.option(
    "--lr",
    "learning_rate",
    type=_LearningRate(),
    help='Learning rate of the λ vectors, or "auto": the best of several candidates.',
)
@click.option("--batch-size", type=int)
@click.option("--max-seq-len", type=int)
@click.option("--eval-fraction", type=float, help="Share of rows held out for eval.")
@click.option("--seed", type=int)
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE", help="Any hyperparameter.")
@click.option("--warm-start", is_flag=True, help="Start from the adapter's live version.")
@click.option("--no-publish", is_flag=True, help="Keep `live` where it is.")
@click.option("--queue", help="Route to a worker pool's queue.")
@click.option("--description", help="Description of the version this job makes.")
@click.option("--tag", "tags", type=TAG, multiple=True, help="Tag of that version (repeatable).")
@click.option("--adapter-description", help="Replace the adapter's description.")
@click.option(
    "--adapter-tag",
    "adapter_tags",
    type=TAG,
    multiple=True,
    help="Replace the adapter's tags with these (repeatable).",
)
@click.option("--idempotency-key", help="Submitting again with it returns the same job.")
@click.option("--watch", is_flag=True, help="Follow the job with a live progress bar.")
@remote_command
def jobs_submit(remote: Remote, **options: Any) -> None:
    """Train a new adapter version for one user; with --watch, wait for it."""
    # Everything that can be wrong locally is checked before a dataset is uploaded.
    base = find_base_model(remote, options["base_model"])
    projection = _projection(remote, base["id"], options["projection"], options["rank"])
    targets = split_list(options["targets"]) or default_targets(base["layers"])
    names = ("max_steps", "epochs", "learning_rate", "batch_size", "max_seq_len", "seed")
    hyper = _hyperparameters({n: options[n] for n in (*names, "eval_fraction")}, options["extra"])
    dataset = options["dataset"]
    if Path(dataset).is_file():
        dataset = upload(remote, Path(dataset), options["user"], None)["id"]
    body = {
        "user_id": options["user"],
        "adapter_name": options["adapter_name"],
        "dataset_id": dataset,
        "base_model_id": base["id"],
        "projection_id": projection["id"],
        "target_modules": targets,
        "hyperparameters": hyper,
        "warm_start": options["warm_start"],
        "publish": not options["no_publish"],
        "queue": options["queue"],
        "description": options["description"],
        "tags": list(options["tags"]),
        "adapter_description": options["adapter_description"],
        "adapter_tags": list(options["adapter_tags"]) or None,
    }
    job = remote.client.submit_job(body, idempotency_key=options["idempotency_key"])
    if not options["watch"]:
        remote.show(job, JOB_FIELDS)
        return
    if not remote.as_json:
        click.echo(f"job {job['id']} for user {job['user_id']}: queued")
    _finish(remote, watch(remote.client, job["id"], as_json=remote.as_json))


def _finish(remote: Remote, job: dict) -> None:
    if remote.as_json:
        output.echo_json(job)
    if job["state"] == "succeeded":
        if not remote.as_json:
            version = remote.client.list_versions(job["adapter_id"])[-1]
            metrics = ", ".join(
                f"{k} {v:.4g}" for k, v in version["metrics"].items() if k.startswith("eval_")
            )
            live = " (live)" if job["publish"] else ""
            click.echo(
                f"succeeded: adapter {job['adapter_id']} v{version['number']}{live}, "
                f"{version['size_bytes']:,} bytes{'; ' + metrics if metrics else ''}"
            )
        return
    reason = job.get("error_message") or job["state"]
    raise click.ClickException(f"job {job['id']} {job['state']}: {reason}")


def watch(client: RegistryClient, job_id: str, *, as_json: bool = False) -> dict:
    """Follow a job's events until it ends; a progress bar (step, loss, ETA) for people,
    one JSON line per event for scripts. Returns the final job."""
    return follow(client, {job_id: ""}, as_json=as_json)[job_id]


def follow(
    client: RegistryClient, jobs: dict[str, str], *, as_json: bool = False, poll: float = 0.5
) -> dict[str, dict]:
    """Follow several jobs (id → label) at once, a bar each; returns the final jobs."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.fields[label]}{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  ETA {task.fields[eta]}"),
    )
    after = dict.fromkeys(jobs, 0)
    states = dict.fromkeys(jobs, "queued")
    with Progress(*columns, console=output.console(), disable=as_json) as progress:
        bars = {
            job_id: progress.add_task("queued", total=None, label=label, loss="-", eta="-")
            for job_id, label in jobs.items()
        }
        try:
            while True:
                for job_id in [j for j, state in states.items() if state not in TERMINAL]:
                    for event in client.job_events(job_id, after=after[job_id]):
                        after[job_id] = event["seq"]
                        if as_json:
                            click.echo(json.dumps({"job_id": job_id, **event}, default=str))
                        states[job_id] = _apply(progress, bars[job_id], event, states[job_id])
                if all(state in TERMINAL for state in states.values()):
                    return {job_id: client.get_job(job_id) for job_id in jobs}
                time.sleep(poll)
        except KeyboardInterrupt:
            ids = " ".join(jobs)
            raise click.ClickException(
                f"stopped watching; the job goes on (`vera-registry jobs watch {ids}` to "
                f"follow it again, `vera-registry jobs cancel {ids}` to stop it)"
            ) from None


def _apply(progress: Progress, bar, event: dict, state: str) -> str:
    data = event["data"]
    if event["kind"] == "state":
        state = data["state"]
        reason = f" ({data['reason']})" if data.get("reason") else ""
        progress.update(bar, description=f"{state}{reason}"[:60])
        if state == "succeeded":
            total = progress.tasks[bar].total or 1
            progress.update(bar, completed=total, total=total, eta="0s")
    elif event["kind"] == "progress":
        eta = data.get("eta_s")
        progress.update(
            bar,
            completed=data["step"],
            total=data["total_steps"],
            loss=f"{data['loss']:.4f}",
            eta="-" if eta is None else f"{eta:.0f}s",
        )
    return state


@jobs.command("watch")
@click.argument("job_id")
@remote_command
def jobs_watch(remote: Remote, job_id: str) -> None:
    """Follow a job to its end with a live progress bar (exit status 1 unless it succeeds)."""
    _finish(remote, watch(remote.client, job_id, as_json=remote.as_json))


@jobs.command("list")
@click.option("--user", type=USER_ID, help="Only this user's jobs.")
@click.option("--state", type=click.Choice(["queued", "running", *TERMINAL]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@remote_command
def jobs_list(remote: Remote, user: str | None, state: str | None, limit: int) -> None:
    """Newest jobs first."""
    page = remote.client.list_jobs(user_id=user, status=state, limit=limit)
    remote.show(page["items"], JOB_COLUMNS)


@jobs.command("show")
@click.argument("job_id")
@remote_command
def jobs_show(remote: Remote, job_id: str) -> None:
    """One job, its progress, the pack it trains in and its error if any."""
    job = remote.client.get_job(job_id)
    remote.show(job if remote.as_json else job | {"pack": pack_line(job)}, JOB_FIELDS)


def pack_line(job: dict) -> str | None:
    """Which pack the job trains (or trained) in, and with how many other jobs."""
    if not job.get("pack_id"):
        return None
    others = (job.get("pack_size") or 1) - 1
    company = "alone" if others == 0 else f"with {others} other job{'s' * (others > 1)}"
    return f"{job['pack_id']} ({company} at its latest step)"


@jobs.command("cancel")
@click.argument("job_id")
@remote_command
def jobs_cancel(remote: Remote, job_id: str) -> None:
    """Cancel a queued job now, or a running one at its next step."""
    remote.show(remote.client.cancel_job(job_id), JOB_FIELDS)


@jobs.command("events")
@click.argument("job_id")
@click.option("--after", default=0, show_default=True, help="Only events after this seq.")
@remote_command
def jobs_events(remote: Remote, job_id: str, after: int) -> None:
    """The job's event log: state changes, progress, metrics."""
    events, page = [], remote.client.job_events(job_id, after=after)
    while page:
        events.extend(page)
        page = remote.client.job_events(job_id, after=page[-1]["seq"])
    remote.show(events, EVENT_COLUMNS)
