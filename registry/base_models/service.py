"""Base models (bound by content hash) and their projections."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.base_models import uploads
from registry.base_models.manifest import ModelFile, check_relative_path, manifest_hash
from registry.base_models.models import BaseModel, BaseModelFile, Projection
from registry.base_models.sources import check_source
from registry.db import created_after, get_owned
from registry.errors import Conflict, Invalid

CONTENT_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


def _check_layers(layers: dict) -> dict[str, list[int]]:
    if not isinstance(layers, dict) or not layers:
        raise Invalid(
            "layers must map module paths to [d_in, d_out]", details=[{"field": "layers"}]
        )
    checked: dict[str, list[int]] = {}
    for path, dims in layers.items():
        ok = (
            isinstance(path, str)
            and path
            and isinstance(dims, list | tuple)
            and len(dims) == 2
            and all(
                isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 1 << 20 for d in dims
            )
        )
        if not ok:
            raise Invalid(
                f"layer {path!r}: expected [d_in, d_out] positive integers, got {dims!r}",
                details=[{"field": f"layers.{path}", "message": "expected [d_in, d_out]"}],
            )
        checked[path] = [int(dims[0]), int(dims[1])]
    return checked


def _check_capabilities(capabilities: dict | None) -> dict | None:
    if capabilities is None:
        return None
    for task, entry in capabilities.get("tasks", {}).items():
        try:
            entry["layers"] = _check_layers(entry["layers"])
        except Invalid as exc:
            raise Invalid(
                f"capabilities.tasks.{task}: {exc.message}",
                details=[{"field": f"capabilities.tasks.{task}.layers", "message": exc.message}],
            ) from exc
    return capabilities


def _check_hash(value: str | None, field: str) -> str:
    if not CONTENT_HASH.match(value or ""):
        raise Invalid(
            f"{field} must be 'sha256:' and 64 lowercase hex digits, got {str(value)[:80]!r}",
            details=[{"field": field, "message": "expected sha256:<64 hex>"}],
        )
    return value


def _check_files(files: list) -> list[ModelFile]:
    checked = [
        ModelFile(check_relative_path(f["path"]), f["sha256"], f["size"])
        if isinstance(f, dict)
        else ModelFile(check_relative_path(f.path), f.sha256, f.size)
        for f in files
    ]
    paths = [f.path for f in checked]
    if len(set(paths)) != len(paths):
        raise Invalid("files lists a path twice", details=[{"field": "files"}])
    if not any("/" not in p and p.endswith(".safetensors") for p in paths):
        raise Invalid(
            "files lists no *.safetensors at the top of the folder: workers load weights "
            "from safetensors files only (convert the checkpoint with transformers' "
            "save_pretrained(..., safe_serialization=True))",
            details=[{"field": "files", "message": "no *.safetensors"}],
        )
    return checked


def _same_description(existing: BaseModel, layers: dict, capabilities: dict | None) -> None:
    """A registration of content already registered must describe it the same way."""
    if existing.layers != layers:
        raise Conflict(
            f"base model {existing.content_hash} is registered with other layers",
            details={"base_model_id": existing.id},
        )
    if existing.capabilities is None or capabilities is None:
        existing.capabilities = existing.capabilities or capabilities
    elif existing.capabilities != capabilities:
        raise Conflict(
            f"base model {existing.content_hash} is registered with other capabilities",
            details={"base_model_id": existing.id},
        )


def register_base_model(
    session: Session,
    tenant_id: str,
    *,
    name: str,
    architecture: str,
    layers: dict,
    weights_hash: str,
    files: list,
    content_hash: str | None = None,
    source_uri: str | None = None,
    allowed_sources: Sequence[str] = (),
    capabilities: dict | None = None,
) -> tuple[BaseModel, bool]:
    """Register a base model by its manifest. Returns (model, created).

    Without `source_uri` every file must have been uploaded by this tenant; with it, the
    source must lie under an operator-allowed root. Registering the same content again
    returns the existing row (a retried registration is harmless); other layers under one
    content hash is a conflict. Capabilities fill in a row registered without them;
    different ones are a conflict.
    """
    _check_hash(weights_hash, "weights_hash")
    layers = _check_layers(layers)
    capabilities = _check_capabilities(capabilities)
    checked = _check_files(files)
    computed = manifest_hash(weights_hash, checked)
    if content_hash is not None and _check_hash(content_hash, "content_hash") != computed:
        raise Invalid(
            "content_hash does not match weights_hash and files (registry/base_models/"
            "manifest.py says how it is computed): describe the folder again",
            details=[{"field": "content_hash", "message": "does not match the manifest"}],
        )
    if source_uri is not None:
        source_uri = check_source(source_uri, allowed_sources)
    else:
        uploads.require_uploaded(session, tenant_id, checked)
    query = select(BaseModel).where(
        BaseModel.tenant_id == tenant_id, BaseModel.content_hash == computed
    )
    for _ in range(3):
        existing = session.scalar(query)
        if existing is not None:
            _same_description(existing, layers, capabilities)
            return existing, False
        model = BaseModel(
            tenant_id=tenant_id,
            name=name,
            content_hash=computed,
            weights_hash=weights_hash,
            architecture=architecture,
            layers=layers,
            source_uri=source_uri,
            capabilities=capabilities,
            files=[BaseModelFile(path=f.path, sha256=f.sha256, size=f.size) for f in checked],
        )
        try:
            with session.begin_nested():
                session.add(model)
            return model, True
        except IntegrityError:
            continue  # registered concurrently: return that one
    raise Conflict("base model registration raced repeatedly; try again")


def get_base_model(session: Session, tenant_id: str, base_model_id: str) -> BaseModel:
    return get_owned(session, BaseModel, tenant_id, base_model_id, "base model")


def list_base_models(
    session: Session, tenant_id: str, *, after_id: str | None = None, limit: int = 50
) -> list[BaseModel]:
    query = select(BaseModel).where(BaseModel.tenant_id == tenant_id)
    if after_id:
        query = query.where(BaseModel.id > after_id)
    return list(session.scalars(query.order_by(BaseModel.id).limit(limit)))


def get_or_create_projection(
    session: Session,
    tenant_id: str,
    base_model_id: str,
    *,
    seed: int,
    r: int,
    max_d_in: int,
    max_d_out: int,
    generator: str,
    fingerprint: str,
    torch_version: str,
) -> tuple[Projection, bool]:
    """The projection for these parameters. A different fingerprint for the same parameters
    means some torch build draws other numbers: refused, never silently replaced."""
    base = get_base_model(session, tenant_id, base_model_id)
    if min(r, max_d_in, max_d_out) <= 0:
        raise Invalid(f"r, max_d_in, max_d_out must be positive, got {r}, {max_d_in}, {max_d_out}")
    _check_hash(fingerprint, "fingerprint")
    key = dict(
        base_model_id=base.id,
        seed=seed,
        r=r,
        max_d_in=max_d_in,
        max_d_out=max_d_out,
        generator=generator,
    )
    query = select(Projection).filter_by(**key)
    existing = session.scalar(query)
    if existing is None:
        projection = Projection(
            tenant_id=tenant_id, fingerprint=fingerprint, torch_version=torch_version, **key
        )
        try:
            with session.begin_nested():
                session.add(projection)
            return projection, True
        except IntegrityError:
            existing = session.scalar(query)
    if existing.fingerprint != fingerprint:
        raise Conflict(
            f"projection seed={seed} r={r} is recorded with fingerprint {existing.fingerprint} "
            f"(torch {existing.torch_version}), this one is {fingerprint} (torch {torch_version}):"
            " the random matrices differ between these torch builds",
            code="fingerprint_mismatch",
            details={"projection_id": existing.id},
        )
    return existing, False


def get_projection(session: Session, tenant_id: str, projection_id: str) -> Projection:
    return get_owned(session, Projection, tenant_id, projection_id, "projection")


def list_projections(
    session: Session,
    tenant_id: str,
    base_model_id: str,
    *,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[Projection]:
    """Oldest first; `after`: the (created_at, id) of the prior page's last projection."""
    get_base_model(session, tenant_id, base_model_id)
    query = select(Projection).where(Projection.base_model_id == base_model_id)
    if after is not None:
        query = query.where(created_after(Projection, after))
    return list(session.scalars(query.order_by(Projection.created_at, Projection.id).limit(limit)))
