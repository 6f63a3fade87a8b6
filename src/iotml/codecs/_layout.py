"""Turn a decoded table (from CSV or Parquet) into readings: column roles, layouts, cells.

Private to :mod:`iotml.codecs.tabular`, which documents the behaviour users see. Every
step works on whole columns with ``pyarrow.compute`` and numpy; Python loops run only
over columns and over rejected cells.
"""

from __future__ import annotations

__all__ = ["ALIASES", "RowSource", "decode_table"]

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.codecs.common import Decoded, Rejected, split_by_time_range
from iotml.codecs.timestamps import NUMBER_PATTERN, ParsedTimes, parse_times
from iotml.config import Limits
from iotml.errors import ConfigError, InvalidPayload
from iotml.ids import split_by_device_id
from iotml.types import READING_SCHEMA, TS_TYPE, Batch

#: Column names (compared lower-case, with spaces and dashes read as ``_``) for each role.
ALIASES = {
    "device": ("device_id", "device", "deviceid", "id"),
    "metric": ("metric", "sensor", "name", "channel"),
    "value": ("value", "val", "reading"),
    "ts": ("ts", "timestamp", "datetime", "time", "date"),
}
_NON_FINITE = r"(?i)^[+-]?(nan|inf|infinity)$"
_TRUE, _FALSE = ("true", "on"), ("false", "off")
_ACCEPTED_TS = (
    "accepted: ISO-8601, epoch seconds/milliseconds/microseconds, or a date such as "
    "'25-Apr-19' or '16/12/2006' with an optional time"
)

BoolArray = npt.NDArray[np.bool_]


@dataclass
class RowSource:
    """A table plus what is needed to report its rows: the file row number of each table
    row (header = row 1 for CSV) and a function giving a row's original bytes."""

    table: pa.Table
    rows: npt.NDArray[np.int64]
    payload: Callable[[int], bytes]
    notes: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    unnamed: frozenset[str] = frozenset()

    def reject(self, i: int, reason: str) -> None:
        self.rejected.append(Rejected(reason, self.payload(i), int(self.rows[i])))


@dataclass(frozen=True, slots=True)
class _Numbers:
    values: npt.NDArray[np.float64]  # 0 where not present or bad
    present: BoolArray  # a non-empty cell
    bad: BoolArray  # present but not a finite number


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _find(names: Sequence[str], aliases: Sequence[str]) -> str | None:
    normed: dict[str, str] = {}
    for name in names:
        normed.setdefault(_norm(name), name)
    return next((normed[a] for a in aliases if a in normed), None)


def _ts_columns(table: pa.Table) -> tuple[str, ...]:
    names = table.column_names
    found = _find(names, ALIASES["ts"][:3])
    if found:
        return (found,)
    date, time = _find(names, ("date",)), _find(names, ("time",))
    if date and time:
        return (date, time)
    single = date or time
    if single:
        return (single,)
    typed = [n for n in names if pa.types.is_timestamp(table.schema.field(n).type)]
    return (typed[0],) if len(typed) == 1 else ()


def _text(col: pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return arr.cast(pa.string())
    return pc.utf8_trim_whitespace(arr.cast(pa.string()))


def _numbers(col: pa.ChunkedArray, allow_words: bool) -> _Numbers:
    arr = col.combine_chunks()
    kind = arr.type
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        present = arr.is_valid().to_numpy(zero_copy_only=False)
        return _Numbers(np.where(np.isfinite(values), values, 0.0), present, ~np.isfinite(values))
    if pa.types.is_decimal(kind):
        return _numbers(pa.chunked_array([arr.cast(pa.float64())]), allow_words)
    text = _text(col)
    present = pc.greater(pc.utf8_length(text), 0).fill_null(False)
    try:  # Arrow's cast reads what NUMBER_PATTERN matches, plus nan/inf, caught below
        floats = pc.if_else(present, text, pa.scalar(None, pa.string())).cast(pa.float64())
    except pa.ArrowInvalid:
        numeric = pc.match_substring_regex(text, pattern=NUMBER_PATTERN).fill_null(False)
        floats = pc.if_else(numeric, text, pa.scalar(None, pa.string())).cast(pa.float64())
    if allow_words:
        lower = pc.utf8_lower(text)
        floats = pc.if_else(pc.is_in(lower, pa.array(_TRUE)), 1.0, floats)
        floats = pc.if_else(pc.is_in(lower, pa.array(_FALSE)), 0.0, floats)
    values = pc.fill_null(floats, np.nan).to_numpy(zero_copy_only=False)
    good = np.isfinite(values)
    ok_present = present.to_numpy(zero_copy_only=False)
    return _Numbers(np.where(good, values, 0.0), ok_present, ok_present & ~good)


def _is_numeric_type(kind: pa.DataType) -> bool:
    checks = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)
    return any(check(kind) for check in checks)


