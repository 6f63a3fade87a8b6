"""Decoded SenML readings as parallel columns, and their way into an Arrow table.

Both decoding paths (:mod:`iotml.codecs._senml_records` record by record,
:mod:`iotml.codecs._senml_fast` a column at a time) produce :class:`Columns`;
:mod:`iotml.codecs._senml_many` puts them in payload order, filters them and turns them
into the :class:`~iotml.types.Batch` table once per call.
"""

from __future__ import annotations

__all__ = [
    "FROM_BUFFERS",
    "RELATIVE_BELOW_S",
    "UNNAMED",
    "Columns",
    "concat",
    "name_unnamed",
    "strings_from_joined",
    "strings_from_runs",
    "table",
    "take",
    "time_kinds",
    "to_us",
]

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from iotml.codecs.common import TIME_ARRIVAL, TIME_RELATIVE, TIME_SENT
from iotml.types import READING_SCHEMA, TS_TYPE

UNNAMED = ""  # the metric of a record with no name of its own, until name_unnamed runs
RELATIVE_BELOW_S = 2**28  # RFC 8428 §4.5.3: smaller times are relative to "now"
_MAX_ABS_S = 2.0**62 / 1e6  # clip before int64 conversion; far outside any accepted range

# Building Arrow strings from buffers costs a fixed ~10 µs, then a few ns per string;
# pyarrow.array costs ~60 ns per string, so buffers win from a few hundred strings.
FROM_BUFFERS = 512


