"""GET .../peft: an adapter version as a folder other servers load (VeRA, LoRA, merged)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.responses import FileResponse

from registry.adapters import exports
from registry.adapters.peft_export import (
    BASE_MODEL_HEADER,
    label_maps,
    peft_zip,
    read_safetensors_metadata,
)
from registry.adapters.router import VersionNumber
from registry.api.deps import ReadDep, SettingsDep, StoreDep
from registry.api.etags import etag_matches
from registry.db import session_scope
from registry.errors import Invalid

router = APIRouter(tags=["adapters"])

BasePath = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=1000,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Written as the folder's base_model_name_or_path (a path or hub id where "
        "the loading server finds the base model) [default: the base model's source folder, "
        "else its registered name].",
    ),
]


@router.get(
    "/v1/adapters/{adapter_id}/versions/{number}/peft",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The folder as a zip."},
        304: {"description": "Not modified: If-None-Match names this export's ETag."},
        409: {"description": "The base model's files are not available as registered."},
        413: {"description": "format=merged: the merged model is over the export limit."},
        501: {"description": "format=lora or merged: this API host has no torch."},
        503: {"description": "Too many exports are being computed: retry shortly."},
    },
    summary="Download a version as a PEFT folder (VeRA, LoRA or merged)",
)
async def export_version(
    adapter_id: str,
    number: VersionNumber,
    request: Request,
    principal: ReadDep,
    store: StoreDep,
    settings: SettingsDep,
    format: Annotated[
        Literal["vera", "lora", "merged"],
        Query(description="vera: PEFT VeRA; lora: exact LoRA (or rank-k SVD); merged: weights."),
    ] = "vera",
    rank: Annotated[
        int | None,
        Query(ge=1, le=65536, description="format=lora: truncate each layer to this rank."),
    ] = None,
    base_model_name_or_path: BasePath = None,
) -> Response:
    """A zip of the version as a folder: `vera` and `lora` load with
    PeftModel.from_pretrained (and vLLM / LoRAX for lora); `merged` with transformers."""
    if rank is not None and format != "lora":
        raise Invalid("rank applies to format=lora only", details=[{"field": "rank"}])

    def load() -> exports.ExportSource:
        with session_scope(request.app.state.session_factory) as session:
            return exports.load_source(session, principal.tenant_id, adapter_id, number)

    source = await run_in_threadpool(load)
    exports.check_rank(source, rank)
    base_path = exports.base_model_name_or_path(source, base_model_name_or_path)
    tag = hashlib.sha256(f"{format}\0{rank}\0{base_path}".encode()).hexdigest()[:16]
    etag = f'"{source.blob_sha256}-{tag}"'
    headers = {
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="{adapter_id}-v{number}-{format}.zip"',
        BASE_MODEL_HEADER: source.base_model_id,
    }
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    blob = await run_in_threadpool(request.app.state.blob_cache.get, store, source.blob_sha256)
    if format == "vera":
        metadata = read_safetensors_metadata(blob)
        updates = {"base_model_name_or_path": base_path, **label_maps(metadata)}
        return Response(peft_zip(blob, updates), media_type="application/zip", headers=headers)
    exports.require_torch(format)
    if format == "lora":
        data, extra = await run_in_threadpool(
            request.app.state.exports.run,
            (source.adapter_id, source.number, source.blob_sha256, rank, base_path),
            lambda: exports.lora_zip(source, blob, rank, base_path, settings, store),
        )
        return Response(data, media_type="application/zip", headers={**headers, **extra})
    exports.check_merged_size(source, settings.max_merged_export_bytes)
    path, _ = await run_in_threadpool(
        request.app.state.exports.run,
        None,
        lambda: exports.merged_zip(source, blob, settings, store),
    )
    return FileResponse(
        path,
        media_type="application/zip",
        headers=headers,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
