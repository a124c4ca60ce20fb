"""`vera-registry adapters`: versions, publish, roll back, alias history, download."""

from __future__ import annotations

from pathlib import Path

import click

from registry.cli import output
from registry.cli.app import main
from registry.cli.params import ADAPTER_NAME, ALIAS_NAME, TAG, USER_ID
from registry.cli.remote import Remote, remote_command

ADAPTER_COLUMNS = [
    ("id", "id"),
    ("user_id", "user"),
    ("name", "name"),
    ("task", "task"),
    ("target_modules", "targets"),
    ("tags", "tags", ",".join),
    ("description", "description"),
    ("updated_at", "updated", output.when),
]
VERSION_COLUMNS = [
    ("number", "version"),
    ("size_bytes", "bytes"),
    ("blob_sha256", "sha256", lambda h: h[:16] + "…"),
    ("metrics", "eval", lambda m: _eval(m or {})),
    ("job_id", "job"),
    ("tags", "tags", ",".join),
    ("description", "description"),
    ("created_at", "created", output.when),
]
ALIAS_FIELDS = [
    ("adapter_id", "adapter"),
    ("alias", "alias"),
    ("version", "version"),
    ("generation", "generation"),
]
HISTORY_COLUMNS = [
    ("seq", "seq"),
    ("created_at", "at", output.when),
    ("kind", "kind"),
    ("from_version", "from"),
    ("to_version", "to"),
    ("generation", "generation"),
    ("actor_key_id", "actor", lambda k: k or "(job or server)"),
    ("reason", "reason"),
]
REASON_HELP = "Why (kept in the alias history and the audit log)."


def _eval(metrics: dict) -> str:
    return " ".join(f"{k[5:]}={v:.3g}" for k, v in metrics.items() if k.startswith("eval_"))


def adapter_argument(function):
    """ADAPTER (an adapter id), or --user with --name, to say which adapter."""
    function = click.option(
        "--name",
        type=ADAPTER_NAME,
        default="default",
        show_default=True,
        help="Adapter name, with --user.",
    )(function)
    function = click.option(
        "--user", type=USER_ID, help="The user whose adapter (instead of ADAPTER)."
    )(function)
    return click.argument("adapter", required=False)(function)


def adapter_id(remote: Remote, adapter: str | None, user: str | None, name: str) -> str:
    if adapter:
        return adapter
    if not user:
        raise click.UsageError("say which adapter: ADAPTER (an id), or --user USER [--name]")
    for row in remote.client.list_adapters(user):
        if row["name"] == name:
            return row["id"]
    raise click.UsageError(f"user {user!r} has no adapter named {name!r}")


@main.group()
def adapters() -> None:
    """Users' adapters: versions, the `live` alias, rollback, downloads."""


@adapters.command("list")
@click.option("--user", type=USER_ID, required=True, help="Whose adapters.")
@click.option("--tag", type=TAG, help="Only adapters with this tag.")
@remote_command
def adapters_list(remote: Remote, user: str, tag: str | None) -> None:
    """A user's adapters."""
    remote.show(remote.client.list_adapters(user, tag=tag), ADAPTER_COLUMNS)


@adapters.command("versions")
@adapter_argument
@click.option("--tag", type=TAG, help="Only versions with this tag.")
@remote_command
def adapters_versions(
    remote: Remote, adapter: str | None, user: str | None, name: str, tag: str | None
) -> None:
    """Every version of an adapter, oldest first (their content never changes)."""
    ident = adapter_id(remote, adapter, user, name)
    remote.show(remote.client.list_versions(ident, tag=tag), VERSION_COLUMNS)


@adapters.command("update")
@adapter_argument
@click.option("--version", "number", type=int, help="Change this version instead of the adapter.")
@click.option("--description", help='New description ("" clears it).')
@click.option("--add-tag", "add", type=TAG, multiple=True, help="Add a tag (repeatable).")
@click.option("--remove-tag", "remove", type=TAG, multiple=True, help="Remove a tag (repeatable).")
@click.option("--clear-tags", is_flag=True, help="Remove every tag first.")
@remote_command
def adapters_update(
    remote: Remote,
    adapter: str | None,
    user: str | None,
    name: str,
    number: int | None,
    description: str | None,
    add: tuple[str, ...],
    remove: tuple[str, ...],
    clear_tags: bool,
) -> None:
    """Set the description and tags of an adapter, or of one of its versions (--version)."""
    if description is None and not (add or remove or clear_tags):
        raise click.UsageError("say what to change: --description, --add-tag, --remove-tag")
    ident = adapter_id(remote, adapter, user, name)
    changes = dict(
        description=description,
        tags=[] if clear_tags else None,
        add_tags=add,
        remove_tags=remove,
    )
    if number is None:
        remote.show(remote.client.update_adapter(ident, **changes), ADAPTER_COLUMNS)
    else:
        remote.show(remote.client.update_version(ident, number, **changes), VERSION_COLUMNS)


