"""``iotml detect``: score a CSV file row by row, as the live pipeline would have."""

from __future__ import annotations

__all__ = ["detect_cmd"]

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import typer
from rich.markup import escape
from rich.table import Table

from iotml.anomaly import DETECTORS, AlertRule, RowScores, classification, make_detector
from iotml.anomaly.rows import score_rows
from iotml.cli.common import command, console
from iotml.codecs.tabular import sniff_delimiter
from iotml.codecs.timed import TimedRows, read_timed_csv
from iotml.errors import ConfigError


def _columns(rows: TimedRows, label: str | None, ignore: list[str]) -> list[str]:
    names = rows.table.column_names
    for name in [label, *ignore]:
        if name is not None and name not in names:
            raise ConfigError(f"column {name!r} is not in the file; the columns are {names}")
    return [c for c in rows.numeric_columns() if c != label and c not in ignore]


def _write(path: Path, rows: TimedRows, out: RowScores, delimiter: str) -> None:
    table = rows.table.append_column("anomaly_score", pa.array(np.round(out.score, 6)))
    table = table.append_column("is_anomaly", pa.array(out.is_anomaly.astype(np.int8)))
    table = table.append_column("anomaly_source", pa.array(out.source.tolist(), pa.string()))
    pcsv.write_csv(table, path, pcsv.WriteOptions(delimiter=delimiter, quoting_style="needed"))


def _summary(
    rows: TimedRows, columns: list[str], out: RowScores, detector: str, warmup: int,
    labels: dict[str, float] | None,
) -> dict[str, Any]:  # fmt: skip
    skipped = [r.reason for r in [*rows.rejected, *out.skipped]]
    summary: dict[str, Any] = {
        "rows": int(rows.table.num_rows), "scored_rows": int(out.scored.sum()),
        "columns": columns, "detector": detector, "warmup_rows": warmup,
        "anomalies": out.episodes, "anomalous_rows": int(out.is_anomaly.sum()),
        "skipped_rows": len(skipped), "skipped": skipped[:20], "notes": rows.notes,
    }  # fmt: skip
    if labels is not None:
        summary["evaluation"] = labels
    return summary


def _show(summary: dict[str, Any], output: Path) -> None:
    table = Table(show_header=False, title=f"iotml detect → {escape(str(output))}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in ("rows", "scored_rows", "detector", "warmup_rows", "anomalies", "anomalous_rows"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row("columns", escape(", ".join(summary["columns"])))
    for name, value in summary.get("evaluation", {}).items():
        table.add_row(name, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    for reason in summary["skipped"]:
        console.print(f"[yellow]skipped:[/] {escape(reason)}")


@command("detect")
def detect_cmd(
    input: Annotated[Path, typer.Argument(help="CSV with a timestamp column and numeric columns.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the scored rows.")],
    detector: Annotated[
        str, typer.Option(help=f"One of: {', '.join(sorted(DETECTORS))}.")
    ] = "default",
    warmup: Annotated[
        int, typer.Option(min=1, help="Rows learned from before scoring starts.")
    ] = 100,
    label: Annotated[
        str | None,
        typer.Option(help="A 0/1 column of true anomalies: not scored, used to evaluate."),
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="A column to leave out (repeatable).")
    ] = None,
    on: Annotated[float, typer.Option(help="Alert threshold on the score.")] = 0.5,
    off: Annotated[float, typer.Option(help="An alert ends below this score.")] = 0.3,
    min_duration: Annotated[
        float, typer.Option(help="Seconds a score must stay high before an alert.")
    ] = 0.0,
    min_quiet: Annotated[
        float, typer.Option(help="Seconds a score must stay low before an alert ends.")
    ] = 0.0,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score every row (no look-ahead: a row's score depends only on it and earlier rows)."""
    data = input.read_bytes()
    delimiter = sniff_delimiter(data[:65536])
    rows = read_timed_csv(data, delimiter=delimiter)
    columns = _columns(rows, label, ignore or [])
    rule = AlertRule(
        on=on, off=off, min_duration_s=min_duration, min_quiet_s=min_quiet,
        model=f"{detector}@1",
    )  # fmt: skip
    out = score_rows(rows, columns, make_detector(detector, warmup=warmup), rule)
    _write(output, rows, out, delimiter)
    labels = None
    if label is not None:
        truth = rows.numbers(label).values > 0.5
        after = out.scored & (np.cumsum(out.scored) > warmup)  # rows scored after the warm-up
        labels = classification(truth[after], out.is_anomaly[after])
    summary = _summary(rows, columns, out, detector, warmup, labels)
    if json_:
        console.print_json(orjson.dumps(summary).decode())
    else:
        _show(summary, output)
