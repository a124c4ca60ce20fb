"""Signing a delivery, and checking a signature on the receiving end.

Header: `Vera-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
The timestamp is signed with the body, so a captured request replayed later fails the
tolerance check; within the tolerance, receivers drop repeats by `Vera-Event-Id`.
Receivers need only the standard library: `verify` imports nothing else of the registry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

SIGNATURE_HEADER = "Vera-Signature"
DEFAULT_TOLERANCE_S = 300


class InvalidSignature(ValueError):
    """The request is not a delivery signed with this secret, or is too old (a replay)."""


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The Vera-Signature header value for `body`, signed now (or at `timestamp`)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify(
    secret: str,
    body: bytes | str,
    header: str | None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's Vera-Signature `header` against the raw request `body` (the bytes
    as received; a str is taken as their UTF-8 decoding) and return the event (the parsed
    body). Raises InvalidSignature when the header is missing or malformed, no v1 signature
    matches, or the timestamp is more than `tolerance_s` from now (a replay, or a clock far
    off)."""
    timestamp, candidates = _parse(header)
    body = body.encode() if isinstance(body, str) else body
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        raise InvalidSignature(
            f"signature timestamp {timestamp} is {abs(now - timestamp):.0f} s from now "
            f"(tolerance {tolerance_s} s): a replay, or a clock that is off"
        )
    expected = signature(secret, body, timestamp)
    # Several v1 entries may be sent (e.g. while a secret rotates): any match will do.
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise InvalidSignature("no v1 signature matches this secret and body")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidSignature("the signed body is not JSON") from exc


def _parse(header: str | None) -> tuple[int, list[str]]:
    if not header:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature(
            f"malformed {SIGNATURE_HEADER} header: expected 't=<unix seconds>,v1=<hex>'"
        )
    return timestamp, candidates
