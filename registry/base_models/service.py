"""Base models (bound by content hash) and their projections."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.base_models.models import BaseModel, Projection
from registry.db import get_owned
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


def register_base_model(
    session: Session,
    tenant_id: str,
    *,
    name: str,
    content_hash: str,
    architecture: str,
    layers: dict,
    source_uri: str,
    capabilities: dict | None = None,
) -> tuple[BaseModel, bool]:
    """Register weights by content hash. Returns (model, created).

    Registering the same hash again with the same layers returns the existing row (so a
    retried registration is harmless); different layers under one hash is a conflict.
    Capabilities fill in a row registered without them; different ones are a conflict.
    """
    if not CONTENT_HASH.match(content_hash or ""):
        raise Invalid(
            f"content_hash must be 'sha256:' and 64 lowercase hex digits, got {content_hash!r}",
            details=[{"field": "content_hash", "message": "expected sha256:<64 hex>"}],
        )
    fields = dict(
        name=name,
        content_hash=content_hash,
        architecture=architecture,
        layers=_check_layers(layers),
        source_uri=source_uri,
        capabilities=_check_capabilities(capabilities),
    )
    existing = session.scalar(
        select(BaseModel).where(
            BaseModel.tenant_id == tenant_id, BaseModel.content_hash == content_hash
        )
    )
    if existing is not None:
        for field in ("layers", "capabilities"):
            mine, theirs = getattr(existing, field), fields[field]
            if field == "capabilities" and (mine is None or theirs is None):
                existing.capabilities = mine or theirs
            elif mine != theirs:
                raise Conflict(
                    f"base model {content_hash} is registered with other {field}",
                    details={"base_model_id": existing.id},
                )
        return existing, False
    model = BaseModel(tenant_id=tenant_id, **fields)
    try:
        with session.begin_nested():
            session.add(model)
    except IntegrityError:
        return register_base_model(session, tenant_id, **fields)
    return model, True


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
    if not CONTENT_HASH.match(fingerprint or ""):
        raise Invalid(
            f"fingerprint must be 'sha256:<64 hex>', got {fingerprint!r}",
            details=[{"field": "fingerprint", "message": "expected sha256:<64 hex>"}],
        )
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


def list_projections(session: Session, tenant_id: str, base_model_id: str) -> list[Projection]:
    get_base_model(session, tenant_id, base_model_id)
    query = select(Projection).where(Projection.base_model_id == base_model_id)
    return list(session.scalars(query.order_by(Projection.created_at, Projection.id)))
