"""Base models fetched by content hash into the worker's cache, verified file by file, and
kept loaded in memory between jobs.

The cache directory is `VERA_HOME/models/<content hash hex>/` (registry/base_models/folder.py):
exactly the files of the base model's manifest, each checked against its sha256 whenever the
directory is used to load a model, fetched again from the registry's blob store or the
operator-allowed external source when missing or damaged. Nothing else is ever read.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

from registry.base_models.folder import fetch_model_folder
from registry.base_models.reader import BaseModelMismatch, ModelSpec
from registry.config import Settings

__all__ = ["BaseModelMismatch", "ModelCache", "ModelSpec"]
log = logging.getLogger(__name__)


class ModelCache:
    """LRU of loaded (model, tokenizer) keyed by content hash, task and head size."""

    def __init__(self, settings: Settings, store, capacity: int = 2) -> None:
        self.settings, self.store, self.capacity = settings, store, capacity
        self.root = Path(settings.home) / "models"
        self._items: OrderedDict[tuple, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, spec: ModelSpec, task: str, num_labels: int | None):
        key = (spec.content_hash, task, num_labels)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        self.misses += 1
        loaded = _load(self.fetch(spec), task, num_labels)
        with self._lock:
            self._items[key] = loaded
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return loaded

    def fetch(self, spec: ModelSpec) -> Path:
        """The cache directory of this base model, every file verified (see the module)."""
        return fetch_model_folder(spec, self.settings, self.store)


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
