"""The caller's tenant: usage against its quotas (GET /v1/usage)."""

from __future__ import annotations

from registry.client.api import RegistryClient


def get_usage(client: RegistryClient) -> dict:
    """{"quotas": {name: {"limit", "used"}}, "retention": {keep_*: value}}."""
    return client.request("GET", "/v1/usage").json()
