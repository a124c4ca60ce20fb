"""Every mapped class, imported once so that `Base.metadata` is complete (Alembic, tests)."""

from registry.adapters.models import Adapter, AdapterVersion, Alias, AliasEvent
from registry.base_models.models import BaseModel, BaseModelFile, ModelFileUpload, Projection
from registry.db import Base
from registry.jobs.models import Dataset, Job, JobEvent, Pack
from registry.tenants.models import ApiKey, Tenant

__all__ = [
    "Adapter",
    "AdapterVersion",
    "Alias",
    "AliasEvent",
    "ApiKey",
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
]
