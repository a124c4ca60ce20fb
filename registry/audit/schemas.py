"""What GET /v1/audit answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    actor_key_id: str | None = Field(
        description="The API key that acted; null: a worker, the sweeper or a server-side command."
    )
    action: str
    adapter_id: str | None
    target: str | None = Field(description="What was acted on: an alias name, a key id…")
    details: dict = Field(description="Ids, counts and the actor's reason; never user data.")
