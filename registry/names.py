"""The rules for user ids, adapter and alias names and tags (docs/api.md, "Identifiers and
names"): each pattern lives here once, as a type every schema, route and the CLI use.

ASCII only, so no look-alike (`lіve` with a Cyrillic і, full-width letters) can name a
second thing that reads the same; and nothing that means something in a URL (`/ ? # %`,
space, a `..` segment), so every id is one path segment or query value as it is.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, TypeAdapter, ValidationError, WithJsonSchema

from registry.errors import Invalid

USER_ID_PATTERN = r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_@:+=-])*\.?$"
USER_ID_MAX = 128
USER_ID_RULE = (
    f"1-{USER_ID_MAX} ASCII letters, digits and . _ @ : + = -, starting with a letter or "
    "digit, with no '..'"
)
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
NAME_MAX = 64
NAME_RULE = (
    f"1-{NAME_MAX} lowercase ASCII letters, digits and . _ -, starting with a letter or digit"
)
TAG_PATTERN = r"^[a-z0-9][a-z0-9._:-]*$"
TAG_MAX = 64
TAG_RULE = (
    f"1-{TAG_MAX} lowercase ASCII letters, digits and . _ : -, starting with a letter or digit"
)


def _identifier(what: str, pattern: str, max_length: int, rule: str):
    regex = re.compile(pattern)

    def check(value: str) -> str:
        # fullmatch: `$` alone would let a trailing newline through.
        if len(value) > max_length or not regex.fullmatch(value):
            shown = value if len(value) <= 80 else value[:80] + "…"
            raise ValueError(f"{what} must be {rule}; got {shown!r}")
        return value

    schema = {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": pattern,
        "description": f"{what[0].upper()}{what[1:]}: {rule}.",
    }
    return Annotated[str, AfterValidator(check), WithJsonSchema(schema)]


UserId = _identifier("a user id", USER_ID_PATTERN, USER_ID_MAX, USER_ID_RULE)
AdapterName = _identifier("an adapter name", NAME_PATTERN, NAME_MAX, NAME_RULE)
AliasName = _identifier("an alias name", NAME_PATTERN, NAME_MAX, NAME_RULE)
# A string tag on an adapter or a version (`lang:de`, `exp.42`).
Tag = _identifier("a tag", TAG_PATTERN, TAG_MAX, TAG_RULE)

_ADAPTERS = {kind: TypeAdapter(kind) for kind in (UserId, AdapterName, AliasName, Tag)}


def problem(kind, value: str) -> str | None:
    """Why `value` is not a valid `kind` (UserId, AdapterName, AliasName, Tag), or None."""
    try:
        _ADAPTERS[kind].validate_python(value)
    except ValidationError as exc:
        return exc.errors()[0]["msg"].removeprefix("Value error, ")
    return None


def require(kind, value: str, field: str) -> str:
    """`value` if it is a valid `kind`, else Invalid (422) naming the rule."""
    message = problem(kind, value)
    if message is not None:
        raise Invalid(message, details=[{"field": field, "message": message}])
    return value
