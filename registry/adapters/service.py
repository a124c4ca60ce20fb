"""Adapters, immutable versions, aliases (compare-and-swap), rollback and the change feed."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from registry import names
from registry.adapters.models import (
    Adapter,
    AdapterTag,
    AdapterVersion,
    Alias,
    AliasEvent,
    VersionTag,
)
from registry.adapters.pg_listener import notify_alias_event
from registry.audit import service as audit_log
from registry.db import get_owned, utcnow
from registry.errors import Conflict, NotFound, PreconditionFailed
from registry.webhooks.outbox import emit

VERSION_ALLOCATION_ATTEMPTS = 20
# Any constant works: it names the one lock that orders appends to the change feed.
FEED_LOCK_KEY = 0x5645524146454544
# An alias write's precondition: a generation, 0 (must not exist), "*" (must exist), None.
Expected = int | Literal["*"] | None


def get_or_create_adapter(
    session: Session,
    tenant_id: str,
    *,
    user_id: str,
    name: str,
    base_model_id: str,
    projection_id: str,
    target_modules: list[str] | str,
    task: str,
) -> Adapter:
    """The user's adapter of that name; it stays bound to one base, projection and targets."""
    binding = dict(
        base_model_id=base_model_id,
        projection_id=projection_id,
        target_modules=target_modules,
        task=task,
    )
    adapter = find_adapter(session, tenant_id, user_id, name)
    if adapter is None:
        adapter = Adapter(tenant_id=tenant_id, user_id=user_id, name=name, **binding)
        try:
            with session.begin_nested():
                session.add(adapter)
            return adapter
        except IntegrityError:
            adapter = find_adapter(session, tenant_id, user_id, name)
    differing = sorted(k for k, v in binding.items() if getattr(adapter, k) != v)
    if differing:
        raise Conflict(
            f"adapter {name!r} of user {user_id!r} is bound to another "
            f"{', '.join(differing)}; train under a new adapter name instead",
            code="adapter_binding",
            details={"adapter_id": adapter.id, "fields": differing},
        )
    return adapter


def find_adapter(session: Session, tenant_id: str, user_id: str, name: str) -> Adapter | None:
    return session.scalar(
        select(Adapter).where(
            Adapter.tenant_id == tenant_id, Adapter.user_id == user_id, Adapter.name == name
        )
    )


def get_adapter(session: Session, tenant_id: str, adapter_id: str) -> Adapter:
    return get_owned(session, Adapter, tenant_id, adapter_id, "adapter")


def list_user_adapters(
    session: Session,
    tenant_id: str,
    user_id: str,
    *,
    tag: str | None = None,
    after_name: str | None = None,
    limit: int | None = None,
) -> list[Adapter]:
    """By name; `tag`: only adapters carrying it; `after_name`: the prior page's last."""
    query = select(Adapter).where(Adapter.tenant_id == tenant_id, Adapter.user_id == user_id)
    if tag is not None:
        query = query.where(Adapter.tag_rows.any(AdapterTag.tag == tag))
    if after_name is not None:
        query = query.where(Adapter.name > after_name)
    query = query.options(selectinload(Adapter.tag_rows)).order_by(Adapter.name).limit(limit)
    return list(session.scalars(query))


def create_version(
    session: Session,
    adapter: Adapter,
    *,
    blob_sha256: str,
    size_bytes: int,
    metrics: dict | None = None,
    job_id: str | None = None,
    parent_version_id: str | None = None,
) -> AdapterVersion:
    """The next version, numbered inside the caller's transaction from the adapter's
    `last_version`: numbers are never reused, not even those of deleted versions."""
    # Locking the adapter row serializes allocation on PostgreSQL; the unique constraint
    # and the retry below keep numbers right on any backend.
    session.execute(select(Adapter.id).where(Adapter.id == adapter.id).with_for_update())
    for _ in range(VERSION_ALLOCATION_ATTEMPTS):
        last = session.scalar(select(Adapter.last_version).where(Adapter.id == adapter.id))
        highest = session.scalar(
            select(func.max(AdapterVersion.number)).where(AdapterVersion.adapter_id == adapter.id)
        )
        number = 1 + max(last or 0, highest or 0)
        version = AdapterVersion(
            tenant_id=adapter.tenant_id,
            adapter_id=adapter.id,
            number=number,
            blob_sha256=blob_sha256,
            size_bytes=size_bytes,
            metrics=metrics or {},
            job_id=job_id,
            parent_version_id=parent_version_id,
        )
        try:
            with session.begin_nested():
                session.add(version)
            adapter.last_version = number
            adapter.updated_at = utcnow()
            return version
        except IntegrityError as exc:
            if job_id is not None and _version_of_job(session, job_id) is not None:
                raise Conflict(f"job {job_id} already created a version") from exc
    raise Conflict(f"could not allocate a version number for adapter {adapter.id}; retry")


