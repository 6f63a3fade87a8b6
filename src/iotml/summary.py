"""Per-series health summary of a batch of history: coverage, gaps, flat lines, trend, shift.

This is the first analysis users run on data they have just imported: which series have
holes, which sensors are stuck, which are drifting. Each statistic is robust to irregular
sampling (it uses the series' own median interval, never an assumed rate).

>>> import numpy as np
>>> ts = np.arange(0, 600, 60) * 1_000_000
>>> ts[5:] += 3_600 * 1_000_000           # a one-hour hole after the fifth reading
>>> b = Batch.from_arrays(["d"] * 10, ["t"] * 10, ts, np.arange(10.0))
>>> row = summarize(b).to_pylist()[0]
>>> row["count"], row["gaps"], row["longest_gap_s"], findings(row)
(10, 1, 3660.0, ['1 gap(s), longest 1.0 h'])
"""

from __future__ import annotations

__all__ = ["findings", "summarize"]

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.types import TS_TYPE, Batch

_US = 1_000_000

_COLUMNS = pa.schema(
    [
        ("device_id", pa.string()),
        ("metric", pa.string()),
        ("count", pa.int64()),
        ("first", TS_TYPE),
        ("last", TS_TYPE),
        ("min", pa.float64()),
        ("mean", pa.float64()),
        ("max", pa.float64()),
        ("median_interval_s", pa.float64()),
        ("gaps", pa.int64()),
        ("longest_gap_s", pa.float64()),
        ("longest_flat_s", pa.float64()),
        ("trend_per_day", pa.float64()),
        ("late_shift_sigma", pa.float64()),
    ]
)


def _longest_flat(ts: npt.NDArray[np.int64], v: npt.NDArray[np.float64]) -> float:
    """Duration of the longest run of identical consecutive values, in seconds."""
    change = np.flatnonzero(np.diff(v) != 0)
    starts = np.concatenate(([0], change + 1))
    ends = np.concatenate((change, [v.size - 1]))
    return float((ts[ends] - ts[starts]).max()) / _US


def _trend_per_day(ts: npt.NDArray[np.int64], v: npt.NDArray[np.float64]) -> float:
    if v.size < 3:
        return 0.0
    days = (ts - ts[0]) / (86_400 * _US)
    if days[-1] == 0:
        return 0.0
    return float(np.polyfit(days, v, 1)[0])


def _late_shift(v: npt.NDArray[np.float64], tail: float = 0.1) -> float:
    """How far the last ``tail`` of the series sits from the rest, in robust sigmas."""
    cut = int(v.size * (1 - tail))
    if cut < 10 or v.size - cut < 3:
        return 0.0
    head = v[:cut]
    mad = float(np.median(np.abs(head - np.median(head)))) * 1.4826
    if mad == 0.0:
        return 0.0
    return float((np.median(v[cut:]) - np.median(head)) / mad)


def _series_row(
    ts: npt.NDArray[np.int64], v: npt.NDArray[np.float64], gap_factor: float
) -> dict[str, Any]:
    dt = np.diff(ts) / _US
    median_dt = float(np.median(dt)) if dt.size else 0.0
    holes = dt[dt > gap_factor * median_dt] if median_dt > 0 else dt[:0]
    return {
        "count": int(v.size),
        "first": int(ts[0]),
        "last": int(ts[-1]),
        "min": float(v.min()),
        "mean": float(v.mean()),
        "max": float(v.max()),
        "median_interval_s": median_dt,
        "gaps": int(holes.size),
        "longest_gap_s": float(holes.max()) if holes.size else 0.0,
        "longest_flat_s": _longest_flat(ts, v),
        "trend_per_day": _trend_per_day(ts, v),
        "late_shift_sigma": _late_shift(v),
    }


def summarize(batch: Batch, *, gap_factor: float = 5.0) -> pa.Table:
    """One row per (device, metric): coverage, value range, gaps, flat runs, trend, shift.

    A gap is an interval longer than ``gap_factor`` times the series' median interval.
    ``late_shift_sigma`` compares the last 10 % of the series with the rest, in units of
    the earlier part's robust spread (MAD), so a degrading machine stands out.
    """
    rows: list[dict[str, Any]] = []
    table = batch.sort().table
    if table.num_rows:
        devices = table.column("device_id").combine_chunks()
        metrics = table.column("metric").combine_chunks()
        n = table.num_rows
        change = pc.or_(
            pc.not_equal(devices.slice(1), devices.slice(0, n - 1)),
            pc.not_equal(metrics.slice(1), metrics.slice(0, n - 1)),
        )
        bounds = np.flatnonzero(change.to_numpy(zero_copy_only=False)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [n]))
        ts_all = table.column("ts").cast(pa.int64()).to_numpy()
        v_all = table.column("value").to_numpy()
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            row: dict[str, Any] = {
                "device_id": devices[lo].as_py(),
                "metric": metrics[lo].as_py(),
            }
            row.update(_series_row(ts_all[lo:hi], v_all[lo:hi], gap_factor))
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=_COLUMNS)


def findings(
    row: dict[str, Any], *, flat_factor: float = 60.0, shift_sigma: float = 4.0
) -> list[str]:
    """Plain-language flags for one summary row (empty when the series looks healthy)."""
    out = []
    if row["gaps"]:
        out.append(f"{row['gaps']} gap(s), longest {row['longest_gap_s'] / 3600:.1f} h")
    if row["median_interval_s"] and row["longest_flat_s"] > flat_factor * row["median_interval_s"]:
        out.append(f"flat for {row['longest_flat_s'] / 3600:.1f} h (stuck sensor?)")
    if abs(row["late_shift_sigma"]) >= shift_sigma:
        out.append(
            f"recent shift of {row['late_shift_sigma']:+.1f} sigma "
            f"(trend {row['trend_per_day']:+.3g}/day)"
        )
    return out
