"""``iotml detect``: score history as the live pipeline would have.

A CSV file is scored row by row (each row one device's channels at one time). Any other
file iotml reads (Parquet, SenML JSON/CBOR, flat JSON), and readings in the store (no
file given: ``--device``, ``--metric``, ``--start``, ``--end`` choose them), are scored
reading by reading, each series in time order; the output is one line per reading,
written as Parquet when ``--output`` ends in ``.parquet`` and as CSV otherwise.
"""

from __future__ import annotations

__all__ = ["detect_cmd"]

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import typer
from rich.markup import escape
from rich.table import Table

from iotml.anomaly import DETECTORS, AlertRule, RowScores, classification, make_detector
from iotml.anomaly.rows import ReadingScores, score_readings, score_rows
from iotml.cli.common import command, console, open_cli_store, parse_time
from iotml.codecs import decode, detect_format
from iotml.codecs.tabular import sniff_delimiter
from iotml.codecs.timed import TimedRows, read_timed_csv
from iotml.errors import ConfigError
from iotml.types import Batch


def _columns(rows: TimedRows, label: str | None, ignore: list[str]) -> list[str]:
    names = rows.table.column_names
    for name in [label, *ignore]:
        if name is not None and name not in names:
            raise ConfigError(f"column {name!r} is not in the file; the columns are {names}")
    return [c for c in rows.numeric_columns() if c != label and c not in ignore]


def _with_scores(table: pa.Table, out: RowScores | ReadingScores) -> pa.Table:
    """``table`` with the four columns ``detect`` adds, one value per row."""
    table = table.append_column("anomaly_score", pa.array(np.round(out.score, 6)))
    table = table.append_column("is_anomaly", pa.array(out.is_anomaly.astype(np.int8)))
    table = table.append_column("anomaly_onset", pa.array(np.round(out.onset, 6)))
    return table.append_column("anomaly_source", pa.array(out.source.tolist(), pa.string()))


def _write(path: Path, rows: TimedRows, out: RowScores, delimiter: str) -> None:
    table = _with_scores(rows.table, out)
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


_ROW_KEYS = ("rows", "scored_rows", "detector", "warmup_rows", "anomalies", "anomalous_rows")
_READING_KEYS = (
    "readings", "series", "detector", "warmup_readings", "anomalies", "anomalous_readings",
)  # fmt: skip