@adapters.command("publish")
@adapter_argument
@click.option("--version", "number", type=int, required=True, help="Version to publish.")
@click.option("--alias", type=ALIAS_NAME, default="live", show_default=True)
@click.option("--if-generation", type=int, help="Only if the alias is still at this generation.")
@click.option("--reason", help=REASON_HELP)
@remote_command
def adapters_publish(
    remote: Remote,
    adapter: str | None,
    user: str | None,
    name: str,
    number: int,
    alias: str,
    if_generation: int | None,
    reason: str | None,
) -> None:
    """Point ALIAS at a version; servers following the feed switch to it."""
    ident = adapter_id(remote, adapter, user, name)
    moved = remote.client.publish(ident, alias, number, if_match=if_generation, reason=reason)
    remote.show(moved, ALIAS_FIELDS)


@adapters.command("rollback")
@adapter_argument
@click.option("--alias", type=ALIAS_NAME, default="live", show_default=True)
@click.option("--to", "to_version", type=int, help="Version [default: the one before].")
@click.option("--if-generation", type=int, help="Only if the alias is still at this generation.")
@click.option("--reason", help=REASON_HELP)
@remote_command
def adapters_rollback(
    remote: Remote,
    adapter: str | None,
    user: str | None,
    name: str,
    alias: str,
    to_version: int | None,
    if_generation: int | None,
    reason: str | None,
) -> None:
    """Move ALIAS back to the version it pointed at before (or --to one)."""
    ident = adapter_id(remote, adapter, user, name)
    moved = remote.client.rollback(ident, alias, to_version, if_match=if_generation, reason=reason)
    remote.show(moved, ALIAS_FIELDS)


@adapters.command("history")
@adapter_argument
@click.option("--alias", type=ALIAS_NAME, default="live", show_default=True)
@remote_command
def adapters_history(
    remote: Remote, adapter: str | None, user: str | None, name: str, alias: str
) -> None:
    """Every move of ALIAS: publishes and rollbacks, oldest first."""
    ident = adapter_id(remote, adapter, user, name)
    remote.show(remote.client.history(ident, alias), HISTORY_COLUMNS)


@adapters.command("download")
@adapter_argument
@click.option("--version", "number", type=int, help="Version [default: what ALIAS points at].")
@click.option("--alias", type=ALIAS_NAME, default="live", show_default=True)
@click.option(
    "-o",
    "--output",
    "path",
    type=click.Path(path_type=Path),
    help="File for the vector blob [default: USER-NAME-vN.safetensors].",
)
@click.option(
    "--peft",
    "--folder",
    "peft_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a folder other servers load here instead (see --format).",
)
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["vera", "lora", "merged"]),
    default="vera",
    show_default=True,
    help="With --peft: PEFT VeRA, LoRA (vLLM, LoRAX) or the base model with it merged in.",
)
@click.option("--rank", type=click.IntRange(min=1), help="--format lora: truncate to rank k (SVD).")
@click.option(
    "--base-model-path",
    help="base_model_name_or_path to write [default: a local copy of the base model, "
    "downloaded when needed].",
)
@remote_command
def adapters_download(
    remote: Remote,
    adapter: str | None,
    user: str | None,
    name: str,
    number: int | None,
    alias: str,
    path: Path | None,
    peft_dir: Path | None,
    export_format: str,
    rank: int | None,
    base_model_path: str | None,
) -> None:
    """Download a version's vectors (sha256-checked), or a folder PEFT, vLLM, LoRAX or
    transformers load (--peft DIR --format vera|lora|merged)."""
    if peft_dir is None and (export_format != "vera" or rank or base_model_path):
        raise click.UsageError("--format, --rank and --base-model-path need --peft DIR")
    client = remote.client
    ident = adapter_id(remote, adapter, user, name)
    row = client.get_adapter(ident)
    number = number or client.get_alias(ident, alias)["version"]
    version = client.get_version(ident, number)
    result = {"adapter_id": ident, "version": number, "sha256": version["blob_sha256"]}
    if peft_dir is not None:
        client.export_peft(ident, number, peft_dir, export_format, rank, base_model_path)
        files = sorted(p for p in peft_dir.iterdir() if p.is_file())
        result.update(path=str(peft_dir), files={p.name: p.stat().st_size for p in files})
    else:
        url = f"/v1/adapters/{ident}/versions/{number}/blob"
        data = client.download_blob(sha256=version["blob_sha256"], url=url)
        path = path or Path(f"{row['user_id']}-{row['name']}-v{number}.safetensors")
        path.write_bytes(data)
        result.update(path=str(path), bytes=len(data))
    if remote.as_json:
        output.echo_json(result)
    elif peft_dir is not None:
        sizes = ", ".join(f"{n} ({s:,} bytes)" for n, s in result["files"].items())
        click.echo(f"v{number} of {row['user_id']}/{row['name']} → {peft_dir}/: {sizes}")
    else:
        click.echo(
            f"v{number} of {row['user_id']}/{row['name']} → {path} ({len(data):,} bytes, "
            "sha256 verified)"
        )
