"""Base models and their projections."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from registry.api.deps import AdminDep, PrincipalDep, ReadDep, SessionDep, SettingsDep, StoreDep
from registry.api.etags import etag_matches
from registry.api.openapi import answers
from registry.api.pagination import (
    DEFAULT_LIMIT,
    ByCreatedAt,
    ById,
    Limit,
    Page,
    created_key,
    decode_cursor,
    next_cursor,
)
from registry.api.streaming import body_chunks
from registry.base_models import service, uploads
from registry.base_models.reader import BaseModelMismatch, ModelSpec, open_model_file, verified
from registry.base_models.schemas import (
    BaseModelIn,
    BaseModelOut,
    CompleteIn,
    ModelFileOut,
    PresignIn,
    PresignOut,
    ProjectionIn,
    ProjectionOut,
)
from registry.db import session_scope
from registry.errors import Conflict, NotFound, TooLarge
from registry.storage import check_sha256

router = APIRouter(prefix="/v1/base-models", tags=["base models"])


@answers(400)
async def file_sha256(sha256: str, _: PrincipalDep) -> str:
    """The `{sha256}` of a file path: 400 bad_sha256 unless 64 lowercase hex digits (after
    the key is checked)."""
    return check_sha256(sha256)


FileSha256 = Annotated[str, Depends(file_sha256)]


@router.get(
    "/files/{sha256}", response_model=ModelFileOut, summary="Check whether a model file is uploaded"
)
def get_model_file(
    sha256: FileSha256, principal: AdminDep, session: SessionDep, store: StoreDep
) -> ModelFileOut:
    """Whether this tenant already uploaded a file (then it need not be sent again): its
    size, or 404. Not the bytes: workers read those from the store."""
    size = uploads.uploaded_size(session, store, principal.tenant_id, sha256)
    if size is None:
        raise NotFound(
            f"this tenant has not uploaded file {sha256}: PUT it to /v1/base-models/files/{sha256}",
            code="file_not_found",
        )
    return ModelFileOut(sha256=sha256, size=size)


@router.put(
    "/files/{sha256}",
    status_code=201,
    response_model=ModelFileOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
    summary="Upload a base-model file",
)
async def upload_model_file(
    sha256: FileSha256,
    request: Request,
    principal: AdminDep,
    store: StoreDep,
    settings: SettingsDep,
) -> ModelFileOut:
    """Stream one base-model file (the body) into the store; it must hash to `sha256`.
    Bodies above VERA_MAX_MODEL_FILE_BYTES are refused (413) by the body-limit middleware."""

    def store_and_record() -> ModelFileOut:
        limit = settings.max_model_file_bytes
        info = store.put_stream(body_chunks(request), sha256=sha256, max_bytes=limit)
        with session_scope(request.app.state.session_factory) as session:
            uploads.record_upload(session, principal.tenant_id, info)
        return ModelFileOut(sha256=info.sha256, size=info.size)

    return await run_in_threadpool(store_and_record)


@router.post(
    "/files/{sha256}/presign",
    response_model=PresignOut,
    responses={409: {"description": "Presigned uploads are off (`presign_unavailable`)."}},
    summary="Get a presigned S3 URL for a model file",
)
def presign_model_file(
    sha256: FileSha256, body: PresignIn, principal: AdminDep, store: StoreDep, settings: SettingsDep
) -> PresignOut:
    """A presigned URL to PUT one file straight to S3 (VERA_S3_PRESIGN_UPLOADS), then
    POST .../complete; 409 when this registry takes uploads only through the API."""
    if body.size > settings.max_model_file_bytes:
        raise TooLarge(
            f"file of {body.size} bytes exceeds VERA_MAX_MODEL_FILE_BYTES",
            details={"limit_bytes": settings.max_model_file_bytes},
        )
    upload_id = secrets.token_hex(16)
    ttl = settings.s3_presign_ttl_s
    url = (
        store.presigned_put_url(principal.tenant_id, upload_id, ttl)
        if settings.s3_presign_uploads
        else None
    )
    if url is None:
        raise Conflict(
            f"this registry takes files only through the API: PUT /v1/base-models/files/{sha256}",
            code="presign_unavailable",
        )
    return PresignOut(url=url, upload_id=upload_id, expires_in_s=ttl)


@router.post(
    "/files/{sha256}/complete",
    status_code=201,
    response_model=ModelFileOut,
    summary="Confirm a presigned model-file upload",
)
def complete_model_file(
    sha256: FileSha256,
    body: CompleteIn,
    principal: AdminDep,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> ModelFileOut:
    """Verify what landed at the presigned URL (it must hash to `sha256`) and keep it."""
    info = store.adopt_staged(
        principal.tenant_id, body.upload_id, sha256, settings.max_model_file_bytes
    )
    uploads.record_upload(session, principal.tenant_id, info)
    return ModelFileOut(sha256=info.sha256, size=info.size)


@router.post(
    "",
    status_code=201,
    response_model=BaseModelOut,
    responses={
        200: {"model": BaseModelOut, "description": "Registered before: the same base model."},
        409: {"description": "The same files are registered with other layers or capabilities."},
    },
    summary="Register a base model",
)
def register_base_model(
    body: BaseModelIn,
    principal: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> BaseModelOut:
    """Register a base model by its manifest of uploaded files, or from an allowed external
    source (the same registration again returns it, 200)."""
    model, created = service.register_base_model(
        session,
        principal.tenant_id,
        **body.model_dump(),
        allowed_sources=settings.model_sources,
    )
    if not created:
        response.status_code = 200
    return BaseModelOut.model_validate(model)


@router.get("", response_model=Page[BaseModelOut], summary="List base models")
def list_base_models(
    principal: ReadDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[BaseModelOut]:
    """Base models of this tenant."""
    rows = service.list_base_models(
        session, principal.tenant_id, after_id=decode_cursor(cursor, ById), limit=limit
    )
    return Page(
        items=[BaseModelOut.model_validate(r) for r in rows],
        next_cursor=next_cursor(rows, limit, lambda r: r.id),
    )


@router.get("/{base_model_id}", response_model=BaseModelOut, summary="Show a base model")
def get_base_model(base_model_id: str, principal: ReadDep, session: SessionDep) -> BaseModelOut:
    """One base model with its targetable layers."""
    return BaseModelOut.model_validate(
        service.get_base_model(session, principal.tenant_id, base_model_id)
    )


@router.get(
    "/{base_model_id}/files/{path:path}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."},
        304: {"description": "Not modified: the If-None-Match sha256 is this file's."},
        409: {"description": "The model's source no longer holds the file as registered."},
    },
    summary="Download one file of a base model",
)
def download_base_model_file(
    base_model_id: str,
    path: str,
    request: Request,
    principal: ReadDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    """One file of the base model's manifest, streamed from the store or the model's allowed
    source and checked against its sha256 as it goes (ETag = the sha256; If-None-Match →
    304). Only manifest paths exist here: anything else is 404."""
    with session_scope(request.app.state.session_factory) as session:
        spec = ModelSpec.of(service.get_base_model(session, principal.tenant_id, base_model_id))
    file = next((f for f in spec.files if f.path == path), None)
    if file is None:
        raise NotFound(
            f"base model {base_model_id} has no file {path[:200]!r} in its manifest: "
            f"GET /v1/base-models/{base_model_id} lists its files",
            code="file_not_found",
        )
    etag = f'"{file.sha256}"'
    headers = {"ETag": etag, "Content-Length": str(file.size)}
    if etag_matches(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    try:
        chunks = open_model_file(spec, file, settings, store)
    except BaseModelMismatch as exc:
        raise Conflict(str(exc), code="base_model_files_unavailable") from exc
    return StreamingResponse(
        verified(chunks, spec, file), media_type="application/octet-stream", headers=headers
    )


@router.post(
    "/{base_model_id}/projections",
    status_code=201,
    response_model=ProjectionOut,
    responses={
        200: {"model": ProjectionOut, "description": "Registered before: the same projection."},
        409: {"description": "These parameters are recorded with another fingerprint."},
    },
    summary="Register a projection",
)
def register_projection(
    base_model_id: str,
    body: ProjectionIn,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
) -> ProjectionOut:
    """Record a projection (seed, r, dims) and its fingerprint; a different fingerprint for
    the same parameters is refused (409)."""
    projection, created = service.get_or_create_projection(
        session, principal.tenant_id, base_model_id, **body.model_dump()
    )
    if not created:
        response.status_code = 200
    return ProjectionOut.model_validate(projection)


@router.get(
    "/{base_model_id}/projections",
    response_model=Page[ProjectionOut],
    summary="List a base model's projections",
)
def list_projections(
    base_model_id: str,
    principal: ReadDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[ProjectionOut]:
    """Projections registered for a base model, oldest first."""
    rows = service.list_projections(
        session,
        principal.tenant_id,
        base_model_id,
        after=decode_cursor(cursor, ByCreatedAt),
        limit=limit,
    )
    return Page(
        items=[ProjectionOut.model_validate(r) for r in rows],
        next_cursor=next_cursor(rows, limit, created_key),
    )
