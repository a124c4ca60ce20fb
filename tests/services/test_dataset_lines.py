"""Datasets are validated line by line from a file: memory is bounded by the longest line."""

import io
import json

import pytest

from registry.errors import Invalid
from registry.jobs.datasets import numbered_lines, validate_jsonl


def test_a_file_and_its_bytes_validate_alike():
    data = b'{"text": "a", "label": 1}\r\n\n{"text": "b", "label": 0}'
    from_file = validate_jsonl(io.BytesIO(data), "sequence-classification", 10)
    from_bytes = validate_jsonl(data, "sequence-classification", 10)
    assert (from_file.rows, from_file.labels) == (from_bytes.rows, from_bytes.labels) == (2, [1, 0])


def test_a_line_over_the_limit_is_refused_by_number_without_reading_it_whole():
    data = b'{"text": "ok"}\n{"text": "' + b"x" * 100 + b'"}\n'
    with pytest.raises(Invalid) as error:
        validate_jsonl(data, "causal-lm", 10, max_line_bytes=64)
    assert error.value.details == [{"line": 2, "message": "longer than 64 bytes"}]
    assert validate_jsonl(data, "causal-lm", 10, max_line_bytes=len(data)).rows == 2


def test_lines_break_at_newline_only_and_bad_utf8_is_located():
    text = json.dumps({"text": "a\u2028b\x85c"}, ensure_ascii=False).encode()
    assert [n for n, _ in numbered_lines(io.BytesIO(text + b"\n" + text), 1 << 20)] == [1, 2]
    with pytest.raises(Invalid, match=r"byte 24, line 2"):
        validate_jsonl(b'{"text": "a"}\n{"text": "\xff"}', "causal-lm", 10)