def _show(
    summary: dict[str, Any], output: Path, keys: tuple[str, ...], problems: tuple[str, str]
) -> None:
    """The summary as a table; then each entry of ``summary[problems[0]]``, labelled."""
    table = Table(show_header=False, title=f"iotml detect → {escape(str(output))}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in keys:
        table.add_row(key.replace("_", " "), str(summary[key]))
    if "columns" in summary:
        table.add_row("columns", escape(", ".join(summary["columns"])))
    for name, value in summary.get("evaluation", {}).items():
        table.add_row(name, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    listed, label = problems
    for reason in summary[listed]:
        console.print(f"[yellow]{label}:[/] {escape(reason)}")


def _split_label(batch: Batch, label: str | None, ignore: list[str]) -> tuple[Batch, Batch | None]:
    """The readings to score, and those of the ``label`` metric (the truth), if named."""
    metric = batch.metric.to_numpy(zero_copy_only=False)
    present = set(metric.tolist())
    for name in [label, *ignore]:
        if name is not None and name not in present:
            raise ConfigError(f"metric {name!r} is not in the input; it has {sorted(present)}")
    truth = None if label is None else batch.filter(metric == label)
    keep = ~np.isin(metric, [m for m in [label, *ignore] if m is not None])
    return batch.filter(keep), truth


def _evaluate(batch: Batch, out: ReadingScores, truth: Batch, warmup: int) -> dict[str, float]:
    """Point-wise, per (device, time): anomalous when any reading then is; the truth's
    value > 0.5. Each device's first ``warmup`` times are left out, as for rows."""

    flagged = (
        batch.table.select(["device_id", "ts"])
        .filter(pa.array(out.is_anomaly))
        .group_by(["device_id", "ts"])
        .aggregate([])
    )
    flagged = flagged.append_column("flagged", pa.repeat(pa.scalar(True), flagged.num_rows))
    keyed = truth.table.select(["device_id", "ts"])
    keyed = keyed.append_column("i", pa.array(np.arange(len(truth), dtype=np.int64)))
    joined = keyed.join(flagged, ["device_id", "ts"], join_type="left outer")
    hit = joined.filter(pc.is_valid(joined.column("flagged"))).column("i").to_numpy()
    predicted = np.zeros(len(truth), dtype=bool)
    predicted[hit] = True
    order = np.lexsort((truth.ts_us, truth.device_id.to_numpy(zero_copy_only=False)))
    dev = truth.device_id.to_numpy(zero_copy_only=False)[order]
    rank = np.arange(order.size) - np.searchsorted(dev, dev, side="left")
    after = np.empty(order.size, dtype=bool)
    after[order] = rank >= warmup
    return classification((truth.values > 0.5)[after], predicted[after])


def _write_readings(path: Path, table: pa.Table) -> None:
    if path.suffix.lower() in (".parquet", ".pq"):
        pq.write_table(table, path)
    else:
        out = table.set_column(
            table.schema.get_field_index("ts"),
            "ts",
            pc.cast(table.column("ts"), pa.timestamp("us", "UTC")),
        )
        pcsv.write_csv(out, path, pcsv.WriteOptions(quoting_style="needed"))


def _detect_readings(
    batch: Batch, rejected: list[str], output: Path, detector: str, warmup: int,
    label: str | None, ignore: list[str], rule: AlertRule,
) -> dict[str, Any]:  # fmt: skip
    batch, truth = _split_label(batch, label, ignore)
    if not len(batch):
        raise ConfigError("nothing to score: the input has no readings")
    out = score_readings(batch, make_detector(detector, warmup=warmup), rule)
    _write_readings(output, _with_scores(batch.table, out))
    series = batch.table.group_by(["device_id", "metric"]).aggregate([]).num_rows
    summary: dict[str, Any] = {
        "readings": len(batch), "series": series, "detector": detector, "warmup_readings": warmup,
        "anomalies": out.episodes, "anomalous_readings": int(out.is_anomaly.sum()),
        "rejected": len(rejected), "rejections": rejected[:20],
    }  # fmt: skip
    if truth is not None:
        summary["evaluation"] = _evaluate(batch, out, truth, warmup)
    return summary


def _is_csv(path: Path, data: bytes) -> bool:
    return detect_format(data[:65536], filename=path.name) == "csv"


@command("detect")
def detect_cmd(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the scored rows/readings.")
    ],
    input: Annotated[
        Path | None,
        typer.Argument(
            help="A file: CSV (scored row by row), Parquet, SenML or JSON (reading by "
            "reading). Without one, readings from the store.",
            show_default=False,
        ),
    ] = None,
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
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            "-d",
            help="The device: of a wide file without a device column, or to read from the store.",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", "-m", help="Store: the metric.", show_default=False)
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Store: from (ISO-8601, inclusive).", show_default=False)
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Store: until (ISO-8601, exclusive).", show_default=False)
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score history with no look-ahead: a score depends only on its reading and earlier ones."""
    rule = AlertRule(
        on=on, off=off, min_duration_s=min_duration, min_quiet_s=min_quiet,
        model=f"{detector}@1",
    )  # fmt: skip
    data = None if input is None else input.read_bytes()
    if input is None or data is None or not _is_csv(input, data):
        if input is None or data is None:
            if label is not None:
                raise ConfigError("--label needs a file: the store holds no labels")
            t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
            with open_cli_store(ctx) as store:
                batch, rejected = store.query(device, metric, t0, t1), []
        else:
            decoded = decode(data, filename=input.name, device_id=device)
            batch, rejected = decoded.batch, [r.reason for r in decoded.rejected]
        summary = _detect_readings(
            batch, rejected, output, detector, warmup, label, ignore or [], rule
        )
        if json_:
            console.print_json(orjson.dumps(summary).decode())
        else:
            _show(summary, output, _READING_KEYS, ("rejections", "rejected"))
        return
    delimiter = sniff_delimiter(data[:65536])
    rows = read_timed_csv(data, delimiter=delimiter)
    columns = _columns(rows, label, ignore or [])
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
        _show(summary, output, _ROW_KEYS, ("skipped", "skipped"))
