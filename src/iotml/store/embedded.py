"""The default store: one embedded DuckDB file (``IOTML_HOME/iotml.duckdb``).

DuckDB lets one process open a file for writing at a time; a second process gets
:class:`~iotml.errors.StoreUnavailable` saying another process holds it. Several writers
need PostgreSQL. Every DuckDB exception is translated into
:class:`~iotml.errors.StoreError` (chained), so callers never import ``duckdb``.

Idempotent writes are fast because readings mostly arrive in time order: a batch is
deduplicated in numpy, then only rows no newer than the newest stored reading in the
batch's time range are joined against stored rows of that range, which DuckDB's zone
maps find without scanning older row groups (see ``benchmarks/bench_store.py``). That
one join says which late rows are new and which are stored with another value
(conflicts); repeats inside a batch are compared in numpy.

>>> from iotml.types import Batch
>>> with DuckDBStore(":memory:") as store:
...     store.write(Batch.from_arrays(["a", "a"], ["t", "t"], [1, 1], [1.0, 2.0]))
...     store.query().values.tolist()
WriteResult(stored=1, duplicates=1, conflicts=1)
[1.0]
"""

from __future__ import annotations

__all__ = ["DuckDBStore"]

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from iotml.config import DeadLetterLimits
from iotml.errors import ConfigError, UnknownDevice
from iotml.store import _dead, _duck
from iotml.store._dedupe import conflicts, first_of_key, within_batch
from iotml.store._duck import READING_COLUMNS, Database, registered, relation, value, where
from iotml.store._util import (
    TimeArg,
    check_batch,
    check_id,
    check_limit,
    check_optional_id,
    conform,
    dead_letter_rows,
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

_EVENT_COLUMNS = ", ".join(EVENT_SCHEMA.names)
_BY_TIME = "ts, device_id, metric"


def _positioned(table: pa.Table, rows: npt.NDArray[np.intp]) -> pa.Table:
    """The ``rows`` of ``table``, each with its row number there (``pos``)."""
    picked = table.take(pa.array(rows)) if len(rows) < table.num_rows else table
    return picked.append_column("pos", pa.array(rows.astype(np.int64)))


class DuckDBStore(Store):
    """A :class:`~iotml.store.Store` in one DuckDB database file (or ``":memory:"``).

    Parameters
    ----------
    path
        The database file; its directory is created if missing. A file written by an
        older iotml is migrated when opened.
    dead_letters
        What rejected payloads may cost (default: the
        :class:`~iotml.config.DeadLetterLimits` defaults); applied on opening too, so a
        smaller quota or ``keep_bytes`` takes effect at once.

    Raises
    ------
    StoreUnavailable
        The file cannot be opened, e.g. because another process holds it.
    """

    def __init__(self, path: str | Path, *, dead_letters: DeadLetterLimits | None = None) -> None:
        self._db = Database(str(path))
        self._dead_limits = dead_letters or DeadLetterLimits()
        try:
            with self._db.transaction("apply the dead-letter quota") as con:
                _dead.apply_quota(con, self._dead_limits, cut=True)
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"DuckDBStore({self._db.path!r})"

    @property
    def path(self) -> str:
        """The database file."""
        return self._db.path

    # -- readings ---------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        check_batch(batch, Batch, "write()")
        total = len(batch)
        first = first_of_key(batch.table)
        kept = None if first is None else np.flatnonzero(first == np.arange(total))
        table = batch.table if kept is None else batch.table.take(pa.array(kept))
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        with self._db.transaction("write readings") as con:
            if total == 0:
                return WriteResult(0, 0)
            lo, hi = int(ts.min()), int(ts.max())
            newest = value(con, _duck.newest_sql(lo, hi)) if self._db.may_hold(lo) else None
            new, clash = table, None
            late = np.flatnonzero(ts <= newest) if newest is not None else None
            if newest is not None and late is not None and len(late):
                with registered(con, "iotml_late", _positioned(table, late)):
                    unsettled = relation(con, _duck.unsettled_sql(lo, newest)).to_arrow_table()
                fresh = np.ones(len(table), dtype=bool)
                fresh[late] = False
                known = unsettled.column("stored").is_valid().to_numpy(zero_copy_only=False)
                fresh[unsettled.column("pos").to_numpy()[~known]] = True
                clash = unsettled.filter(known)
                new = table if fresh.all() else table.filter(fresh)
            if new.num_rows:
                with registered(con, "iotml_batch", new):
                    con.execute(_duck.INSERT_SQL)
            self._db.stored_up_to(hi)  # before the commit: too high a bound is still safe
        if new.num_rows == total:
            return WriteResult(total, 0)
        return self._conflicts(batch, first, kept, clash, new.num_rows)

    @staticmethod
    def _conflicts(
        batch: Batch,
        first: npt.NDArray[np.int64] | None,
        kept: npt.NDArray[np.intp] | None,
        clash: pa.Table | None,
        stored: int,
    ) -> WriteResult:
        """The result of a write that met duplicates: which of them conflict.

        ``clash`` holds the kept rows (``pos``, their row number among the kept ones)
        whose key was stored before with another value, and that value; a repeat inside
        the batch conflicts when it differs from the value kept for its key: the stored
        one, else that of the key's first row in the batch.
        """
        values = batch.values
        reference = values.copy()
        rows = np.zeros(0, dtype=np.int64)
        if clash is not None and clash.num_rows:
            position = clash.column("pos").to_numpy()
            rows = position if kept is None else kept[position].astype(np.int64)
            reference[rows] = clash.column("stored").to_numpy()
        repeats, repeat_kept = within_batch(values, first, reference)
        found = conflicts(
            batch.table,
            np.concatenate([rows, repeats]),
            np.concatenate([reference[rows], repeat_kept]),
        )
        return WriteResult(stored, len(batch) - stored, found.num_rows, found)

    @staticmethod
    def _reading_filter(
        device_id: str | None, metric: str | None, start: TimeArg, end: TimeArg
    ) -> tuple[str, list[Any]]:
        equal = {
            "device_id": check_optional_id(device_id, "device_id"),
            "metric": check_optional_id(metric, "metric"),
        }
        return where(equal, "ts", to_us(start, "start"), to_us(end, "end"))

    def _reading_sql(
        self,
        device_id: str | None,
        metric: str | None,
        start: TimeArg,
        end: TimeArg,
        limit: int | None,
    ) -> tuple[str, list[Any]]:
        cond, params = self._reading_filter(device_id, metric, start, end)
        sql = f"SELECT {READING_COLUMNS} FROM readings{cond}"
        sql = f"{sql} ORDER BY {_BY_TIME}"
        return (sql if limit is None else f"{sql} LIMIT {limit}"), params

    def query(
        self,
        device_id: str | None = None,
        metric: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        limit: int | None = None,
    ) -> Batch:
        sql, params = self._reading_sql(device_id, metric, start, end, check_limit(limit))
        return Batch._trusted(
            conform(self._db.arrow("query readings", sql, params), READING_SCHEMA)
        )

    def aggregate(
        self,
        device_id: str | None,
        metric: str | None,
        every: timedelta,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> pa.Table:
        width = every_us(every)
        cond, params = self._reading_filter(device_id, metric, start, end)
        one_series = device_id is not None and metric is not None
        sql = _duck.aggregate_sql(cond, width, by_series=not one_series)
        table = self._db.arrow("aggregate readings", sql, params)
        if one_series:
            table = table.add_column(0, "metric", pa.repeat(pa.scalar(metric), len(table)))
            table = table.add_column(0, "device_id", pa.repeat(pa.scalar(device_id), len(table)))
        index = table.schema.get_field_index("bucket")
        table = table.set_column(index, "bucket", table.column(index).cast(TS_TYPE))
        return conform(table, AGGREGATE_SCHEMA)

    def latest(self, device_id: str | None = None, metric: str | None = None) -> Batch:
        cond, params = self._reading_filter(device_id, metric, None, None)
        sql = _duck.latest_sql(cond)
        return Batch._trusted(
            conform(self._db.arrow("read latest readings", sql, params), READING_SCHEMA)
        )

    def series(self) -> pa.Table:
        return conform(self._db.arrow("list series", _duck.SERIES_SQL), SERIES_SCHEMA)

    def set_units(self, units: Mapping[tuple[str, str], str]) -> None:
        """Units known to be stored as they are are not written again (see ``_duck._Shared``)."""
        checked = {
            (check_id(d, "device_id"), check_id(m, "metric")): check_id(u, "unit")
            for (d, m), u in units.items()
        }
        with self._db.use("set units"):  # the lock: what is known stored cannot change
            changed = self._db.units_to_set(checked)
            if not changed:
                return
            table = pa.table(
                {
                    "device_id": pa.array([d for d, _ in changed], pa.string()),
                    "metric": pa.array([m for _, m in changed], pa.string()),
                    "unit": pa.array(list(changed.values()), pa.string()),
                }
            )
            with self._db.transaction("set units") as con, registered(con, "iotml_units", table):
                con.execute(
                    "INSERT INTO series_meta SELECT device_id, metric, unit FROM iotml_units "
                    "ON CONFLICT (device_id, metric) DO UPDATE SET unit = excluded.unit"
                )
            self._db.units_stored(changed)

    def delete_range(
        self,
        device_id: str | None,
        metric: str | None,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> int:
        cond, params = self._reading_filter(device_id, metric, start, end)
        with self._db.use("delete readings") as con:
            return int(value(con, f"DELETE FROM readings{cond}", params))

    def delete_before(self, ts: TimeArg) -> dict[str, int]:
        cutoff = to_us(ts, "ts")
        if cutoff is None:
            raise ConfigError("ts=None: delete_before needs a time")
        counts = {}
        with self._db.transaction("delete old rows") as con:
            for table, column in (
                ("readings", "ts"),
                ("events", "ts"),
                ("dead_letters", "received"),
            ):
                sql = f"DELETE FROM {table} WHERE {column} < {_duck.ts_literal(cutoff)}"
                counts[table] = int(value(con, sql))
        return counts

    def export_parquet(
        self,
        path: str | Path,
        device_id: str | None = None,
        metric: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> int:
        sql, params = self._reading_sql(device_id, metric, start, end, None)
        with self._db.use("export readings") as con:
            # Streamed in record batches, so exporting never holds the whole table in memory.
            reader = _duck.relation(con, sql, params).to_arrow_reader(1 << 17)
            try:
                return write_parquet(path, (pa.Table.from_batches([b]) for b in reader))
            finally:
                reader.close()

    # -- events and dead letters --------------------------------------------------------

    def _ids(self, con: duckdb.DuckDBPyConnection, sequence: str, n: int) -> pa.Array:
        """``n`` increasing ids from a sequence, to give rows in their given order."""
        rows = con.execute(f"SELECT nextval('{sequence}') FROM range(?)", [n]).fetchall()
        return pa.array(sorted(r[0] for r in rows), type=pa.int64())

    def write_events(self, events: Events) -> int:
        check_batch(events, Events, "write_events()")
        n = len(events)
        with self._db.transaction("write events") as con:
            if n == 0:
                return 0
            table = events.table.add_column(0, "id", self._ids(con, "event_id", n))
            with registered(con, "iotml_events", table):
                con.execute(f"INSERT INTO events SELECT id, {_EVENT_COLUMNS} FROM iotml_events")
        return n

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
        cond, params = where(equal, "ts", to_us(start, "start"), to_us(end, "end"))
        sql = f"SELECT id, {_EVENT_COLUMNS} FROM events{cond}"
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY ts DESC, id DESC LIMIT {limit})"
        table = self._db.arrow("read events", f"{sql} ORDER BY ts, id", params)
        return Events._trusted(conform(table, EVENT_SCHEMA))

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
        with self._db.transaction("write dead letters") as con:
            if n == 0:
                return 0
            ids = self._ids(con, "dead_letter_id", n)
            keep = self._dead_limits.keep_bytes
            table = dead_letter_rows(ids, at, source, content_type, rejected, keep)
            with registered(con, "iotml_dead", table):
                con.execute(_dead.insert_sql("iotml_dead"))
            _dead.apply_quota(con, self._dead_limits, cut=False)
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
        cond, params = where(equal, "received", to_us(start, "start"), to_us(end, "end"))
        sql = f"SELECT {_dead.COLUMNS} FROM dead_letters{cond}"
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY received DESC, id DESC LIMIT {limit})"
        table = self._db.arrow("read dead letters", f"{sql} ORDER BY received, id", params)
        return conform(table, DEAD_LETTER_SCHEMA)

    def dead_letter_count(self, source: str | None = None) -> int:
        cond, params = where(
            {"source": check_optional_id(source, "source")}, "received", None, None
        )
        with self._db.use("count dead letters") as con:
            return int(value(con, f"SELECT count(*) FROM dead_letters{cond}", params))

    def dead_letter_stats(self) -> DeadLetterStats:
        with self._db.use("count dead letters") as con:
            (rows, kept), (gone, freed) = _dead.totals(con), _dead.evicted(con)
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
        row = [device_id, created, token_hash, encode_meta(meta)]
        with self._db.transaction("register a device") as con:
            exists = value(con, "SELECT count(*) FROM devices WHERE device_id = ?", [device_id])
            if exists and not replace:
                raise ConfigError(
                    f"device_id={device_id!r} is already registered; pass replace=True to "
                    "replace it"
                )
            con.execute("DELETE FROM devices WHERE device_id = ?", [device_id])
            con.execute(
                "INSERT INTO devices VALUES (?, make_timestamptz(?::BIGINT), ?, NULL, ?)", row
            )

    def device(self, device_id: str) -> DeviceRecord | None:
        check_id(device_id, "device_id")
        found = self._devices("WHERE device_id = ?", [device_id])
        return found[0] if found else None

    def devices(self) -> list[DeviceRecord]:
        return self._devices("", [])

    def _devices(self, where: str, params: list[Any]) -> list[DeviceRecord]:
        sql = (
            "SELECT device_id, epoch_us(created), token_hash, epoch_us(revoked), meta "
            f"FROM devices {where} ORDER BY device_id"
        )
        with self._db.use("read devices") as con:
            rows = con.execute(sql, params).fetchall()
        return [
            DeviceRecord(
                device_id=d,
                created=from_us(created),
                token_hash=token,
                revoked=None if revoked is None else from_us(revoked),
                meta=decode_meta(meta),
            )
            for d, created, token, revoked, meta in rows
        ]

    def revoke_device(self, device_id: str, *, now: TimeArg = None) -> None:
        check_id(device_id, "device_id")
        at = to_us_or_now(now, "now")
        with self._db.transaction("revoke a device") as con:
            sql = "SELECT count(*) FROM devices WHERE device_id = ?"
            if not value(con, sql, [device_id]):
                raise UnknownDevice(f"device_id={device_id!r} is not registered")
            con.execute(
                "UPDATE devices SET revoked = make_timestamptz(?::BIGINT) "
                "WHERE device_id = ? AND revoked IS NULL",
                [at, device_id],
            )

    def save_state(self, key: str, data: bytes) -> None:
        check_id(key, "key")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ConfigError(f"data for state {key!r} must be bytes, got {type(data).__name__}")
        with self._db.transaction("save state") as con:
            con.execute("DELETE FROM state WHERE key = ?", [key])
            con.execute("INSERT INTO state VALUES (?, ?)", [key, bytes(data)])

    def load_state(self, key: str) -> bytes | None:
        check_id(key, "key")
        with self._db.use("load state") as con:
            rows = con.execute("SELECT data FROM state WHERE key = ?", [key]).fetchall()
        return bytes(rows[0][0]) if rows else None

    def close(self) -> None:
        self._db.close()
