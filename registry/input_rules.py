"""Rules all client input obeys before it reaches the database (docs/api.md, "Input rules").

PostgreSQL stores no NUL character in text and no lone UTF-16 surrogate (psycopg raises
DataError), 32-bit integer columns end at 2**31 - 1, and a JSON parser recurses once per
nesting level. Each rule lives here once and is applied at the edge: the API's input guard
(path, query, headers, JSON bodies), dataset lines and cursors.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

INT32_MAX = 2**31 - 1
MAX_JSON_DEPTH = 64
MAX_REPORTED = 20

# Every integer that goes into a 32-bit column (sequence numbers, versions, counters).
Int32 = Annotated[int, Field(ge=0, le=INT32_MAX)]


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which text may not contain"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


def _checked_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# A string field held to the text rule (pydantic), for input parsed outside the guard.
Text = Annotated[str, AfterValidator(_checked_text)]


def bounded_text(max_length: int) -> Any:
    """Text of at most `max_length` characters (the length checked first, so its error says
    "at most N characters")."""
    return Annotated[str, Field(max_length=max_length), AfterValidator(_checked_text)]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError("is out of range once converted to UTC") from None


_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?"
)


def _iso_text(value: Any) -> Any:
    # pydantic would also read `0.5` or `1700000000` as seconds since 1970.
    if isinstance(value, str) and not _ISO_TIME.fullmatch(value):
        raise ValueError("must be an ISO 8601 time with its offset, e.g. 2026-01-31T12:00:00Z")
    return value


# A point in time with its offset (a naive one is refused), as UTC: for strict JSON
# (cursors), where no number passes for a time.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
# The same in a query parameter or a lax body: ISO 8601 text only.
IsoUtcDatetime = Annotated[UtcDatetime, BeforeValidator(_iso_text)]


class JsonInputError(ValueError):
    """JSON that parsed (or nested too deeply to parse) but breaks a rule: [(field, message)]."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))
        self.problems = problems


def _not_json_number(name: str) -> Any:
    raise JsonInputError([("", f"{name} is not a JSON number")])


def _field(path: tuple) -> str:
    """A dotted field path; a key that breaks the text rule is shown escaped, so the answer
    naming it can itself be encoded."""
    return ".".join(
        json.dumps(part)[1:-1] if isinstance(part, str) and text_problem(part) else str(part)
        for part in path
    )


# One decoder for all calls: json.loads with any option builds a new one each time.
_DECODER = json.JSONDecoder(parse_constant=_not_json_number)


def json_problems(value: Any, max_depth: int = MAX_JSON_DEPTH) -> list[tuple[str, str]]:
    """(field path, problem) for each string or key breaking the text rule and each
    container nested deeper than `max_depth`; iterative, so depth cannot exhaust the stack."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack and len(problems) < MAX_REPORTED:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                problems.append((_field(path), problem))
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= max_depth:
            problems.append((_field(path), f"nested deeper than {max_depth} levels"))
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key)
                if problem:
                    problems.append((_field((*path, key)), f"key {problem}"))
                stack.append((child, (*path, key), depth + 1))
        else:
            stack.extend((child, (*path, index), depth + 1) for index, child in enumerate(item))
    return problems


def load_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads held to the rules: raises JSONDecodeError for bad syntax and JsonInputError
    for NaN/Infinity, too deep nesting, NUL or lone surrogates."""
    if isinstance(text, bytes):  # as json.loads decodes bytes, so the rules see the same text
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        # The C parser refuses depth before Python's stack runs out; report it as a rule.
        raise JsonInputError([("", f"nested deeper than {max_depth} levels")]) from None
    except (JsonInputError, json.JSONDecodeError):
        raise
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise JsonInputError([("", f"not valid JSON: {exc}")]) from None
    problems = json_problems(value, max_depth)
    if problems:
        raise JsonInputError(problems)
    return value
