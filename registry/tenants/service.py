"""Tenants and API keys: a key is shown once and stored as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.audit import service as audit_log
from registry.db import created_after, get_owned, utcnow
from registry.errors import Conflict, Invalid, NotFound, Unauthorized
from registry.tenants.models import ApiKey, Tenant

SCOPES = ("admin", "train", "read")
KEY_PREFIX = "vera"


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    scopes: tuple[str, ...]
    key_id: str


def _secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_tenant(session: Session, name: str) -> Tenant:
    """A new tenant; names are unique."""
    name = name.strip()
    if not name:
        raise Invalid("tenant name must not be empty", details=[{"field": "name"}])
    tenant = Tenant(name=name)
    try:
        with session.begin_nested():
            session.add(tenant)
    except IntegrityError as exc:
        raise Conflict(f"a tenant named {name!r} already exists") from exc
    return tenant


def get_tenant_by_name(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.id)))


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise Invalid(
            f"scopes must be a non-empty subset of {list(SCOPES)}, got {list(scopes)}",
            details=[{"field": "scopes", "message": f"unknown: {unknown}" if unknown else "empty"}],
        )
    return sorted(set(scopes), key=SCOPES.index)


def create_api_key(
    session: Session,
    tenant_id: str,
    scopes: list[str],
    name: str = "default",
    *,
    actor_key_id: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key; the plaintext (`vera_<prefix>_<secret>`) is returned once and never stored.
    Audited as made by `actor_key_id` (None: a server-side command)."""
    if session.get(Tenant, tenant_id) is None:
        raise NotFound(f"tenant {tenant_id} not found")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=prefix,
        secret_sha256=_secret_sha256(secret),
        scopes=check_scopes(scopes),
    )
    session.add(key)
    session.flush()
    _audit_key(session, "key.created", key, actor_key_id)
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


def _audit_key(session: Session, action: str, key: ApiKey, actor_key_id: str | None) -> None:
    details = {"name": key.name, "scopes": list(key.scopes)}
    audit_log.record(
        session, key.tenant_id, action, actor_key_id=actor_key_id, target=key.id, details=details
    )


def authenticate(session: Session, plaintext: str) -> Principal:
    """The tenant and scopes of a valid, unrevoked key; Unauthorized otherwise."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise Unauthorized("malformed API key: expected 'vera_<prefix>_<secret>'", code="bad_key")
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    # Compare even when no key matched, so timing says nothing about which prefixes exist.
    expected = key.secret_sha256 if key is not None else "0" * 64
    matches = hmac.compare_digest(expected, _secret_sha256(parts[2]))
    if key is None or not matches:
        raise Unauthorized("unknown API key", code="bad_key")
    if key.revoked_at is not None:
        raise Unauthorized("this API key was revoked; ask an admin for a new one", code="revoked")
    return Principal(tenant_id=key.tenant_id, scopes=tuple(key.scopes), key_id=key.id)


def list_api_keys(
    session: Session,
    tenant_id: str,
    *,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[ApiKey]:
    """Oldest first; `after`: the (created_at, id) of the prior page's last key."""
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    if after is not None:
        query = query.where(created_after(ApiKey, after))
    return list(session.scalars(query.order_by(ApiKey.created_at, ApiKey.id).limit(limit)))


def revoke_api_key(
    session: Session, tenant_id: str, key_id: str, *, actor_key_id: str | None = None
) -> ApiKey:
    """Revoke a key (idempotent: only the first revocation is audited)."""
    key = get_owned(session, ApiKey, tenant_id, key_id, "API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
        _audit_key(session, "key.revoked", key, actor_key_id)
    return key
