"""Exports of an adapter version that other inference servers load (torch-free part).

`vera` is the stored blob as a PEFT VeRA folder. `lora` and `merged` are computed with torch
(`registry.vera.lora_export`, `registry.vera.merge_export`) in the threadpool, at most
EXPORT_SLOTS at a time per API process, with a small cache of recent LoRA folders.
Every adapter folder names a base model (`base_model_name_or_path`): the caller's value, else
the base model's recorded source when it is a local folder, else its registered name.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry.adapters import service
from registry.adapters.models import Adapter
from registry.base_models.models import BaseModel, Projection
from registry.base_models.reader import ModelSpec
from registry.base_models.sources import S3
from registry.errors import RegistryError, StorageError

BASE_MODEL_HEADER = "X-Vera-Base-Model-Id"
EXPORT_SLOTS = 2  # torch exports running at once per API process (CPU and memory bound)
SLOT_WAIT_S = 30.0
CACHE_ENTRIES = 16
CACHE_MAX_ENTRY_BYTES = 16 * 1024 * 1024


class TorchMissing(RegistryError):
    status_code = 501
    code = "export_needs_torch"


@dataclass(frozen=True)
class ExportSource:
    """What an export reads, loaded in one transaction (no session held while computing)."""

    adapter_id: str
    number: int
    blob_sha256: str
    task: str
    base_model_id: str
    base_name: str
    base: ModelSpec
    layers: dict[str, list[int]]
    projection: tuple[int, int, int, int, str]  # seed, r, max_d_in, max_d_out, fingerprint


def load_source(session: Session, tenant_id: str, adapter_id: str, number: int) -> ExportSource:
    version = service.get_version(session, tenant_id, adapter_id, number)
    adapter = session.get(Adapter, version.adapter_id)
    base = session.get(BaseModel, adapter.base_model_id)
    proj = session.get(Projection, adapter.projection_id)
    task_layers = ((base.capabilities or {}).get("tasks") or {}).get(adapter.task) or {}
    return ExportSource(
        adapter_id=adapter.id,
        number=version.number,
        blob_sha256=version.blob_sha256,
        task=adapter.task,
        base_model_id=base.id,
        base_name=base.name,
        base=ModelSpec.of(base),
        layers={**base.layers, **task_layers.get("layers", {})},
        projection=(proj.seed, proj.r, proj.max_d_in, proj.max_d_out, proj.fingerprint),
    )


def base_model_name_or_path(source: ExportSource, given: str | None) -> str:
    """The caller's value; else the recorded source where it is a local folder; else the
    base model's registered name (documented: docs/client.md, "Export to vLLM / LoRAX")."""
    if given is not None:
        return given
    uri = source.base.source_uri
    if uri is not None and not uri.startswith(S3):
        return uri
    return source.base_name


def require_torch(format_name: str) -> None:
    if importlib.util.find_spec("torch") is None:
        raise TorchMissing(
            f"format={format_name} is computed with torch, which this API host does not "
            "have: install the worker extra (pip install 'vera-registry[worker]') on the API "
            "hosts, or download format=vera and convert where torch is",
            details={"format": format_name},
        )


class ExportSlots:
    """Bounded concurrency of torch exports and a small LRU of their (small) results."""

    def __init__(self, slots: int = EXPORT_SLOTS) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._cache: OrderedDict[tuple, tuple[bytes, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, key: tuple | None, compute):
        """`compute()` in a free slot (503 after SLOT_WAIT_S), cached under `key` when given."""
        if key is not None:
            with self._lock:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return self._cache[key]
        if not self._slots.acquire(timeout=SLOT_WAIT_S):
            raise StorageError(
                f"{EXPORT_SLOTS} exports are being computed on this API process: retry shortly",
                code="export_busy",
            )
        try:
            result = compute()
        finally:
            self._slots.release()
        if key is not None and len(result[0]) <= CACHE_MAX_ENTRY_BYTES:
            with self._lock:
                self._cache[key] = result
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return result


SLOTS = ExportSlots()
