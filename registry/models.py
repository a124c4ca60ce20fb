"""Every mapped class, imported once so that `Base.metadata` is complete (Alembic, tests)."""

from registry.adapters.models import (
    Adapter,
    AdapterTag,
    AdapterVersion,
    Alias,
    AliasEvent,
    VersionTag,
)
from registry.audit.models import AuditEvent
from registry.base_models.models import BaseModel, BaseModelFile, ModelFileUpload, Projection
from registry.db import Base
from registry.jobs.models import Dataset, Job, JobEvent, Pack
from registry.tenants.models import ApiKey, Tenant, TenantPolicy
from registry.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "Adapter",
    "AdapterTag",
    "AdapterVersion",
    "Alias",
    "AliasEvent",
    "ApiKey",
    "AuditEvent",
    "Base",
    "BaseModel",
    "BaseModelFile",
    "Dataset",
    "Job",
    "JobEvent",
    "ModelFileUpload",
    "Pack",
    "Projection",
    "Tenant",
    "TenantPolicy",
    "VersionTag",
    "WebhookDelivery",
    "WebhookEndpoint",
]
