"""Job requests and responses; the hyperparameter ranges live here, checked before storing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic_core import PydanticCustomError

from registry.adapters.schemas import Description, TagList
from registry.names import AdapterName, UserId
from registry.vera.auto_lr import AUTO

Task = Literal["causal-lm", "sequence-classification"]
LearningRate = Annotated[float, Field(gt=0, le=1.0)]
_LEARNING_RATE = TypeAdapter(LearningRate)


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    learning_rate: LearningRate | Literal["auto"] = Field(
        2e-2,
        description='AdamW peak learning rate of the λ vectors, or "auto": several candidate '
        "rates train side by side and the one with the lowest held-out loss is kept.",
    )
    epochs: int = Field(3, ge=1, le=100)
    max_steps: int | None = Field(None, ge=1, le=1_000_000, description="Overrides epochs.")
    batch_size: int = Field(16, ge=1, le=1024)
    max_seq_len: int = Field(128, ge=8, le=32768)
    warmup_ratio: float = Field(0.06, ge=0, le=0.5)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    weight_decay: float = Field(0.0, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0, le=1000)
    d_initial: float = Field(0.1, ge=0, le=10, description="Initial λd (VeRA paper, §3).")
    vera_dropout: float = Field(0.0, ge=0, lt=1)
    eval_fraction: float = Field(0.1, ge=0, le=0.5, description="Held-out share of rows.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    max_runtime_s: int | None = Field(None, ge=10, description="Capped by the server's limit.")

    @field_validator("learning_rate", mode="wrap")
    @classmethod
    def _rate_or_auto(cls, value, handler):
        # One error naming the two accepted forms, instead of one per branch of the union.
        if value == AUTO:
            return value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise PydanticCustomError(
                    "learning_rate", 'Input should be a number in (0, 1] or "auto"'
                ) from None
        return _LEARNING_RATE.validate_python(value)


class JobRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "alice",
                    "adapter_name": "default",
                    "dataset_id": "01JA3F6Y2S9K4V1C7W8N0B5D3E",
                    "base_model_id": "01JA3F2M8Q7T6R5P4N3K2J1H0G",
                    "projection_id": "01JA3F4B6C8D0E2F4G6H8J0K2M",
                    "target_modules": ["q_proj", "v_proj"],
                    "hyperparameters": {"learning_rate": "auto", "epochs": 3},
                    "tags": ["nightly"],
                }
            ]
        },
    )

    user_id: UserId
    adapter_name: AdapterName = "default"
    dataset_id: str = Field(min_length=1, max_length=64)
    base_model_id: str = Field(min_length=1, max_length=64)
    projection_id: str = Field(min_length=1, max_length=64)
    target_modules: list[str] = Field(min_length=1, max_length=512)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    warm_start: bool = Field(False, description="Start from the adapter's live version.")
    publish: bool = Field(True, description="Move the `live` alias to the new version.")
    queue: str | None = Field(None, max_length=200, description="Route to a GPU pool.")
    description: Description | None = Field(
        None, description="Description of the version this job creates."
    )
    tags: TagList = Field([], description="Tags of the version this job creates.")
    adapter_description: Description | None = Field(
        None, description="Replaces the adapter's description at submit (null: keep it)."
    )
    adapter_tags: TagList | None = Field(
        None, description="Replace the adapter's tags at submit (null: keep them)."
    )


class JobOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01JA4K5T8W2Y6Z0A3B5C7D9E1F",
                    "user_id": "alice",
                    "adapter_id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
                    "dataset_id": "01JA3F6Y2S9K4V1C7W8N0B5D3E",
                    "base_model_id": "01JA3F2M8Q7T6R5P4N3K2J1H0G",
                    "projection_id": "01JA3F4B6C8D0E2F4G6H8J0K2M",
                    "hyperparameters": {"learning_rate": "auto", "epochs": 3, "batch_size": 16},
                    "state": "running",
                    "publish": True,
                    "queue": None,
                    "progress": 0.42,
                    "step": 84,
                    "total_steps": 200,
                    "attempts": 1,
                    "error_code": None,
                    "error_kind": None,
                    "error_message": None,
                    "cancel_requested_at": None,
                    "result_version_id": None,
                    "description": None,
                    "tags": ["nightly"],
                    "pack_id": "01JA4K6A2B4C6D8E0F2G4H6J8K",
                    "pack_size": 12,
                    "checkpoint_step": 80,
                    "created_at": "2026-11-30T09:15:02.481Z",
                    "started_at": "2026-11-30T09:21:47.113Z",
                    "finished_at": None,
                }
            ]
        },
    )

    id: str
    user_id: str
    adapter_id: str
    dataset_id: str
    base_model_id: str
    projection_id: str
    hyperparameters: dict
    state: str
    publish: bool
    queue: str | None
    progress: float
    step: int
    total_steps: int | None
    attempts: int
    error_code: str | None
    error_kind: str | None
    error_message: str | None
    cancel_requested_at: datetime | None
    result_version_id: str | None
    description: str | None = None
    tags: list[str] = []
    pack_id: str | None = Field(None, description="The pack it trains (or last trained) in.")
    pack_size: int | None = Field(None, description="Jobs in that pack at its latest step.")
    checkpoint_step: int | None = Field(None, description="Step of its latest checkpoint.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobEventOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "seq": 17,
                    "kind": "progress",
                    "data": {"step": 84, "total_steps": 200, "loss": 0.52},
                    "created_at": "2026-11-30T09:21:47.113Z",
                }
            ]
        },
    )

    seq: int
    kind: str
    data: dict
    created_at: datetime


class DatasetOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01JA3F6Y2S9K4V1C7W8N0B5D3E",
                    "user_id": "alice",
                    "task": "causal-lm",
                    "blob_sha256": "4c" * 32,
                    "rows": 1200,
                    "size_bytes": 311296,
                    "labels": None,
                    "created_at": "2026-11-30T09:15:02.481Z",
                    "purged_at": None,
                }
            ]
        },
    )

    id: str
    user_id: str
    task: str
    blob_sha256: str | None = Field(description="Null once purged by retention.")
    rows: int
    size_bytes: int
    labels: list | None
    created_at: datetime
    purged_at: datetime | None = None
