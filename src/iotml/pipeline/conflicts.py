"""Conflicting duplicates as dead letters: a reading the store refused to overwrite.

A store keeps the first value written under ``(device_id, metric, ts)``. A later reading
with that key and the same value is a redelivery, absorbed silently; one with another
value is a **conflict** (:attr:`~iotml.store.WriteResult.conflict_rows`): it is not
stored, so it is kept as a dead letter whose reason names the device, the metric, the
time, the value stored and the value refused, and whose payload is the refused reading
as flat JSON (``iotml import`` reads it back once the stored reading is deleted).

>>> from iotml.store import MemoryStore
>>> from iotml.types import Batch
>>> store = MemoryStore()
>>> _ = store.write(Batch.from_arrays(["pump-1"], ["temp"], [1767225600000000], [21.5]))
>>> written = store.write(Batch.from_arrays(["pump-1"], ["temp"], [1767225600000000], [22.0]))
>>> [r.reason for r in conflict_rejections(written.conflict_rows)]
["conflicting duplicate: device 'pump-1' metric 'temp' at 2026-01-01T00:00:00.000000Z \
already holds 21.5; the new value 22.0 was not stored (a stored reading is never \
overwritten: delete it first to correct it)"]
"""

from __future__ import annotations

__all__ = ["conflict_rejections", "written_rows"]

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from iotml.codecs.common import Rejected
from iotml.codecs.timestamps import iso_utc
from iotml.types import Batch


def conflict_rejections(
    conflicts: pa.Table, payload_index: npt.NDArray[np.int64] | None = None
) -> list[Rejected]:
    """One :class:`~iotml.codecs.common.Rejected` per row of a conflict table
    (:data:`~iotml.store.CONFLICT_SCHEMA`); ``payload_index`` gives each one's payload.

    A loop over the conflicts, which are rare: the reason of each is its own text.
    """
    when = iso_utc(conflicts.column("ts")).to_pylist()
    payloads = [None] * conflicts.num_rows if payload_index is None else payload_index.tolist()
    rows = zip(
        conflicts.column("device_id").to_pylist(),
        conflicts.column("metric").to_pylist(),
        when,
        conflicts.column("value").to_pylist(),
        conflicts.column("stored").to_pylist(),
        payloads,
        strict=True,
    )
    return [
        Rejected(
            f"conflicting duplicate: device {device!r} metric {metric!r} at {at} already "
            f"holds {stored!r}; the new value {value!r} was not stored (a stored reading is "
            "never overwritten: delete it first to correct it)",
            orjson.dumps({"device_id": device, "ts": at, "values": {metric: value}}),
            None,
            k,
        )
        for device, metric, at, value, stored, k in rows
    ]


def written_rows(decoded: Batch, written: Batch) -> npt.NDArray[np.int64]:
    """Which rows of ``decoded`` make up ``written``, the part the device registry admitted.

    The registry admits or refuses whole devices and keeps the order of rows, so the rows
    written are those of the devices ``written`` holds.
    """
    if len(written) == len(decoded):
        return np.arange(len(decoded), dtype=np.int64)
    admitted = pc.is_in(decoded.device_id, value_set=pc.unique(written.device_id))
    rows = np.flatnonzero(admitted.to_numpy(zero_copy_only=False)).astype(np.int64)
    if len(rows) != len(written):  # pragma: no cover - the registry changed its rule
        raise AssertionError("the registry admitted part of a device's readings")
    return rows
