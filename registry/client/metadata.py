"""Client methods for descriptions and tags, the users list and datasets (docs/api.md,
"Metadata and search"); `RegistryClient` has them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote


def _segment(value: str) -> str:
    return quote(value, safe="")


def _metadata_body(
    description: str | None,
    tags: Iterable[str] | None,
    add_tags: Iterable[str],
    remove_tags: Iterable[str],
) -> dict:
    body: dict[str, Any] = {}
    if description is not None:
        body["description"] = description  # "" clears it
    if tags is not None:
        body["tags"] = list(tags)
    if add_tags:
        body["add_tags"] = list(add_tags)
    if remove_tags:
        body["remove_tags"] = list(remove_tags)
    return body


class MetadataMixin:
    """Needs `_json(method, path, **kwargs)` and `pages(path, params)` of RegistryClient."""

    def update_adapter(
        self,
        adapter_id: str,
        *,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
    ) -> dict:
        """Change an adapter's description ("" clears it) and tags: `tags` replaces the set,
        then `add_tags` and `remove_tags` apply. Left out: unchanged."""
        body = _metadata_body(description, tags, add_tags, remove_tags)
        return self._json("PATCH", f"/v1/adapters/{_segment(adapter_id)}", json=body)

    def update_version(
        self,
        adapter_id: str,
        version: int,
        *,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
    ) -> dict:
        """The same for one version (its content never changes; its notes may)."""
        body = _metadata_body(description, tags, add_tags, remove_tags)
        return self._json(
            "PATCH", f"/v1/adapters/{_segment(adapter_id)}/versions/{version}", json=body
        )

    def iter_users(
        self,
        *,
        tag: str | None = None,
        base_model_id: str | None = None,
        updated_since: datetime | str | None = None,
        limit: int = 100,
    ) -> Iterator[dict]:
        """The tenant's users by id, each with its adapters matching the filters (`live_version`
        included), page after page."""
        if isinstance(updated_since, datetime):
            updated_since = updated_since.isoformat()
        params = {"tag": tag, "base_model_id": base_model_id, "updated_since": updated_since}
        params = {k: v for k, v in params.items() if v is not None}
        yield from self.pages("/v1/users", {**params, "limit": limit})

    def list_users(self, **filters: Any) -> list[dict]:
        """Every user matching `filters` (see iter_users)."""
        return list(self.iter_users(**filters))

    def list_datasets(self, user_id: str | None = None) -> list[dict]:
        """Datasets (of one user, if given), newest first."""
        return list(self.pages("/v1/datasets", {"user_id": user_id} if user_id else {}))
