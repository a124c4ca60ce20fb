"""Commands that speak to a registry's HTTP API through `RegistryClient`: the connection
options every such command takes, base models, datasets and API keys."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from registry.cli import output
from registry.cli.app import json_option, main
from registry.cli.model_upload import upload_base_model
from registry.cli.params import USER_ID
from registry.client.api import ClientError, RegistryClient
from registry.config import Settings, get_settings

# Leaf names of attention query/value layers, by model family: the default VeRA targets.
DEFAULT_TARGETS = (("query", "value"), ("q_proj", "v_proj"), ("c_attn",), ("query_key_value",))


def credentials_path(settings: Settings) -> Path:
    """Where `vera-registry up` leaves its URL and admin key for the CLI (mode 0600)."""
    return settings.home / "credentials.json"


def saved_credentials(settings: Settings) -> dict:
    path = credentials_path(settings)
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


@dataclass
class Remote:
    client: RegistryClient
    url: str
    as_json: bool

    @classmethod
    def connect(cls, url: str | None, api_key: str | None, as_json: bool) -> Remote:
        url, api_key = registry_target(url, api_key)
        return cls(RegistryClient(url, api_key, retries=2), url, as_json)

    def show(self, data: Any, columns=None, title: str | None = None) -> None:
        output.show(self.as_json, data, columns, title)


def registry_target(url: str | None, api_key: str | None) -> tuple[str, str]:
    """The registry URL and API key a command talks with: the given ones, else what
    `vera-registry up` saved, else this machine's default address."""
    settings = get_settings()
    saved = saved_credentials(settings)
    default = f"http://{settings.api_host}:{settings.api_port}"
    url = (url or saved.get("url") or default).rstrip("/")
    if not api_key and url == saved.get("url"):
        api_key = saved.get("api_key")  # never sent to any other server
    if not api_key:
        raise click.UsageError(
            "no API key: pass --api-key or set VERA_API_KEY (`vera-registry up` prints "
            "one; `vera-registry tenants create NAME` makes one)"
        )
    return url, api_key


def remote_command(function):
    """Adds --url, --api-key and --json, and passes a connected `Remote` first."""

    @click.option("--url", envvar="VERA_URL", help="Registry URL [env VERA_URL].")
    @click.option("--api-key", envvar="VERA_API_KEY", help="API key [env VERA_API_KEY].")
    @json_option
    @functools.wraps(function)
    def wrapper(*args, url: str | None, api_key: str | None, as_json: bool, **kwargs):
        remote = Remote.connect(url, api_key, as_json)
        click.get_current_context().call_on_close(remote.client.close)
        return function(remote, *args, **kwargs)

    return wrapper


def default_targets(layers: dict[str, Any]) -> list[str]:
    """The attention query/value layers of a model, by the names its family uses."""
    leaves = {path.rsplit(".", 1)[-1] for path in layers}
    for names in DEFAULT_TARGETS:
        if set(names) <= leaves:
            return list(names)
    raise click.UsageError(
        "cannot tell this model's attention layers apart: pass --targets (layer names, "
        "comma-separated; `vera-registry base-models show ID` lists them)"
    )


def split_list(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def find_base_model(remote: Remote, ref: str | None) -> dict:
    """A base model by id or name; the only one registered when `ref` is None."""
    items = remote.client.list_base_models()["items"]
    if ref is None:
        if len(items) == 1:
            return items[0]
        names = ", ".join(f"{m['name']} ({m['id']})" for m in items) or "none registered"
        raise click.UsageError(f"pass --base-model (id or name); this tenant has: {names}")
    for model in items:
        if ref in (model["id"], model["name"]):
            return model
    try:
        return remote.client.get_base_model(ref)
    except ClientError as exc:
        raise click.UsageError(
            f"no base model {ref!r}: register it with `vera-registry base-models register PATH`"
        ) from exc


# -- base models -------------------------------------------------------------------------

BASE_MODEL_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("architecture", "architecture"),
    ("content_hash", "content hash", lambda h: h[:19] + "…"),
    ("source_uri", "files in", lambda s: s or "the registry's store"),
    ("created_at", "created", output.when),
]
PROJECTION_COLUMNS = [
    ("id", "id"),
    ("seed", "seed"),
    ("r", "r"),
    ("max_d_in", "max d_in"),
    ("max_d_out", "max d_out"),
    ("fingerprint", "fingerprint", lambda f: f[:19] + "…"),
]


@main.group("base-models")
def base_models() -> None:
    """Register and list base models and their shared projections."""


