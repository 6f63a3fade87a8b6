"""DuckDB plumbing for :class:`~iotml.store.DuckDBStore`: the schema, the connection with its
lock and error translation, and the SQL text the store runs.

Only this module and ``embedded`` import ``duckdb``; every ``duckdb.Error`` raised through
:meth:`Database.use` becomes :class:`~iotml.errors.StoreError`, chained.
"""

from __future__ import annotations

__all__ = [
    "INSERT_SQL",
    "READING_COLUMNS",
    "SCHEMA_VERSION",
    "SERIES_SQL",
    "Database",
    "aggregate_sql",
    "latest_sql",
    "newest_sql",
    "registered",
    "relation",
    "ts_literal",
    "unsettled_sql",
    "value",
    "where",
]

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from iotml.errors import StoreError, StoreUnavailable
from iotml.store import _dead

SCHEMA_VERSION = 2
"""2: dead letters keep a payload's size and SHA-256, its first bytes, and a quota."""

_MIGRATIONS = {2: _dead.migrate_v1}
"""What brings a file from the version before each key to that version."""

_DDL = """
CREATE TABLE IF NOT EXISTS iotml_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS readings (
    device_id VARCHAR NOT NULL, metric VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL, value DOUBLE NOT NULL);
CREATE SEQUENCE IF NOT EXISTS event_id;
CREATE TABLE IF NOT EXISTS events (
    id BIGINT NOT NULL, ts TIMESTAMPTZ NOT NULL, device_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL, score DOUBLE NOT NULL, severity VARCHAR NOT NULL,
    model VARCHAR NOT NULL, message VARCHAR NOT NULL, detail VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id VARCHAR PRIMARY KEY, created TIMESTAMPTZ NOT NULL, token_hash VARCHAR,
    revoked TIMESTAMPTZ, meta VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS series_meta (
    device_id VARCHAR NOT NULL, metric VARCHAR NOT NULL, unit VARCHAR NOT NULL,
    PRIMARY KEY (device_id, metric));
CREATE TABLE IF NOT EXISTS state (key VARCHAR PRIMARY KEY, data BLOB NOT NULL);
"""

READING_COLUMNS = "device_id, metric, ts, value"


UNITS_REMEMBERED = 100_000
"""At most this many ``(device_id, metric)`` units are remembered as stored (then forgotten
all at once: forgetting only costs an upsert that changes nothing)."""


