"""Where a webhook may point: the one home of the URL rules, applied at registration and
again right before each send.

A tenant chooses the URL, and the registry's workers connect to it: without these rules a
webhook could reach the cloud metadata service or any host inside the operator's network.
So: https only (`VERA_WEBHOOK_ALLOW_HTTP` for development), no credentials in the URL, and
every address the host resolves to must be public (`VERA_WEBHOOK_PRIVATE_HOSTS` lifts that
for the hosts it names, `VERA_WEBHOOK_ALLOW_PRIVATE` for all).
The sender connects to an address it has just checked (see `sender.py`), so a DNS answer
that changes between the check and the connection (rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from registry.config import Settings
from registry.errors import Invalid

MAX_URL_LENGTH = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Shared address space (carrier-grade NAT): not "private" to Python, not reachable either.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# NAT64's well-known prefix embeds an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookUrlError(Invalid):
    code = "webhook_url_refused"


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the rules, with the addresses its host resolved to then."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public(address: IPAddress) -> bool:
    """Whether a connection to `address` leaves the operator's own networks."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    elif address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def parse_url(url: str, settings: Settings) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL the rules accept in form; raises WebhookUrlError."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise WebhookUrlError("the webhook URL may not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"the webhook URL is malformed: {exc}") from exc
    allowed = ("https", "http") if settings.webhook_allow_http else ("https",)
    if parts.scheme not in allowed:
        hint = "" if settings.webhook_allow_http else " (http needs VERA_WEBHOOK_ALLOW_HTTP=true)"
        raise WebhookUrlError(f"the webhook URL must start with https://{hint}")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError(
            "the webhook URL may not hold a user or password: verify the Vera-Signature "
            "header instead"
        )
    if not parts.hostname:
        raise WebhookUrlError("the webhook URL has no host")
    if parts.fragment:
        raise WebhookUrlError("the webhook URL may not have a #fragment")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_url(url: str, settings: Settings, resolve: Resolver = system_resolver) -> CheckedUrl:
    """The URL with its resolved addresses, if the rules accept it; raises WebhookUrlError
    naming the rule (and the setting that lifts it, where there is one)."""
    scheme, host, port = parse_url(url, settings)
    try:
        addresses = resolve(host, port)
    except (OSError, ValueError) as exc:  # ValueError: UnicodeError of an unencodable name
        raise WebhookUrlError(f"the webhook host {host!r} does not resolve: {exc}") from exc
    if not addresses:
        raise WebhookUrlError(f"the webhook host {host!r} does not resolve to any address")
    exempt = host.rstrip(".") in {
        name.lower().rstrip(".") for name in settings.webhook_private_hosts
    }
    if not (settings.webhook_allow_private or exempt):
        for address in addresses:
            if not is_public(ipaddress.ip_address(address.split("%", 1)[0])):
                raise WebhookUrlError(
                    f"the webhook host {host!r} resolves to {address}, which is not a public "
                    "address; the operator may allow this host with VERA_WEBHOOK_PRIVATE_HOSTS "
                    "or every private receiver with VERA_WEBHOOK_ALLOW_PRIVATE=true",
                    details={"host": host, "address": address},
                )
    return CheckedUrl(url=url, scheme=scheme, host=host, port=port, addresses=tuple(addresses))
