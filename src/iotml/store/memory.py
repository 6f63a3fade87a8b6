"""An in-memory store built on Arrow tables: the fake for tests, same contract as DuckDB.

It deliberately shares no query code with the SQL stores (deduplication here is a
pyarrow group-by and anti-join, conflicts a join on the key), so running the contract
suite against both checks each against an independent implementation. Nothing
survives :meth:`MemoryStore.close`.

>>> from iotml.types import Batch
>>> store = MemoryStore()
>>> store.write(Batch.from_arrays(["a"], ["t"], [1], [1.0]))
WriteResult(stored=1, duplicates=0, conflicts=0)
>>> len(store.query())
1
"""

from __future__ import annotations

__all__ = ["MemoryStore"]

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iotml.config import DeadLetterLimits
from iotml.errors import ConfigError, StoreError, UnknownDevice
from iotml.store._dedupe import conflicts, differs
from iotml.store._util import (
    TimeArg,
    check_batch,
    check_id,
    check_limit,
    check_optional_id,
    conform,
    dead_letter_cost,
    dead_letter_rows,
    dead_letters_to_evict,
    decode_meta,
    encode_meta,
    every_us,
    from_us,
    to_us,
    to_us_or_now,
    write_parquet,
)
from iotml.store.base import (
    AGGREGATE_SCHEMA,
    DEAD_LETTER_SCHEMA,
    SERIES_SCHEMA,
    DeadLetterStats,
    DeviceRecord,
    Store,
    WriteResult,
)
from iotml.types import EVENT_SCHEMA, READING_SCHEMA, TS_TYPE, Batch, Events

if TYPE_CHECKING:
    from iotml.codecs.common import Rejected

_KEY = ["device_id", "metric", "ts"]
_BY_TIME = [("ts", "ascending"), ("device_id", "ascending"), ("metric", "ascending")]


def _mask(
    table: pa.Table, equal: Mapping[str, str | None], ts: str, lo: int | None, hi: int | None
) -> pa.Array | None:
    """Rows where each named column equals its value and ``lo <= ts < hi``; None = all."""
    conditions = [
        pc.equal(table.column(name), value) for name, value in equal.items() if value is not None
    ]
    if lo is not None:
        conditions.append(pc.greater_equal(table.column(ts), pa.scalar(lo, TS_TYPE)))
    if hi is not None:
        conditions.append(pc.less(table.column(ts), pa.scalar(hi, TS_TYPE)))
    if not conditions:
        return None
    mask = conditions[0]
    for condition in conditions[1:]:
        mask = pc.and_(mask, condition)
    return mask


def _select(table: pa.Table, mask: pa.Array | None) -> pa.Table:
    return table if mask is None else table.filter(mask)


def _newest(table: pa.Table, limit: int | None) -> pa.Table:
    """The last ``limit`` rows of an ordered table."""
    if limit is None or limit >= table.num_rows:
        return table
    return table.slice(table.num_rows - limit)


def _append(table: pa.Table, rows: pa.Table) -> pa.Table:
    out = pa.concat_tables([table, rows])
    # Many small writes would otherwise leave thousands of tiny chunks to scan.
    return out.combine_chunks() if out.column(0).num_chunks > 64 else out


def _over_quota(dead: pa.Table, total: int, limits: DeadLetterLimits) -> tuple[int, int]:
    """How many of the earliest dead letters must go for ``dead`` to fit, and their bytes."""
    rows, cost = dead_letters_to_evict(dead.num_rows, total, limits)
    if rows == 0 and cost == 0:
        return 0, 0
    spent = np.cumsum(dead_letter_cost(dead))
    # The fewest earliest rows that are both that many and free that many bytes.
    n = max(rows, int(np.searchsorted(spent, cost)) + 1 if cost > 0 else 0)
    return n, int(spent[n - 1])


def _copy(record: DeviceRecord) -> DeviceRecord:
    """A record whose ``meta`` the caller may change without changing the store."""
    return replace(record, meta=decode_meta(encode_meta(record.meta)))


