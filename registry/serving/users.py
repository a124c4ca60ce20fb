"""Users' adapters loaded on demand, least recently used dropped beyond `max_users`.

Every change to which users are loaded (a first request, a feed event, an eviction) goes
through one lock, so a feed event and a load of the same user never interleave. A user
with requests queued or running is pinned: never evicted under them.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable

from registry.client.api import ClientError, FeedEvent
from registry.errors import Conflict, NotFound
from registry.serving.auth import RegistryUnavailable
from registry.serving.metrics import ServeMetrics

log = logging.getLogger(__name__)


class UserCache:
    def __init__(self, runtime, max_users: int, metrics: ServeMetrics) -> None:
        self.runtime = runtime
        self.max_users = max_users
        self.metrics = metrics
        self._lock = threading.Lock()
        self._used: OrderedDict[str, None] = OrderedDict()  # least recently used first
        self._pins: Counter[str] = Counter()

    def acquire(self, user_id: str) -> None:
        """Load the user (resolve, cached download, bank) unless loaded; pin it. Blocking."""
        from registry.client.runtime import RuntimeMismatch

        with self._lock:
            if user_id not in self.runtime.users:
                try:
                    self.runtime.load_user(user_id)
                except ClientError as exc:
                    raise self._load_error(user_id, exc) from exc
                except RuntimeMismatch as exc:
                    raise Conflict(str(exc), code="adapter_mismatch") from exc
                self.metrics.adapter_swaps.labels("load").inc()
            self._used[user_id] = None
            self._used.move_to_end(user_id)
            self._pins[user_id] += 1
            self._evict()

    def release(self, user_id: str) -> None:
        with self._lock:
            self._pins[user_id] -= 1
            if self._pins[user_id] <= 0:
                del self._pins[user_id]
            self._evict()

    def _load_error(self, user_id: str, exc: ClientError) -> Exception:
        runtime = self.runtime
        if exc.status == 404:
            return NotFound(
                f"user {user_id!r} has no {runtime.alias!r} adapter {runtime.adapter!r}: "
                "train and publish one first, or leave the user out to use the base model",
                code="adapter_not_found",
            )
        if exc.status in (0, 429) or exc.status >= 500:
            return RegistryUnavailable(f"cannot load user {user_id!r}'s adapter: {exc.message}")
        return Conflict(f"cannot load user {user_id!r}'s adapter: {exc.message}", code=exc.code)

    def _evict(self) -> None:
        loaded = self.runtime.users
        for user_id in list(self._used):
            if len(loaded) <= self.max_users:
                break
            if self._pins[user_id] == 0:
                self.runtime.drop_user(user_id)
                del self._used[user_id]
                self.metrics.adapter_swaps.labels("evict").inc()
        self.metrics.loaded_users.set(len(loaded))

    def apply(self, events: Iterable[FeedEvent]) -> list[str]:
        """Apply feed events (publishes, rollbacks, deletions) to the users loaded here. A
        user whose alias now leads nowhere this server can serve is dropped; on any other
        failure the feed position stays before the event, so it is tried again."""
        from registry.client.runtime import RuntimeMismatch

        changed: list[str] = []
        with self._lock:
            for event in events:
                try:
                    changed += self.runtime.sync([event])
                except (ClientError, RuntimeMismatch) as exc:
                    if isinstance(exc, ClientError) and exc.status != 404:
                        self.runtime.feed_seq = event.seq - 1
                        raise
                    log.warning("dropping user %r: %s", event.user_id, exc)
                    self.runtime.drop_user(event.user_id)
                    changed.append(event.user_id)
            for user_id in changed:
                gone = user_id not in self.runtime.users
                if gone:
                    self._used.pop(user_id, None)
                self.metrics.adapter_swaps.labels("drop" if gone else "feed").inc()
            self.metrics.loaded_users.set(len(self.runtime.users))
        if changed:
            log.info("feed: %s", ", ".join(changed))
        return changed

    def loaded(self, user_id: str) -> bool:
        return user_id in self.runtime.users
