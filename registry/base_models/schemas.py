"""Request and response shapes for base models and projections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from registry.base_models.manifest import MAX_FILES, MAX_PATH_LENGTH
from registry.jobs.schemas import Task


class TaskCapability(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: dict[str, list[int]] = Field(
        description="{module path: [d_in, d_out]} on the model class this task trains."
    )


class Capabilities(BaseModel):
    """What the weights can train, computed by `registry.vera.describe` at registration."""

    model_config = ConfigDict(extra="forbid")

    max_positions: int | None = Field(
        None, ge=1, le=1 << 30, description="Longest input the position embeddings cover."
    )
    tasks: dict[Task, TaskCapability] = Field(description="The tasks it can train.")
    unsupported: dict[Task, Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=dict, description="Why it cannot train the other tasks."
    )


# One presigned PUT is one S3 object write: S3 takes at most 5 GiB that way.
PRESIGNED_PUT_MAX_BYTES = 5 * 1024**3


class ModelFileIn(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    path: str = Field(
        min_length=1, max_length=MAX_PATH_LENGTH, description="Relative, '/'-separated."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="64 lowercase hex digits.")
    size: int = Field(ge=0, le=1 << 50)


class BaseModelIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "llama-3.2-1b",
                    "architecture": "LlamaForCausalLM",
                    "layers": {
                        "model.layers.0.self_attn.q_proj": [2048, 2048],
                        "model.layers.0.self_attn.v_proj": [2048, 512],
                    },
                    "weights_hash": "sha256:" + "ab" * 32,
                    "files": [
                        {
                            "path": "config.json",
                            "sha256": "3f" * 32,
                            "size": 877,
                        },
                        {
                            "path": "model.safetensors",
                            "sha256": "9c" * 32,
                            "size": 2471645608,
                        },
                    ],
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    architecture: str = Field(min_length=1, max_length=200)
    layers: dict[str, list[int]] = Field(description="{module path: [d_in, d_out]}")
    weights_hash: str = Field(description="sha256:<64 hex> over the tensors (registry.vera).")
    files: list[ModelFileIn] = Field(
        min_length=1,
        max_length=MAX_FILES,
        description="Every file of the checkpoint folder; uploaded first unless source_uri.",
    )
    content_hash: str | None = Field(
        None, description="Optional check: must equal the hash the registry computes."
    )
    source_uri: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Load from this external root instead of the store: it must lie under "
        "VERA_MODEL_SOURCES.",
    )
    capabilities: Capabilities | None = Field(
        None, description="Per task: layers, or why not; max positions. Checked at job submit."
    )


class BaseModelOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01JA3F2M8Q7T6R5P4N3K2J1H0G",
                    "name": "llama-3.2-1b",
                    "content_hash": "sha256:" + "7a" * 32,
                    "weights_hash": "sha256:" + "ab" * 32,
                    "architecture": "LlamaForCausalLM",
                    "layers": {"model.layers.0.self_attn.q_proj": [2048, 2048]},
                    "files": [
                        {
                            "path": "model.safetensors",
                            "sha256": "9c" * 32,
                            "size": 2471645608,
                        }
                    ],
                    "source_uri": None,
                    "capabilities": {
                        "max_positions": 131072,
                        "tasks": {
                            "causal-lm": {
                                "layers": {"model.layers.0.self_attn.q_proj": [2048, 2048]}
                            }
                        },
                        "unsupported": {
                            "sequence-classification": "no classification head class for this model"
                        },
                    },
                    "created_at": "2026-11-30T09:15:02.481Z",
                }
            ]
        },
    )

    id: str
    name: str
    content_hash: str
    weights_hash: str
    architecture: str
    layers: dict[str, list[int]]
    files: list[ModelFileIn]
    source_uri: str | None
    capabilities: Capabilities | None
    created_at: datetime


class ModelFileOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sha256": "9c" * 32,
                    "size": 2471645608,
                }
            ]
        }
    )

    sha256: str
    size: int


class PresignIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"size": 2200000000}]}
    )

    size: int = Field(ge=0, le=PRESIGNED_PUT_MAX_BYTES, description="The file's size, bytes.")


class PresignOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://s3.example.com/vera/models/9c9c...?X-Amz-Signature=...",
                    "upload_id": "5f0c6a7e9b2d4c1a8e3f7b6d2c9a1e4f",
                    "expires_in_s": 3600,
                }
            ]
        }
    )

    url: str = Field(description="PUT the file's bytes here, then call .../complete.")
    upload_id: str
    expires_in_s: int


class CompleteIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"upload_id": "5f0c6a7e9b2d4c1a8e3f7b6d2c9a1e4f"}]},
    )

    upload_id: str = Field(pattern=r"^[0-9a-f]{32}$")


PROJECTION_EXAMPLE = {
    "seed": 42,
    "r": 256,
    "max_d_in": 2048,
    "max_d_out": 2048,
    "generator": "kaiming_uniform/torch.Generator",
    "fingerprint": "sha256:" + "5e" * 32,
    "torch_version": "2.5.1",
}


class ProjectionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [PROJECTION_EXAMPLE]},
    )

    seed: int = Field(ge=0, le=2**63 - 1)
    r: int = Field(ge=1, le=65536)
    max_d_in: int = Field(ge=1, le=1 << 20)
    max_d_out: int = Field(ge=1, le=1 << 20)
    generator: str = Field(min_length=1, max_length=200)
    fingerprint: str = Field(description="sha256:<64 hex> of the regenerated A then B.")
    torch_version: str = Field(min_length=1, max_length=64)


class ProjectionOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01JA3F4B6C8D0E2F4G6H8J0K2M",
                    "base_model_id": "01JA3F2M8Q7T6R5P4N3K2J1H0G",
                    **PROJECTION_EXAMPLE,
                    "created_at": "2026-11-30T09:15:02.481Z",
                }
            ]
        },
    )

    id: str
    base_model_id: str
    seed: int
    r: int
    max_d_in: int
    max_d_out: int
    generator: str
    fingerprint: str
    torch_version: str
    created_at: datetime
