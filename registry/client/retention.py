"""The tenant's retention policy through the API (docs/api.md, "Retention").

from registry.client import retention
retention.set_retention(client, keep_versions=5)   # the policy in force afterwards"""

from __future__ import annotations

from registry.client.api import RegistryClient


def get_retention(client: RegistryClient) -> dict:
    """keep_versions, keep_alias_days, keep_dataset_days in force, and which the tenant set."""
    return client._json("GET", "/v1/retention")


def set_retention(client: RegistryClient, **fields: int | None) -> dict:
    """Set the given keep_* fields (None resets one to the operator's default); admin scope."""
    return client._json("PATCH", "/v1/retention", json=fields)
