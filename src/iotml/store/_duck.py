"""DuckDB plumbing for :class:`~iotml.store.DuckDBStore`: the schema, the connection with its
lock and error translation, and the SQL text the store runs.

Only this module and ``embedded`` import ``duckdb``; every ``duckdb.Error`` raised through
:meth:`Database.use` becomes :class:`~iotml.errors.StoreError`, chained.
"""

from __future__ import annotations

__all__ = [
    "READING_COLUMNS",
    "SCHEMA_VERSION",
    "SERIES_SQL",
    "Database",
    "aggregate_sql",
    "insert_sql",
    "latest_sql",
    "newest_sql",
    "registered",
    "relation",
    "ts_literal",
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

SCHEMA_VERSION = 1

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
CREATE SEQUENCE IF NOT EXISTS dead_letter_id;
CREATE TABLE IF NOT EXISTS dead_letters (
    id BIGINT NOT NULL, received TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL,
    content_type VARCHAR, record_index BIGINT, reason VARCHAR NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id VARCHAR PRIMARY KEY, created TIMESTAMPTZ NOT NULL, token_hash VARCHAR,
    revoked TIMESTAMPTZ, meta VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS series_meta (
    device_id VARCHAR NOT NULL, metric VARCHAR NOT NULL, unit VARCHAR NOT NULL,
    PRIMARY KEY (device_id, metric));
CREATE TABLE IF NOT EXISTS state (key VARCHAR PRIMARY KEY, data BLOB NOT NULL);
"""

READING_COLUMNS = "device_id, metric, ts, value"


class _Shared:
    """What every handle on one database file in this process shares.

    DuckDB gives handles on one file one database, so they share a lock (a write's "what
    is already stored" check and its insert must not interleave) and ``bound``: a time at
    or after the newest stored reading (None: no readings). A batch entirely after it
    cannot hold a stored key, which spares readings arriving in time order any lookup.
    Deletes leave it as it is, which keeps it an upper bound.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.bound: int | None = None


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


def insert_sql(lo: int, newest: int | None) -> str:
    """Insert the registered ``iotml_batch``, and of ``iotml_late`` only rows not yet stored.

    ``iotml_late`` holds the batch's rows at or before ``newest``, the newest stored time in
    the batch's range (from ``lo``); the rest cannot clash and go straight in. Only the late
    rows are anti-joined, against stored rows in ``[lo, newest]``, which zone maps find
    without scanning older row groups. The split is done in Arrow, not in SQL, because a
    filter on a registered Arrow table is pushed into a slow pyarrow scan.
    """
    insert = f"INSERT INTO readings SELECT {READING_COLUMNS} FROM iotml_batch"
    if newest is None:
        return insert
    return (
        f"{insert} UNION ALL SELECT b.* FROM (SELECT {READING_COLUMNS} FROM iotml_late) b "
        "ANTI JOIN (SELECT device_id, metric, ts FROM readings "
        f"WHERE ts BETWEEN {ts_literal(lo)} AND {ts_literal(newest)}) r "
        "USING (device_id, metric, ts)"
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
            version = value(con, "SELECT max(version) FROM iotml_schema")
            if version is None:
                con.execute("INSERT INTO iotml_schema VALUES (?)", [SCHEMA_VERSION])
            elif version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path!r} has schema version {version}, newer than this "
                    f"iotml understands ({SCHEMA_VERSION}); upgrade iotml"
                )
            self._shared.bound = value(con, "SELECT epoch_us(max(ts)) FROM readings")

    def may_hold(self, lo: int) -> bool:
        """Whether stored readings may lie at or after ``lo`` (call under :meth:`use`)."""
        return self._shared.bound is not None and lo <= self._shared.bound

    def stored_up_to(self, hi: int) -> None:
        """Note that readings up to ``hi`` are (about to be) stored."""
        bound = self._shared.bound
        self._shared.bound = hi if bound is None else max(bound, hi)

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
