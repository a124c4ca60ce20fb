"""A base model's files and the content hash that covers all of them (torch-free).

A base model is a manifest: every file of its checkpoint folder (weights, config,
tokenizer, …) as `{path, sha256, size}`, plus `weights_hash`, the tensor hash of
`registry.vera.hashing` that a loaded model can be checked against. Its `content_hash` is

    sha256( "vera-base-model/1\\n" weights_hash "\\n"
            for each file in path order: path "\\0" sha256 "\\0" size "\\n" )

so changing any file (a tokenizer merge, a config field) changes the base model's identity,
and the hash is computed the same way by the client that describes a folder, by the API that
records it and by the worker that checks what it fetched.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from registry.errors import Invalid

MANIFEST_FORMAT = "vera-base-model/1"
MAX_FILES = 4096  # a manifest stays under the API's 1 MiB JSON body limit
MAX_PATH_LENGTH = 1000
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str
    size: int


def check_relative_path(path: str) -> str:
    """A file's path inside a checkpoint folder: relative, '/'-separated, nothing that could
    leave the folder it is written into ('..', '.', empty parts, a drive, a backslash)."""
    parts = path.split("/") if isinstance(path, str) else []
    bad = (
        not parts
        or len(path) > MAX_PATH_LENGTH
        or any(part in ("", ".", "..") for part in parts)
        or any(ord(c) < 32 or c in "\\:" for c in path)
    )
    if bad:
        raise Invalid(
            f"file path {str(path)[:100]!r} is not a plain relative path inside the model "
            "folder: use '/'-separated names without '..', '.', empty parts, ':' or '\\'",
            details=[{"field": "files.path", "message": "not a relative path"}],
        )
    return path


def path_inside(directory: Path, relative: str) -> Path:
    """Where a manifest path lands under `directory`: Invalid when it could leave it, by its
    text or through a symlink already there."""
    path = directory / check_relative_path(relative)
    if not path.resolve().is_relative_to(directory.resolve()):
        raise Invalid(
            f"file path {relative[:100]!r} leaves the folder {directory}",
            details=[{"field": "files.path", "message": "leaves the folder"}],
        )
    return path


def manifest_hash(weights_hash: str, files: Iterable[ModelFile]) -> str:
    """`sha256:<hex>` over the tensor hash and every file (see the module docstring)."""
    digest = hashlib.sha256(f"{MANIFEST_FORMAT}\n{weights_hash}\n".encode())
    for file in sorted(files, key=lambda f: f.path):
        digest.update(f"{file.path}\0{file.sha256}\0{file.size}\n".encode())
    return "sha256:" + digest.hexdigest()


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 hex and size of one file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def scan_folder(directory: str | Path) -> list[ModelFile]:
    """Every regular file under `directory` (hidden ones such as .git skipped), hashed."""
    root = Path(directory)
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if name.startswith(".") or not full.is_file():
                continue
            sha256, size = file_sha256(full)
            files.append(ModelFile(full.relative_to(root).as_posix(), sha256, size))
    return files
