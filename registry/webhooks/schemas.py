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


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    event_types: list[str]
    description: str | None
    created_at: datetime


class NewWebhookOut(WebhookOut):
    secret: str = Field(
        description="The signing secret (whsec_…): shown this once; verify each delivery's "
        "Vera-Signature header with it."
    )


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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
