"""Base models kept in memory between jobs, checked against their content hash on load."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)


class BaseModelMismatch(Exception):
    """The weights at the source are not the ones the base model was registered with."""


class ModelCache:
    """LRU of loaded (model, tokenizer) keyed by content hash, task and head size."""

    def __init__(self, capacity: int = 2, download_dir: Path | None = None) -> None:
        self.capacity = capacity
        self.download_dir = download_dir
        self._items: OrderedDict[tuple, tuple] = OrderedDict()
        self._verified: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, source_uri: str, content_hash: str, task: str, num_labels: int | None):
        key = (content_hash, task, num_labels)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        self.misses += 1
        path = self._local_path(source_uri)
        self._verify(path, content_hash)
        loaded = _load(path, task, num_labels)
        with self._lock:
            self._items[key] = loaded
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return loaded

    def _verify(self, path: Path, content_hash: str) -> None:
        if (str(path), content_hash) in self._verified:
            return
        from registry.vera.hashing import hash_safetensors_dir

        actual = hash_safetensors_dir(path)
        if actual != content_hash:
            raise BaseModelMismatch(
                f"weights at {path} hash to {actual}, but the base model was registered as "
                f"{content_hash}: the source changed since registration; register it again"
            )
        self._verified.add((str(path), content_hash))

    def _local_path(self, source_uri: str) -> Path:
        if source_uri.startswith("s3://"):
            return _download_s3(source_uri, self.download_dir or Path(".vera/models"))
        path = Path(source_uri.removeprefix("file://"))
        if not path.is_dir():
            raise FileNotFoundError(f"base model source {source_uri} is not a directory here")
        return path


def _load(path: Path, task: str, num_labels: int | None):
    import torch
    from transformers import AutoTokenizer

    from registry.jobs.errors import UserInputError
    from registry.vera.capabilities import unsupported_reason
    from registry.vera.describe import task_model_class

    tokenizer = AutoTokenizer.from_pretrained(path)
    extra = {"num_labels": num_labels} if task == "sequence-classification" else {}
    model, info = task_model_class(task).from_pretrained(path, output_loading_info=True, **extra)
    # Weights the checkpoint lacks are initialised at random: a causal-LM job on an
    # encoder without an LM head would "train" on noise. The job's choice, not a fault here.
    reason = unsupported_reason(task, sorted(info["missing_keys"]))
    if reason:
        message = f"this base model cannot train {task}: {reason}"
        raise UserInputError(message, code="unsupported_task")
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval(), tokenizer


def _download_s3(source_uri: str, root: Path) -> Path:
    """Copy an s3://bucket/prefix folder once into `root` (credentials from boto3's chain)."""
    import boto3

    bucket, _, prefix = source_uri.removeprefix("s3://").partition("/")
    target = root / bucket / prefix
    marker = target / ".complete"
    if marker.exists():
        return target
    client = boto3.client("s3")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :].lstrip("/")
            if relative:
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(target / relative))
    marker.touch()
    return target
