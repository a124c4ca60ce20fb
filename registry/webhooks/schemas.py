"""Request and response shapes of the webhook routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from registry.input_rules import Text
from registry.webhooks.urls import MAX_URL_LENGTH

EventType = Literal["job.succeeded", "job.failed", "alias.moved", "user.deleted"]


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/vera",
                    "event_types": ["job.succeeded", "alias.moved"],
                    "description": "serving fleet",
                }
            ]
        },
    )

    url: Annotated[Text, Field(min_length=1, max_length=MAX_URL_LENGTH)] = Field(
        description="https:// URL the events are POSTed to; its host must resolve to public "
        "addresses unless the operator allows private ones."
    )
    event_types: list[EventType] = Field(
        min_length=1, max_length=4, description="The events this endpoint receives."
    )
    description: Annotated[Text, Field(max_length=2000)] | None = None


WEBHOOK_EXAMPLE = {
    "id": "01JA5B1C3D5E7F9G1H3J5K7M9N",
    "url": "https://hooks.example.com/vera",
    "event_types": ["job.succeeded", "alias.moved"],
    "description": "serving fleet",
    "created_at": "2026-11-30T09:15:02.481Z",
}


class WebhookOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [WEBHOOK_EXAMPLE]},
    )

    id: str
    url: str
    event_types: list[str]
    description: str | None
    created_at: datetime


class NewWebhookOut(WebhookOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**WEBHOOK_EXAMPLE, "secret": "whsec_Q2x8Lm4Vt7Rb1Nc9Kd3Fg6Hj"}]
        }
    )

    secret: str = Field(
        description="The signing secret (whsec_…): shown this once; verify each delivery's "
        "Vera-Signature header with it."
    )


class DeliveryOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01JA5B2D4F6H8K0M2P4R6T8V0X",
                    "endpoint_id": "01JA5B1C3D5E7F9G1H3J5K7M9N",
                    "event_id": "01JA5B2C0E2G4J6L8N0Q2S4U6W",
                    "event_type": "alias.moved",
                    "state": "succeeded",
                    "attempts": 1,
                    "next_attempt_at": None,
                    "last_status": 200,
                    "last_error": None,
                    "payload": {
                        "type": "alias.moved",
                        "data": {
                            "adapter_id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
                            "alias": "live",
                            "to_version": 3,
                        },
                    },
                    "created_at": "2026-11-30T09:21:47.113Z",
                    "delivered_at": "2026-11-30T09:21:47.113Z",
                }
            ]
        },
    )

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    state: str = Field(description="pending (to send or retry), succeeded, failed (gave up)")
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery goes out.")
    last_status: int | None = Field(description="HTTP status of the latest attempt, if any.")
    last_error: str | None
    payload: dict = Field(description="The body POSTed to the endpoint.")
    created_at: datetime
    delivered_at: datetime | None
