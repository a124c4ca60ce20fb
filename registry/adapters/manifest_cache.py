"""An in-process cache of resolve manifests, invalidated by the change feed.

Aliases are the only thing a manifest depends on that ever changes, and every alias move
is an `alias_events` row with a global, commit-ordered `seq`. Each API process keeps the
manifests it served and a high water mark of the events it has applied; each new event
drops the manifests it touches and wakes the feed waiters of its tenant.

Events arrive by push where the database can (PostgreSQL LISTEN/NOTIFY, see
`pg_listener`): milliseconds after their commit. Otherwise, and whenever the listener is
not connected, by polling: at most every `max_age_s` a request reads the events after the
high water mark (one small query per interval instead of one resolve query per request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from sqlalchemy import func, select

from registry.adapters.models import AliasEvent
from registry.db import session_scope

Key = tuple[str, str, str, str]  # tenant, user, adapter name, alias
# seq, tenant, user, adapter name, alias (the Key an alias move touches), then the kind and
# the adapter ids a deletion removed (None for alias moves).
EventRow = tuple[int, str, str | None, str | None, str | None, str, list[str] | None]
DELETIONS = ("version_deleted", "adapter_deleted", "user_deleted")
# A connected listener proves itself at least this often (a ping or a notification);
# past that its silence may be a dead connection, so polling takes over.
PUSH_LIVENESS_S = 3.0


class ManifestCache:
    def __init__(
        self,
        session_factory,
        max_age_s: float,
        max_entries: int = 200_000,
        on_event: Callable[[str | None, int | None], None] | None = None,
        on_delete: Callable[[str | None, list[str] | None], None] | None = None,
    ) -> None:
        self._factory = session_factory
        self.max_age_s = max_age_s
        self._max_entries = max_entries
        self._on_event = on_event or (lambda _tenant, _seq: None)
        # What else this process keeps about adapters (version index, blob bytes) forgets
        # them too: (tenant, adapter ids), or (None, None) for everything.
        self._on_delete = on_delete or (lambda _tenant, _ids: None)
        self._entries: dict[Key, dict] = {}
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self.high_water: int | None = None
        self._refreshed_at = float("-inf")
        self._pushed_at: float | None = None  # None: no listener connected
        # Set by a listener: True while an event may be on its way in (then skip memory).
        self.pending: Callable[[], bool] = lambda: False
        self.epoch = 0  # bumped by every invalidation; see put()

    @property
    def enabled(self) -> bool:
        return self.max_age_s > 0

    def push_live(self) -> bool:
        pushed_at = self._pushed_at
        return pushed_at is not None and time.monotonic() - pushed_at <= PUSH_LIVENESS_S

    def needs_refresh(self) -> bool:
        """Due for a poll that nobody has started yet (the others keep serving); never
        while a listener pushes the events."""
        if self.push_live():
            return False
        due = time.monotonic() - self._refreshed_at > self.max_age_s
        return due and not self._refreshing.locked()

    def get(self, key: Key) -> dict | None:
        if not self.enabled or self.high_water is None:
            return None
        # Entries stay usable while one request refreshes; past this bound (the database
        # unreachable, say) nothing is served from memory.
        hard_limit = max(1.0, 10 * self.max_age_s)
        if self.push_live():
            return None if self.pending() else self._entries.get(key)
        if time.monotonic() - self._refreshed_at > hard_limit:
            return None
        return self._entries.get(key)

    def put(self, key: Key, manifest: dict, epoch_at_read: int) -> None:
        """Keep a manifest read during `epoch_at_read`, unless events were applied
        meanwhile (the read may predate them)."""
        with self._lock:
            if not self.enabled or epoch_at_read != self.epoch or self.high_water is None:
                return
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = manifest

    def forget(self, key: Key) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self.epoch += 1

    def forget_adapters(self, tenant_id: str, adapter_ids: Iterable[str]) -> None:
        """Drop every manifest of these adapters (deleted) and what else this process
        keeps about them."""
        ids = set(adapter_ids)
        with self._lock:
            self._drop_adapters(tenant_id, ids)
            self.epoch += 1
        self._on_delete(tenant_id, sorted(ids))

    def _drop_adapters(self, tenant_id: str, ids: set[str]) -> None:
        gone = [k for k, m in self._entries.items() if k[0] == tenant_id and m["adapter_id"] in ids]
        for key in gone:
            del self._entries[key]

    def apply(self, rows: Iterable[EventRow]) -> None:
        """New events (in seq order): drop what they touch, then wake their feed waiters."""
        woken: dict[str, int] = {}
        deleted: list[tuple[str, list[str]]] = []
        with self._lock:
            for seq, tenant_id, user_id, adapter_name, alias, kind, adapter_ids in rows:
                if kind in DELETIONS:
                    self._drop_adapters(tenant_id, set(adapter_ids or ()))
                    deleted.append((tenant_id, list(adapter_ids or ())))
                else:
                    self._entries.pop((tenant_id, user_id, adapter_name, alias), None)
                self.high_water = max(self.high_water or 0, seq)
                woken[tenant_id] = seq
            self.epoch += 1
        for tenant_id, adapter_ids in deleted:
            self._on_delete(tenant_id, adapter_ids)
        for tenant_id, seq in woken.items():
            self._on_event(tenant_id, seq)

    def reset(self, high_water: int, *, pushed: bool = False) -> None:
        """Start over from `high_water` with nothing cached (events may have been missed),
        and wake every feed waiter to read again."""
        with self._lock:
            self._entries.clear()
            self.high_water = high_water
            self.epoch += 1
            now = time.monotonic()
            self._refreshed_at = now
            self._pushed_at = now if pushed else None
        self._on_delete(None, None)
        self._on_event(None, None)

    def pushed(self) -> None:
        """The listener is connected and has just heard from the database."""
        self._pushed_at = time.monotonic()

    def push_lost(self) -> None:
        self._pushed_at = None

    def refresh(self) -> None:
        """Poll: apply the events after the high water mark (one query; one at a time)."""
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            started = time.monotonic()
            with session_scope(self._factory) as session:
                if self.high_water is None:
                    self.reset(session.scalar(select(func.max(AliasEvent.seq))) or 0)
                else:
                    self._poll(session)
            self._refreshed_at = started
        finally:
            self._refreshing.release()

    def _poll(self, session) -> None:
        while True:
            rows = session.execute(
                select(
                    AliasEvent.seq,
                    AliasEvent.tenant_id,
                    AliasEvent.user_id,
                    AliasEvent.adapter_name,
                    AliasEvent.alias,
                    AliasEvent.kind,
                    AliasEvent.adapter_ids,
                )
                .where(AliasEvent.seq > self.high_water)
                .order_by(AliasEvent.seq)
                .limit(1000)
            ).all()
            if not rows:
                return
            self.apply(rows)
