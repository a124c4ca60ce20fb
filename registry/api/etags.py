"""Entity tags and the conditional headers (RFC 9110 §8.8.3, §13.1): their one parser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from registry.errors import BadRequest, PreconditionFailed

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E (obs-text left out)
_ENTITY_TAG = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e]*)"[ \t]*(?:,|\Z)')
_GENERATION = re.compile(r"[1-9][0-9]{0,9}")
GENERATION_MAX = 2**31 - 1


@dataclass(frozen=True)
class EntityTag:
    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


def parse_etags(header: str) -> Literal["*"] | list[EntityTag] | None:
    """`*`, or the comma-separated entity tags; None when the header is malformed."""
    text = header.strip(" \t")
    if text == "*":
        return "*"
    tags, position = [], 0
    while position < len(text):
        if text[position] in " \t,":  # empty list elements are allowed (RFC 9110 §5.6.1)
            position += 1
            continue
        match = _ENTITY_TAG.match(text, position)
        if match is None:
            return None
        tags.append(EntityTag(match.group(2), weak=match.group(1) is not None))
        position = match.end()
    return tags or None


def etag_matches(request: Request, etag: str) -> bool:
    """If-None-Match (weak comparison): True when the client's copy is current, for a 304.
    A malformed header is ignored, as RFC 9110 §13.1 allows."""
    header = request.headers.get("if-none-match")
    tags = parse_etags(header) if header else None
    if tags == "*":
        return True
    opaque = etag.removeprefix("W/").strip('"')
    return any(tag.opaque == opaque for tag in tags or ())


def _bad(message: str) -> BadRequest:
    return BadRequest(message, code="bad_if_match")


def alias_precondition(
    if_match: str | None, if_none_match: str | None
) -> int | Literal["*"] | None:
    """What a write to an alias requires (the alias's ETag is its generation, `"3"`):
    a generation, `*` (the alias exists), 0 (it does not: If-None-Match: *), or None."""
    if if_match is not None and if_none_match is not None:
        raise _bad("send If-Match or If-None-Match, not both")
    if if_none_match is not None:
        if if_none_match.strip(" \t") != "*":
            raise _bad(
                f"If-None-Match on an alias takes only * (create it only if it does not "
                f"exist), got {if_none_match!r}"
            )
        return 0
    if if_match is None:
        return None
    tags = parse_etags(if_match)
    if tags is None:
        raise _bad(
            f"If-Match must be * or one entity tag in double quotes, the alias's "
            f'ETag such as "3", got {if_match!r}'
        )
    if tags == "*":
        return "*"
    if len(tags) != 1:
        raise _bad(f"If-Match takes one alias generation, got {len(tags)}: {if_match!r}")
    tag = tags[0]
    if tag.weak:
        # Strong comparison (RFC 9110 §13.1.1): a weak tag never matches.
        raise PreconditionFailed(
            f"If-Match compares entity tags strongly, so the weak tag {tag} never matches; "
            f'send the alias\'s ETag as it came, "{tag.opaque}"',
            details={"if_match": if_match},
        )
    if not _GENERATION.fullmatch(tag.opaque) or int(tag.opaque) > GENERATION_MAX:
        raise _bad(
            f"If-Match must be an alias generation (a number from 1, the alias's ETag), "
            f"got {tag}; to create an alias only if it is new, send If-None-Match: *"
        )
    return int(tag.opaque)