class _Shared:
    """What every handle on one database file in this process shares.

    DuckDB gives handles on one file one database, so they share a lock (a write's "what
    is already stored" check and its insert must not interleave) and ``bound``: a time at
    or after the newest stored reading (None: no readings). A batch entirely after it
    cannot hold a stored key, which spares readings arriving in time order any lookup.
    Deletes leave it as it is, which keeps it an upper bound.

    ``units`` holds units known to be stored as they are, so that setting a unit again
    (a pipeline does at every flush) costs no statement. Every ``INSERT ... ON CONFLICT``,
    even one that changes nothing, allocates temporary buffer blocks, and DuckDB's buffer
    pool keeps each freed block's handle in its eviction queue until a purge that never
    shrinks the queue below 32,768 entries: ~3 KB of heap per statement, outside
    ``duckdb_memory()``, up to ~40 MB after 15-20 thousand statements (DuckDB 2.0.1). At tens
    of flushes a second that was most of the ingester's memory growth.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.bound: int | None = None
        self.units: dict[tuple[str, str], str] = {}


_SHARED: dict[str, _Shared] = {}
_SHARED_GUARD = threading.Lock()


def _shared(path: str) -> _Shared:
    if path == ":memory:":
        return _Shared()
    with _SHARED_GUARD:
        return _SHARED.setdefault(os.path.realpath(path), _Shared())


def ts_literal(us: int) -> str:
    """A TIMESTAMPTZ literal, inlined (it is an int) so DuckDB prunes row groups by it."""
    return f"make_timestamptz({int(us)}::BIGINT)"


def where(
    equal: Mapping[str, str | None], ts: str, lo: int | None, hi: int | None
) -> tuple[str, list[Any]]:
    """A WHERE clause (and its parameters) for equality filters and ``lo <= ts < hi``."""
    clauses = [f"{column} = ?" for column, value in equal.items() if value is not None]
    params: list[Any] = [value for value in equal.values() if value is not None]
    if lo is not None:
        clauses.append(f"{ts} >= {ts_literal(lo)}")
    if hi is not None:
        clauses.append(f"{ts} < {ts_literal(hi)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


INSERT_SQL = f"INSERT INTO readings SELECT {READING_COLUMNS} FROM iotml_batch"
"""Insert the registered ``iotml_batch`` as it is (the rows known to be new)."""


def unsettled_sql(lo: int, newest: int) -> str:
    """The rows of the registered ``iotml_late`` not stored as they are: ``pos``, ``stored``.

    ``iotml_late`` holds the batch's rows at or before ``newest``, the newest stored time
    in the batch's range (from ``lo``), each with its row number ``pos``; the rest cannot
    clash. Only those late rows are joined, against stored rows in ``[lo, newest]``, which
    zone maps find without scanning older row groups. A row comes back when its key is
    new (``stored`` NULL: insert it) or stored with another value (a conflict); a
    redelivered row, same key and value, does not, so a redelivered batch brings nothing
    back. The rows to insert are then picked in Arrow, not in SQL, because a filter on a
    registered Arrow table is pushed into a slow pyarrow scan. DuckDB compares NaN equal
    to NaN.
    """
    return (
        "SELECT l.pos AS pos, r.value AS stored FROM "
        "(SELECT device_id, metric, ts, value, pos FROM iotml_late) l "
        "LEFT JOIN (SELECT device_id, metric, ts, value FROM readings "
        f"WHERE ts BETWEEN {ts_literal(lo)} AND {ts_literal(newest)}) r "
        "USING (device_id, metric, ts) WHERE r.value IS NULL OR r.value <> l.value"
    )


def newest_sql(lo: int, hi: int) -> str:
    """The newest stored time (integer microseconds) in ``[lo, hi]``, or NULL."""
    return (
        "SELECT epoch_us(max(ts)) FROM readings "
        f"WHERE ts BETWEEN {ts_literal(lo)} AND {ts_literal(hi)}"
    )


def aggregate_sql(where_clause: str, width: int, *, by_series: bool) -> str:
    """Buckets of ``width`` microseconds, as integers aligned to the epoch.

    Integer arithmetic is exact and ignores the session time zone; DuckDB's ``%`` keeps the
    dividend's sign, hence the double modulo to floor times before 1970. Without
    ``by_series`` (one series selected) the ids are left out of the grouping key, which
    makes hashing 10 M rows markedly cheaper; the caller adds them back.
    """
    bucket = f"us - (((us % {width}) + {width}) % {width})"
    series = "device_id, metric, " if by_series else ""
    return (
        f"SELECT {series}{bucket} AS bucket, avg(value) AS mean, "
        'min(value) AS "min", max(value) AS "max", count(*) AS "count" FROM '
        f"(SELECT {series}epoch_us(ts) AS us, value FROM readings{where_clause}) "
        f"GROUP BY {series}bucket ORDER BY {series}bucket"
    )


def latest_sql(where_clause: str) -> str:
    """The newest reading of each series."""
    return (
        "SELECT * FROM (SELECT device_id, metric, max(ts) AS ts, arg_max(value, ts) AS value "
        f"FROM readings{where_clause} GROUP BY device_id, metric) ORDER BY ts, device_id, metric"
    )


SERIES_SQL = (
    'SELECT s.device_id, s.metric, s."count", s."first", s."last", u.unit FROM '
    '(SELECT device_id, metric, count(*) AS "count", min(ts) AS "first", '
    'max(ts) AS "last" FROM readings GROUP BY device_id, metric) s '
    "LEFT JOIN series_meta u ON u.device_id = s.device_id AND u.metric = s.metric "
    "ORDER BY s.device_id, s.metric"
)


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """``table`` readable as ``name`` in SQL for the duration of the block (no copy)."""
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def _connect(path: str) -> duckdb.DuckDBPyConnection:
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(path)
        # Results are converted to UTC Arrow columns anyway; the session zone is pinned so
        # nothing in SQL ever depends on the machine's TimeZone.
        con.execute("SET TimeZone = 'UTC'")
    except (duckdb.Error, OSError) as err:
        if "lock" in str(err).lower():
            raise StoreUnavailable(
                f"cannot open the store {path!r}: another process holds it (DuckDB allows one "
                f"process per file; stop that process or use PostgreSQL): {err}"
            ) from err
        raise StoreUnavailable(f"cannot open the store {path!r}: {err}") from err
    return con


class Database:
    """One DuckDB connection, serialised by a per-file lock, with errors translated."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._shared = _shared(path)
        self._lock = self._shared.lock
        with self._lock:
            self._con: duckdb.DuckDBPyConnection | None = _connect(path)
            try:
                self._create_schema()
            except BaseException:
                self.close()
                raise

    def _create_schema(self) -> None:
        with self.transaction("create the schema") as con:
            con.execute(_DDL)
            con.execute(_dead.DDL)
            version = value(con, "SELECT max(version) FROM iotml_schema")
            if version is None:
                con.execute("INSERT INTO iotml_schema VALUES (?)", [SCHEMA_VERSION])
            elif version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path!r} has schema version {version}, newer than this "
                    f"iotml understands ({SCHEMA_VERSION}); upgrade iotml"
                )
            elif version < SCHEMA_VERSION:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    _MIGRATIONS[step](con)
                con.execute("INSERT INTO iotml_schema VALUES (?)", [SCHEMA_VERSION])
            self._shared.bound = value(con, "SELECT epoch_us(max(ts)) FROM readings")
            self._shared.units.clear()  # another process may have set units since

    def may_hold(self, lo: int) -> bool:
        """Whether stored readings may lie at or after ``lo`` (call under :meth:`use`)."""
        return self._shared.bound is not None and lo <= self._shared.bound

    def stored_up_to(self, hi: int) -> None:
        """Note that readings up to ``hi`` are (about to be) stored."""
        bound = self._shared.bound
        self._shared.bound = hi if bound is None else max(bound, hi)

    def units_to_set(self, units: Mapping[tuple[str, str], str]) -> dict[tuple[str, str], str]:
        """The entries of ``units`` not known to be stored as they are (call under :meth:`use`)."""
        known = self._shared.units
        return {key: unit for key, unit in units.items() if known.get(key) != unit}

    def units_stored(self, units: Mapping[tuple[str, str], str]) -> None:
        """Note that ``units`` are committed (call under :meth:`use`, after the commit)."""
        known = self._shared.units
        if len(known) + len(units) > UNITS_REMEMBERED:
            known.clear()
        if len(units) <= UNITS_REMEMBERED:
            known.update(units)

    @contextmanager
    def use(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection, under the lock, with DuckDB errors translated."""
        with self._lock:
            if self._con is None:
                raise StoreError(f"cannot {what}: the store {self.path!r} is closed")
            try:
                yield self._con
            except duckdb.Error as err:
                raise StoreError(f"cannot {what} in {self.path!r}: {err}") from err

    @contextmanager
    def transaction(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """Like :meth:`use`, inside a transaction rolled back on any exception."""
        with self.use(what) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def arrow(self, what: str, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """The result of a SELECT as an Arrow table."""
        with self.use(what) as con:
            return relation(con, sql, params).to_arrow_table()

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            con, self._con = self._con, None
            if con is not None:
                try:
                    con.close()
                except duckdb.Error as err:
                    raise StoreError(f"cannot close the store {self.path!r}: {err}") from err


def value(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the first row (statements such as DELETE return a count)."""
    # fetchall, not fetchone: DuckDB 2 refuses new work while a result is unfinished.
    return con.execute(sql, list(params)).fetchall()[0][0]


def relation(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> Any:
    """A relation over a SELECT (DuckDB 2 warns when Arrow is fetched from ``execute``)."""
    rel = con.sql(sql, params=list(params) or None)
    if rel is None:  # pragma: no cover - only SELECTs come here
        raise StoreError(f"the query returned no result: {sql}")
    return rel
