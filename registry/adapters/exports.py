"""Exports of an adapter version that other inference servers load (torch-free part).

`vera` is the stored blob as a PEFT VeRA folder. `lora` and `merged` are computed with torch
(`registry.vera.lora_export`, `registry.vera.merge_export`) in the threadpool, at most
EXPORT_SLOTS at a time per API process, with a small cache of recent LoRA folders.
Every adapter folder names a base model (`base_model_name_or_path`): the caller's value, else
the base model's recorded source when it is a local folder, else its registered name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from registry.adapters import service
from registry.adapters.models import Adapter
from registry.adapters.peft_export import label_maps, read_safetensors_metadata, zip_folder
from registry.base_models.models import BaseModel, Projection
from registry.base_models.reader import BaseModelMismatch, ModelSpec, open_model_file, verified
from registry.base_models.sources import S3
from registry.config import Settings
from registry.errors import Conflict, Invalid, RegistryError, StorageError, TooLarge

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

    def clear(self) -> None:
        """Forget every cached export (a deletion reached this process)."""
        with self._lock:
            self._cache.clear()

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


def check_merged_size(source: ExportSource, limit: int) -> None:
    size = sum(file.size for file in source.base.files)
    if size > limit:
        raise TooLarge(
            f"a merged export copies the base model's {size} bytes, over "
            f"VERA_MAX_MERGED_EXPORT_BYTES={limit}: download format=lora (or vera) and merge "
            "where the base model is, or raise the setting",
            details={"size_bytes": size, "limit_bytes": limit},
        )


def check_rank(source: ExportSource, rank: int | None) -> None:
    r = source.projection[1]
    if rank is not None and rank > r:
        raise Invalid(
            f"rank {rank} is above the adapter's r={r}: ask for 1..{r} (r itself is exact)",
            details=[{"field": "rank", "message": f"at most r={r}"}],
        )


def _exact_factors(source: ExportSource, blob: bytes):
    from registry.vera.lora_export import exact_factors
    from registry.vera.projection import ProjectionMismatch

    try:
        return exact_factors(blob, source.layers, source.projection)
    except (ValueError, KeyError, ProjectionMismatch) as exc:
        raise Conflict(
            f"adapter {source.adapter_id} version {source.number} cannot be converted: {exc}",
            code="export_failed",
        ) from exc


def _base_config(source: ExportSource, settings: Settings, store) -> dict:
    file = next((f for f in source.base.files if f.path == "config.json"), None)
    if file is None:
        return {}
    try:
        chunks = verified(open_model_file(source.base, file, settings, store), source.base, file)
        return json.loads(b"".join(chunks))
    except BaseModelMismatch as exc:
        raise Conflict(str(exc), code="base_model_files_unavailable") from exc


def _conv1d(source: ExportSource, model_config: dict, paths: list[str]) -> set[str]:
    from registry.vera.lora_export import conv1d_paths

    if not model_config.get("model_type"):
        return set()  # no config to build the model from: layers taken as nn.Linear
    return conv1d_paths(model_config, source.task, paths)


def lora_zip(
    source: ExportSource, blob: bytes, rank: int | None, base_path: str, settings: Settings, store
) -> tuple[bytes, dict[str, str]]:
    """The LoRA folder as a zip, and headers summarising a truncation's error."""
    from registry.vera.lora_export import lora_files, truncate

    factors = _exact_factors(source, blob)
    if rank is not None:
        factors = truncate(factors, rank)
    conv1d = _conv1d(source, _base_config(source, settings, store), list(factors.b))
    errors = factors.errors
    record = {"adapter_id": source.adapter_id, "version": source.number, "rank": factors.rank}
    extra = {
        **label_maps(read_safetensors_metadata(blob)),
        "vera_export": {**record, "relative_errors": errors},
    }
    files = lora_files(factors, base_path, bool(conv1d), extra)
    headers = {
        "X-Vera-Lora-Rank": str(factors.rank),
        "X-Vera-Lora-Max-Relative-Error": f"{max(errors.values(), default=0.0):.6g}",
        "X-Vera-Lora-Mean-Relative-Error": f"{sum(errors.values()) / max(len(errors), 1):.6g}",
    }
    return zip_folder(files), headers


def merged_zip(
    source: ExportSource, blob: bytes, settings: Settings, store
) -> tuple[Path, dict[str, str]]:
    """The base model folder with the adapter merged in, as a zip in a temporary file."""
    from registry.base_models.folder import fetch_model_folder
    from registry.vera.merge_export import write_merged_zip

    try:
        folder = fetch_model_folder(source.base, settings, store)
    except BaseModelMismatch as exc:
        raise Conflict(str(exc), code="base_model_files_unavailable") from exc
    factors = _exact_factors(source, blob)
    config_path = folder / "config.json"
    model_config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    conv1d = _conv1d(source, model_config, list(factors.b))
    fd, name = tempfile.mkstemp(prefix="vera-merged-", suffix=".zip")
    os.close(fd)
    out = Path(name)
    try:
        files = [file.path for file in source.base.files]
        labels = label_maps(read_safetensors_metadata(blob))
        write_merged_zip(folder, files, factors, conv1d, labels, out)
    except ValueError as exc:
        out.unlink(missing_ok=True)
        raise Conflict(f"cannot merge: {exc}", code="export_failed") from exc
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out, {}