def _column_kind(col: pa.ChunkedArray) -> tuple[str, str]:
    """``('numeric'|'bool'|'text'|'empty'|'other', example)`` for a wide-layout column."""
    kind = col.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        if not _is_numeric_type(kind):
            return "other", str(kind)
        return ("numeric", "") if col.null_count < len(col) or not len(col) else ("empty", "")
    text = _text(col)
    nonempty = text.filter(pc.greater(pc.utf8_length(text), 0))
    if len(nonempty) == 0:
        return ("empty", "") if len(col) else ("numeric", "")
    try:
        nonempty.cast(pa.float64())
        return "numeric", ""
    except pa.ArrowInvalid:
        pass  # some cells are not numbers: count them
    lower = pc.utf8_lower(nonempty)
    if pc.all(pc.is_in(lower, pa.array(_TRUE + _FALSE))).as_py():
        return "bool", ""
    numeric = pc.match_substring_regex(nonempty, pattern=NUMBER_PATTERN)
    numeric = pc.or_(numeric, pc.match_substring_regex(nonempty, pattern=_NON_FINITE))
    if 2 * pc.sum(numeric, min_count=0).as_py() >= len(nonempty):
        return "numeric", ""
    return "text", nonempty.filter(pc.invert(numeric))[0].as_py()


def _cells(col: pa.ChunkedArray | pa.Array, rows: npt.NDArray[np.int64]) -> list[Any]:
    return list(col.take(pa.array(rows, pa.int64())).to_pylist())


def _show(value: Any) -> str:
    return "empty" if value is None or value == "" else repr(value)


def _cell_problem(label: str, value: Any) -> str:
    if value is None or value == "":
        return f"column {label!r}: empty"
    try:
        finite = bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        finite = True
    if not finite:
        return (
            f"column {label!r}: {value!r} is not a finite number; NaN and infinity are not readings"
        )
    return f"column {label!r}: {value!r} is not a number"


def _times(src: RowSource, cols: tuple[str, ...], tz: str) -> ParsedTimes:
    table = src.table
    if len(cols) == 2:
        date, time = (_text(table.column(c)) for c in cols)
        joined = pc.utf8_trim_whitespace(pc.binary_join_element_wise(date, time, " "))
        shown: pa.Array | pa.ChunkedArray = joined
        parsed = parse_times(joined, tz=tz)
        label = f"columns {cols[0]!r} + {cols[1]!r}"
    else:
        parsed = parse_times(table.column(cols[0]).combine_chunks(), tz=tz)
        shown = table.column(cols[0])
        label = f"column {cols[0]!r}"
    bad = np.flatnonzero(~parsed.ok)
    if len(bad) == len(parsed.ok) and len(bad):
        example = _show(_cells(shown, bad[:1])[0])
        raise InvalidPayload(
            f"timestamps: {label} holds no timestamp that can be read (first row: {example}); "
            + _ACCEPTED_TS
        )
    src.notes.append(f"timestamps: {label}, {parsed.description}")
    name = " + ".join(cols)
    for i, value in zip(bad.tolist(), _cells(shown, bad), strict=True):
        text = _show(value)
        what = "empty" if text == "empty" else f"{text} is not a timestamp; {_ACCEPTED_TS}"
        src.reject(i, f"row {src.rows[i]}, column {name!r}: {what}")
    return parsed


