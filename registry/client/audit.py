"""The audit log through the API (GET /v1/audit, an admin key): a mixin of RegistryClient."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any


class AuditClient:
    """Reading the tenant's audit log (uses RegistryClient's `_json`)."""

    def audit_events(
        self, action: str | None = None, since: datetime | str | None = None
    ) -> Iterator[dict]:
        """Every audit event (oldest first, following the pages), optionally only one
        `action` (e.g. "alias.set") and only at or after `since` (an aware time)."""
        params: dict[str, Any] = {"limit": 500}
        if action:
            params["action"] = action
        if since:
            params["since"] = since.isoformat() if isinstance(since, datetime) else since
        while True:
            page = self._json("GET", "/v1/audit", params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]
