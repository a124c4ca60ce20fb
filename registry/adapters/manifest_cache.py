"""An in-process cache of resolve manifests, invalidated by the change feed.

Aliases are the only thing a manifest depends on that ever changes, and every alias move
is an `alias_events` row with a global, commit-ordered `seq`. So each API process keeps
the manifests it served and, at most every `max_age_s`, reads the events after its high
water mark and drops the manifests they touch: one small query per interval instead of
one resolve query per request. A publish made through this process drops its entry at
once; one made elsewhere (a worker, another replica) is seen within `max_age_s`.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from registry.adapters.models import AliasEvent
from registry.db import session_scope

Key = tuple[str, str, str, str]  # tenant, user, adapter name, alias


class ManifestCache:
    def __init__(self, session_factory, max_age_s: float, max_entries: int = 200_000) -> None:
        self._factory = session_factory
        self.max_age_s = max_age_s
        self._max_entries = max_entries
        self._entries: dict[Key, dict] = {}
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self.high_water: int | None = None
        self._refreshed_at = float("-inf")

    @property
    def enabled(self) -> bool:
        return self.max_age_s > 0

    def needs_refresh(self) -> bool:
        """Due for a refresh that nobody has started yet (the others keep serving)."""
        due = time.monotonic() - self._refreshed_at > self.max_age_s
        return due and not self._refreshing.locked()

    def get(self, key: Key) -> dict | None:
        # Entries stay usable while one request refreshes; past this bound (the database
        # unreachable, say) nothing is served from memory.
        hard_limit = max(1.0, 10 * self.max_age_s)
        if self.high_water is None or time.monotonic() - self._refreshed_at > hard_limit:
            return None
        return self._entries.get(key)

    def put(self, key: Key, manifest: dict, high_water_at_read: int | None) -> None:
        """Keep a manifest read while the high water mark was `high_water_at_read`, unless
        events arrived meanwhile (the read may predate them)."""
        with self._lock:
            if high_water_at_read is None or high_water_at_read != self.high_water:
                return
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = manifest

    def forget(self, key: Key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def refresh(self) -> None:
        """Drop manifests touched by new alias events (one query; one refresher at a time)."""
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            started = time.monotonic()
            with session_scope(self._factory) as session:
                if self.high_water is None:
                    self.high_water = session.scalar(select(func.max(AliasEvent.seq))) or 0
                else:
                    self._apply(session)
            self._refreshed_at = started
        finally:
            self._refreshing.release()

    def _apply(self, session) -> None:
        while True:
            rows = session.execute(
                select(
                    AliasEvent.seq,
                    AliasEvent.tenant_id,
                    AliasEvent.user_id,
                    AliasEvent.adapter_name,
                    AliasEvent.alias,
                )
                .where(AliasEvent.seq > self.high_water)
                .order_by(AliasEvent.seq)
                .limit(1000)
            ).all()
            if not rows:
                return
            with self._lock:
                for seq, *key in rows:
                    self._entries.pop(tuple(key), None)
                    self.high_water = seq
