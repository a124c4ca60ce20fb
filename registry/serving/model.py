"""Loading the base model once, and the runtime every request is batched on.

The projection (seed, r), target modules and task come from an adapter's manifest: the
one of `user` when given, else of the latest alias move in the tenant's change feed whose
adapter is for this base model. Reading the feed to its end is also where the follower
starts: the server is caught up the moment it is built.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.client.api import ClientError, Manifest, RegistryClient
from registry.errors import NotFound, RegistryError

log = logging.getLogger(__name__)

FEED_PAGE = 1000  # the registry's largest /v1/feed page
CANDIDATES = 20  # users (latest moves first) whose manifests are tried at start


class ServeSetupError(RegistryError):
    """The server cannot start as configured (the message says what to change)."""

    code = "serve_setup"


@dataclass
class LoadedModel:
    runtime: Any  # registry.client.runtime.ServingRuntime (torch: imported lazily)
    tokenizer: Any
    base: dict  # the registry's BaseModelOut
    manifest: Manifest  # the adapter the runtime's projection and targets came from
    max_positions: int | None

    @property
    def names(self) -> tuple[str, str]:
        """What a request's `model` may say: the base model's name or id."""
        return self.base["name"], self.base["id"]


def model_folder(client: RegistryClient, base: dict, model_path: str | Path | None, cache_dir):
    """The base model's files: `model_path`, or downloaded into the cache (C3)."""
    if model_path is not None:
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise ServeSetupError(f"--model-path {path} holds no config.json: not a model folder")
        return path
    download = getattr(client, "download_base_model", None)
    if download is None:
        raise ServeSetupError(
            "this version of the client cannot download base model files: pass --model-path "
            "DIR (the folder the base model was registered from)"
        )
    if cache_dir is None:
        raise ServeSetupError("downloading the base model needs --cache-dir (or --model-path)")
    return Path(download(base["id"], Path(cache_dir) / "models" / base["id"]))


def feed_head(client: RegistryClient) -> tuple[int, list[tuple[str, str]]]:
    """The feed's last seq, and the (user, adapter name, alias) moved, latest first."""
    after, moved = 0, []
    while True:
        events, last = client.feed(after=after, wait=0, limit=FEED_PAGE)
        moved += [
            (e.user_id, e.adapter_name, e.alias) for e in events if e.kind in ("set", "rollback")
        ]
        after = max(after, last)
        if len(events) < FEED_PAGE:
            return after, moved[::-1]


def first_manifest(
    client: RegistryClient, base: dict, adapter: str, alias: str, moved: list, user: str | None
) -> Manifest:
    """An adapter for this base model: `user`'s, or the most recently moved one's."""
    if user is not None:
        manifest = client.resolve(user, adapter, alias)
        if manifest.base_model.id != base["id"]:
            raise ServeSetupError(
                f"user {user!r}'s adapter {adapter!r} is for base model "
                f"{manifest.base_model.id}, not {base['id']}"
            )
        return manifest
    seen: set[str] = set()
    for user_id, name, moved_alias in moved:
        if name != adapter or moved_alias != alias or user_id in seen:
            continue
        seen.add(user_id)
        if len(seen) > CANDIDATES:
            break
        try:
            manifest = client.resolve(user_id, adapter, alias)
        except ClientError as exc:
            if exc.status == 404:
                continue  # deleted since
            raise
        if manifest.base_model.id == base["id"]:
            return manifest
    raise ServeSetupError(
        f"no {alias!r} adapter {adapter!r} for base model {base['id']} ({base['name']}) yet: "
        "the server takes its projection and target modules from one; publish a first "
        "adapter, or name a user that has one with --user"
    )


def head_labels(client: RegistryClient, manifest: Manifest) -> list | None:
    """A classifier's label names, as the first adapter's blob records them."""
    from registry.vera.peft_io import read_adapter

    identity = read_adapter(client.download_blob(manifest)).identity
    labels = identity.get("labels")
    return json.loads(labels) if labels else None


def load_model(
    client: RegistryClient,
    base_model_id: str,
    *,
    model_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    adapter: str = "default",
    alias: str = "live",
    user: str | None = None,
    device: str = "cpu",
    capacity: int = 64,
) -> LoadedModel:
    """Load the base model once (its weights checked against the registry's hash) and
    inject VeRA for the projection and targets its adapters use."""
    from transformers import AutoTokenizer

    from registry.client.runtime import ServingRuntime
    from registry.vera.config import TASK_SEQUENCE_CLASSIFICATION
    from registry.vera.describe import max_positions

    try:
        base = client.get_base_model(base_model_id)
    except ClientError as exc:
        if exc.status == 404:
            raise NotFound(f"base model {base_model_id!r} is not in this tenant") from exc
        raise
    folder = model_folder(client, base, model_path, cache_dir)
    seq, moved = feed_head(client)
    manifest = first_manifest(client, base, adapter, alias, moved, user)
    labels = None
    if manifest.task == TASK_SEQUENCE_CLASSIFICATION:
        labels = head_labels(client, manifest)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    runtime = ServingRuntime.for_manifest(
        client,
        str(folder),
        manifest,
        tokenizer=tokenizer,
        num_labels=len(labels) if labels else None,
        capacity=capacity,
    )
    runtime.model.to(device)
    runtime.feed_seq = seq
    log.info("serving %s (%s), task %s", base["name"], base["id"], manifest.task)
    return LoadedModel(runtime, tokenizer, base, manifest, max_positions(runtime.model))