def _version_of_job(session: Session, job_id: str) -> AdapterVersion | None:
    return session.scalar(select(AdapterVersion).where(AdapterVersion.job_id == job_id))


def get_version(session: Session, tenant_id: str, adapter_id: str, number: int) -> AdapterVersion:
    version = session.scalar(
        select(AdapterVersion).where(
            AdapterVersion.adapter_id == adapter_id,
            AdapterVersion.number == number,
            AdapterVersion.tenant_id == tenant_id,
        )
    )
    if version is None:
        raise NotFound(f"adapter {adapter_id} has no version {number}")
    return version


def list_versions(
    session: Session,
    tenant_id: str,
    adapter_id: str,
    *,
    after_number: int = 0,
    limit: int = 50,
    tag: str | None = None,
) -> list[AdapterVersion]:
    get_adapter(session, tenant_id, adapter_id)
    query = select(AdapterVersion).where(
        AdapterVersion.adapter_id == adapter_id, AdapterVersion.number > after_number
    )
    if tag is not None:
        query = query.where(AdapterVersion.tag_rows.any(VersionTag.tag == tag))
    query = query.options(selectinload(AdapterVersion.tag_rows))
    return list(session.scalars(query.order_by(AdapterVersion.number).limit(limit)))


def _lock_feed(session: Session) -> None:
    # Sequence values are handed out at insert but become visible at commit; holding one
    # lock from before the insert until commit makes commit order equal seq order, so a
    # feed reader that saw seq N can never later miss an event below N.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_LOCK_KEY})


def get_alias(session: Session, tenant_id: str, adapter_id: str, name: str) -> Alias:
    alias = session.scalar(
        select(Alias).where(
            Alias.adapter_id == adapter_id, Alias.name == name, Alias.tenant_id == tenant_id
        )
    )
    if alias is None:
        raise NotFound(f"adapter {adapter_id} has no alias {name!r}")
    return alias


def list_aliases(
    session: Session,
    tenant_id: str,
    adapter_id: str,
    *,
    after_name: str | None = None,
    limit: int | None = None,
) -> list[tuple[Alias, int]]:
    """The adapter's aliases by name, each with the version number it points at."""
    get_adapter(session, tenant_id, adapter_id)
    query = (
        select(Alias, AdapterVersion.number)
        .join(AdapterVersion, AdapterVersion.id == Alias.version_id)
        .where(Alias.adapter_id == adapter_id, Alias.tenant_id == tenant_id)
    )
    if after_name is not None:
        query = query.where(Alias.name > after_name)
    return [tuple(row) for row in session.execute(query.order_by(Alias.name).limit(limit))]


