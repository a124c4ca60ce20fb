"""What every part of the client shares: its error types and small file helpers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx


class ClientError(Exception):
    """An error answer (or a transport failure after all retries, status 0)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def from_response(cls, response: httpx.Response) -> ClientError:
        try:
            error = response.json()["error"]
            return cls(response.status_code, error["code"], error["message"], error.get("details"))
        except (ValueError, KeyError, TypeError):
            text = response.text[:500] if response.content else response.reason_phrase
            return cls(response.status_code, f"http_{response.status_code}", text)


class IntegrityError(ClientError):
    """Downloaded bytes do not hash to the sha256 the registry promised."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(0, "sha256_mismatch", f"expected sha256 {expected}, got {actual}")
        self.expected, self.actual = expected, actual


def _segment(value: str) -> str:
    """One URL path segment, percent-encoded whole, so an id can never make another path
    (`/`, `?`, `#`, `%`, and the `.`/`..` segments that URL normalizing would remove)."""
    text = quote(value, safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
