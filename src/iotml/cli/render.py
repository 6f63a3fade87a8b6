"""Turning Arrow tables into Rich tables, CSV or JSON, for the terminal or a file.

CSV and JSON are written a chunk of rows at a time, every row, with times as ISO-8601 UTC
(``2026-01-01T00:00:00.000000Z`` in CSV); a Rich table is for people and holds few rows.
"""

from __future__ import annotations

__all__ = ["RowFormat", "emit", "encode_rows", "format_cell", "rich_table"]

import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from rich.table import Table

from iotml.cli.common import console

_SHORT = 24  # text up to this width is never folded
_CHUNK = 65_536  # rows encoded at a time

#: ``json`` is one object per line (JSON Lines); ``json-array`` one JSON document.
RowFormat = Literal["csv", "json", "json-array"]


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


def _iso_times(batch: pa.RecordBatch) -> pa.RecordBatch:
    columns = [
        pc.strftime(c, format="%Y-%m-%dT%H:%M:%SZ") if pa.types.is_timestamp(c.type) else c
        for c in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _csv(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    header = True
    for batch in batches:
        buf = io.BytesIO()
        options = pacsv.WriteOptions(include_header=header)
        pacsv.write_csv(_iso_times(batch), buf, write_options=options)
        header = False
        yield buf.getvalue()
    if header:  # no rows: the header alone
        empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)
        yield from _csv([empty], schema)


def _json(batches: Iterable[pa.RecordBatch], array: bool) -> Iterator[bytes]:
    sep, first = (b",\n", b"[") if array else (b"\n", b"")
    lead = first
    for batch in batches:
        rows = [orjson.dumps(row, default=str) for row in batch.to_pylist()]
        if rows:
            yield lead + sep.join(rows) + (b"" if array else b"\n")
            lead = sep if array else b""
    if array:
        yield (b"[" if lead == first else b"") + b"]\n"


def encode_rows(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: RowFormat
) -> Iterator[bytes]:
    """Every row of ``batches`` as ``csv`` (with a header), ``json`` (one object per line)
    or ``json-array``, in chunks of bytes to write out as they come."""
    if fmt == "csv":
        return _csv(batches, schema)
    return _json(batches, array=fmt == "json-array")


def emit(table: pa.Table, output: str, title: str | None = None) -> None:
    """Print ``table`` as ``table`` (Rich), ``csv`` or ``json`` (one object per line)."""
    if output in ("csv", "json"):
        fmt: RowFormat = "csv" if output == "csv" else "json"
        for chunk in encode_rows(table.to_batches(max_chunksize=_CHUNK), table.schema, fmt):
            console.out(chunk.decode(), end="")
    else:
        console.print(rich_table(table, title))
