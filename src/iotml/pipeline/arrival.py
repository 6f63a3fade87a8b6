"""Arrival times that cannot collide: readings sent without a time, kept apart per series.

A reading without a timestamp gets the time its message was received, in microseconds
(:func:`~iotml.codecs.decode_many` with one ``now`` per message). Two such readings of
one series can still land on one microsecond — ten readings a millisecond do — and a
store keeps one reading per ``(device_id, metric, ts)``, so :class:`ArrivalClock` keeps
the arrival times it hands out **strictly increasing per series** within the process: a
reading stamped at or before the last stamp of its series is moved to that stamp + 1 µs.
Readings whose time was sent, or is relative to the receive time (SenML), keep it: a
device that sends one time twice means one reading.

State is one row per series stamped in the last ``horizon_us`` (default 10 s) before the
earliest arrival time of the latest batch: a series idle for longer is forgotten, since a
new stamp is never earlier than its receive time. Everything is done on whole columns
(one sort and a grouped running maximum per batch), never reading by reading.

>>> from iotml.codecs import decode_many
>>> clock = ArrivalClock()
>>> t0 = 1_767_225_600_000_000
>>> d = decode_many([b'{"level": %d}' % k for k in range(1, 4)], device_ids=["tank"] * 3,
...                 now=[t0, t0, t0 - 5])
>>> (clock.stamp(d).ts_us - t0).tolist()
[0, 1, 2]
>>> later = decode_many([b'{"level": 4}'], device_ids=["tank"], now=[t0 + 1])
>>> (clock.stamp(later).ts_us - t0).tolist(), len(clock)
([3], 1)
"""

from __future__ import annotations

__all__ = ["ArrivalClock"]

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from iotml.codecs.common import TIME_ARRIVAL, Decoded
from iotml.types import TS_TYPE, Batch

Ints = npt.NDArray[np.int64]

_STATE = pa.schema(
    [pa.field("device_id", pa.string()), pa.field("metric", pa.string()), ("last", pa.int64())]
)
_KEY = ["device_id", "metric"]


class ArrivalClock:
    """Per-series last arrival stamps; :meth:`stamp` moves colliding ones apart.

    ``horizon_us`` is how long a series' last stamp is remembered before the earliest
    arrival time of the batch being stamped; keep it above how far receive times of
    messages handled together may be out of order.
    """

    def __init__(self, horizon_us: int = 10_000_000) -> None:
        self.horizon_us = horizon_us
        self._last = _STATE.empty_table()

    def __len__(self) -> int:
        """Series remembered now."""
        return int(self._last.num_rows)

    def stamp(self, decoded: Decoded) -> Batch:
        """``decoded.batch`` with its arrival times (``time_kind`` :data:`TIME_ARRIVAL`)
        made strictly increasing per series, in row order, after those stamped before."""
        batch, kinds = decoded.batch, decoded.time_kind
        if kinds is None:
            return batch
        rows = np.flatnonzero(kinds == TIME_ARRIVAL)
        if not len(rows):
            return batch
        ts_us = batch.ts_us[rows]
        group, keys = _series(batch.table.select(_KEY).take(pa.array(rows)))
        previous, seen = self._previous(keys)
        stamps, newest = _increasing(ts_us, group, previous)
        self._remember(keys, newest, seen, int(ts_us.min()))
        if np.array_equal(stamps, ts_us):
            return batch
        all_ts = batch.ts_us.copy()
        all_ts[rows] = stamps
        table = batch.table
        index = table.schema.get_field_index("ts")
        column = pa.array(all_ts).view(TS_TYPE)
        return Batch._trusted(table.set_column(index, table.schema.field(index), column))

    def _previous(self, keys: pa.Table) -> tuple[Ints, Ints]:
        """The last stamp of each series in ``keys`` (the int64 minimum where none), and
        the rows of the state that hold them."""
        previous = np.full(keys.num_rows, np.iinfo(np.int64).min, dtype=np.int64)
        if not self._last.num_rows:
            return previous, np.zeros(0, dtype=np.int64)
        state = self._last.append_column("_row", pa.array(np.arange(self._last.num_rows)))
        met = keys.join(state, keys=_KEY, join_type="inner", use_threads=False)
        previous[met.column("_series").to_numpy()] = met.column("last").to_numpy()
        return previous, met.column("_row").to_numpy()

    def _remember(self, keys: pa.Table, newest: Ints, seen: Ints, earliest: int) -> None:
        """Keep each series' ``newest`` stamp, in place of the ``seen`` rows of the state;
        forget series idle for longer than the horizon before ``earliest``, the batch's
        earliest arrival time."""
        fresh = pa.table(
            [keys.column("device_id"), keys.column("metric"), pa.array(newest)], schema=_STATE
        )
        old = self._last
        if old.num_rows:
            keep = old.column("last").to_numpy() >= earliest - self.horizon_us
            keep[seen] = False
            old = old.filter(keep)
        self._last = pa.concat_tables([old, fresh]).combine_chunks()


def _series(keys: pa.Table) -> tuple[Ints, pa.Table]:
    """Each row's series number, and the distinct series (with ``_series``, their number)."""
    dev = pc.dictionary_encode(keys.column("device_id").combine_chunks())
    met = pc.dictionary_encode(keys.column("metric").combine_chunks())
    code = dev.indices.to_numpy().astype(np.int64) * len(met.dictionary) + met.indices.to_numpy()
    _, first, group = np.unique(code, return_index=True, return_inverse=True)
    distinct = keys.take(pa.array(first))
    numbered = distinct.append_column("_series", pa.array(np.arange(len(first), dtype=np.int64)))
    return group.astype(np.int64).reshape(-1), numbered


def _increasing(ts_us: Ints, group: Ints, previous: Ints) -> tuple[Ints, Ints]:
    """``s[i] = max(ts[i], s[j] + 1)`` for the row ``j`` before ``i`` in its series (the
    series' ``previous`` stamp before its first row), for every series at once; returns
    the stamps and each series' last one.

    With ``r`` a row's rank in its series, ``s - r`` is the running maximum of
    ``ts - r`` (started at ``previous + 1``), so one grouped running maximum does it.
    """
    order = np.argsort(group, kind="stable")
    g = group[order]
    start = np.ones(len(g), dtype=bool)
    start[1:] = g[1:] != g[:-1]
    first = np.flatnonzero(start)
    rank = np.arange(len(g)) - np.repeat(first, np.diff(first, append=len(g)))
    shifted = ts_us[order] - rank
    floor = previous[g[first]]
    bumped = floor != np.iinfo(np.int64).min
    shifted[first[bumped]] = np.maximum(shifted[first[bumped]], floor[bumped] + 1)
    ordered = _grouped_running_max(shifted, g, first) + rank
    out = np.empty_like(ts_us)
    out[order] = ordered
    return out, ordered[np.append(first[1:], len(g)) - 1]


def _grouped_running_max(values: Ints, group: Ints, first: Ints) -> Ints:
    """The running maximum of ``values`` restarted at each group (rows sorted by group)."""
    lo = int(values.min())
    span = int(values.max()) - lo + 1
    if span * (int(group[-1]) + 1) < 2**62:  # groups laid end to end in one int64 range
        offset = group * span
        result: Ints = np.maximum.accumulate(values - lo + offset) - offset + lo
        return result
    out = np.empty_like(values)  # times too far apart for that: one running maximum each
    for begin, end in zip(first, [*first[1:], len(values)], strict=True):
        out[begin:end] = np.maximum.accumulate(values[begin:end])
    return out
