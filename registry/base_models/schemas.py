"""Request and response shapes for base models and projections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

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


class BaseModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    content_hash: str = Field(description="sha256:<64 hex> over the weights (registry.vera).")
    architecture: str = Field(min_length=1, max_length=200)
    layers: dict[str, list[int]] = Field(description="{module path: [d_in, d_out]}")
    source_uri: str = Field(min_length=1, max_length=2000, description="Where workers load it.")
    capabilities: Capabilities | None = Field(
        None, description="Per task: layers, or why not; max positions. Checked at job submit."
    )


class BaseModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    content_hash: str
    architecture: str
    layers: dict[str, list[int]]
    source_uri: str
    capabilities: Capabilities | None
    created_at: datetime


class ProjectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = Field(ge=0, le=2**63 - 1)
    r: int = Field(ge=1, le=65536)
    max_d_in: int = Field(ge=1, le=1 << 20)
    max_d_out: int = Field(ge=1, le=1 << 20)
    generator: str = Field(min_length=1, max_length=200)
    fingerprint: str = Field(description="sha256:<64 hex> of the regenerated A then B.")
    torch_version: str = Field(min_length=1, max_length=64)


class ProjectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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
