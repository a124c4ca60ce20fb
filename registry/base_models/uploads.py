"""Base-model files uploaded into the registry's store, recorded per tenant."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.base_models.manifest import ModelFile
from registry.base_models.models import ModelFileUpload
from registry.errors import Invalid
from registry.storage import BlobInfo, BlobStore, check_sha256


def record_upload(session: Session, tenant_id: str, info: BlobInfo) -> None:
    """This tenant has sent these verified bytes (recorded once; a re-upload is a no-op)."""
    if session.get(ModelFileUpload, (tenant_id, info.sha256)) is not None:
        return
    try:
        with session.begin_nested():
            session.add(ModelFileUpload(tenant_id=tenant_id, sha256=info.sha256, size=info.size))
    except IntegrityError:
        pass  # recorded concurrently


def uploaded_size(session: Session, store: BlobStore, tenant_id: str, sha256: str) -> int | None:
    """The size of a file this tenant uploaded and the store still holds, else None."""
    row = session.get(ModelFileUpload, (tenant_id, check_sha256(sha256)))
    if row is None or not store.exists(sha256):
        return None
    return row.size


def require_uploaded(session: Session, tenant_id: str, files: list[ModelFile]) -> None:
    """Every file of a manifest was uploaded by this tenant with this size (422 otherwise)."""
    wanted = {f.sha256 for f in files}
    sizes = dict(
        session.execute(
            select(ModelFileUpload.sha256, ModelFileUpload.size).where(
                ModelFileUpload.tenant_id == tenant_id, ModelFileUpload.sha256.in_(wanted)
            )
        ).all()
    )
    missing = [f for f in files if sizes.get(f.sha256) != f.size]
    if missing:
        names = ", ".join(f.path for f in missing[:10])
        raise Invalid(
            f"{len(missing)} file(s) of this manifest are not uploaded ({names}"
            f"{', …' if len(missing) > 10 else ''}): PUT each to /v1/base-models/files/{{sha256}} "
            "first (`vera-registry base-models register PATH` does), or name an allowed "
            "source_uri",
            code="files_not_uploaded",
            details=[{"field": "files", "path": f.path, "sha256": f.sha256} for f in missing],
        )
