"""Sending due deliveries: the body of the `vera.webhooks` beat task.

Each run claims a bounded batch of due deliveries (FOR UPDATE SKIP LOCKED on PostgreSQL)
and leases them by moving `next_attempt_at` past the time the batch can take, then commits:
no row lock is held while a receiver answers, and a second sender skips leased rows. The
result is written only if the lease still stands (a redelivery asked meanwhile wins).
A crashed sender's deliveries come due again when their lease runs out: at-least-once,
so receivers dedupe on the event id.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import ssl
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import certifi
import httpx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from registry import __version__
from registry.config import Settings
from registry.db import session_scope, utcnow
from registry.webhooks.models import WebhookDelivery, WebhookEndpoint
from registry.webhooks.signing import SIGNATURE_HEADER, sign
from registry.webhooks.urls import Resolver, WebhookUrlError, check_url, system_resolver

log = logging.getLogger(__name__)

# Retry delays as multiples of VERA_WEBHOOK_RETRY_BASE_S (10 s: 10 s, 30 s, 2 min, 10 min,
# 30 min, 1 h, 2 h, 4 h, 8 h, 8 h, 8 h): a receiver may be down for a day and still get
# every event. After the last one the delivery is `failed` (a redelivery can still be asked).
BACKOFF_STEPS = (1, 3, 12, 60, 180, 360, 720, 1440, 2880, 2880, 2880)
MAX_ATTEMPTS = len(BACKOFF_STEPS) + 1
BATCH = 32
PARALLEL = 8
BODY_PEEK_BYTES = 4096
ERROR_CHARS = 500
# Finished deliveries are listed this long, then deleted.
KEEP_FINISHED_DAYS = 30


@dataclass(frozen=True)
class Due:
    """A leased delivery: what to send, and the lease that fences its result."""

    id: str
    event_id: str
    event_type: str
    url: str
    secret: str
    body: bytes
    lease_until: datetime


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None


@dataclass
class SendReport:
    succeeded: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def retry_delay_s(attempts: int, base_s: float) -> float | None:
    """Wait before the next try after `attempts` failed ones; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return BACKOFF_STEPS[attempts - 1] * base_s


def send_due(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    resolve: Resolver = system_resolver,
    limit: int = BATCH,
    budget_s: float = 30.0,
) -> SendReport:
    """Send due deliveries batch after batch, until none is left due or `budget_s` has
    passed (a backlog drains at the receivers' pace, not one batch per tick); each result
    is recorded as it comes."""
    report = SendReport()
    start = time.monotonic()
    # The client first: a bad CA bundle fails here, before any delivery is leased.
    with _http_client(settings) as client, ThreadPoolExecutor(PARALLEL) as pool:
        while True:
            batch = claim_due(factory, settings, limit)
            futures = {pool.submit(deliver, client, due, settings, resolve): due for due in batch}
            for future in as_completed(futures):
                due = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # a bug in one send must not strand the others
                    log.exception("webhook delivery %s: unexpected error", due.id)
                    outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
                state = record(factory, due, outcome, settings)
                if state is not None:
                    getattr(report, "retrying" if state == "pending" else state).append(due.id)
            if len(batch) < limit or time.monotonic() - start > budget_s:
                return report


def claim_due(factory: sessionmaker[Session], settings: Settings, limit: int) -> list[Due]:
    """Lease up to `limit` due deliveries (oldest due first) and commit the lease."""
    now = utcnow()
    rounds = math.ceil(limit / PARALLEL)
    # Whole seconds: the lease is compared for equality when the result is written.
    lease_until = (now + timedelta(seconds=rounds * settings.webhook_timeout_s + 60)).replace(
        microsecond=0
    )
    with session_scope(factory) as session:
        rows = session.execute(
            select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
        ).all()
        batch = []
        for delivery, url, secret in rows:
            delivery.next_attempt_at = lease_until
            body = json.dumps(delivery.payload, separators=(",", ":")).encode()
            batch.append(
                Due(
                    delivery.id,
                    delivery.event_id,
                    delivery.event_type,
                    url,
                    secret,
                    body,
                    lease_until,
                )
            )
    return batch


