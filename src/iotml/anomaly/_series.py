"""Series bookkeeping shared by the streaming detectors: slots and per-series rounds.

A detector keeps its per-series state in arrays indexed by a **slot**: the position of a
``(device_id, metric)`` series in :class:`SeriesIndex`. Mapping a batch to slots touches
Python only once per distinct series in the batch, never per reading.

A batch may hold several readings of one series. Predict-then-learn means reading ``k``
of a series is scored with state learned from readings ``< k`` only, so
:func:`rounds` splits a batch into rounds: round ``r`` holds the ``r``-th reading (in time
order) of every series that has one. A round touches each series at most once and is
processed with array operations; a micro-batch with one reading per series is one round.

>>> idx = SeriesIndex()
>>> idx.slots(["a", "b", "a"], ["t", "t", "t"]).tolist()
[0, 1, 0]
>>> [r.tolist() for r in rounds(np.array([0, 1, 0]), np.array([9, 5, 5]))]
[[1, 2], [0]]
"""

from __future__ import annotations

__all__ = ["SeriesIndex", "is_whole", "rounds"]

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

_SEP = "\x1f"  # unit separator: cannot appear in a decoded device id or metric
_TABLE_PER_SERIES = 8  # (device, metric) table cells per series, at most, for the fast path
_SLACK = 4096  # ... plus these, so a fleet's first few series do not rule it out
_Known: TypeAlias = tuple[pa.Array, pa.Array, npt.NDArray[np.int64]] | pa.Array
"""Known devices, metrics and their ``(device, metric)`` table of slots; or the joined keys."""


class SeriesIndex:
    """Dense slots for ``(device_id, metric)`` series, in order of first appearance.

    The usual batch holds only known series. Then each reading's device and metric are
    looked up among the known devices and metrics (two hash lookups in Arrow, against
    sets far smaller than the series count), and the pair gives the slot through a dense
    ``(device, metric)`` table. A fleet whose devices share few metrics would make that
    table large: beyond 8 cells per series the joined ``device + metric`` keys are looked
    up instead (three times slower). Either is rebuilt after a batch adds series.
    """

    def __init__(self, keys: Iterable[tuple[str, str]] = ()) -> None:
        self._slot: dict[str, int] = {}
        self.keys: list[tuple[str, str]] = []
        self._codes: tuple[dict[str, int], dict[str, int]] = ({}, {})  # device, metric
        self._pairs: tuple[list[int], list[int]] = ([], [])  # each slot's two codes
        self._known: _Known | None = None  # what a lookup needs, built when first needed
        for device, metric in keys:
            self._add(device + _SEP + metric)

    def __len__(self) -> int:
        return len(self.keys)

    def _add(self, joined: str) -> int:
        self._known = None
        slot = self._slot[joined] = len(self.keys)
        device, _, metric = joined.partition(_SEP)
        self.keys.append((device, metric))
        for codes, pair, key in zip(self._codes, self._pairs, (device, metric), strict=True):
            pair.append(codes.setdefault(key, len(codes)))
        return slot

    def _lookup(self) -> _Known:
        if self._known is None:
            devices, metrics = self._codes
            if len(devices) * len(metrics) <= _TABLE_PER_SERIES * len(self.keys) + _SLACK:
                table = np.full((len(devices), len(metrics)), -1, dtype=np.int64)
                table[self._pairs] = np.arange(len(self.keys))
                codes = (pa.array(list(devices), pa.string()), pa.array(list(metrics), pa.string()))
                self._known = (*codes, table)
            else:
                self._known = pa.array(list(self._slot), pa.string())
        return self._known

    def slots(
        self, device_id: pa.Array | Sequence[str], metric: pa.Array | Sequence[str]
    ) -> npt.NDArray[np.int64]:
        """Each reading's slot; series not seen before get new slots."""
        device_id, metric = _strings(device_id), _strings(metric)
        if self.keys:  # the usual case, all series known: hash lookups in C
            found = self._known_slots(device_id, metric)
            if found is not None:
                return found
        joined = pc.binary_join_element_wise(device_id, metric, _SEP)
        encoded = pc.dictionary_encode(joined)
        lookup = self._slot
        mapping = np.fromiter(
            (
                lookup.get(k) if k in lookup else self._add(k)
                for k in encoded.dictionary.to_pylist()
            ),
            dtype=np.int64,
            count=len(encoded.dictionary),
        )
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        out: npt.NDArray[np.int64] = mapping[codes]
        return out

    def _known_slots(self, device_id: pa.Array, metric: pa.Array) -> npt.NDArray[np.int64] | None:
        """The slots when every reading's series is known, else None."""
        known = self._lookup()
        if not isinstance(known, tuple):
            joined = pc.binary_join_element_wise(device_id, metric, _SEP)
            found = pc.index_in(joined, value_set=known)
            return None if found.null_count else _int64(found)
        devices, metrics, table = known
        d = pc.index_in(device_id, value_set=devices)
        m = pc.index_in(metric, value_set=metrics)
        if d.null_count or m.null_count:
            return None
        out: npt.NDArray[np.int64] = table[_int64(d), _int64(m)]
        return None if (out < 0).any() else out

    def find(self, device_id: str, metric: str) -> int | None:
        """The slot of a known series, or None; never adds one.

        >>> SeriesIndex([("a", "t")]).find("a", "t"), SeriesIndex().find("a", "t")
        (0, None)
        """
        return self._slot.get(device_id + _SEP + metric)

    def to_state(self) -> dict[str, Any]:
        """The keys, for a detector's saved state."""
        return {"devices": [k[0] for k in self.keys], "metrics": [k[1] for k in self.keys]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesIndex:
        """The index :meth:`to_state` described."""
        return cls(zip(state["devices"], state["metrics"], strict=True))


def _int64(codes: pa.Array) -> npt.NDArray[np.int64]:
    out: npt.NDArray[np.int64] = codes.to_numpy().astype(np.int64, copy=False)
    return out


def _strings(values: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.Array:
    """Arrow strings without a per-element conversion for Arrow input (a Batch's columns)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else pa.array(values, pa.string())


def rounds(
    slots: npt.NDArray[np.int64], ts_us: npt.NDArray[np.int64]
) -> list[npt.NDArray[np.int64]]:
    """Row indices per round: the r-th reading (by time, then arrival) of each series.

    Within a round the order does not matter (each series appears once); rounds are in
    time order per series.
    """
    n = slots.size
    if n == 0:
        return []
    if np.bincount(slots).max() == 1:  # one reading per series (the live case): one round
        return [np.arange(n)]
    order = np.lexsort((np.arange(n), ts_us, slots))  # by slot, then time, then arrival
    s = slots[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    by_round = np.lexsort((np.arange(n), ts_us, rank))  # each round in time order
    bounds = np.flatnonzero(np.diff(rank[by_round])) + 1
    return np.split(by_round, bounds)


def is_whole(rows: npt.NDArray[np.int64], n: int) -> bool:
    """Whether ``rows`` is every row of an ``n``-row batch in order (a batch that is one
    round, as :func:`rounds` gives it), so gathering and scattering by it can be skipped.

    >>> is_whole(np.arange(3), 3), is_whole(np.array([1, 0, 2]), 3)
    (True, False)
    """
    return rows.size == n and bool(np.array_equal(rows, np.arange(n)))
