"""Training sets for predictive maintenance from what users have: telemetry and a repair log.

Three steps, each usable alone:

1. :func:`read_maintenance_log` reads a CSV of failures — ``device_id``, failure time
   (ISO-8601 with a UTC offset, or an epoch number in s/ms/µs), optional failure ``mode``
   and optional ``restart`` time (back in service). A bad row is reported in
   :attr:`MaintenanceLog.problems` with its line number and kept out; it never stops the read.
2. :func:`telemetry_frame` turns the store's readings into a wide table on a regular grid:
   one row per device and time bucket (``ts`` = bucket start, buckets of width ``every``
   aligned to the Unix epoch as :meth:`~iotml.store.Store.aggregate` makes them), one
   column per metric holding the bucket's mean (or min/max). Buckets without readings are
   NaN, not filled: whether to fill is a feature decision.
3. :func:`label_failure_within` and :func:`label_rul` add a target column.

**How rows are labelled.** A row at ``t`` looks ahead to its device's next failure ``f``
with ``f > t`` (a bucket that contains the failure still counts as before it).

* *After a failure, until restart*: rows with ``f_prev <= t < restart`` are dropped from
  both training sets — the machine is down or being repaired, and its telemetry describes
  neither a healthy nor a degrading machine. ``restart`` is the log's restart time, else
  ``f_prev + downtime`` (default 0: the machine is taken as back at once).
* *Failure within a horizon H* (``label``): 1 when ``f - t <= H``. 0 when the next
  failure is further than H away, or there is none and the device was observed for at
  least H after ``t``. Rows closer than H to the end of observation with no failure
  logged after them are **censored** (a failure may still come) and dropped.
* *Remaining useful life* (``rul``, in units of ``unit``): ``min(f - t, cap)``, the
  piecewise-linear target — flat at ``cap`` while the machine is far from failure.
  Rows with no later failure are censored: their true RUL is only known to exceed the
  time observed after them, so they are kept with ``rul = cap`` when that time is at
  least ``cap`` and dropped otherwise (always, when ``cap`` is None).

The observation of a device ends at ``observed_until`` when given, else at its last row.
The log is assumed complete for the time observed: a failure missing from it turns
positive rows into negatives.

>>> import io
>>> from datetime import timedelta
>>> log = read_maintenance_log(io.StringIO(
...     "device_id,failure_time,mode\\n"
...     "pump-1,1970-01-01T00:00:05Z,bearing\\n"
...     "pump-1,yesterday,\\n"))
>>> log.failures[["device_id", "mode"]].values.tolist(), log.problems[0].line
([['pump-1', 'bearing']], 3)
>>> import pandas as pd
>>> frame = pd.DataFrame({"device_id": ["pump-1"] * 8,
...                       "ts": pd.to_datetime(list(range(8)), unit="s", utc=True),
...                       "temp": [20.0, 21, 22, 25, 30, 20, 20, 20]})
>>> label_failure_within(frame, log.failures, timedelta(seconds=2))["label"].tolist()
[0, 0, 0, 1, 1, 0]
>>> label_rul(frame, log.failures, cap=timedelta(seconds=3), unit=timedelta(seconds=1)).rul.tolist()
[3.0, 3.0, 3.0, 2.0, 1.0]
"""

from __future__ import annotations

__all__ = [
    "LogProblem",
    "MaintenanceLog",
    "label_failure_within",
    "label_rul",
    "read_maintenance_log",
    "telemetry_frame",
]

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.codecs.timestamps import NUMBER_PATTERN, epoch_scalar_to_us, parse_text
from iotml.errors import ConfigError, InvalidData, UnknownDevice, require_extra

if TYPE_CHECKING:
    import pandas as pd

    from iotml.store.base import Store  # layer 4: used, never imported at run time