def set_alias(
    session: Session,
    tenant_id: str,
    adapter_id: str,
    alias_name: str,
    version_number: int,
    expected_generation: Expected = None,
    *,
    kind: str = "set",
    actor_key_id: str | None = None,
    reason: str | None = None,
) -> Alias:
    """Point an alias at a version. `expected_generation`: None moves unconditionally,
    0 only creates, n only moves an alias still at generation n (else Conflict), "*" only
    moves an alias that exists (else PreconditionFailed). `actor_key_id` (None: a worker or
    a server-side command) and `reason` go to the history and the audit log."""
    names.require(names.AliasName, alias_name, "alias")
    adapter = get_adapter(session, tenant_id, adapter_id)
    _lock_feed(session)  # before reading the version: a delete of it holds this lock too
    version = get_version(session, tenant_id, adapter_id, version_number)
    alias = session.scalar(
        select(Alias)
        .where(Alias.adapter_id == adapter_id, Alias.name == alias_name)
        .with_for_update()
    )
    _check_generation(alias_name, expected_generation, alias.generation if alias else None)
    move = {"kind": kind, "actor_key_id": actor_key_id, "reason": reason}
    if alias is None:
        return _create_alias(session, adapter, alias_name, version, expected_generation, move)
    from_version = _number_of(session, alias.version_id)
    moved = session.execute(
        update(Alias)
        .where(Alias.id == alias.id, Alias.generation == alias.generation)
        .values(version_id=version.id, generation=Alias.generation + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        raise _stale(alias_name, expected_generation, None)
    session.refresh(alias)
    _append_event(session, adapter, alias, from_version, version.number, **move)
    return alias


def _create_alias(session, adapter, alias_name, version, expected, move) -> Alias:
    alias = Alias(
        tenant_id=adapter.tenant_id,
        adapter_id=adapter.id,
        name=alias_name,
        version_id=version.id,
        generation=1,
    )
    try:
        with session.begin_nested():
            session.add(alias)
    except IntegrityError as exc:  # created by a concurrent writer since we looked
        raise _exists(alias_name, None) if expected == 0 else _stale(alias_name, 0, None) from exc
    _append_event(session, adapter, alias, None, version.number, **move)
    return alias


def _stale(alias_name: str, expected: int | None, current: int | None) -> Conflict:
    return Conflict(
        f"alias {alias_name!r} moved since generation {expected}"
        + (f" (now {current})" if current is not None else "")
        + ": read it again and retry with the current generation",
        code="stale_generation",
        details={"expected_generation": expected, "current_generation": current},
    )


def _exists(alias_name: str, current: int | None) -> PreconditionFailed:
    return PreconditionFailed(
        f"alias {alias_name!r} exists already, and If-None-Match: * only creates; "
        "to move it, send If-Match with its generation",
        details={"current_generation": current},
    )


def _check_generation(alias_name: str, expected: Expected, current: int | None) -> None:
    """Raise unless an alias at generation `current` (None: it does not exist) meets
    `expected` (docs/api.md, "Conditional alias writes")."""
    if expected is None or (expected == "*" and current is not None):
        return
    if expected == "*":
        raise PreconditionFailed(
            f"alias {alias_name!r} does not exist, and If-Match: * moves only an existing "
            "alias; to create it, send If-None-Match: * or no precondition",
            details={"current_generation": None},
        )
    if expected == 0:
        if current is not None:
            raise _exists(alias_name, current)
    elif expected != current:
        raise _stale(alias_name, expected, current)


def _number_of(session: Session, version_id: str) -> int:
    return session.scalar(select(AdapterVersion.number).where(AdapterVersion.id == version_id))


def _append_event(
    session, adapter, alias, from_version, to_version, *, kind, actor_key_id, reason
) -> AliasEvent:
    """The one home of "an alias moved": its feed event, audit row and webhook event, all
    in the caller's transaction."""
    event = AliasEvent(
        tenant_id=adapter.tenant_id,
        adapter_id=adapter.id,
        user_id=adapter.user_id,
        adapter_name=adapter.name,
        alias=alias.name,
        kind=kind,
        from_version=from_version,
        to_version=to_version,
        generation=alias.generation,
        actor_key_id=actor_key_id,
        reason=reason,
    )
    session.add(event)
    adapter.updated_at = utcnow()
    session.flush()
    notify_alias_event(session, event)  # delivered to every API process on commit
    move = {
        "from_version": from_version,
        "to_version": to_version,
        "generation": alias.generation,
        "reason": reason,
    }
    audit_log.record(
        session,
        adapter.tenant_id,
        f"alias.{kind}",
        actor_key_id=actor_key_id,
        adapter_id=adapter.id,
        target=alias.name,
        details=move,
    )
    about = {
        "adapter_id": adapter.id,
        "user_id": adapter.user_id,
        "adapter_name": adapter.name,
        "alias": alias.name,
        "kind": kind,
    }
    emit(session, adapter.tenant_id, "alias.moved", {**about, **move}, adapter_id=adapter.id)
    return event


def rollback_alias(
    session: Session,
    tenant_id: str,
    adapter_id: str,
    alias_name: str,
    to_version: int | None = None,
    expected_generation: Expected = None,
    *,
    actor_key_id: str | None = None,
    reason: str | None = None,
) -> Alias:
    """Undo the alias's latest move not yet undone (docs/api.md, "Rollback semantics"), or
    move it to `to_version`."""
    get_alias(session, tenant_id, adapter_id, alias_name)
    move = {"kind": "rollback", "actor_key_id": actor_key_id, "reason": reason}
    if to_version is not None:
        return set_alias(
            session, tenant_id, adapter_id, alias_name, to_version, expected_generation, **move
        )
    history = alias_history(session, tenant_id, adapter_id, alias_name)
    stack = target_stack(history)
    if len(stack) < 2:
        raise Conflict(
            f"alias {alias_name!r} has no earlier version to roll back to",
            code="nothing_to_roll_back",
        )
    generation = history[-1].generation
    _check_generation(alias_name, expected_generation, generation)
    # The target was read from the history up to `generation`: move only from there.
    return set_alias(session, tenant_id, adapter_id, alias_name, stack[-2], generation, **move)


def target_stack(events: list[AliasEvent]) -> list[int]:
    """Replay history into the undo stack of the alias's states (the top is its target):
    a publish pushes; a rollback to the state under the top pops (it undoes the latest
    move); a rollback to any other version is a move and pushes."""
    stack: list[int] = []
    for event in events:
        if event.kind == "rollback" and len(stack) >= 2 and event.to_version == stack[-2]:
            stack.pop()
        else:
            stack.append(event.to_version)
    return stack


def alias_history(
    session: Session,
    tenant_id: str,
    adapter_id: str,
    alias_name: str,
    *,
    after_seq: int = 0,
    limit: int | None = None,
) -> list[AliasEvent]:
    """The alias's moves, oldest first (all of them unless `limit`)."""
    get_adapter(session, tenant_id, adapter_id)
    query = select(AliasEvent).where(
        AliasEvent.adapter_id == adapter_id,
        AliasEvent.alias == alias_name,
        AliasEvent.seq > after_seq,
    )
    return list(session.scalars(query.order_by(AliasEvent.seq).limit(limit)))


def read_feed(
    session: Session, tenant_id: str, after_seq: int = 0, limit: int = 100
) -> list[AliasEvent]:
    """Alias events of this tenant after `after_seq`, oldest first."""
    query = select(AliasEvent).where(AliasEvent.tenant_id == tenant_id, AliasEvent.seq > after_seq)
    return list(session.scalars(query.order_by(AliasEvent.seq).limit(limit)))


def resolve(
    session: Session,
    tenant_id: str,
    user_id: str,
    adapter_name: str = "default",
    alias_name: str = "live",
) -> dict:
    """Everything a downstream server needs to load a user's adapter, in one manifest."""
    from registry.base_models.models import BaseModel, Projection

    row = session.execute(
        select(Adapter, Alias, AdapterVersion, BaseModel, Projection)
        .join(Alias, (Alias.adapter_id == Adapter.id) & (Alias.name == alias_name))
        .join(AdapterVersion, AdapterVersion.id == Alias.version_id)
        .join(BaseModel, BaseModel.id == Adapter.base_model_id)
        .join(Projection, Projection.id == Adapter.projection_id)
        .where(
            Adapter.tenant_id == tenant_id,
            Adapter.user_id == user_id,
            Adapter.name == adapter_name,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"user {user_id!r} has no adapter {adapter_name!r} with alias {alias_name!r}"
        )
    adapter, alias, version, base, projection = row
    return {
        "user_id": adapter.user_id,
        "adapter_id": adapter.id,
        "adapter_name": adapter.name,
        "alias": alias.name,
        "alias_generation": alias.generation,
        "version": version.number,
        "task": adapter.task,
        "target_modules": adapter.target_modules,
        "blob_sha256": version.blob_sha256,
        "blob_size_bytes": version.size_bytes,
        "base_model": {
            "id": base.id,
            "name": base.name,
            "content_hash": base.content_hash,
            "weights_hash": base.weights_hash,
            "architecture": base.architecture,
        },
        "projection": {
            "id": projection.id,
            "seed": projection.seed,
            "r": projection.r,
            "max_d_in": projection.max_d_in,
            "max_d_out": projection.max_d_out,
            "generator": projection.generator,
            "fingerprint": projection.fingerprint,
        },
    }