def _devices(src: RowSource, col: str | None, device_id: str | None, ok: BoolArray) -> pa.Array:
    n = src.table.num_rows
    if col is None:
        if device_id is None:
            raise InvalidPayload(
                "the file has no device column (looked for "
                f"{', '.join(ALIASES['device'])}) and no device was given; pass --device "
                "(device_id=...) to say which device the readings come from"
            )
        return pa.repeat(pa.scalar(device_id, pa.string()), n)
    text = _text(src.table.column(col))
    empty = pc.equal(pc.utf8_length(text), 0).fill_null(True)
    if device_id is not None:
        text = pc.if_else(empty, device_id, text)
    else:
        missing = empty.to_numpy(zero_copy_only=False) & ok
        for i in np.flatnonzero(missing).tolist():
            src.reject(i, f"row {src.rows[i]}, column {col!r}: empty device id (or pass --device)")
        ok &= ~missing
    valid, bad = split_by_device_id(text)
    if bad:
        rows = np.flatnonzero(~valid & ok)
        for i, value in zip(rows.tolist(), _cells(text, rows), strict=True):
            src.reject(i, f"row {src.rows[i]}, column {col!r}: {bad[value]}")
        ok &= valid
    return text


def _in_range(
    src: RowSource, ts: ParsedTimes, ok: BoolArray, limits: Limits, now: int, name: str
) -> None:
    rows = np.flatnonzero(ok)
    fine, reasons = split_by_time_range(ts.ts_us[rows], limits, now)
    for j, reason in reasons:
        i = int(rows[j])
        src.reject(i, f"row {src.rows[i]}, " + reason.replace("field 'ts'", f"column {name!r}", 1))
    ok[rows[~fine]] = False


def _readings(
    devices: pa.Array,
    metrics: pa.Array,
    ts_us: npt.NDArray[np.int64],
    values: Any,
    rows: npt.NDArray[np.int64],
    metric_idx: npt.NDArray[np.int64] | None = None,
) -> Batch:
    take = pa.array(rows, pa.int64())
    metric = metrics.take(pa.array(metric_idx, pa.int64())) if metric_idx is not None else metrics
    table = pa.Table.from_arrays(
        [
            devices.take(take),
            metric,
            pa.array(ts_us[rows]).view(TS_TYPE),
            pa.array(values, pa.float64()),
        ],
        schema=READING_SCHEMA,
    )
    # Devices and metrics are non-empty, values finite and times checked: the table conforms.
    return Batch._trusted(table)


def _long(
    src: RowSource, cols: dict[str, str | None], ts: ParsedTimes, ok: BoolArray, devices: pa.Array
) -> Batch:
    metric_col, value_col = cols["metric"], cols["value"]
    assert metric_col is not None
    assert value_col is not None
    metrics = _text(src.table.column(metric_col))
    no_metric = pc.equal(pc.utf8_length(metrics), 0).fill_null(True).to_numpy(zero_copy_only=False)
    nums = _numbers(src.table.column(value_col), allow_words=True)
    no_value = (nums.bad | ~nums.present) & ~no_metric
    for role, name, bad in (
        ("metric", metric_col, no_metric & ok),
        ("value", value_col, no_value & ok),
    ):
        rows = np.flatnonzero(bad)
        for i, value in zip(rows.tolist(), _cells(src.table.column(name), rows), strict=True):
            extra = f"; every long-layout row needs a {role}" if _show(value) == "empty" else ""
            src.reject(i, f"row {src.rows[i]}, {_cell_problem(name, value)}{extra}")
        ok &= ~bad
    rows = np.flatnonzero(ok)
    used = set(cols.values())
    ignored = [n for n in src.table.column_names if n not in used]
    src.notes.append("layout: long" + (f", columns ignored: {ignored}" if ignored else ""))
    return _readings(devices, metrics.take(pa.array(rows)), ts.ts_us, nums.values[rows], rows)


