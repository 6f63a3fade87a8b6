"""Repeated keys and conflicting values: the parts of an idempotent write stores share.

A reading's key is ``(device_id, metric, ts)``; the first write of a key wins. A later
row with that key is a duplicate — a redelivery when its value is the one kept, a
**conflict** when it differs (NaN equals NaN here: a redelivered NaN is no conflict).
:func:`first_of_key` finds the repeats inside a batch with one int64 key per row, so a
batch without repeats — the usual case — costs a linear check; :func:`conflicts` turns
"which rows, what is kept" into the :data:`~iotml.store.base.CONFLICT_SCHEMA` table.

>>> from iotml.types import Batch
>>> b = Batch.from_arrays(["a", "a", "a"], ["t"] * 3, [1, 1, 2], [1.0, 2.0, 3.0])
>>> first_of_key(b.table).tolist()
[0, 0, 2]
>>> differs(np.array([1.0, np.nan, np.nan]), np.array([1.0, np.nan, 0.0])).tolist()
[False, False, True]
"""

from __future__ import annotations

__all__ = ["conflicts", "differs", "first_of_key", "within_batch"]

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def first_of_key(table: pa.Table) -> Ints | None:
    """Each row's first row with the same key; ``None`` when no key repeats.

    Rows that already come ordered by time and series are recognised without sorting.
    """
    n = table.num_rows
    if n < 2:
        return None
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    dev = pc.dictionary_encode(table.column("device_id").combine_chunks())
    met = pc.dictionary_encode(table.column("metric").combine_chunks())
    n_met = len(met.dictionary)
    code = dev.indices.to_numpy().astype(np.int64) * n_met + met.indices.to_numpy()
    lo, hi = int(ts.min()), int(ts.max())
    n_series = len(dev.dictionary) * n_met
    if (hi - lo + 1) * n_series < 2**63:
        # One int64 key per row: sortedness is a linear check, and np.unique reports
        # the first occurrence of each key.
        key = (ts - lo) * n_series + code
        if bool(np.all(key[1:] > key[:-1])):
            return None
        ordered = np.sort(key)  # an unstable sort is several times faster than np.unique
        if not bool(np.any(ordered[1:] == ordered[:-1])):
            return None
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        found: Ints = first[inverse].astype(np.int64)
        return found
    order = np.lexsort((np.arange(n), code, ts))
    new = np.ones(n, dtype=bool)
    new[1:] = (ts[order][1:] != ts[order][:-1]) | (code[order][1:] != code[order][:-1])
    if new.all():
        return None
    group = np.cumsum(new) - 1
    out = np.empty(n, dtype=np.int64)
    out[order] = order[new][group]
    return out


def differs(new: Floats, kept: Floats) -> npt.NDArray[np.bool_]:
    """Where ``new`` is not the value ``kept``; NaN equals NaN."""
    result: npt.NDArray[np.bool_] = (new != kept) & ~(np.isnan(new) & np.isnan(kept))
    return result


def within_batch(
    values: Floats, first: Ints | None, kept: Floats | None = None
) -> tuple[Ints, Floats]:
    """Rows that repeat an earlier row's key with another value, and the value kept.

    ``kept`` is the value finally kept for each row's key, indexed by the key's first
    row (default: that row's own value); a store passes the stored value where the key
    was stored before. Returns the conflicting rows and their kept values.
    """
    if first is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    reference = values if kept is None else kept
    rows = np.flatnonzero(first != np.arange(len(first)))
    winners = reference[first[rows]]
    bad = differs(values[rows], winners)
    return rows[bad].astype(np.int64), winners[bad]


def conflicts(table: pa.Table, rows: Ints, stored: Floats) -> pa.Table:
    """The :data:`~iotml.store.base.CONFLICT_SCHEMA` table for ``rows`` of ``table``
    (any order; the result is ordered by row), each with the value ``stored`` for its key."""
    from iotml.store.base import CONFLICT_SCHEMA  # base imports the store helpers

    order = np.argsort(rows, kind="stable")
    rows, stored = rows[order], stored[order]
    picked = table.take(pa.array(rows))
    columns = [pa.array(rows, pa.int64())]
    columns += [picked.column(name) for name in ("device_id", "metric", "ts", "value")]
    columns.append(pa.array(stored, pa.float64()))
    return pa.Table.from_arrays(columns, schema=CONFLICT_SCHEMA)
