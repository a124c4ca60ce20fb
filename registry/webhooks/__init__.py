"""Webhooks: endpoints a tenant registers, signed deliveries of events to them.

Receivers check a delivery with `registry.webhooks.verify(secret, body, header)`."""

from registry.webhooks.signing import InvalidSignature, verify

__all__ = ["InvalidSignature", "verify"]
