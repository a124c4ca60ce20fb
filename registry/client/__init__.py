"""Client for the registry's HTTP API (`api`, torch-free) and a serving runtime (`runtime`)."""

from registry.client.api import ClientError, Manifest, RegistryClient

__all__ = ["ClientError", "Manifest", "RegistryClient"]
