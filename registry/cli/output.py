"""Tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

Column = tuple[str, str] | tuple[str, str, Callable[[Any], str]]


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped output keeps whole lines (ids are 32 characters) instead of folding at 80.
    width = None if stream.isatty() else 200
    return Console(file=stream, highlight=False, width=width, soft_wrap=width is not None)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def when(value: Any) -> str:
    """An API timestamp as 'YYYY-MM-DD HH:MM:SS' (UTC), or '-'."""
    return str(value)[:19].replace("T", " ") if value else "-"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _formatted(column: Column, value: Any) -> str:
    return column[2](value) if len(column) > 2 else cell(value)


def table(rows: Sequence[dict], columns: Sequence[Column], title: str | None = None) -> None:
    """A table of `rows` with (key, header[, format]) columns; '(none)' when empty."""
    out = console()
    if not rows:
        out.print(f"{title + ': ' if title else ''}(none)")
        return
    grid = Table(title=title, title_justify="left", header_style="bold", box=None)
    for column in columns:
        grid.add_column(column[1], overflow="fold")
    for row in rows:
        grid.add_row(*(_formatted(column, row.get(column[0])) for column in columns))
    out.print(grid)


def record(data: dict, fields: Sequence[Column] | None = None, title: str | None = None) -> None:
    """One object as 'field  value' lines."""
    fields = fields or [(key, key) for key in data]
    grid = Table(title=title, title_justify="left", show_header=False, box=None)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for column in fields:
        grid.add_row(column[1], _formatted(column, data.get(column[0])))
    console().print(grid)


def show(
    as_json: bool,
    data: Any,
    columns: Sequence[Column] | None = None,
    title: str | None = None,
) -> None:
    """JSON as is for scripts; a table (lists) or a record (an object) for people."""
    if as_json:
        echo_json(data)
    elif isinstance(data, list):
        table(data, columns or [(k, k) for k in (data[0] if data else {})], title)
    else:
        record(data, columns, title)
