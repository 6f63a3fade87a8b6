"""Commands that move data: ``import``, ``query``, ``summary``, ``export``, ``retention``."""

from __future__ import annotations

__all__ = [
    "ExportFormat",
    "Output",
    "export_cmd",
    "import_cmd",
    "query_cmd",
    "retention_cmd",
    "summary_cmd",
]

import secrets
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow.parquet as pq
import typer
from rich.markup import escape
from rich.progress import Progress

from iotml.cli.common import command, console, open_cli_store, parse_duration, parse_time
from iotml.cli.render import RowFormat, emit, encode_rows
from iotml.codecs import FORMATS
from iotml.ingest import IngestResult, import_files
from iotml.summary import findings, summarize


class Output(StrEnum):
    """How query results are printed."""

    table = "table"
    csv = "csv"
    json = "json"


class ExportFormat(StrEnum):
    """The file formats ``export`` writes."""

    parquet = "parquet"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"


_SHOWN_REJECTIONS = 10
_TABLE_ROWS = 20  # the table view's default --limit; csv and json print every row
_EXTENSIONS = {
    ".parquet": ExportFormat.parquet,
    ".pq": ExportFormat.parquet,
    ".csv": ExportFormat.csv,
    ".json": ExportFormat.json,
    ".jsonl": ExportFormat.jsonl,
    ".ndjson": ExportFormat.jsonl,
}
_ROW_FORMATS: dict[ExportFormat, RowFormat] = {
    ExportFormat.csv: "csv",
    ExportFormat.json: "json-array",
    ExportFormat.jsonl: "json",
}

Device = Annotated[
    str | None, typer.Option("--device", "-d", help="Device id.", show_default=False)
]
Metric = Annotated[
    str | None, typer.Option("--metric", "-m", help="Metric name.", show_default=False)
]
Start = Annotated[
    str | None,
    typer.Option(help="Start time, inclusive (ISO-8601; UTC when no offset).", show_default=False),
]
End = Annotated[
    str | None,
    typer.Option(help="End time, exclusive (ISO-8601; UTC when no offset).", show_default=False),
]


def _report(path: Path, result: IngestResult) -> None:
    if result.whole_payload_rejected:
        console.print(
            f"[red]✗[/] {escape(str(path))}: rejected whole — {escape(result.reasons[0])}"
        )
        return
    console.print(
        f"[green]✓[/] {escape(str(path))} ({result.format}): stored {result.stored:,} readings, "
        f"{result.duplicates:,} duplicates ignored, {result.rejected:,} rejected"
    )
    for note in result.notes:
        console.print(f"  [dim]note:[/] {escape(note)}")
    for reason in result.reasons[:_SHOWN_REJECTIONS]:
        console.print(f"  [yellow]rejected:[/] {escape(reason)}")
    if result.rejected > _SHOWN_REJECTIONS:
        console.print(
            f"  … and {result.rejected - _SHOWN_REJECTIONS:,} more (all kept: iotml deadletters)"
        )


@command("import")
def import_cmd(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Files to import.", show_default=False)],
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)} (default: detected)."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", "-d", help="Device id for files that do not name one."),
    ] = None,
    tz: Annotated[
        str, typer.Option(help="Time zone of CSV/Parquet times without an offset.")
    ] = "UTC",
) -> None:
    """Import readings from SenML (JSON/CBOR), flat JSON, CSV or Parquet files.

    Good records are stored; every rejected record is kept in the dead letters with its
    reason (see `iotml deadletters`).
    """
    if format is not None and format not in FORMATS:
        raise typer.BadParameter(
            f"{format!r} is not one of {', '.join(FORMATS)}", param_hint="--format"
        )
    with open_cli_store(ctx) as store, Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"importing {files[0].name}", total=len(files))
        totals, done = [0, 0], [0]

        def imported(path: Path, result: IngestResult) -> None:  # as each file is stored
            _report(path, result)
            totals[0] += result.stored
            totals[1] += result.rejected
            done[0] += 1
            progress.advance(task)
            if done[0] < len(files):
                progress.update(task, description=f"importing {files[done[0]].name}")

        import_files(store, files, format=format, device_id=device, tz=tz, on_result=imported)
    if len(files) > 1:
        console.print(f"total: stored {totals[0]:,} readings, rejected {totals[1]:,} records")


