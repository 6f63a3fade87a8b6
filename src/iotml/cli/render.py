"""Turning Arrow tables into Rich tables, CSV or JSON for the terminal."""

from __future__ import annotations

__all__ = ["emit", "format_cell", "rich_table"]

import io
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
from rich.table import Table

from iotml.cli.common import console

_SHORT = 24  # text up to this width is never folded


def format_cell(value: Any) -> str:
    """A compact, readable rendering of one cell."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")  # UTC: the table's caption says so
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def rich_table(table: pa.Table, title: str | None = None) -> Table:
    """A Rich table with one column per Arrow column; numbers right-aligned.

    Numbers, times and short text stay on one line; only long text (reasons, payloads)
    folds, so a table fits an 80-column terminal where it can.
    """
    rows = [[format_cell(v) for v in row.values()] for row in table.to_pylist()]
    has_time = any(pa.types.is_timestamp(f.type) for f in table.schema)
    out = Table(title=title, header_style="bold", caption="times in UTC" if has_time else None)
    for i, field in enumerate(table.schema):
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        widest = max((len(r[i]) for r in rows), default=0)
        out.add_column(
            field.name,
            justify="right" if numeric else "left",
            overflow="fold",
            no_wrap=widest <= _SHORT,
            min_width=max(widest, len(field.name)) if widest <= _SHORT else None,
        )
    for cells in rows:
        out.add_row(*cells)
    return out


def emit(table: pa.Table, output: str, title: str | None = None) -> None:
    """Print ``table`` as ``table`` (Rich), ``csv`` or ``json`` (one object per line)."""
    if output == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        console.out(buf.getvalue().decode(), end="")
    elif output == "json":
        for row in table.to_pylist():
            console.out(orjson.dumps(row, default=str).decode())
    else:
        console.print(rich_table(table, title))
