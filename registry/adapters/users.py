"""A tenant's users: the distinct user ids of its adapters, each with those adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from registry.adapters.models import Adapter, AdapterTag, AdapterVersion, Alias


@dataclass
class UserAdapter:
    adapter: Adapter
    live_version: int | None  # the number `live` points at; None without a live alias


@dataclass
class User:
    user_id: str
    adapters: list[UserAdapter]


def list_users(
    session: Session,
    tenant_id: str,
    *,
    tag: str | None = None,
    user_id_prefix: str | None = None,
    base_model_id: str | None = None,
    updated_since: datetime | None = None,
    after_user_id: str | None = None,
    limit: int = 50,
) -> list[User]:
    """Users by id, each with their adapters that match every filter given (a user
    without a matching adapter is left out); `after_user_id`: the prior page's last."""
    matching = [Adapter.tenant_id == tenant_id]
    if user_id_prefix:
        # autoescape: a `%` or `_` in the prefix is a literal character, not a wildcard.
        matching.append(Adapter.user_id.startswith(user_id_prefix, autoescape=True))
    if tag is not None:
        matching.append(Adapter.tag_rows.any(AdapterTag.tag == tag))
    if base_model_id is not None:
        matching.append(Adapter.base_model_id == base_model_id)
    if updated_since is not None:
        matching.append(Adapter.updated_at >= updated_since)
    page = select(Adapter.user_id).where(*matching).distinct().order_by(Adapter.user_id)
    if after_user_id is not None:
        page = page.where(Adapter.user_id > after_user_id)
    user_ids = list(session.scalars(page.limit(limit)))
    if not user_ids:
        return []
    rows = session.execute(
        select(Adapter, AdapterVersion.number)
        .outerjoin(Alias, (Alias.adapter_id == Adapter.id) & (Alias.name == "live"))
        .outerjoin(AdapterVersion, AdapterVersion.id == Alias.version_id)
        .where(*matching, Adapter.user_id.in_(user_ids))
        .options(selectinload(Adapter.tag_rows))
        .order_by(Adapter.user_id, Adapter.name)
    )
    users = {user_id: User(user_id, []) for user_id in user_ids}
    for adapter, live_version in rows:
        users[adapter.user_id].adapters.append(UserAdapter(adapter, live_version))
    return list(users.values())
