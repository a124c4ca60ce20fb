"""Base models fetched by content hash into the worker's cache, verified file by file, and
kept loaded in memory between jobs.

The cache directory is `VERA_HOME/models/<content hash hex>/` and holds exactly the files of
the base model's manifest. Every file is checked against its sha256 whenever the directory
is used to load a model; a damaged or missing file is fetched again, from the registry's
blob store or from the operator-allowed external source the model was registered with
(re-checked against `VERA_MODEL_SOURCES` here). Nothing else is ever read.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from registry.base_models.manifest import ModelFile, check_relative_path, file_sha256
from registry.base_models.reader import (
    BaseModelMismatch,
    ModelSpec,
    checked_source,
    open_model_file,
    verified,
)
from registry.config import Settings

log = logging.getLogger(__name__)
WEIGHTS_CHECKED = ".weights-verified"


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
        """The cache directory of this base model with every file verified (fetched if
        missing or damaged), and its weights checked against weights_hash once."""
        if not spec.files:
            raise BaseModelMismatch(
                f"base model {spec.content_hash} was registered before base models carried "
                "their files: register it again (`vera-registry base-models register PATH`)"
            )
        if spec.source_uri is not None:
            # Even when cached: a removed root stops loads at once.
            checked_source(spec, self.settings)
        target = self.root / spec.content_hash.removeprefix("sha256:")
        target.mkdir(parents=True, exist_ok=True)
        with _locked(target.with_name(target.name + ".lock")):
            wanted = {_inside(target, f.path): f for f in spec.files}
            _remove_others(target, set(wanted))
            for path, file in wanted.items():
                if not path.is_file() or file_sha256(path) != (file.sha256, file.size):
                    self._fetch_file(spec, file, path)
            self._check_weights(spec, target)
        return target

    def _check_weights(self, spec: ModelSpec, target: Path) -> None:
        marker = target / WEIGHTS_CHECKED
        if marker.is_file() and marker.read_text() == spec.weights_hash:
            return
        from registry.vera.hashing import hash_safetensors_dir

        if hash_safetensors_dir(target) != spec.weights_hash:
            raise BaseModelMismatch(
                f"the tensors of base model {spec.content_hash} do not hash to the weights_hash "
                "it was registered with: register it again from the folder "
                "(`vera-registry base-models register PATH` computes both)"
            )
        marker.write_text(spec.weights_hash)

    def _fetch_file(self, spec: ModelSpec, file: ModelFile, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".fetch-")
        try:
            with os.fdopen(fd, "wb") as handle:
                chunks = open_model_file(spec, file, self.settings, self.store)
                for chunk in verified(chunks, spec, file):
                    handle.write(chunk)
            os.replace(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)


def _inside(target: Path, relative: str) -> Path:
    path = target / check_relative_path(relative)
    if not path.resolve().is_relative_to(target.resolve()):
        raise BaseModelMismatch(f"file path {relative!r} leaves the model folder")
    return path


def _remove_others(target: Path, wanted: set[Path]) -> None:
    """Anything in the cache directory that the manifest does not list goes (a stale file
    could otherwise be read by from_pretrained); children before their parents."""
    for path in sorted(target.rglob("*"), reverse=True):
        if path in wanted or path.name == WEIGHTS_CHECKED:
            continue
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()  # only empty ones: directories of wanted files stay
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """One fetcher per model directory across the worker processes sharing VERA_HOME."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
