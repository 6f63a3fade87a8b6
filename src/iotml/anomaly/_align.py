"""A device's channels as rows: long-format readings aligned into one vector per timestamp.

Readings arrive as ``(device_id, metric, ts, value)``. For a multivariate detector a
device is a vector of **channels** (its metrics), so readings are gathered into **rows**:
the readings of one device that share a timestamp form a row, and each channel of the
row holds the **last known value** of that channel at or before the row's time (carried
forward from earlier readings and earlier batches). Whether a carried value is fresh
enough is the detector's call (``align_s``); this module only reports each value's stamp.

A device's channels get positions in the order they are first seen in time, so the
channels known at any row are always a prefix ``0..known-1``. Building the rows of a
whole batch is a handful of array operations (a forward fill down a table with one
block per device), with Python touching only new devices and new channels.

>>> import numpy as np
>>> from iotml.types import Batch
>>> idx = ChannelIndex()
>>> b = Batch.from_arrays(["d", "d", "d"], ["a", "b", "a"], [1, 1, 2], [1.0, 2.0, 3.0])
>>> dev, ch = idx.map(b)
>>> rows = align(dev, ch, b.ts_us, b.values, idx.last, width=2)
>>> rows.values.tolist(), rows.row_of.tolist()
([[1.0, 2.0], [3.0, 2.0]], [0, 0, 1])
"""

from __future__ import annotations

__all__ = ["NEVER", "Carried", "ChannelIndex", "Rows", "align"]

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.anomaly._series import SeriesIndex
from iotml.types import Batch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

NEVER = int(np.iinfo(np.int64).min)
"""The stamp of a channel never seen."""


@dataclass(slots=True)
class Carried:
    """Last known value and stamp per channel of some devices (``devices x width``)."""

    values: F64
    stamps: I64