class MemoryStore(Store):
    """A :class:`~iotml.store.Store` that keeps everything in Arrow tables in memory.

    ``dead_letters`` bounds what rejected payloads may cost (default: the
    :class:`~iotml.config.DeadLetterLimits` defaults).
    """

    def __init__(self, *, dead_letters: DeadLetterLimits | None = None) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._readings: pa.Table = READING_SCHEMA.empty_table()
        self._events: pa.Table = EVENT_SCHEMA.empty_table()
        self._dead: pa.Table = DEAD_LETTER_SCHEMA.empty_table()
        self._dead_limits = dead_letters or DeadLetterLimits()
        self._dead_bytes = 0
        self._evicted = (0, 0)  # rows, bytes
        self._next_dead_id = 1
        self._units: dict[tuple[str, str], str] = {}
        self._devices: dict[str, DeviceRecord] = {}
        self._state: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({self._readings.num_rows} readings)"

    def _open(self) -> None:
        if self._closed:
            raise StoreError("the memory store is closed")

    # -- readings ---------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        check_batch(batch, Batch, "write()")
        table = batch.table
        with self._lock:
            self._open()
            if table.num_rows == 0:
                return WriteResult(0, 0)
            rows = table.append_column("_row", pa.array(np.arange(table.num_rows)))
            first = rows.group_by(_KEY, use_threads=False).aggregate([("_row", "min")])
            unique = table.take(np.sort(first.column("_row_min").to_numpy()))
            known = self._readings.select(_KEY)
            new = unique.join(known, keys=_KEY, join_type="left anti") if len(known) else unique
            self._readings = _append(self._readings, conform(new, READING_SCHEMA))
            if new.num_rows == table.num_rows:
                return WriteResult(new.num_rows, 0)
            found = self._conflicts(rows)
            return WriteResult(new.num_rows, table.num_rows - new.num_rows, len(found), found)

    def _conflicts(self, rows: pa.Table) -> pa.Table:
        """Rows (numbered ``_row``) whose value differs from the one now stored for their key.

        Every key of the batch is stored once the batch is written, so the stored value
        is the value kept: the earlier one, or the batch's first occurrence.
        """
        stored = self._readings.rename_columns([*_KEY, "stored"])
        met = rows.join(stored, keys=_KEY, join_type="inner", use_threads=False)
        value, kept = met.column("value").to_numpy(), met.column("stored").to_numpy()
        bad = differs(value, kept)
        row = met.column("_row").to_numpy()[bad]
        return conflicts(rows, row.astype(np.int64), kept[bad])

    def _readings_in(
        self, device_id: str | None, metric: str | None, start: TimeArg, end: TimeArg
    ) -> pa.Array | None:
        equal = {
            "device_id": check_optional_id(device_id, "device_id"),
            "metric": check_optional_id(metric, "metric"),
        }
        return _mask(self._readings, equal, "ts", to_us(start, "start"), to_us(end, "end"))

    def query(
        self,
        device_id: str | None = None,
        metric: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        limit: int | None = None,
    ) -> Batch:
        limit = check_limit(limit)
        with self._lock:
            self._open()
            table = _select(self._readings, self._readings_in(device_id, metric, start, end))
        ordered = table.sort_by(_BY_TIME)
        ordered = ordered if limit is None else ordered.slice(0, limit)
        return Batch._trusted(ordered.combine_chunks())

    def aggregate(
        self,
        device_id: str | None,
        metric: str | None,
        every: timedelta,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> pa.Table:
        width = every_us(every)
        with self._lock:
            self._open()
            table = _select(self._readings, self._readings_in(device_id, metric, start, end))
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        bucket = ts - np.mod(ts, width)  # np.mod floors, so times before 1970 work too
        keyed = table.select(["device_id", "metric", "value"]).append_column("bucket", [bucket])
        grouped = keyed.group_by(["device_id", "metric", "bucket"], use_threads=False).aggregate(
            [("value", "mean"), ("value", "min"), ("value", "max"), ("value", "count")]
        )
        grouped = grouped.rename_columns(
            {"value_mean": "mean", "value_min": "min", "value_max": "max", "value_count": "count"}
        ).sort_by([("device_id", "ascending"), ("metric", "ascending"), ("bucket", "ascending")])
        grouped = grouped.set_column(
            grouped.schema.get_field_index("bucket"),
            "bucket",
            grouped.column("bucket").cast(pa.int64()).cast(TS_TYPE),
        )
        return conform(grouped, AGGREGATE_SCHEMA)

    def latest(self, device_id: str | None = None, metric: str | None = None) -> Batch:
        with self._lock:
            self._open()
            table = _select(self._readings, self._readings_in(device_id, metric, None, None))
        ordered = table.sort_by(
            [("device_id", "ascending"), ("metric", "ascending"), ("ts", "ascending")]
        )
        last = (
            ordered.group_by(["device_id", "metric"], use_threads=False)
            .aggregate([("ts", "last"), ("value", "last")])
            .rename_columns({"ts_last": "ts", "value_last": "value"})
        )
        return Batch._trusted(conform(last, READING_SCHEMA).sort_by(_BY_TIME).combine_chunks())

    def series(self) -> pa.Table:
        with self._lock:
            self._open()
            table, units = self._readings, dict(self._units)
        grouped = (
            table.group_by(["device_id", "metric"], use_threads=False)
            .aggregate([("ts", "count"), ("ts", "min"), ("ts", "max")])
            .rename_columns({"ts_count": "count", "ts_min": "first", "ts_max": "last"})
        )
        grouped = grouped.sort_by([("device_id", "ascending"), ("metric", "ascending")])
        keys = zip(
            grouped.column("device_id").to_pylist(),
            grouped.column("metric").to_pylist(),
            strict=True,
        )
        unit = pa.array([units.get(key) for key in keys], type=pa.string())
        return conform(grouped.append_column("unit", unit), SERIES_SCHEMA)

    def set_units(self, units: Mapping[tuple[str, str], str]) -> None:
        checked = {
            (check_id(d, "device_id"), check_id(m, "metric")): check_id(u, "unit")
            for (d, m), u in units.items()
        }
        with self._lock:
            self._open()
            self._units.update(checked)

    def delete_range(
        self,
        device_id: str | None,
        metric: str | None,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> int:
        with self._lock:
            self._open()
            mask = self._readings_in(device_id, metric, start, end)
            before = self._readings.num_rows
            self._readings = (
                READING_SCHEMA.empty_table()
                if mask is None
                else self._readings.filter(pc.invert(mask))
            )
            return int(before - self._readings.num_rows)

    def delete_before(self, ts: TimeArg) -> dict[str, int]:
        cutoff = to_us(ts, "ts")
        if cutoff is None:
            raise ConfigError("ts=None: delete_before needs a time")
        counts = {}
        with self._lock:
            self._open()
            for name, attr, column in (
                ("readings", "_readings", "ts"),
                ("events", "_events", "ts"),
                ("dead_letters", "_dead", "received"),
            ):
                table: pa.Table = getattr(self, attr)
                keep = pc.greater_equal(table.column(column), pa.scalar(cutoff, TS_TYPE))
                setattr(self, attr, table.filter(keep))
                counts[name] = table.num_rows - getattr(self, attr).num_rows
            self._dead_bytes = int(dead_letter_cost(self._dead).sum())
        return counts

    def export_parquet(
        self,
        path: str | Path,
        device_id: str | None = None,
        metric: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> int:
        return write_parquet(path, [self.query(device_id, metric, start, end).table])

    # -- events and dead letters --------------------------------------------------------

    def write_events(self, events: Events) -> int:
        check_batch(events, Events, "write_events()")
        with self._lock:
            self._open()
            self._events = _append(self._events, events.table)
        return len(events)

    def events(
        self,
        device_id: str | None = None,
        kind: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        limit: int | None = None,
    ) -> Events:
        limit = check_limit(limit)
        equal = {
            "device_id": check_optional_id(device_id, "device_id"),
            "kind": check_optional_id(kind, "kind"),
        }
        lo, hi = to_us(start, "start"), to_us(end, "end")
        with self._lock:
            self._open()
            table = _select(self._events, _mask(self._events, equal, "ts", lo, hi))
        # sort_by is stable, so events at the same instant keep their insertion order.
        ordered = _newest(table.sort_by([("ts", "ascending")]), limit)
        return Events._trusted(ordered.combine_chunks())

    def write_dead_letters(
        self,
        rejected: Sequence[Rejected],
        *,
        source: str,
        content_type: str | None = None,
        received: TimeArg = None,
    ) -> int:
        check_id(source, "source")
        at = to_us_or_now(received, "received")
        n = len(rejected)
        limits = self._dead_limits
        with self._lock:
            self._open()
            ids = np.arange(self._next_dead_id, self._next_dead_id + n, dtype=np.int64)
            rows = dead_letter_rows(pa.array(ids), at, source, content_type, rejected,
                                    limits.keep_bytes)  # fmt: skip
            self._dead = _append(self._dead, rows)
            self._dead_bytes += int(dead_letter_cost(rows).sum())
            self._next_dead_id += n
            gone, freed = _over_quota(self._dead, self._dead_bytes, limits)
            if gone:
                self._dead = self._dead.slice(gone)  # rows are kept in the order written
                self._dead_bytes -= freed
                self._evicted = (self._evicted[0] + gone, self._evicted[1] + freed)
        return n

    def dead_letters(
        self,
        *,
        source: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int | None = None,
    ) -> pa.Table:
        limit = check_limit(limit)
        equal = {"source": check_optional_id(source, "source")}
        lo, hi = to_us(start, "start"), to_us(end, "end")
        with self._lock:
            self._open()
            table = _select(self._dead, _mask(self._dead, equal, "received", lo, hi))
        ordered = table.sort_by([("received", "ascending"), ("id", "ascending")])
        return _newest(ordered, limit).combine_chunks()

    def dead_letter_count(self, source: str | None = None) -> int:
        equal = {"source": check_optional_id(source, "source")}
        with self._lock:
            self._open()
            return len(_select(self._dead, _mask(self._dead, equal, "received", None, None)))

    def dead_letter_stats(self) -> DeadLetterStats:
        with self._lock:
            self._open()
            rows, kept, (gone, freed) = self._dead.num_rows, self._dead_bytes, self._evicted
        return DeadLetterStats(rows, kept, gone, freed, self._dead_limits)

    # -- devices and state ----------------------------------------------------------------

    def register_device(
        self,
        device_id: str,
        *,
        token_hash: str | None = None,
        meta: Mapping[str, Any] | None = None,
        replace: bool = False,
        now: TimeArg = None,
    ) -> None:
        check_id(device_id, "device_id")
        created = to_us_or_now(now, "now")
        record = DeviceRecord(
            device_id=device_id,
            created=from_us(created),
            token_hash=token_hash,
            revoked=None,
            meta=decode_meta(encode_meta(meta)),  # the same JSON round trip as SQL stores
        )
        with self._lock:
            self._open()
            if device_id in self._devices and not replace:
                raise ConfigError(
                    f"device_id={device_id!r} is already registered; pass replace=True to "
                    "replace it"
                )
            self._devices[device_id] = record

    def device(self, device_id: str) -> DeviceRecord | None:
        check_id(device_id, "device_id")
        with self._lock:
            self._open()
            record = self._devices.get(device_id)
        return None if record is None else _copy(record)

    def devices(self) -> list[DeviceRecord]:
        with self._lock:
            self._open()
            return [_copy(self._devices[k]) for k in sorted(self._devices)]

    def revoke_device(self, device_id: str, *, now: TimeArg = None) -> None:
        check_id(device_id, "device_id")
        at = to_us_or_now(now, "now")
        with self._lock:
            self._open()
            record = self._devices.get(device_id)
            if record is None:
                raise UnknownDevice(f"device_id={device_id!r} is not registered")
            if record.revoked is None:
                revoked = from_us(at)
                self._devices[device_id] = DeviceRecord(
                    record.device_id, record.created, record.token_hash, revoked, record.meta
                )

    def save_state(self, key: str, data: bytes) -> None:
        check_id(key, "key")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ConfigError(f"data for state {key!r} must be bytes, got {type(data).__name__}")
        with self._lock:
            self._open()
            self._state[key] = bytes(data)

    def load_state(self, key: str) -> bytes | None:
        check_id(key, "key")
        with self._lock:
            self._open()
            return self._state.get(key)

    def close(self) -> None:
        with self._lock:
            self._closed = True
