"""Training datasets: JSONL validated per task before anything is stored."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.config import Settings
from registry.db import created_before, get_owned
from registry.errors import Invalid, TooLarge
from registry.input_rules import JsonInputError, load_json
from registry.jobs.models import TASKS, Dataset
from registry.tenants import quotas

MAX_REPORTED_ERRORS = 20
MAX_LINE_BYTES = Settings.model_fields["max_dataset_line_bytes"].default


@dataclass
class DatasetStats:
    rows: int
    labels: list | None = None
    errors: list[dict] = field(default_factory=list)


def _row_error(row: object, task: str) -> str | None:
    if not isinstance(row, dict):
        return "each line must be a JSON object"
    if task == "causal-lm":
        if "text" in row:
            ok = isinstance(row["text"], str) and row["text"].strip()
            return None if ok else "'text' must be a non-empty string"
        if "prompt" in row and "completion" in row:
            ok = all(isinstance(row[k], str) and row[k] for k in ("prompt", "completion"))
            return None if ok else "'prompt' and 'completion' must be non-empty strings"
        return "causal-lm rows need {'text'} or {'prompt', 'completion'}"
    if not (isinstance(row.get("text"), str) and row["text"].strip()):
        return "sequence-classification rows need a non-empty string 'text'"
    label = row.get("label")
    if isinstance(label, bool) or not isinstance(label, int | str) or label == "":
        return "sequence-classification rows need a 'label' (integer or string)"
    return None


def numbered_lines(handle: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, str]]:
    """(1-based number, text) of each line, read one at a time so that memory stays bounded
    by `max_line_bytes`. Lines end at b"\\n" only (a trailing b"\\r" dropped): U+2028,
    U+0085 and the other breaks str.splitlines() knows are valid inside JSON strings."""
    offset = 0
    for number in count(1):
        raw = handle.readline(max_line_bytes + 1)
        if not raw:
            return
        content = raw.removesuffix(b"\n").removesuffix(b"\r")
        if len(content) > max_line_bytes:
            raise Invalid(
                f"line {number} is longer than {max_line_bytes} bytes; split long texts into "
                "several rows",
                code="invalid_dataset",
                details=[{"line": number, "message": f"longer than {max_line_bytes} bytes"}],
            )
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(
                f"dataset is not UTF-8 (byte {offset + exc.start}, line {number})",
                code="invalid_dataset",
            ) from exc
        offset += len(raw)
        yield number, text


def parse_line(line: str, task: str) -> tuple[object, str | None]:
    """One JSONL line as (row, problem): JSON held to registry.input_rules (no NUL, bounded
    nesting), then the task's row shape."""
    try:
        row = load_json(line)
    except JsonInputError as exc:
        field_name, message = exc.problems[0]
        return None, f"{field_name}: {message}" if field_name else message
    except ValueError as exc:
        return None, f"not valid JSON: {getattr(exc, 'msg', exc)}"
    return row, _row_error(row, task)


def validate_jsonl(
    data: bytes | BinaryIO, task: str, max_rows: int, max_line_bytes: int = MAX_LINE_BYTES
) -> DatasetStats:
    """Check every line of the bytes or binary file; raise Invalid listing bad lines (1-based),
    TooLarge over max_rows."""
    if task not in TASKS:
        raise Invalid(
            f"task must be one of {list(TASKS)}, got {task!r}",
            details=[{"field": "task", "message": "unknown task"}],
        )
    handle = io.BytesIO(data) if isinstance(data, bytes) else data
    stats = DatasetStats(rows=0, labels=[] if task == "sequence-classification" else None)
    seen_labels: set = set()
    for number, line in numbered_lines(handle, max_line_bytes):
        if not line.strip(" \t"):  # JSON whitespace only: U+2028 alone is no blank line
            continue
        stats.rows += 1
        if stats.rows > max_rows:
            raise TooLarge(f"dataset has more than {max_rows} rows", details={"max_rows": max_rows})
        row, problem = parse_line(line, task)
        if problem:
            stats.errors.append({"line": number, "message": problem})
            if len(stats.errors) >= MAX_REPORTED_ERRORS:
                break
        elif stats.labels is not None and row["label"] not in seen_labels:
            seen_labels.add(row["label"])
            stats.labels.append(row["label"])
    if stats.errors:
        first = stats.errors[0]
        raise Invalid(
            f"{len(stats.errors)} bad line(s) in the dataset; line {first['line']}: "
            f"{first['message']}",
            code="invalid_dataset",
            details=stats.errors,
        )
    if stats.rows == 0:
        raise Invalid("dataset has no rows", code="invalid_dataset")
    if stats.labels is not None and len(stats.labels) < 2:
        raise Invalid(
            "a classification dataset needs at least two distinct labels", code="invalid_dataset"
        )
    return stats


def create_dataset(
    session: Session,
    store,
    tenant_id: str,
    user_id: str,
    task: str,
    data: bytes | Path,
    settings: Settings,
) -> Dataset:
    """Validate, then store as a blob and record; invalid input stores nothing. `data` is the
    bytes or a file holding them (an upload spooled to disk: never all in memory)."""
    if not user_id:
        raise Invalid("user_id is required", details=[{"field": "user_id"}])
    size = len(data) if isinstance(data, bytes) else data.stat().st_size
    if size > settings.max_dataset_bytes:
        raise TooLarge(f"dataset exceeds {settings.max_dataset_bytes} bytes")
    quotas.check_upload(session, tenant_id, user_id, size, settings, lock=False)
    with io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb") as handle:
        stats = validate_jsonl(
            handle, task, settings.max_dataset_rows, settings.max_dataset_line_bytes
        )
    blob = store.put(data) if isinstance(data, bytes) else store.put_file(data)
    # Again under the tenant's lock, in the transaction that records it (a concurrent upload
    # may have used the room); a blob stored for nothing is blob GC's to remove.
    quotas.check_upload(session, tenant_id, user_id, blob.size, settings, lock=True)
    dataset = Dataset(
        tenant_id=tenant_id,
        user_id=user_id,
        task=task,
        blob_sha256=blob.sha256,
        rows=stats.rows,
        size_bytes=blob.size,
        labels=stats.labels,
    )
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    return get_owned(session, Dataset, tenant_id, dataset_id, "dataset")


def list_datasets(
    session: Session,
    tenant_id: str,
    *,
    user_id: str | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[Dataset]:
    """Newest first; `before`: the (created_at, id) of the prior page's last dataset."""
    query = select(Dataset).where(Dataset.tenant_id == tenant_id)
    if user_id is not None:
        query = query.where(Dataset.user_id == user_id)
    if before is not None:
        query = query.where(created_before(Dataset, before))
    query = query.order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(limit)
    return list(session.scalars(query))
