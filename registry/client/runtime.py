"""Serve many users' VeRA adapters from one base model, kept in sync with the registry.

    client = RegistryClient(url, key, cache_dir="/var/cache/vera")
    runtime = ServingRuntime.for_manifest(client, model, client.resolve("alice"))
    runtime.load_user("alice"); runtime.load_user("bob")
    logits = runtime.forward(batch, ["alice", "bob", "alice"]).logits   # a user per row
    runtime.sync()            # apply publishes/rollbacks from /v1/feed since the last call

A row whose user id is None gets the base model alone (a user with no adapter yet).

The base weights are loaded once and never written: VeRA is injected once for the
projection (seed, r, target modules), whose fingerprint must equal the registry's, and each
user's λd/λb live in an `AdapterBank` row. Loading, replacing or dropping a user writes
only that user's vectors (hot swap), under a lock shared with `forward`.

Heads (`modules_to_save`, e.g. a classifier): each user's head tensors are applied to its
rows by the bank (`registry.vera.heads`); rows of users without one keep the base's head.

Text: `generate` (causal LMs) and `classify` (sequence classifiers) run a batch of rows,
each with its own user; the decoding loop lives in `registry.client.generation`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from registry.client.api import FeedEvent, Manifest, RegistryClient
from registry.client.generation import (
    BASE_ROW,
    Classification,
    Generation,
    RuntimeMismatch,
    TextTasks,
)
from registry.vera.bank import AdapterBank
from registry.vera.config import TASK_SEQUENCE_CLASSIFICATION, VeraConfig
from registry.vera.inject import PEFT_PREFIX, inject_vera
from registry.vera.peft_io import read_adapter
from registry.vera.projection import ProjectionMismatch

__all__ = [
    "Classification",
    "Generation",
    "LoadedUser",
    "ProjectionMismatch",
    "RuntimeMismatch",
    "ServingRuntime",
]


@dataclass(frozen=True)
class LoadedUser:
    user_id: str
    manifest: Manifest
    labels: list | None = None  # a classifier's label names, by logit index

    @property
    def version(self) -> int:
        return self.manifest.version


def _load_model(path: str | Path, task: str, num_labels: int | None) -> nn.Module:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if task == TASK_SEQUENCE_CLASSIFICATION:
        extra = {"num_labels": num_labels} if num_labels else {}
        return AutoModelForSequenceClassification.from_pretrained(path, **extra)
    return AutoModelForCausalLM.from_pretrained(path)


def _load_tokenizer(path: str | Path) -> Any:
    """The folder's tokenizer, or None when it has none (token-id prompts still work)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        return None