@dataclass(slots=True)
class Columns:
    """Readings as parallel columns; ``unit`` holds ``""`` where none is known.

    ``ts_range`` bounds ``ts_us`` (lowest, highest). ``index`` is each reading's record
    position in its payload and ``payload`` the payload's position among those decoded
    together (0 for a single payload); where every record gives one reading, ``runs``
    (each pack's first row, and its payload) can stand for both: see :meth:`positions`.
    ``device_array`` and ``metric_array`` are those columns as Arrow arrays where that was
    cheaper to do early; ``unit_gaps`` is false when every reading is known to have a unit.
    """

    device: list[str]
    metric: list[str]
    time_s: npt.NDArray[np.float64]
    ts_us: npt.NDArray[np.int64]
    ts_range: tuple[int, int]
    value: npt.NDArray[np.float64]
    unit: list[str]
    index: npt.NDArray[np.int64] | None
    payload: npt.NDArray[np.int64] | None
    runs: tuple[list[int], list[int]] | None = None
    device_array: pa.Array | None = None
    metric_array: pa.Array | None = None
    unit_gaps: bool = True

    @classmethod
    def empty(cls) -> Columns:
        """No readings."""
        floats, ints = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
        return cls([], [], floats, ints, (0, 0), floats, [], ints, ints)

    def positions(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``index`` and ``payload``, computed from ``runs`` the first time they are needed."""
        if self.index is None or self.payload is None:
            assert self.runs is not None
            starts, payloads = self.runs
            counts = np.diff(starts, append=len(self.device))
            self.payload = np.repeat(np.array(payloads, dtype=np.int64), counts)
            self.index = np.arange(len(self.device), dtype=np.int64) - np.repeat(starts, counts)
        return self.index, self.payload


def to_us(
    time_s: npt.NDArray[np.float64], now: int
) -> tuple[npt.NDArray[np.int64], tuple[int, int]] | None:
    """Seconds to integer microseconds (relative ones added to ``now``) and their range.

    ``None`` if a time is NaN or infinite. Times beyond ±2**62 µs are clipped there, far
    outside any range :class:`~iotml.config.Limits` accepts, so they are still rejected.

    >>> ts_us, bounds = to_us(np.array([1.7e9, -1.5]), now=10_000_000)
    >>> ts_us.tolist(), bounds
    ([1700000000000000, 8500000], (8500000, 1700000000000000))
    """
    if not len(time_s):
        return np.zeros(0, dtype=np.int64), (0, 0)
    # ufunc reductions: the .min()/.max() methods add a Python-level wrapper per call
    lowest, highest = float(np.minimum.reduce(time_s)), float(np.maximum.reduce(time_s))
    if lowest >= RELATIVE_BELOW_S and highest <= _MAX_ABS_S:  # the usual case: absolute
        micros = time_s * 1e6
        ts_us = np.rint(micros, out=micros).astype(np.int64)
        return ts_us, (round(lowest * 1e6), round(highest * 1e6))  # rint is monotonic
    if not (math.isfinite(lowest) and math.isfinite(highest)):
        return None
    micros = np.clip(time_s, -_MAX_ABS_S, _MAX_ABS_S) * 1e6
    ts_us = np.rint(micros, out=micros).astype(np.int64)
    ts_us[time_s < RELATIVE_BELOW_S] += now
    return ts_us, (int(ts_us.min()), int(ts_us.max()))


def time_kinds(time_s: npt.NDArray[np.float64]) -> npt.NDArray[np.int8] | None:
    """How each time was given (``None``: every one absolute, the usual case).

    A time of exactly 0 — no ``t`` and no ``bt`` — is the receiver's clock (RFC 8428
    §4.5.3: "now"), an arrival time; other times below 2**28 s are relative to it.

    >>> time_kinds(np.array([1.7e9, -1.5, 0.0])).tolist(), time_kinds(np.array([1.7e9]))
    ([0, 1, 2], None)
    """
    if not len(time_s) or float(np.minimum.reduce(time_s)) >= RELATIVE_BELOW_S:
        return None
    kinds = np.where(time_s < RELATIVE_BELOW_S, TIME_RELATIVE, TIME_SENT).astype(np.int8)
    kinds[time_s == 0.0] = TIME_ARRIVAL
    return kinds


def concat(parts: Sequence[Columns]) -> Columns:
    """The parts one after another (one part is returned as it is)."""
    if len(parts) <= 1:
        return parts[0] if parts else Columns.empty()
    devices, metrics = [p.device_array for p in parts], [p.metric_array for p in parts]
    return Columns(
        [d for part in parts for d in part.device],
        [m for part in parts for m in part.metric],
        np.concatenate([p.time_s for p in parts]),
        np.concatenate([p.ts_us for p in parts]),
        (min(p.ts_range[0] for p in parts), max(p.ts_range[1] for p in parts)),
        np.concatenate([p.value for p in parts]),
        [u for part in parts for u in part.unit],
        np.concatenate([p.positions()[0] for p in parts]),
        np.concatenate([p.positions()[1] for p in parts]),
        None,
        None if None in devices else pa.concat_arrays(devices),
        None if None in metrics else pa.concat_arrays(metrics),
        any(p.unit_gaps for p in parts),
    )


def take(cols: Columns, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Columns:
    """The readings selected by a mask or, in that order, by row numbers.

    >>> cols = Columns(["d", "e"], ["m", "m"], np.zeros(2), np.array([5, 6]), (5, 6),
    ...                np.array([1.0, 2.0]), ["", "K"], np.array([0, 1]), np.array([0, 0]))
    >>> picked = take(cols, np.array([False, True]))
    >>> picked.device, picked.value.tolist(), picked.unit
    (['e'], [2.0], ['K'])
    """
    strings = (cols.device, cols.metric, cols.unit)
    index, payload = cols.positions()
    if rows.dtype == np.bool_:
        keep = rows.tolist()
        device, metric, unit = (list(compress(c, keep)) for c in strings)
        rows = np.flatnonzero(rows)
    else:
        order = rows.tolist()
        device, metric, unit = ([c[i] for i in order] for c in strings)
    return Columns(
        device,
        metric,
        cols.time_s[rows],
        cols.ts_us[rows],
        cols.ts_range,  # still bounds the readings kept
        cols.value[rows],
        unit,
        index[rows],
        payload[rows],
        None,
        None if cols.device_array is None else cols.device_array.take(rows),
        None if cols.metric_array is None else cols.metric_array.take(rows),
        cols.unit_gaps,
    )


def table(cols: Columns) -> pa.Table:
    """The readings as a table of :data:`~iotml.types.READING_SCHEMA`."""
    count = len(cols.device)
    device, metric = cols.device_array, cols.metric_array
    if device is None and metric is None:
        strings = pa.array(cols.device + cols.metric, type=pa.string())  # one call: less overhead
        device, metric = strings.slice(0, count), strings.slice(count)
    arrays = [
        pa.array(cols.device, type=pa.string()) if device is None else device,
        pa.array(cols.metric, type=pa.string()) if metric is None else metric,
        pa.Array.from_buffers(TS_TYPE, count, [None, pa.py_buffer(cols.ts_us)]),
        pa.Array.from_buffers(pa.float64(), count, [None, pa.py_buffer(cols.value)]),
    ]
    return pa.table(arrays, schema=READING_SCHEMA)


def strings_from_joined(joined: str, count: int) -> pa.Array | None:
    """``count`` ASCII strings, joined by NUL in ``joined``, as an Arrow array
    (``None`` where :func:`pyarrow.array` would be as fast).

    >>> strings_from_joined("ab\\0\\0c", 3).to_pylist()
    ['ab', '', 'c']
    """
    if count < 2 or len(joined) >= 2**31:
        return None
    data = joined.encode("ascii")
    ends = (np.frombuffer(data, dtype=np.uint8) == 0).nonzero()[0]
    offsets = np.empty(count + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:count] = ends - np.arange(count - 1)  # each NUL before shifts the text by one
    offsets[count] = len(data) - (count - 1)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data.replace(b"\0", b""))]
    return pa.Array.from_buffers(pa.string(), count, buffers)


def strings_from_runs(
    strings: list[str], distinct: list[str], run_len: list[int]
) -> pa.Array | None:
    """``strings``, made of runs of ``distinct`` ones, as an Arrow array built from
    buffers (``None`` unless all are ASCII).

    >>> strings_from_runs(["a", "a", "bc"], ["a", "bc"], [2, 1]).to_pylist()
    ['a', 'a', 'bc']
    """
    data = "".join(strings)
    if not data.isascii() or len(data) >= 2**31:
        return None
    offsets = np.zeros(len(strings) + 1, dtype=np.int32)
    lengths = np.fromiter(map(len, distinct), dtype=np.int32, count=len(distinct))
    lengths.repeat(run_len).cumsum(out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data.encode("ascii"))]
    return pa.Array.from_buffers(pa.string(), len(strings), buffers)


def name_unnamed(cols: Columns) -> None:
    """Give records without a measurement name of their own a metric: their unit.

    RFC 8428 §5.1.3 reports humidity, latitude and longitude of one device under one
    name, told apart only by their units; naming such readings after the unit (``%RH``,
    ``lat``, ``lon``) keeps them in separate series instead of letting one overwrite
    another. Without a unit the metric is ``value``; a sum keeps its ``_sum`` suffix.
    """
    metric = cols.metric
    if UNNAMED not in metric and "_sum" not in metric:
        return
    for i, (name, unit) in enumerate(zip(metric, cols.unit, strict=True)):
        if name == UNNAMED:
            metric[i] = unit or "value"
        elif name == "_sum":
            metric[i] = (unit.removesuffix("*s") or "value") + "_sum"
    cols.metric_array = None
