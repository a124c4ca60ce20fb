"""Opaque keyset cursors for list endpoints."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Annotated, Any, Generic, TypeVar, get_args

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from registry.errors import BadRequest
from registry.input_rules import Int32, Text, UtcDatetime

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

# The `limit` query parameter of every list route: `limit: Limit = DEFAULT_LIMIT`.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]


def _page_example(schema: dict[str, Any], page: type[BaseModel]) -> None:
    """A page's example, from its item model's (so every list route shows one)."""
    (item,) = get_args(page.model_fields["items"].annotation) or (None,)
    extra = getattr(item, "model_config", {}).get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if examples:
        cursor = encode_cursor(["2026-11-30T09:21:47.113000+00:00", "01JA4K9R1S3T5U7V9W1X3Y5Z7A"])
        schema["examples"] = [{"items": examples[:1], "next_cursor": cursor}]


class Page(BaseModel, Generic[T]):
    """One page of a list (docs/api.md, "Pagination"): every list route answers this."""

    model_config = ConfigDict(json_schema_extra=_page_example)

    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# What each list pages by: a cursor is checked against its endpoint's shape (type and
# range of every component) before any of it reaches a query.
RowId = Annotated[Text, Field(min_length=1, max_length=64)]
ById = RowId
ByNumber = Int32
ByCreatedAt = tuple[UtcDatetime, RowId]
BySeq = Annotated[int, Field(ge=0, le=2**63 - 1)]
ByName = Annotated[Text, Field(min_length=1, max_length=200)]


def next_cursor(rows: list, limit: int, key) -> str | None:
    """The cursor after `rows` (`key(row)`: its position), or None when it was the last
    page (fewer rows than asked for)."""
    return encode_cursor(key(rows[-1])) if rows and len(rows) == limit else None


def created_key(row) -> list:
    return [row.created_at.isoformat(), row.id]


@functools.cache
def _adapter(shape: Any) -> TypeAdapter:
    return TypeAdapter(shape)


def decode_cursor(cursor: str | None, shape: type[T]) -> T | None:
    """The value of a next_cursor this API issued, validated strictly as `shape`; 400
    bad_cursor for anything else."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        # Strict: `true` is no integer, a naive timestamp no point in time.
        return _adapter(shape).validate_json(raw, strict=True)
    except (ValueError, binascii.Error) as exc:  # pydantic's ValidationError is a ValueError
        raise BadRequest(
            "malformed cursor: pass back the next_cursor of the previous page unchanged",
            code="bad_cursor",
        ) from exc