def deliver(client: httpx.Client, due: Due, settings: Settings, resolve: Resolver) -> Outcome:
    """POST one signed delivery to an address its URL resolves to right now (checked by the
    URL rules, then connected to directly: a DNS answer cannot change in between)."""
    try:
        checked = check_url(due.url, settings, resolve)
    except WebhookUrlError as exc:
        return Outcome(False, error=f"refused: {exc.message}")
    url = httpx.URL(due.url)
    host = url.raw_host.decode("ascii")  # IDNA-encoded
    authority = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
    headers = {
        "Host": authority if url.port is None else f"{authority}:{url.port}",
        "Content-Type": "application/json",
        "User-Agent": f"vera-registry/{__version__} (webhooks)",
        SIGNATURE_HEADER: sign(due.secret, due.body),
        "Vera-Event-Id": due.event_id,
        "Vera-Event-Type": due.event_type,
        "Vera-Delivery-Id": due.id,
    }
    error = "no address to connect to"
    for address in checked.addresses:
        pinned = url.copy_with(host=address.split("%", 1)[0])
        # Certificate and SNI are checked against the name, the connection goes to `address`.
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        try:
            with client.stream(
                "POST", pinned, content=due.body, headers=headers, extensions=extensions
            ) as response:
                peek = _peek(response, settings.webhook_timeout_s)
        except httpx.ConnectError as exc:
            error = f"cannot connect to {address}: {exc}"
            continue  # the next address the name resolved to
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
        if 200 <= response.status_code < 300:
            return Outcome(True, status=response.status_code)
        text = peek.decode("utf-8", "replace").replace("\x00", "")
        return Outcome(
            False,
            status=response.status_code,
            error=f"HTTP {response.status_code}: {text}"[:ERROR_CHARS],
        )
    return Outcome(False, error=error[:ERROR_CHARS])


def record(
    factory: sessionmaker[Session], due: Due, outcome: Outcome, settings: Settings
) -> str | None:
    """Write an attempt's result if the lease still stands; the delivery's new state."""
    now = utcnow()
    with session_scope(factory) as session:
        delivery = session.scalar(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.id == due.id,
                WebhookDelivery.state == "pending",
                WebhookDelivery.next_attempt_at == due.lease_until,
            )
            .with_for_update()
        )
        if delivery is None:
            return None  # redelivered, or its endpoint deleted, while it was in flight
        delivery.attempts += 1
        delivery.last_status, delivery.last_error = outcome.status, outcome.error
        if outcome.ok:
            delivery.state, delivery.delivered_at, delivery.next_attempt_at = "succeeded", now, None
            return delivery.state
        delay = retry_delay_s(delivery.attempts, settings.webhook_retry_base_s)
        if delay is None:
            delivery.state, delivery.next_attempt_at = "failed", None
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
        return delivery.state


def prune_finished(factory: sessionmaker[Session], days: int = KEEP_FINISHED_DAYS) -> int:
    """Delete succeeded and failed deliveries older than `days`; how many went."""
    cutoff = utcnow() - timedelta(days=days)
    with session_scope(factory) as session:
        result = session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.state.in_(("succeeded", "failed")),
                WebhookDelivery.created_at < cutoff,
            )
        )
        return result.rowcount or 0


def _peek(response: httpx.Response, deadline_s: float) -> bytes:
    """At most BODY_PEEK_BYTES of the answer, read for at most `deadline_s`: a receiver
    cannot make the sender read more, or longer (a body trickled byte by byte)."""
    data, start = b"", time.monotonic()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= BODY_PEEK_BYTES or time.monotonic() - start > deadline_s:
            break
    return data[:BODY_PEEK_BYTES]


@functools.lru_cache(maxsize=4)
def _tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """The public CAs, plus the operator's bundle: built once per process (read at start)."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def _http_client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        verify=_tls_context(settings.webhook_ca_bundle),
        timeout=settings.webhook_timeout_s,
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: the pinned address is the peer
        limits=httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=0),
    )
