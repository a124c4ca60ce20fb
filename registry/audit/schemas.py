"""What GET /v1/audit answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AuditEventOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 5120,
                    "created_at": "2026-11-30T09:21:47.113Z",
                    "actor_key_id": "01J9ZZ0K3Y5W7V9T1R3P5N7M9K",
                    "action": "alias.set",
                    "adapter_id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
                    "target": "live",
                    "details": {
                        "from_version": 2,
                        "to_version": 3,
                        "reason": "eval loss 0.41 beats v2",
                    },
                }
            ]
        },
    )

    id: int
    created_at: datetime
    actor_key_id: str | None = Field(
        description="The API key that acted; null: a worker, the sweeper or a server-side command."
    )
    action: str
    adapter_id: str | None
    target: str | None = Field(description="What was acted on: an alias name, a key id…")
    details: dict = Field(description="Ids, counts and the actor's reason; never user data.")
