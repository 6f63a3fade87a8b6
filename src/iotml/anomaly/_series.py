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

__all__ = ["SeriesIndex", "rounds"]

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

_SEP = "\x1f"  # unit separator: cannot appear in a decoded device id or metric


class SeriesIndex:
    """Dense slots for ``(device_id, metric)`` series, in order of first appearance."""

    def __init__(self, keys: Iterable[tuple[str, str]] = ()) -> None:
        self._slot: dict[str, int] = {}
        self.keys: list[tuple[str, str]] = []
        self._known: pa.Array | None = None  # the joined keys in slot order, for index_in
        for device, metric in keys:
            self._add(device + _SEP + metric)

    def __len__(self) -> int:
        return len(self.keys)

    def _add(self, joined: str) -> int:
        self._known = None
        slot = self._slot[joined] = len(self.keys)
        device, _, metric = joined.partition(_SEP)
        self.keys.append((device, metric))
        return slot

    def slots(
        self, device_id: pa.Array | Sequence[str], metric: pa.Array | Sequence[str]
    ) -> npt.NDArray[np.int64]:
        """Each reading's slot; series not seen before get new slots."""
        joined = pc.binary_join_element_wise(_strings(device_id), _strings(metric), _SEP)
        if self.keys:  # the usual case, all series known: one hash lookup per reading in C
            if self._known is None:
                self._known = pa.array(list(self._slot), pa.string())
            found = pc.index_in(joined, value_set=self._known)
            if found.null_count == 0:
                known: npt.NDArray[np.int64] = found.to_numpy().astype(np.int64, copy=False)
                return known
        encoded = (
            pc.dictionary_encode(joined).combine_chunks()
            if isinstance(joined, pa.ChunkedArray)
            else pc.dictionary_encode(joined)
        )
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

    def to_state(self) -> dict[str, Any]:
        """The keys, for a detector's saved state."""
        return {"devices": [k[0] for k in self.keys], "metrics": [k[1] for k in self.keys]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesIndex:
        """The index :meth:`to_state` described."""
        return cls(zip(state["devices"], state["metrics"], strict=True))


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
