"""Operator-declared external sources of base-model files (`VERA_MODEL_SOURCES`).

A base model's files normally live in the registry's own blob store. An operator may list
roots — local directories (a shared model volume) and `s3://bucket/prefix` — from which
base models can be registered without uploading; nothing outside those roots can ever be
named. The API checks a source at registration (422) and the worker checks it again, file by
file, when it loads, so a symlink added later or a shrunk allow-list still holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from registry.errors import Invalid

S3 = "s3://"
FILE = "file://"


class SourceNotAllowed(Invalid):
    code = "source_not_allowed"


def _refuse(source_uri: str, why: str) -> SourceNotAllowed:
    # Never name the allowed roots or where a path resolves to: a tenant learns nothing
    # about the operator's file system from this message.
    return SourceNotAllowed(
        f"source_uri {source_uri[:200]!r} {why}. Base models load only from the registry's "
        "store (upload the folder: `vera-registry base-models register PATH`) or from roots "
        "the operator allows in VERA_MODEL_SOURCES",
        details=[{"field": "source_uri", "message": why}],
    )


def _s3_parts(uri: str) -> tuple[str, tuple[str, ...]]:
    bucket, _, prefix = uri.removeprefix(S3).partition("/")
    parts = tuple(p for p in prefix.split("/") if p)
    return bucket, parts


def _real(path: str) -> Path:
    # realpath resolves '..' and every symlink, also for a path that does not exist yet.
    return Path(os.path.realpath(path))


def resolve_local(path: str | Path, roots: Sequence[str]) -> Path | None:
    """`path` with symlinks and '..' resolved, if it lies under one of the local roots."""
    real = _real(str(path))
    for root in roots:
        if not root.startswith(S3) and real.is_relative_to(_real(root.removeprefix(FILE))):
            return real
    return None


def check_source(source_uri: str, roots: Sequence[str]) -> str:
    """The normalised source URI (a resolved absolute path, or s3://bucket/prefix) when it
    lies under an allowed root; SourceNotAllowed (422) otherwise."""
    if not isinstance(source_uri, str) or "\0" in source_uri or not source_uri.strip():
        raise _refuse(str(source_uri), "is not a path or s3:// URI")
    if source_uri.startswith(S3):
        bucket, parts = _s3_parts(source_uri)
        if not bucket or any(p in (".", "..") for p in parts):
            raise _refuse(source_uri, "is not a plain s3://bucket/prefix")
        for root in roots:
            if root.startswith(S3):
                root_bucket, root_parts = _s3_parts(root)
                if bucket == root_bucket and parts[: len(root_parts)] == root_parts:
                    return f"{S3}{bucket}/{'/'.join(parts)}".rstrip("/")
        raise _refuse(source_uri, "is not under an allowed bucket and prefix")
    path = source_uri.removeprefix(FILE)
    if not PurePosixPath(path).is_absolute():
        raise _refuse(source_uri, "is not an absolute path")
    resolved = resolve_local(path, roots)
    if resolved is None:
        raise _refuse(source_uri, "is not under an allowed directory")
    return str(resolved)


def s3_key(source_uri: str, relative_path: str) -> tuple[str, str]:
    """(bucket, key) of one manifest file under an s3:// source."""
    bucket, parts = _s3_parts(source_uri)
    return bucket, "/".join((*parts, relative_path))