def _metric_columns(src: RowSource, skip: set[str]) -> list[tuple[str, _Numbers]]:
    found: list[tuple[str, _Numbers]] = []
    for name in src.table.column_names:
        if name in skip:
            continue
        if name in src.unnamed:
            src.notes.append(f"{name} has no header: skipped")
            continue
        kind, example = _column_kind(src.table.column(name))
        if kind in ("numeric", "bool"):
            found.append((name, _numbers(src.table.column(name), allow_words=kind == "bool")))
            if kind == "bool":
                src.notes.append(f"column {name!r}: true/false or on/off read as 1.0/0.0")
        elif kind == "text":
            src.notes.append(f"column {name!r} holds text (e.g. {example!r}): skipped")
        else:
            src.notes.append(
                f"column {name!r} is {'empty' if kind == 'empty' else example}: skipped"
            )
    return found


def _wide(
    src: RowSource, skip: set[str], ts: ParsedTimes, ok: BoolArray, devices: pa.Array
) -> Batch:
    metrics = _metric_columns(src, skip)
    if not metrics:
        raise InvalidPayload(
            f"wide layout: no numeric column besides {sorted(skip)} in {src.table.column_names}"
        )
    names = [m for m, _ in metrics]
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    src.notes.append(f"layout: wide, {len(names)} metric(s): {shown}")
    present = np.column_stack([n.present for _, n in metrics])
    bad = np.column_stack([n.bad for _, n in metrics]) & ok[:, None]
    for col, (name, _) in enumerate(metrics):
        rows = np.flatnonzero(bad[:, col])
        for i, value in zip(rows.tolist(), _cells(src.table.column(name), rows), strict=True):
            src.reject(i, f"row {src.rows[i]}, {_cell_problem(name, value)}")
    empty = int(np.count_nonzero(~present & ok[:, None]))
    if empty:
        src.notes.append(f"{empty} empty cell(s): no reading")
    rows, col_idx = np.nonzero(present & ~bad & ok[:, None])
    values = np.column_stack([n.values for _, n in metrics])[rows, col_idx]
    return _readings(devices, pa.array(names, pa.string()), ts.ts_us, values, rows, col_idx)


def decode_table(
    src: RowSource, *, device_id: str | None, limits: Limits, now: int, tz: str, layout: str
) -> Decoded:
    """Decode ``src.table`` in ``layout`` (``'auto'``, ``'long'`` or ``'wide'``)."""
    names = src.table.column_names
    cols = {role: _find(names, ALIASES[role]) for role in ("device", "metric", "value")}
    ts_cols = _ts_columns(src.table)
    if layout == "auto":
        metric_col = cols["metric"]
        # Metric names may be numbers (channel 1, 2, 3), so only a numeric *type* says wide.
        long = metric_col is not None and cols["value"] is not None
        long = long and not _is_numeric_type(src.table.schema.field(metric_col).type)
        layout = "long" if long else "wide"
    if layout not in ("long", "wide"):
        raise ConfigError(f"layout={layout!r} is not one of 'auto', 'long', 'wide'")
    missing = [r for r in ("metric", "value") if layout == "long" and not cols[r]]
    missing += ["ts"] if not ts_cols else []
    if missing:
        wanted = "; ".join(f"{r}: one of {', '.join(ALIASES[r])}" for r in missing)
        extra = " (or 'date' and 'time')" if "ts" in missing else ""
        raise InvalidPayload(
            f"{layout} layout needs columns it cannot find — {wanted}{extra} (any case); "
            f"the columns are {names}"
        )
    ts = _times(src, ts_cols, tz)
    ok = ts.ok.copy()
    devices = _devices(src, cols["device"], device_id, ok)
    _in_range(src, ts, ok, limits, now, " + ".join(ts_cols))
    if layout == "long":
        roles: dict[str, str | None] = {**cols, **{f"ts{i}": c for i, c in enumerate(ts_cols)}}
        batch = _long(src, roles, ts, ok, devices)
    else:
        skip = {c for c in (cols["device"], *ts_cols) if c}
        batch = _wide(src, skip, ts, ok, devices)
    src.rejected.sort(key=lambda r: r.index if r.index is not None else -1)
    return Decoded(batch, src.rejected, {}, src.notes)