@command("query")
def query_cmd(
    ctx: typer.Context,
    device: Device = None,
    metric: Metric = None,
    start: Start = None,
    end: End = None,
    every: Annotated[
        str | None,
        typer.Option(
            help="Aggregate into buckets of this size (e.g. 1m, 15min, 1h, 1d).", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"At most this many rows, the earliest (default: every row with -o csv or "
            f"-o json, {_TABLE_ROWS} in the table).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.table,
) -> None:
    """Show readings (or per-bucket mean/min/max/count) in [start, end), ordered by time."""
    t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
    shown = _TABLE_ROWS if limit is None and output is Output.table else limit
    fetch = None if shown is None else shown + 1  # one more, to tell whether rows were left out
    with open_cli_store(ctx) as store:
        if every is None:
            table = store.query(device, metric, t0, t1, limit=fetch).table
        else:
            step = parse_duration(every, "--every")
            table = store.aggregate(device, metric, step, t0, t1).slice(0, fetch)
    more = shown is not None and table.num_rows > shown
    emit(table.slice(0, shown), output.value, title=None)
    if output is Output.table and more:
        console.print(f"[dim]first {shown} rows; use --limit for more, or -o csv for all[/]")


@command("summary")
def summary_cmd(ctx: typer.Context, device: Device = None, metric: Metric = None) -> None:
    """Per-series health: coverage, gaps, stuck sensors, trends and recent shifts."""
    with open_cli_store(ctx) as store:
        batch = store.query(device, metric)
    table = summarize(batch)
    emit(table.select(["device_id", "metric", "count", "first", "last", "mean", "gaps"]), "table")
    for row in table.to_pylist():
        for finding in findings(row):
            console.print(f"[yellow]•[/] {row['device_id']}/{row['metric']}: {escape(finding)}")


def _export_format(out: Path, given: ExportFormat | None) -> ExportFormat:
    if given is not None:
        return given
    found = _EXTENSIONS.get(out.suffix.lower())
    if found is None:
        raise typer.BadParameter(
            f"cannot tell the format of {str(out)!r} from its extension; name the file "
            f"{', '.join(_EXTENSIONS)} or give --format {'|'.join(ExportFormat)}",
            param_hint="OUT",
        )
    return found


def _convert(parquet: Path, out: Path, fmt: RowFormat) -> None:
    """Rewrite a Parquet file as ``fmt`` a chunk at a time; ``out`` appears whole or not at all."""
    source = pq.ParquetFile(parquet)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as file:
            for chunk in encode_rows(source.iter_batches(1 << 16), source.schema_arrow, fmt):
                file.write(chunk)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


@command("export")
def export_cmd(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Argument(
            help="File to write: .parquet, .csv, .json (one array) or .jsonl (a line a row).",
            show_default=False,
        ),
    ],
    device: Device = None,
    metric: Metric = None,
    start: Start = None,
    end: End = None,
    format: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format", "-f", help="The format (default: from OUT's extension).", show_default=False
        ),
    ] = None,
) -> None:
    """Export readings (columns device_id, metric, ts, value) to Parquet, CSV or JSON."""
    fmt = _export_format(out, format)
    t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
    with open_cli_store(ctx) as store:
        if fmt is ExportFormat.parquet:
            rows = store.export_parquet(out, device, metric, t0, t1)
        else:  # via Parquet, which every store streams, so no format holds the whole export
            with tempfile.TemporaryDirectory(
                dir=out.parent if out.parent.is_dir() else None
            ) as tmp:
                staged = Path(tmp) / "export.parquet"
                rows = store.export_parquet(staged, device, metric, t0, t1)
                _convert(staged, out, _ROW_FORMATS[fmt])
    console.print(f"wrote {rows:,} readings to {escape(str(out))} ({fmt})")


@command("retention")
def retention_cmd(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(help="Delete readings, events and dead letters older than this (e.g. 90d)."),
    ],
) -> None:
    """Delete data older than a given age."""
    cutoff = datetime.now(UTC) - parse_duration(older_than, "--older-than")
    with open_cli_store(ctx) as store:
        counts = store.delete_before(cutoff)
    detail = ", ".join(f"{n:,} {table}" for table, n in counts.items())
    console.print(f"deleted before {cutoff.isoformat(timespec='seconds')}: {detail}")
