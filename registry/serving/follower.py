"""The change-feed follower: a thread long-polling /v1/feed and applying each event as it
comes (a publish or rollback replaces a loaded user's vectors; a deletion drops them)."""

from __future__ import annotations

import logging
import threading
import time

from registry.client.api import RegistryClient
from registry.serving.users import UserCache

log = logging.getLogger(__name__)

FEED_LIMIT = 100
RETRY_S = 1.0


class Follower(threading.Thread):
    def __init__(self, client: RegistryClient, users: UserCache, wait_s: float = 5.0) -> None:
        super().__init__(name="vera-feed-follower", daemon=True)
        self.client = client  # its own: a long-poll must not hold the loaders' connections
        self.users = users
        self.wait_s = wait_s
        self.caught_up = False
        self.last_ok = 0.0
        self.error: str | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        runtime = self.users.runtime
        while not self._stop.is_set():
            try:
                events, last = self.client.feed(runtime.feed_seq, self.wait_s, FEED_LIMIT)
                self.users.apply(events)
                runtime.feed_seq = max(runtime.feed_seq, last)
            except Exception as exc:  # the registry away, or a user failing to reload
                self.caught_up, self.error = False, str(exc)
                log.warning("feed follower: %s (retrying in %g s)", exc, RETRY_S)
                self._stop.wait(RETRY_S)
                continue
            self.caught_up, self.error = len(events) < FEED_LIMIT, None
            self.last_ok = time.monotonic()

    def healthy(self) -> bool:
        """Caught up, and heard from the registry within a long-poll (and a margin)."""
        fresh = time.monotonic() - self.last_ok < self.wait_s + self.client.timeout
        return self.caught_up and fresh and self.is_alive()

    def stop(self) -> None:
        self._stop.set()