class ChannelIndex:
    """Device slots and, per device, its channels (metric names) by position.

    ``metrics`` restricts the channels to those names; readings of other metrics map to
    channel ``-1`` and are ignored by the detector.
    """

    def __init__(self, metrics: Iterable[str] | None = None) -> None:
        self.allowed = None if metrics is None else frozenset(metrics)
        self.series = SeriesIndex()
        self.device_ids: list[str] = []
        self.channels: list[list[str]] = []
        self._device: dict[str, int] = {}
        self.series_dev: I64 = np.zeros(0, dtype=np.int64)
        self.series_ch: I64 = np.zeros(0, dtype=np.int64)
        self.last = Carried(np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64))
        self.names: npt.NDArray[np.object_] = np.zeros((0, 0), dtype=object)
        self.width = 0
        """The most channels any device has."""

    def __len__(self) -> int:
        return len(self.device_ids)

    def map(self, batch: Batch) -> tuple[I64, I64]:
        """Each reading's device slot and channel position (``-1``: not a channel)."""
        old = len(self.series)
        # plain arrays: SeriesIndex converts chunked ones element by element (4x slower)
        device_id, metric = batch.device_id.combine_chunks(), batch.metric.combine_chunks()
        slots = self.series.slots(device_id, metric)
        if len(self.series) > old:
            self._add_series(old, slots, batch.ts_us)
        return self.series_dev[slots], self.series_ch[slots]

    def _add_series(self, old: int, slots: I64, ts: I64) -> None:
        new_keys = self.series.keys[old:]
        dev = np.fromiter((self._device_slot(d) for d, _ in new_keys), np.int64, len(new_keys))
        self.series_dev = np.r_[self.series_dev, dev]
        self.series_ch = np.r_[self.series_ch, np.full(len(new_keys), -1, dtype=np.int64)]
        # positions in order of first appearance in time, so known channels form a prefix
        order = np.lexsort((np.arange(slots.size), ts, self.series_dev[slots]))
        seen = slots[order]
        seen = seen[seen >= old]
        _, first = np.unique(seen, return_index=True)
        for s in seen[np.sort(first)].tolist():
            metric = self.series.keys[s][1]
            if self.allowed is None or metric in self.allowed:
                chans = self.channels[self.series_dev[s]]
                self.series_ch[s] = len(chans)
                chans.append(metric)
        self._grow_tables()

    def _device_slot(self, device: str) -> int:
        slot = self._device.get(device)
        if slot is None:
            slot = self._device[device] = len(self.device_ids)
            self.device_ids.append(device)
            self.channels.append([])
        return slot

    def _grow_tables(self) -> None:
        self.width = w = max((len(c) for c in self.channels), default=0)
        n = len(self.device_ids)
        have_n, have_w = self.last.values.shape
        values, stamps = np.zeros((n, w)), np.full((n, w), NEVER, dtype=np.int64)
        values[:have_n, :have_w], stamps[:have_n, :have_w] = self.last.values, self.last.stamps
        self.last = Carried(values, stamps)
        self.names = np.full((n, w), "", dtype=object)
        for d, chans in enumerate(self.channels):
            self.names[d, : len(chans)] = chans

    # -- state --------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """JSON-able keys and the arrays, for a detector's saved state."""
        meta = {
            "series": self.series.to_state(),
            "devices": self.device_ids,
            "channels": self.channels,
            "metrics": None if self.allowed is None else sorted(self.allowed),
        }
        arrays = {
            "series_dev": self.series_dev,
            "series_ch": self.series_ch,
            "last_values": self.last.values,
            "last_stamps": self.last.stamps,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> ChannelIndex:
        """The index :meth:`to_state` described."""
        self = cls(meta["metrics"])
        self.series = SeriesIndex.from_state(meta["series"])
        self.device_ids = list(meta["devices"])
        self._device = {d: i for i, d in enumerate(self.device_ids)}
        self.channels = [list(c) for c in meta["channels"]]
        self.series_dev = arrays["series_dev"].astype(np.int64)
        self.series_ch = arrays["series_ch"].astype(np.int64)
        self.last = Carried(arrays["last_values"].copy(), arrays["last_stamps"].copy())
        self._grow_tables()
        return self


@dataclass(frozen=True, slots=True)
class Rows:
    """The rows of one batch, ordered by device then time.

    ``values``/``stamps`` (rows x width) hold each channel's last known value at the
    row's time and when it was read (:data:`NEVER` if never); ``present`` marks the
    channels read at exactly this row. ``row_of`` gives each reading's row (``-1`` for
    readings that are not channels) and ``rank`` each row's position among its device's
    rows in this batch.
    """

    device: I64
    ts: I64
    rank: I64
    values: F64
    stamps: I64
    present: B
    row_of: I64


def align(dev: I64, ch: I64, ts: I64, x: F64, carried: Carried, *, width: int) -> Rows:
    """Gather readings into rows and update ``carried`` with each device's latest values."""
    use = np.flatnonzero(ch >= 0)
    order = use[np.lexsort((use, ts[use], dev[use]))]  # by device, time, arrival
    d, t, c = dev[order], ts[order], ch[order]
    starts = np.r_[True, (d[1:] != d[:-1]) | (t[1:] != t[:-1])] if d.size else np.zeros(0, bool)
    row = np.cumsum(starts) - 1
    row_dev, row_ts = d[starts], t[starts]
    n_rows = row_dev.size
    first = np.r_[True, row_dev[1:] != row_dev[:-1]] if n_rows else np.zeros(0, bool)
    seg = np.cumsum(first) - 1
    devices, first_row = row_dev[first], np.flatnonzero(first)
    # one table: per device, a block with its carried values first, then its rows
    pos = np.arange(n_rows) + seg + 1
    head = first_row + np.arange(devices.size)
    size = n_rows + devices.size
    vals = np.zeros((size, width))
    stamps = np.full((size, width), NEVER, dtype=np.int64)
    filled = np.zeros((size, width), dtype=bool)
    vals[head] = carried.values[devices, :width]
    stamps[head] = carried.stamps[devices, :width]
    filled[head] = True
    # the last arrival wins when a channel is read twice at one timestamp
    key = row * width + c
    _, last = np.unique(key[::-1], return_index=True)
    last = key.size - 1 - last
    at = pos[row[last]], c[last]
    vals[at], stamps[at], filled[at] = x[order[last]], t[last], True
    src = np.maximum.accumulate(np.where(filled, np.arange(size)[:, None], 0), axis=0)
    cols = np.arange(width)
    vals, stamps = vals[src, cols], stamps[src, cols]
    tail = np.r_[head[1:] - 1, size - 1] if devices.size else head
    carried.values[devices, :width], carried.stamps[devices, :width] = vals[tail], stamps[tail]
    row_of = np.full(dev.size, -1, dtype=np.int64)
    row_of[order] = row
    return Rows(
        row_dev,
        row_ts,
        np.arange(n_rows) - first_row[seg],
        vals[pos],
        stamps[pos],
        filled[pos],
        row_of,
    )
