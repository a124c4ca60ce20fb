"""A base model's files as a folder on this host, verified file by file.

The folder is `VERA_HOME/models/<content hash hex>/` and holds exactly the files of the base
model's manifest. Every file is checked against its sha256 whenever the folder is used; a
damaged or missing file is fetched again (`registry.base_models.reader`), and the weights are
checked against weights_hash once. Workers load models from it (workers/model_cache.py); an
API host merges adapters into it for merged exports.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from registry.base_models.manifest import ModelFile, file_sha256, path_inside
from registry.base_models.reader import (
    BaseModelMismatch,
    ModelSpec,
    checked_source,
    open_model_file,
    verified,
)
from registry.config import Settings
from registry.errors import Invalid

WEIGHTS_CHECKED = ".weights-verified"


def fetch_model_folder(spec: ModelSpec, settings: Settings, store) -> Path:
    """The cache directory of this base model with every file verified (fetched if
    missing or damaged), and its weights checked against weights_hash once."""
    if not spec.files:
        raise BaseModelMismatch(
            f"base model {spec.content_hash} was registered before base models carried "
            "their files: register it again (`vera-registry base-models register PATH`)"
        )
    if spec.source_uri is not None:
        # Even when cached: a removed root stops loads at once.
        checked_source(spec, settings)
    target = Path(settings.home) / "models" / spec.content_hash.removeprefix("sha256:")
    target.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock")):
        wanted = {_inside(target, f.path): f for f in spec.files}
        _remove_others(target, set(wanted))
        for path, file in wanted.items():
            if not path.is_file() or file_sha256(path) != (file.sha256, file.size):
                _fetch_file(spec, file, path, settings, store)
        _check_weights(spec, target)
    return target


def _check_weights(spec: ModelSpec, target: Path) -> None:
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


def _fetch_file(spec: ModelSpec, file: ModelFile, path: Path, settings: Settings, store) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".fetch-")
    try:
        with os.fdopen(fd, "wb") as handle:
            chunks = open_model_file(spec, file, settings, store)
            for chunk in verified(chunks, spec, file):
                handle.write(chunk)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def _inside(target: Path, relative: str) -> Path:
    try:
        return path_inside(target, relative)
    except Invalid as exc:
        raise BaseModelMismatch(exc.message) from None


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
