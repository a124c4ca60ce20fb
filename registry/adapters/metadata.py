"""Descriptions and tags of adapters and versions: the one home of their rules.

A version's content (its vectors, metrics, lineage) never changes; its description and
tags are notes about it and may. Changing either also marks the adapter updated."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.adapters.models import Adapter, AdapterTag, AdapterVersion, VersionTag
from registry.db import utcnow
from registry.errors import Invalid

MAX_TAGS = 32
MAX_DESCRIPTION = 2000

_UNSET = object()


def _tag_set(tags: Iterable[str], field: str) -> list[str]:
    unique = sorted(set(tags))
    if len(unique) > MAX_TAGS:
        message = f"at most {MAX_TAGS} tags per adapter or version; this would make {len(unique)}"
        raise Invalid(message, code="too_many_tags", details=[{"field": field, "message": message}])
    return unique


def new_tags(
    current: list[str],
    *,
    tags: list[str] | None = None,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> list[str]:
    """The tag set after a change: `tags` replaces the set (None keeps it), then `add`
    and `remove` apply; at most MAX_TAGS (else 422 too_many_tags)."""
    result = set(current if tags is None else tags)
    result.update(add)
    result.difference_update(remove)
    return _tag_set(result, "tags")


def _sync_rows(rows: list, wanted: list[str], make) -> None:
    # Keep the rows of tags that stay: deleting and re-inserting one primary key in one
    # flush would insert before it deletes.
    keep = set(wanted)
    rows[:] = [row for row in rows if row.tag in keep]
    present = {row.tag for row in rows}
    rows.extend(make(tag) for tag in wanted if tag not in present)


def set_adapter_tags(adapter: Adapter, tags: list[str]) -> None:
    _sync_rows(
        adapter.tag_rows,
        _tag_set(tags, "tags"),
        lambda tag: AdapterTag(tag=tag, tenant_id=adapter.tenant_id),
    )


def set_version_tags(version: AdapterVersion, tags: list[str]) -> None:
    _sync_rows(
        version.tag_rows,
        _tag_set(tags, "tags"),
        lambda tag: VersionTag(tag=tag, tenant_id=version.tenant_id),
    )


def _description(value: str | None) -> str | None:
    return value or None  # "" clears it, like null


def update(
    session: Session,
    adapter: Adapter,
    version: AdapterVersion | None = None,
    *,
    description: str | object | None = _UNSET,
    tags: list[str] | None = None,
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
) -> None:
    """Change the description (when given; None or "" clears it) and tags of `version`,
    or of `adapter` when no version is given; the adapter counts as updated either way."""
    target = version if version is not None else adapter
    # Concurrent changes of one adapter's tags apply one after the other, each to the
    # set the previous one left (the tags are read only after this lock).
    session.execute(select(Adapter.id).where(Adapter.id == adapter.id).with_for_update())
    if description is not _UNSET:
        target.description = _description(description)
    if tags is not None or add_tags or remove_tags:
        wanted = new_tags(target.tags, tags=tags, add=add_tags, remove=remove_tags)
        if version is not None:
            set_version_tags(version, wanted)
        else:
            set_adapter_tags(adapter, wanted)
    adapter.updated_at = utcnow()
    session.flush()
