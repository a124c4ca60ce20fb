"""Response and request shapes for adapters, versions, aliases, the manifest and the feed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.adapters import examples
from registry.input_rules import bounded_text
from registry.names import Tag

# Descriptions and tags (rules: registry/adapters/metadata.py, registry/names.Tag).
Description = bounded_text(2000)
TagList = Annotated[list[Tag], Field(max_length=32)]

# Why an alias moved, as the caller says it: kept in the history and the audit log.
Reason = bounded_text(500)
REASON = Field(None, description="Why: kept in the alias history and the audit log.")


class AdapterOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [examples.ADAPTER]}
    )

    id: str
    user_id: str
    name: str
    base_model_id: str
    projection_id: str
    target_modules: list[str] | str
    task: str
    description: str | None = None
    tags: list[str] = []
    created_at: datetime
    updated_at: datetime


class VersionOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [examples.VERSION]}
    )

    adapter_id: str
    number: int
    blob_sha256: str
    size_bytes: int
    metrics: dict
    job_id: str | None
    parent_version_id: str | None
    description: str | None = None
    tags: list[str] = []
    created_at: datetime


class UserAdapterOut(BaseModel):
    id: str
    name: str
    base_model_id: str
    task: str
    description: str | None
    tags: list[str]
    live_version: int | None = Field(description="The version `live` points at; null if none.")
    updated_at: datetime


class UserOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.USER]})

    user_id: str
    adapters: list[UserAdapterOut] = Field(description="Those matching the filters, by name.")


class MetadataIn(BaseModel):
    """A change of description and tags: fields left out stay as they are."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"description": "Alice's support-chat style", "add_tags": ["support"]}]
        },
    )

    description: Description | None = Field(
        None, description='New description; null or "" clears it.'
    )
    tags: TagList | None = Field(None, description="Replaces the whole tag set.")
    add_tags: TagList = Field([], description="Tags to add (after `tags`).")
    remove_tags: TagList = Field([], description="Tags to remove (after `add_tags`).")

    @model_validator(mode="after")
    def _some_change(self) -> MetadataIn:
        if not self.model_fields_set:
            raise ValueError("say what to change: description, tags, add_tags or remove_tags")
        return self

    def changes(self) -> dict:
        """Keyword arguments for metadata.update: only what the caller sent."""
        return {field: getattr(self, field) for field in self.model_fields_set}


class AliasOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.ALIAS]})

    adapter_id: str
    alias: str
    version: int
    generation: int
    manifest: Manifest = Field(
        description="What resolve serves for this alias now; resolve with "
        "min_generation=generation to read this write back on any server."
    )


class AliasSummaryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.ALIAS_SUMMARY]})

    alias: str
    version: int = Field(description="The version number it points at.")
    generation: int = Field(description='Rises on every move: send it as If-Match: "<n>".')
    updated_at: datetime


class PublishIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"version": 3, "reason": "eval loss 0.41 beats v2"}]},
    )

    version: int = Field(ge=1, le=2**31 - 1)
    reason: Reason | None = REASON


class RollbackIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reason": "v3 answers in the wrong language"}, {"to_version": 2}]
        },
    )

    to_version: int | None = Field(None, ge=1, le=2**31 - 1)
    reason: Reason | None = REASON


class AliasEventOut(BaseModel):
    """An alias move (`set`, `rollback`), or a deletion: `version_deleted` (from_version is
    the deleted number), `adapter_deleted` (adapter_id null, see adapter_ids) or
    `user_deleted` (adapter_ids only: no user id survives an erasure)."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [examples.ALIAS_EVENT]}
    )

    seq: int
    adapter_id: str | None
    user_id: str | None
    adapter_name: str | None
    alias: str | None
    kind: str
    from_version: int | None
    to_version: int | None
    generation: int | None
    adapter_ids: list[str] | None = Field(None, description="Deletions: the adapters removed.")
    created_at: datetime
    actor_key_id: str | None = Field(
        None, description="The API key that moved the alias; null: a job's own publish."
    )
    reason: str | None = None


class FeedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.FEED]})

    events: list[AliasEventOut]
    last_seq: int = Field(description="Pass as `after` to continue from here.")


class BaseModelRef(BaseModel):
    id: str
    name: str
    content_hash: str
    weights_hash: str = Field(description="Tensor hash: what a loaded model is checked against.")
    architecture: str


class ProjectionRef(BaseModel):
    id: str
    seed: int
    r: int
    max_d_in: int
    max_d_out: int
    generator: str
    fingerprint: str


class Manifest(BaseModel):
    """Everything a downstream server needs to load one user's adapter."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.MANIFEST]})

    user_id: str
    adapter_id: str
    adapter_name: str
    alias: str
    alias_generation: int
    version: int
    task: str
    target_modules: list[str] | str
    blob_sha256: str
    blob_size_bytes: int
    blob_url: str
    peft_url: str
    base_model: BaseModelRef
    projection: ProjectionRef
