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


def format_cell(value: Any) -> str:
    """A compact, readable rendering of one cell."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def rich_table(table: pa.Table, title: str | None = None) -> Table:
    """A Rich table with one column per Arrow column; numbers right-aligned."""
    out = Table(title=title, show_lines=False, header_style="bold")
    for field in table.schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        out.add_column(field.name, justify="right" if numeric else "left", overflow="fold")
    for row in table.to_pylist():
        out.add_row(*(format_cell(v) for v in row.values()))
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
