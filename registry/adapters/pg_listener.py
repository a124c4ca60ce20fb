"""Alias moves pushed to every API process: PostgreSQL NOTIFY, one LISTEN thread each.

The writer queues a NOTIFY in the transaction that inserts the alias event, so it is
delivered exactly when the event commits (and never if it rolls back). Each API process
holds one extra connection that LISTENs, applies each notification to its manifest cache,
wakes its feed waiters and acknowledges (a NOTIFY on a second channel). A publish answers
once every connected listener of the database has acknowledged its event (or after a
short bound): when the PUT returns, no API process serves the old version any more.
Notifications sent while the connection is down are lost, so every (re)connect starts
the cache over; meanwhile the cache falls back to polling.
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
import time

from sqlalchemy import Engine, func, text
from sqlalchemy import select as sql_select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from registry.adapters.manifest_cache import EventRow, ManifestCache

log = logging.getLogger(__name__)

CHANNEL = "vera_alias_events"
ACKS = "vera_alias_acks"  # payload: the seq up to which the sending listener has applied
APPLICATION_NAME = "vera-alias-listener"  # how listeners show in pg_stat_activity
EVENT_SEQS = "alias_event_seqs"  # session.info key: the seqs this transaction notifies
PING_S = 1.0  # well inside manifest_cache.PUSH_LIVENESS_S
RECONNECT_MAX_S = 5.0
# A dead network path must fail the connection within seconds, not TCP's minutes.
CONNECT_ARGS = {
    "application_name": APPLICATION_NAME,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 5000,
}


def notify_alias_event(session: Session, event) -> None:
    """Queue the notification of a flushed alias event in its own transaction."""
    session.info.setdefault(EVENT_SEQS, []).append(event.seq)
    if session.get_bind().dialect.name != "postgresql":
        return
    payload = json.dumps(
        [
            event.seq,
            event.tenant_id,
            event.user_id,
            event.adapter_name,
            event.alias,
            event.kind,
            event.adapter_ids,
        ]
    )
    session.execute(sql_select(func.pg_notify(CHANNEL, payload)))


def _row(payload: str) -> EventRow:
    # A process of the previous release (during a rolling upgrade) sends only the first five.
    fields = [*json.loads(payload), "set", None][:7]
    seq, tenant_id, user_id, adapter_name, alias, kind, adapter_ids = fields
    return int(seq), tenant_id, user_id, adapter_name, alias, kind, adapter_ids


class PgListener:
    """The LISTEN thread of one API process; `start()`/`stop()` with the app."""

    def __init__(self, conninfo: str, cache: ManifestCache) -> None:
        self.conninfo = conninfo
        self.cache = cache
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="vera-pg-listener", daemon=True)
        self._fd: int | None = None  # the listening socket while connected
        self._busy = False  # reading or applying what the socket brought
        self._acks: dict[int, int] = {}  # listener backend pid -> seq it has applied
        self._acked = threading.Condition()

    @classmethod
    def for_engine(cls, engine: Engine, cache: ManifestCache, url: str | None = None):
        """A listener on `url` (default: the engine's database), or None off PostgreSQL."""
        parsed = make_url(url) if url else engine.url
        if parsed.get_backend_name() != "postgresql" or engine.dialect.name != "postgresql":
            return None
        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(conninfo, cache)

    def start(self) -> PgListener:
        self.cache.pending = self.pending
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout)
        if not self._thread.is_alive():
            os.close(self._wake_r)
            os.close(self._wake_w)

    def pending(self) -> bool:
        """A notification may be between the database and the cache: unread on the socket
        or being applied. The cache then answers from the database, so a move whose commit
        has reached this process is never served stale."""
        fd = self._fd
        if fd is None:
            return False
        try:
            if select.select([fd], [], [], 0)[0]:
                return True
        except (OSError, ValueError):  # closed meanwhile: push is off anyway
            return False
        # Read after the socket: the thread marks itself busy before it reads from it.
        return self._busy

    def wait_everywhere(self, engine: Engine, seq: int, timeout: float) -> bool:
        """Wait (up to `timeout`) until every listener connected to the database has
        applied event `seq`; False at once where this process has no push."""
        if not self.cache.push_live():
            return False
        with engine.connect() as conn:
            pids = set(
                conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name = :name"
                    ),
                    {"name": APPLICATION_NAME},
                ).scalars()
            )
        deadline = time.monotonic() + timeout
        with self._acked:
            self._acks = {pid: acked for pid, acked in self._acks.items() if pid in pids}
            while any(self._acks.get(pid, 0) < seq for pid in pids):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._acked.wait(remaining)
        return True

    def _run(self) -> None:
        delay = 0.1
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:  # psycopg.Error, OSError: reconnect, whatever it was
                log.warning("alias listener disconnected (%s); polling meanwhile", exc)
                self._stopping.wait(delay)
                delay = min(2 * delay, RECONNECT_MAX_S)
            else:
                delay = 0.1
            finally:
                self._fd = None
                self._busy = False
                self.cache.push_lost()

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True, **CONNECT_ARGS) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            conn.execute(f"LISTEN {ACKS}")
            # After LISTEN: anything committed later is notified, anything earlier counted.
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM alias_events").fetchone()
            self._fd = conn.fileno()
            self.cache.reset(row[0], pushed=True)
            _ack(conn, row[0])
            pinged = time.monotonic()
            while True:
                ready, _, _ = select.select([self._fd, self._wake_r], [], [], PING_S)
                if self._wake_r in ready:
                    return
                self._busy = True
                if time.monotonic() - pinged >= PING_S:
                    conn.execute("SELECT 1")
                    pinged = time.monotonic()
                    self.cache.pushed()
                # Until nothing is left, also what arrived meanwhile (psycopg keeps it aside).
                while batch := list(conn.notifies(timeout=0)):
                    self._take(conn, batch)
                self._busy = False

    def _take(self, conn, batch) -> None:
        rows = [_row(n.payload) for n in batch if n.channel == CHANNEL]
        if rows:
            self.cache.apply(rows)
            self.cache.pushed()
            _ack(conn, max(seq for seq, *_ in rows))
        acks = [(n.pid, int(n.payload)) for n in batch if n.channel == ACKS]
        if acks:
            with self._acked:
                for pid, seq in acks:
                    self._acks[pid] = max(self._acks.get(pid, 0), seq)
                self._acked.notify_all()


def _ack(conn, seq: int) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (ACKS, str(seq)))