@base_models.command("register")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", help="Registry name (default: the folder's name).")
@click.option("--targets", help="Comma-separated layers for the projection [default: q/v].")
@click.option("--r", "rank", default=256, show_default=True, help="VeRA rank of the projection.")
@click.option("--seed", default=0, show_default=True, help="Seed the matrices grow from.")
@click.option(
    "--task",
    type=click.Choice(["causal-lm", "sequence-classification"]),
    help="Size the projection on this task's model [default: the first it can train].",
)
@click.option("--no-projection", is_flag=True, help="Register the weights only.")
@click.option(
    "--source",
    help="Workers load the files from this operator-allowed root (a directory or "
    "s3://bucket/prefix in VERA_MODEL_SOURCES) instead of an upload; PATH is a copy.",
)
@remote_command
def base_models_register(
    remote: Remote,
    path: Path,
    name: str | None,
    targets: str | None,
    rank: int,
    seed: int,
    task: str | None,
    no_projection: bool,
    source: str | None,
) -> None:
    """Hash a local checkpoint at PATH, list its layers, upload its files into the registry
    and register it (with a projection).

    Only files the registry does not hold yet are sent, so an interrupted upload resumes.
    The hashes and the projection fingerprint are computed here, so this needs torch and
    transformers (the `train` extra). Registering the same folder again returns the
    existing rows."""
    try:
        from registry.vera import describe
    except ImportError as exc:
        raise click.ClickException(
            f"{exc}: hashing a checkpoint needs torch and transformers; "
            "install them with: pip install 'vera-registry[train]'"
        ) from exc
    with output.console(stderr=True).status(f"hashing {path} …"):
        description = describe.describe_base_model(path)
    if name:
        description["name"] = name
    if source:
        model = remote.client.register_base_model({**description, "source_uri": source})
    else:
        model = upload_base_model(remote.client, path, description, quiet=remote.as_json)
    result: dict[str, Any] = {"base_model": model, "projection": None}
    if not no_projection:
        task = task or describe.default_task(description)
        try:
            layers = describe.layers_for(description, task)
            wanted = split_list(targets) or default_targets(layers)
            body = describe.describe_projection(layers, wanted, seed, rank, task)
        except ValueError as exc:
            raise click.UsageError(f"{exc} (--task {task}, --targets)") from exc
        result["projection"] = remote.client.register_projection(model["id"], body)
        result["target_modules"] = wanted
    if remote.as_json:
        output.echo_json(result)
        return
    remote.show(model, BASE_MODEL_COLUMNS, title="base model")
    if result["projection"]:
        remote.show(result["projection"], PROJECTION_COLUMNS, title="projection")
        click.echo(f"targets: {','.join(result['target_modules'])}")


@base_models.command("list")
@remote_command
def base_models_list(remote: Remote) -> None:
    """Base models of this tenant."""
    remote.show(remote.client.list_base_models()["items"], BASE_MODEL_COLUMNS)


@base_models.command("show")
@click.argument("base_model")
@remote_command
def base_models_show(remote: Remote, base_model: str) -> None:
    """One base model (id or name) with its layers and projections."""
    model = find_base_model(remote, base_model)
    model["projections"] = remote.client.list_projections(model["id"])
    if remote.as_json:
        output.echo_json(model)
        return
    remote.show(model, BASE_MODEL_COLUMNS, title="base model")
    layers = [{"path": p, "d_in": d[0], "d_out": d[1]} for p, d in model["layers"].items()]
    output.table(layers, [("path", "layer"), ("d_in", "d_in"), ("d_out", "d_out")], "layers")
    output.table(model["projections"], PROJECTION_COLUMNS, "projections")


# -- datasets ----------------------------------------------------------------------------


def guess_task(first_line: bytes) -> str:
    try:
        row = json.loads(first_line)
    except ValueError as exc:
        raise click.UsageError(f"the dataset's first line is not JSON: {exc}") from exc
    return "sequence-classification" if isinstance(row, dict) and "label" in row else "causal-lm"


def upload(remote: Remote, path: Path, user: str, task: str | None) -> dict:
    data = path.read_bytes()
    task = task or guess_task(data.split(b"\n", 1)[0])
    return remote.client.upload_dataset(user, task, data)


DATASET_FIELDS = [
    ("id", "id"),
    ("user_id", "user"),
    ("task", "task"),
    ("rows", "rows"),
    ("size_bytes", "bytes"),
    ("labels", "labels"),
    ("blob_sha256", "sha256"),
]
DATASET_CREATED = ("created_at", "created", output.when)


@main.group()
def datasets() -> None:
    """Upload training data (JSON Lines)."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", type=USER_ID, required=True, help="The user this data personalizes for.")
@click.option(
    "--task",
    type=click.Choice(["sequence-classification", "causal-lm"]),
    help="Default: classification when rows have a 'label', else causal-lm.",
)
@remote_command
def datasets_upload(remote: Remote, path: Path, user: str, task: str | None) -> None:
    """Upload PATH, one JSON object a line: {"text": …, "label": …} to classify, {"text": …}
    for causal LM. Checked whole before it is stored."""
    remote.show(upload(remote, path, user, task), DATASET_FIELDS)


@datasets.command("list")
@click.option("--user", type=USER_ID, help="Only this user's datasets.")
@remote_command
def datasets_list(remote: Remote, user: str | None) -> None:
    """Datasets, newest first."""
    remote.show(remote.client.list_datasets(user), [*DATASET_FIELDS[:-1], DATASET_CREATED])


@datasets.command("show")
@click.argument("dataset_id")
@remote_command
def datasets_show(remote: Remote, dataset_id: str) -> None:
    """One dataset."""
    remote.show(remote.client.get_dataset(dataset_id), DATASET_FIELDS)


# -- API keys ----------------------------------------------------------------------------

KEY_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("prefix", "prefix"),
    ("scopes", "scopes", ",".join),
    ("created_at", "created", output.when),
    ("revoked_at", "revoked", output.when),
]


@main.group()
def keys() -> None:
    """This tenant's API keys (needs an admin key)."""


@keys.command("list")
@remote_command
def keys_list(remote: Remote) -> None:
    """Every key of the tenant, revoked ones too."""
    remote.show(remote.client.list_keys(), KEY_COLUMNS)


@keys.command("create")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--scopes", default="read", show_default=True, help="read, train or admin.")
@remote_command
def keys_create(remote: Remote, name: str, scopes: str) -> None:
    """A new key; its secret is shown once."""
    remote.show(remote.client.create_key(name, split_list(scopes) or []))


@keys.command("revoke")
@click.argument("key_id")
@remote_command
def keys_revoke(remote: Remote, key_id: str) -> None:
    """Revoke a key at once."""
    remote.show(remote.client.revoke_key(key_id), KEY_COLUMNS)
