"""Deleting through the API: a version, an adapter, a user (docs/api.md, "Erasure").

    from registry.client import erasure
    erasure.delete_user(client, "alice")   # {"adapter_ids": [...], "counts": {...}, ...}

A DELETE is retried after a lost answer; a retry that finds the thing gone answers 404
(`not_found`): the first attempt was applied."""

from __future__ import annotations

from registry.client.api import RegistryClient, _segment


def delete_version(client: RegistryClient, adapter_id: str, version: int) -> dict:
    """Delete one version (train scope); 409 version_in_use while an alias points at it."""
    return client._json("DELETE", f"/v1/adapters/{_segment(adapter_id)}/versions/{int(version)}")


def delete_adapter(client: RegistryClient, adapter_id: str) -> dict:
    """Delete an adapter with its versions, aliases, history and jobs (admin scope)."""
    return client._json("DELETE", f"/v1/adapters/{_segment(adapter_id)}")


def delete_user(client: RegistryClient, user_id: str) -> dict:
    """Erase everything of a user in the key's tenant (admin scope)."""
    return client._json("DELETE", f"/v1/users/{_segment(user_id)}")