_COLUMNS = {
    "device_id": ("device_id", "device", "machine_id", "machine", "unit"),
    "ts": ("failure_time", "failed_at", "failure_ts", "ts", "time", "timestamp"),
    "mode": ("failure_mode", "mode", "failure_type"),
    "restart": ("restart_time", "restarted_at", "repaired_at", "restart"),
}
_NUMBER = re.compile(NUMBER_PATTERN)
_INTEGER = re.compile(r"^[+-]?\d+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_CELLS = 50_000_000
_I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class LogProblem:
    """A maintenance-log row that was left out: its 1-based line, why, and its text."""

    line: int
    reason: str
    text: str


@dataclass(frozen=True)
class MaintenanceLog:
    """``failures``: columns ``device_id``, ``ts``, ``mode`` and ``restart`` (missing values
    where the log has none), sorted by device and time; ``problems``: the rows left out."""

    failures: pd.DataFrame
    problems: tuple[LogProblem, ...]


# -- the maintenance log ------------------------------------------------------------------


def _header_map(header: Sequence[str], where: str) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    found = {}
    for key, aliases in _COLUMNS.items():
        hits = [i for i, n in enumerate(names) if n in aliases]
        if hits:
            found[key] = hits[0]
    missing = [k for k in ("device_id", "ts") if k not in found]
    if missing:
        wanted = " and ".join(f"{_COLUMNS[k][0]!r}" for k in missing)
        raise InvalidData(
            f"{where}: header {list(header)!r} lacks {wanted}; a maintenance log needs "
            f"device_id and failure_time columns (aliases: {_COLUMNS['ts']})"
        )
    return found


def _times(cells: Sequence[str]) -> tuple[_I64, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Microseconds, ok and naive flags for ISO-8601 text or epoch numbers."""
    n = len(cells)
    us, ok, naive = np.zeros(n, np.int64), np.zeros(n, bool), np.zeros(n, bool)
    text_at = []
    for i, cell in enumerate(cells):
        if _NUMBER.match(cell):
            number = int(cell) if _INTEGER.match(cell) else float(cell)
            us[i], ok[i] = epoch_scalar_to_us(number), True
        elif cell:
            text_at.append(i)
    if text_at:
        parsed = parse_text(pa.array([cells[i] for i in text_at], pa.string()), tz=None)
        us[text_at], ok[text_at] = parsed.ts_us, parsed.ok
        naive[text_at] = parsed.naive
    return us, ok, naive


def _time_problem(field: str, cell: str, naive: bool) -> str:
    if naive:
        return f"{field}={cell!r} has no UTC offset; add one (e.g. 'Z' or '+02:00')"
    return f"{field}={cell!r} is not ISO-8601 with a UTC offset or an epoch number"


def _open(source: str | os.PathLike[str] | TextIO) -> tuple[TextIO, str]:
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, encoding="utf-8-sig", newline="") as file:
                text = file.read()
        except OSError as err:
            raise ConfigError(f"cannot read maintenance log {str(source)!r}: {err}") from err
        return io.StringIO(text, newline=""), str(source)
    return source, "maintenance log"


def read_maintenance_log(
    source: str | os.PathLike[str] | TextIO, *, devices: Iterable[str] | None = None
) -> MaintenanceLog:
    """Read a failure log (see the module docstring); a path or an open text file.

    ``devices``, when given, are the devices with telemetry: rows naming another device
    are reported as problems (a typo in a log otherwise silently labels nothing).
    """
    pandas = require_extra("pandas", "ml")
    stream, where = _open(source)
    reader = csv.reader(stream)
    header = next((row for row in reader if any(c.strip() for c in row)), None)
    if header is None:
        raise InvalidData(f"{where} is empty; expected a header with device_id, failure_time")
    cols = _header_map(header, where)
    rows, problems = [], []
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        text = ",".join(row)
        if len(row) != len(header):
            reason = f"has {len(row)} fields, the header has {len(header)}"
            problems.append(LogProblem(reader.line_num, reason, text))
            continue
        rows.append((reader.line_num, text, [c.strip() for c in row]))
    failures, more = _failures(rows, cols, None if devices is None else set(devices))
    problems = sorted([*problems, *more], key=lambda p: p.line)
    frame = pandas.DataFrame(failures, columns=["device_id", "ts", "mode", "restart"])
    for col in ("ts", "restart"):
        frame[col] = pandas.to_datetime(frame[col].astype("float64"), unit="us", utc=True)
        frame[col] = frame[col].dt.as_unit("us")
    frame = frame.sort_values(["device_id", "ts"], kind="stable").reset_index(drop=True)
    return MaintenanceLog(frame, tuple(problems))


def _failures(
    rows: list[tuple[int, str, list[str]]], cols: dict[str, int], devices: set[str] | None
) -> tuple[list[tuple[str, int, str | None, float]], list[LogProblem]]:
    """Valid rows as (device, failure µs, mode, restart µs or NaN), and the problems."""
    fail_us, fail_ok, fail_naive = _times([r[cols["ts"]] for _, _, r in rows])
    restart_cells = [r[cols["restart"]] if "restart" in cols else "" for _, _, r in rows]
    rest_us, rest_ok, rest_naive = _times(restart_cells)
    out: list[tuple[str, int, str | None, float]] = []
    problems: list[LogProblem] = []
    seen: dict[tuple[str, int], int] = {}
    for i, (line, text, row) in enumerate(rows):
        device, cell = row[cols["device_id"]], row[cols["ts"]]
        reason = None
        if not device:
            reason = "device_id is empty"
        elif devices is not None and device not in devices:
            reason = f"device {device!r} has no telemetry (not among the devices given)"
        elif not fail_ok[i]:
            reason = _time_problem("failure_time", cell, bool(fail_naive[i]))
        elif restart_cells[i] and not rest_ok[i]:
            reason = _time_problem("restart_time", restart_cells[i], bool(rest_naive[i]))
        elif restart_cells[i] and rest_us[i] <= fail_us[i]:
            reason = f"restart_time={restart_cells[i]!r} is not after failure_time={cell!r}"
        elif (device, int(fail_us[i])) in seen:
            reason = f"repeats the failure on line {seen[device, int(fail_us[i])]}"
        if reason is not None:
            problems.append(LogProblem(line, reason, text))
            continue
        seen[device, int(fail_us[i])] = line
        mode = row[cols["mode"]] if "mode" in cols and row[cols["mode"]] else None
        restart = float(rest_us[i]) if restart_cells[i] else float("nan")
        out.append((device, int(fail_us[i]), mode, restart))
    return out, problems


# -- telemetry on a grid ------------------------------------------------------------------


def _us(value: datetime | int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ConfigError(f"{name}={value!r} is a naive datetime; give a timezone-aware one")
        return (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{name}={value!r} is not a datetime or integer microseconds")


def _positive_us(value: object, name: str) -> int:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ConfigError(f"{name}={value!r} must be a positive datetime.timedelta")
    return value // timedelta(microseconds=1)


def _names(values: Iterable[str], what: str) -> list[str]:
    names = [values] if isinstance(values, str) else list(values)
    if not names or not all(isinstance(v, str) and v for v in names):
        raise ConfigError(f"{what}={values!r} must be one or more non-empty strings")
    if len(set(names)) != len(names):
        raise ConfigError(f"{what}={names!r} repeats a name")
    return names


def _devices(store: Store, devices: Iterable[str] | None, metrics: list[str]) -> list[str]:
    series = store.series()
    have = series.filter(pc.is_in(series.column("metric"), pa.array(metrics, pa.string())))
    with_metrics = sorted(set(have.column("device_id").to_pylist()))
    known = set(series.column("device_id").to_pylist())
    chosen = with_metrics if devices is None else _names(devices, "devices")
    unknown = [d for d in chosen if d not in known]
    if unknown:
        raise UnknownDevice(
            f"device(s) {unknown} have no readings in the store; devices with {metrics}: "
            f"{with_metrics[:20]}"
        )
    stored = set(
        have.filter(pc.is_in(have.column("device_id"), pa.array(chosen)))
        .column("metric")
        .to_pylist()
    )
    absent = [m for m in metrics if m not in stored]
    if absent:
        raise ConfigError(f"metric(s) {absent} have no readings for devices {chosen[:20]}")
    return chosen


def _aggregates(
    store: Store,
    devices: list[str],
    metrics: list[str],
    every: timedelta,
    lo: int | None,
    hi: int | None,
) -> pa.Table | None:
    """The store's buckets of ``metrics`` for ``devices``: one query per metric when the
    devices outnumber the metrics (a fleet), else one per device."""
    if len(devices) > len(metrics):
        tables = [store.aggregate(None, m, every, lo, hi) for m in metrics]
        keep, column = devices, "device_id"
    else:
        tables = [store.aggregate(d, None, every, lo, hi) for d in devices]
        keep, column = metrics, "metric"
    if not tables:
        return None
    table = pa.concat_tables(tables)
    return table.filter(pc.is_in(table.column(column), pa.array(keep, pa.string())))


def telemetry_frame(
    store: Store,
    devices: Iterable[str] | None,
    metrics: Iterable[str],
    start: datetime | int | None,
    end: datetime | int | None,
    every: timedelta,
    *,
    stat: str = "mean",
) -> pd.DataFrame:
    """A wide frame ``device_id, ts, <metric>...``: every device on the same regular grid.

    ``devices=None`` takes every device with readings of ``metrics``; a device without any
    readings raises :class:`~iotml.errors.UnknownDevice`. ``start``/``end`` (aware
    datetimes or µs) bound the half-open range; ``None`` takes the data's first/last
    bucket. ``stat`` is ``"mean"``, ``"min"`` or ``"max"`` of the readings in a bucket.
    """
    pandas = require_extra("pandas", "ml")
    width = _positive_us(every, "every")
    if stat not in ("mean", "min", "max"):
        raise ConfigError(f"stat={stat!r} is not one of 'mean', 'min', 'max'")
    metrics = _names(metrics, "metrics")
    chosen = _devices(store, devices, metrics)
    lo, hi = _us(start, "start"), _us(end, "end")
    table = _aggregates(store, chosen, metrics, every, lo, hi)
    buckets = _bucket_us(table)
    if lo is None:
        lo = int(buckets.min()) if len(buckets) else 0
    if hi is None:
        hi = int(buckets.max()) + 1 if len(buckets) else lo
    first, stop = lo // width * width, hi
    n_grid = max(0, -(-(stop - first) // width))
    if len(chosen) * n_grid * len(metrics) > _MAX_CELLS:
        raise ConfigError(
            f"every={every!r} over this range makes {n_grid} buckets for {len(chosen)} "
            f"devices; choose a wider every or a shorter range"
        )
    cube = np.full((len(chosen), n_grid, len(metrics)), np.nan)
    if table is not None and table.num_rows:
        d = _codes(table.column("device_id"), chosen)
        m = _codes(table.column("metric"), metrics)
        k = (buckets - first) // width
        cube[d, k, m] = table.column(stat).to_numpy()
    grid = first + width * np.arange(n_grid, dtype=np.int64)
    ts = pandas.to_datetime(np.tile(grid, len(chosen)).astype("datetime64[us]"), utc=True)
    columns: dict[str, Any] = {"device_id": np.repeat(np.array(chosen, dtype=object), n_grid)}
    columns["ts"] = ts
    for j, metric in enumerate(metrics):
        columns[metric] = cube[:, :, j].ravel()
    frame: pd.DataFrame = pandas.DataFrame(columns)
    return frame


def _bucket_us(table: pa.Table | None) -> _I64:
    if table is None:
        return np.zeros(0, np.int64)
    values: _I64 = table.column("bucket").cast(pa.int64()).to_numpy()
    return values


def _codes(column: pa.ChunkedArray, names: list[str]) -> _I64:
    codes: _I64 = pc.index_in(column, pa.array(names, pa.string())).to_numpy()
    return codes


# -- labels -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Per row: µs to the next failure (``has_next``), whether the machine is down, and
    the µs it was observed for after the row."""

    to_next: _I64
    has_next: npt.NDArray[np.bool_]
    down: npt.NDArray[np.bool_]
    observed: _I64


def _ts_us(series: pd.Series[Any], what: str) -> _I64:
    dtype = series.dtype
    if getattr(dtype, "tz", None) is None:
        raise InvalidData(
            f"{what} has dtype {dtype}; expected timezone-aware timestamps (datetime64[us, UTC])"
        )
    values: _I64 = series.dt.as_unit("us").astype("int64").to_numpy()
    return values


def _timeline(
    frame: pd.DataFrame,
    failures: pd.DataFrame,
    downtime: timedelta,
    observed_until: datetime | None,
) -> _Timeline:
    for df, what, needed in (
        (frame, "frame", ("device_id", "ts")),
        (failures, "failures", ("device_id", "ts")),
    ):
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise InvalidData(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")
    if not isinstance(downtime, timedelta) or downtime < timedelta(0):
        raise ConfigError(f"downtime={downtime!r} must be a non-negative datetime.timedelta")
    until = _us(observed_until, "observed_until")
    t = _ts_us(frame["ts"], "frame['ts']")
    fail_t = _ts_us(failures["ts"], "failures['ts']")
    if "restart" in failures.columns and len(failures):
        restart = failures["restart"].dt.as_unit("us").astype("int64").to_numpy()
        restart = np.where(failures["restart"].isna().to_numpy(), fail_t, restart)
    else:
        restart = fail_t
    restart = np.maximum(restart, fail_t + downtime // timedelta(microseconds=1))
    n = len(frame)
    to_next, has_next = np.zeros(n, np.int64), np.zeros(n, bool)
    down, observed = np.zeros(n, bool), np.zeros(n, np.int64)
    by_device = failures.groupby("device_id", sort=False).indices
    for device, rows in frame.groupby("device_id", sort=False).indices.items():
        mine = by_device.get(device, np.zeros(0, np.int64))
        order = mine[np.argsort(fail_t[mine], kind="stable")]
        f, r, tt = fail_t[order], restart[order], t[rows]
        idx = np.searchsorted(f, tt, side="right")  # next failure strictly after t
        has_next[rows] = idx < len(f)
        if len(f):
            to_next[rows] = np.where(idx < len(f), f[np.minimum(idx, len(f) - 1)] - tt, 0)
            prev = idx - 1
            down[rows] = (prev >= 0) & (tt < r[np.maximum(prev, 0)])
        observed[rows] = (tt.max() if until is None else until) - tt
    return _Timeline(to_next, has_next, down, observed)


def _labelled(frame: pd.DataFrame, keep: npt.NDArray[np.bool_], name: str, values: Any) -> Any:
    if name in frame.columns:
        raise ConfigError(f"frame already has a column {name!r}; rename it before labelling")
    out = frame.loc[keep].copy()
    out[name] = values[keep]
    return out.reset_index(drop=True)


def label_failure_within(
    frame: pd.DataFrame,
    failures: pd.DataFrame,
    horizon: timedelta,
    *,
    downtime: timedelta = timedelta(0),
    observed_until: datetime | None = None,
) -> pd.DataFrame:
    """``frame``'s labelled rows with ``label`` = 1 if a failure follows within ``horizon``.

    Rows during repair and censored rows are dropped (see the module docstring); the input
    is not modified. ``failures`` is :attr:`MaintenanceLog.failures` or any frame with
    ``device_id``, ``ts`` and optionally ``restart``; failures of devices not in
    ``frame`` are ignored.
    """
    h = _positive_us(horizon, "horizon")
    line = _timeline(frame, failures, downtime, observed_until)
    positive = line.has_next & (line.to_next <= h)
    negative = ~positive & ((line.has_next & (line.to_next > h)) | (line.observed >= h))
    result: pd.DataFrame = _labelled(
        frame, ~line.down & (positive | negative), "label", positive.astype(np.int8)
    )
    return result


def label_rul(
    frame: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    cap: timedelta | None = None,
    unit: timedelta = timedelta(hours=1),
    downtime: timedelta = timedelta(0),
    observed_until: datetime | None = None,
) -> pd.DataFrame:
    """``frame``'s labelled rows with ``rul`` = time to the next failure, capped at ``cap``.

    ``rul`` is a float in units of ``unit`` (default hours). Censored rows (no later
    failure) are kept at ``cap`` when observed for at least ``cap`` after them, else
    dropped, as are rows during repair (see the module docstring).
    """
    unit_us = _positive_us(unit, "unit")
    cap_us = None if cap is None else _positive_us(cap, "cap")
    line = _timeline(frame, failures, downtime, observed_until)
    rul = line.to_next.astype(np.float64)
    keep = line.has_next.copy()
    if cap_us is not None:
        rul = np.where(line.has_next, np.minimum(rul, cap_us), cap_us)
        keep |= line.observed >= cap_us
    result: pd.DataFrame = _labelled(frame, keep & ~line.down, "rul", rul / unit_us)
    return result