class ServingRuntime(TextTasks):
    def __init__(
        self,
        client: RegistryClient | None,
        model: nn.Module | str | Path,
        *,
        seed: int,
        r: int,
        target_modules: list[str] | str,
        fingerprint: str | None = None,
        task: str = TASK_SEQUENCE_CLASSIFICATION,
        base_model_hash: str | None = None,
        check_base_hash: bool = True,
        adapter: str = "default",
        alias: str = "live",
        num_labels: int | None = None,
        capacity: int = 8,
        tokenizer: Any = None,
    ) -> None:
        """Inject VeRA for (seed, r, target_modules) once. With `fingerprint`, the
        regenerated projection must have it (ProjectionMismatch otherwise). With
        `base_model_hash` (and `check_base_hash`), the model's weights must hash to it (a
        base model's `weights_hash`).
        `client` may be None for a runtime fed only through `put_vectors`. `tokenizer`
        (for text prompts) is loaded from the model folder when `model` is a path."""
        if not isinstance(model, nn.Module):
            tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(model)
            model = _load_model(model, task, num_labels)
        self.tokenizer = tokenizer
        self.client = client
        self.model = model.eval()
        self.adapter = adapter
        self.alias = alias
        self.task = task
        self.config = VeraConfig(
            r=r, target_modules=target_modules, projection_prng_key=seed, task=task
        )
        if base_model_hash and check_base_hash:
            from registry.vera.hashing import hash_state_dict

            actual = hash_state_dict(self.model)
            if actual != base_model_hash:
                raise RuntimeMismatch(
                    f"the model's weights hash to {actual}, the registry's base model is "
                    f"{base_model_hash}: adapters trained on it would give wrong outputs"
                )
        self.base_model_hash = base_model_hash
        inject_vera(self.model, self.config, expected_fingerprint=fingerprint)
        self.fingerprint: str = self.model.vera_projection.fingerprint
        self.bank = AdapterBank(self.model, capacity=capacity)
        self.bank.put(BASE_ROW, self._zero_vectors())
        self.users: dict[str, LoadedUser] = {}
        self.feed_seq = 0
        self._lock = threading.RLock()

    @classmethod
    def for_manifest(
        cls, client: RegistryClient, model: nn.Module | str | Path, manifest: Manifest, **kwargs
    ) -> ServingRuntime:
        """A runtime for the projection, targets, task and base model a manifest names."""
        projection = manifest.projection
        kwargs.setdefault("base_model_hash", manifest.base_model.weights_hash)
        kwargs.setdefault("adapter", manifest.adapter_name)
        kwargs.setdefault("alias", manifest.alias)
        return cls(
            client,
            model,
            seed=projection.seed,
            r=projection.r,
            target_modules=manifest.target_modules,
            fingerprint=projection.fingerprint,
            task=manifest.task,
            **kwargs,
        )

    def _zero_vectors(self) -> dict[str, torch.Tensor]:
        # λb = 0 makes every VeRA delta zero, and no head tensors keep the base's head.
        zeros = {}
        for path, layer in self.bank.layers.items():
            zeros[f"{PEFT_PREFIX}{path}.vera_lambda_d"] = torch.zeros(layer.r)
            zeros[f"{PEFT_PREFIX}{path}.vera_lambda_b"] = torch.zeros(layer.d_out)
        return zeros

    def _client(self) -> RegistryClient:
        if self.client is None:
            raise RuntimeError("this runtime has no RegistryClient")
        return self.client

    # -- checks ------------------------------------------------------------------------

    def check_manifest(self, manifest: Manifest) -> None:
        """Refuse an adapter made for another projection, target set, task or base model."""
        projection = manifest.projection
        if projection.fingerprint != self.fingerprint:
            raise RuntimeMismatch(
                f"user {manifest.user_id!r} adapter {manifest.adapter_id} v{manifest.version} "
                f"uses projection {projection.fingerprint} (seed={projection.seed}, "
                f"r={projection.r}); this runtime serves {self.fingerprint} "
                f"(seed={self.config.projection_prng_key}, r={self.config.r})"
            )
        wanted = VeraConfig(target_modules=manifest.target_modules).target_modules
        if wanted != self.config.target_modules:
            raise RuntimeMismatch(
                f"adapter {manifest.adapter_id} targets {wanted}, this runtime injects "
                f"{self.config.target_modules}"
            )
        if manifest.task != self.task:
            raise RuntimeMismatch(f"adapter task {manifest.task!r}, runtime task {self.task!r}")
        if self.base_model_hash and manifest.base_model.weights_hash != self.base_model_hash:
            raise RuntimeMismatch(
                f"adapter {manifest.adapter_id} was trained on base weights "
                f"{manifest.base_model.weights_hash}, this runtime serves {self.base_model_hash}"
            )

    # -- users -------------------------------------------------------------------------

    def load_user(self, user_id: str, min_generation: int | None = None) -> LoadedUser:
        """Resolve the user's adapter (at `min_generation` or later), download it (cached),
        and put it into the bank."""
        client = self._client()
        manifest = client.resolve(user_id, self.adapter, self.alias, min_generation=min_generation)
        return self.load_manifest(manifest)

    def load_manifest(self, manifest: Manifest) -> LoadedUser:
        self.check_manifest(manifest)
        current = self.users.get(manifest.user_id)
        if current and current.manifest.blob_sha256 == manifest.blob_sha256:
            loaded = LoadedUser(manifest.user_id, manifest, current.labels)
            self.users[manifest.user_id] = loaded
            return loaded
        adapter = read_adapter(self._client().download_blob(manifest))
        recorded = adapter.metadata.get("projection_fingerprint")
        if recorded and recorded != self.fingerprint:
            raise RuntimeMismatch(
                f"blob {manifest.blob_sha256} records projection {recorded}, "
                f"this runtime serves {self.fingerprint}"
            )
        self.put_vectors(manifest.user_id, adapter.vectors)
        labels = adapter.identity.get("labels")
        loaded = LoadedUser(manifest.user_id, manifest, json.loads(labels) if labels else None)
        self.users[manifest.user_id] = loaded
        return loaded

    def put_vectors(self, user_id: str, vectors: Mapping[str, torch.Tensor]) -> None:
        """Hot swap: write this user's vectors (and head) only; base weights untouched."""
        if user_id == BASE_ROW:
            raise ValueError("that user id is reserved for base-model rows")
        device = self.model.vera_projection.vera_A.device
        vectors = {k: v.to(device) for k, v in vectors.items()}
        with self._lock:
            self.bank.put(user_id, vectors)

    def drop_user(self, user_id: str) -> None:
        if user_id == BASE_ROW:
            raise ValueError("that user id is reserved for base-model rows")
        with self._lock:
            if user_id in self.bank:
                self.bank.drop(user_id)
            self.users.pop(user_id, None)

    # -- inference ---------------------------------------------------------------------

    @torch.no_grad()  # not inference_mode: the A x cache reads tensor version counters
    def forward(
        self, batch: Mapping[str, torch.Tensor], user_ids: Sequence[str | None], **kwargs: Any
    ) -> Any:
        """Run the model on `batch`; row i uses `user_ids[i]`'s adapter (and head), or the
        base model alone where it is None."""
        rows = next(iter(batch.values())).shape[0]
        if len(user_ids) != rows:
            raise ValueError(f"batch has {rows} rows, got {len(user_ids)} user ids")
        user_ids = [BASE_ROW if user is None else user for user in user_ids]
        with self._lock, self.bank.users(user_ids):
            return self.model(**batch, **kwargs)

    __call__ = forward

    # -- registry feed -----------------------------------------------------------------

    def apply_feed_event(self, event: FeedEvent | Mapping[str, Any]) -> bool:
        """Re-resolve a loaded user whose alias moved (publish or rollback) and replace its
        vectors; drop loaded users whose adapter was deleted (`adapter_deleted`, or
        `user_deleted`: matched by adapter id). Other events are ignored: other users load
        on demand, and a deleted version is never one an alias points at. True if applied."""
        return bool(self._apply(event))

    def _apply(self, event: FeedEvent | Mapping[str, Any]) -> list[str]:
        """The users the event replaced or dropped."""
        if not isinstance(event, FeedEvent):
            event = FeedEvent.model_validate(dict(event))
        self.feed_seq = max(self.feed_seq, event.seq)
        if event.kind in DROPPING:
            return self._drop_adapters(set(event.adapter_ids or ()))
        if event.kind not in MOVES:
            return []
        if event.adapter_name != self.adapter or event.alias != self.alias:
            return []
        current = self.users.get(event.user_id)
        if current is None or current.manifest.alias_generation >= event.generation:
            return []
        # Another API process may not have heard of this move yet: ask for it by generation.
        self.load_user(event.user_id, min_generation=event.generation)
        return [event.user_id]

    def _drop_adapters(self, adapter_ids: set[str]) -> list[str]:
        """Forget the users of deleted adapters: bank rows, and their blobs in the client's
        cache directory (unless another loaded user has the same bytes)."""
        gone = [u for u, loaded in self.users.items() if loaded.manifest.adapter_id in adapter_ids]
        for user_id in gone:
            sha256 = self.users[user_id].manifest.blob_sha256
            self.drop_user(user_id)
            shared = any(u.manifest.blob_sha256 == sha256 for u in self.users.values())
            if self.client is not None and self.client.cache_dir is not None and not shared:
                self.client.cache_path(sha256).unlink(missing_ok=True)
        return gone

    def sync(self, feed: Iterable[FeedEvent | Mapping[str, Any]] | None = None) -> list[str]:
        """Apply events: from `feed` (e.g. `client.follow_feed(...)`, consumed to its end),
        or, without one, every event the registry has after `feed_seq` (no waiting).
        Returns the users whose adapters were replaced or dropped."""
        changed: list[str] = []
        if feed is not None:
            for event in feed:
                changed += self._apply(event)
            return changed
        while True:
            events, last = self._client().feed(after=self.feed_seq, wait=0)
            for event in events:
                changed += self._apply(event)
            self.feed_seq = max(self.feed_seq, last)
            if not events:
                return changed

    def close(self) -> None:
        self.bank.close()


MOVES = ("set", "rollback")
DROPPING = ("adapter_deleted", "user_deleted")
