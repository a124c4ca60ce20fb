"""JSONL datasets: lines split on "\n" only, and each line held to the input rules."""

from __future__ import annotations

import json

import pytest

from registry.errors import Invalid
from registry.jobs.datasets import parse_line, validate_jsonl

# Each is valid inside a JSON string, and each is a line break to str.splitlines().
SEPARATORS = ["\u2028", "\u2029", "\u0085", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_separators_inside_strings_do_not_split_rows(separator):
    rows = [{"text": f"one{separator}two", "label": 0}, {"text": f"{separator}b", "label": 1}]
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    stats = validate_jsonl(data, "sequence-classification", 100)
    assert stats.rows == 2 and stats.labels == [0, 1]


def test_crlf_lines_and_line_numbers_count_newlines_only():
    good = '{"text": "a\u2028b", "label": 0}\r\n{"text": "c", "label": 1}\r\n'
    assert validate_jsonl(good.encode(), "sequence-classification", 100).rows == 2
    bad = good + '{"text": "x\u0085", "label": 1}\r\n{"text": ""}\r\n'
    with pytest.raises(Invalid) as error:
        validate_jsonl(bad.encode(), "sequence-classification", 100)
    assert [d["line"] for d in error.value.details] == [4]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"text": "a\\u0000b"}', "text: contains a NUL character"),
        ('{"text": "ok", "meta": {"k\\u0000": 1}}', "meta.k\\u0000: key contains a NUL"),
        ('{"text": "\\ud800"}', "text: contains a lone surrogate"),
        ('{"text": "ok", "x": ' + "[" * 64 + "]" * 64 + "}", "x" + ".0" * 63 + ": nested deeper"),
        ("[" * 100_000, "nested deeper than 64 levels"),
        ('{"text": "ok", "x": NaN}', "NaN is not a JSON number"),
        ('{"text": "ok"', "not valid JSON"),
    ],
)
def test_line_rules(line, problem):
    _, found = parse_line(line, "causal-lm")
    assert found is not None and found.startswith(problem), found
    with pytest.raises(Invalid) as error:
        validate_jsonl(f'{{"text": "fine"}}\n{line}\n'.encode(), "causal-lm", 100)
    assert error.value.code == "invalid_dataset" and error.value.details[0]["line"] == 2


def test_nesting_up_to_the_limit_is_fine():
    line = '{"text": "ok", "x": ' + "[" * 63 + "]" * 63 + "}"
    assert parse_line(line, "causal-lm") == (json.loads(line), None)
