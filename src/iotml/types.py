"""The two columnar types that move through iotml: reading batches and event tables.

A :class:`Batch` holds readings as four Arrow columns — ``device_id`` (string), ``metric``
(string), ``ts`` (UTC timestamp, microseconds) and ``value`` (float64) — and an
:class:`Events` table holds alerts, predictions and forecasts. Both are validated once,
when built, so everything downstream can trust them: no nulls, no naive timestamps, no
NaN or infinity.

>>> from datetime import datetime, timezone
>>> batch = Batch.from_records([
...     {"device_id": "pump-1", "metric": "temp", "ts": datetime(2026, 1, 1, tzinfo=timezone.utc),
...      "value": 21.5},
... ])
>>> len(batch), batch.values.tolist(), batch.ts_us.tolist()
(1, [21.5], [1767225600000000])
>>> Batch.from_records([{"device_id": "pump-1", "metric": "temp",
...                      "ts": datetime(2026, 1, 1), "value": 1.0}])
Traceback (most recent call last):
...
iotml.errors.SchemaError: column 'ts' holds naive timestamps (no timezone); ... (row 0: ...)
"""

from __future__ import annotations

__all__ = [
    "EVENT_SCHEMA",
    "READING_SCHEMA",
    "SEVERITIES",
    "BadRow",
    "Batch",
    "Events",
    "validate_events",
    "validate_readings",
]

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from iotml.errors import SchemaError

TS_TYPE = pa.timestamp("us", tz="UTC")

READING_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

EVENT_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ]
)

SEVERITIES = ("info", "warning", "critical")
"""Accepted event severities, in increasing order."""

_STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())


def _coerce_column(name: str, col: pa.ChunkedArray, want: pa.DataType) -> pa.ChunkedArray:
    """Cast ``col`` to ``want`` where that is lossless in meaning, else raise SchemaError."""
    have = col.type
    if have == want:
        return col
    if pa.types.is_dictionary(have):
        return _coerce_column(name, col.cast(have.value_type), want)
    if want == TS_TYPE:
        return _coerce_timestamp(name, col)
    if pa.types.is_string(want) and have in _STRING_TYPES:
        return col.cast(want)
    if pa.types.is_floating(want) and (pa.types.is_floating(have) or pa.types.is_integer(have)):
        return col.cast(want)
    if pa.types.is_null(have) and len(col) == 0:
        return pa.chunked_array([], type=want)
    raise SchemaError(f"column {name!r} has type {have}, expected {want}")


def _coerce_timestamp(name: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
    have = col.type
    if not pa.types.is_timestamp(have):
        raise SchemaError(
            f"column {name!r} has type {have}, expected a timezone-aware timestamp "
            "(timestamp[us, tz=UTC])"
        )
    if have.tz is None:
        raise SchemaError(
            f"column {name!r} holds naive timestamps (no timezone); give timezone-aware UTC "
            "times, e.g. datetime(..., tzinfo=timezone.utc)"
        )
    # A timestamp column stores UTC instants whatever its tz label, so relabelling is exact;
    # nanoseconds are truncated to the microsecond resolution iotml keeps.
    return col.cast(pa.timestamp(have.unit, tz="UTC")).cast(TS_TYPE, safe=False)


def _conform(table: pa.Table, schema: pa.Schema, kind: str) -> pa.Table:
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(
            f"{kind} table lacks column(s) {missing}; expected exactly {schema.names}"
        )
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise SchemaError(f"{kind} table has unexpected column(s) {extra}; expected {schema.names}")
    columns = []
    for field in schema:
        col = _coerce_column(field.name, table.column(field.name), field.type)
        if col.null_count:
            first = pc.index(pc.is_null(col), True).as_py()
            raise SchemaError(
                f"column {field.name!r} has {col.null_count} null(s) (first at row {first}); "
                "every reading needs a device_id, metric, ts and value"
            )
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def _check_finite(table: pa.Table, column: str) -> None:
    values = table.column(column).to_numpy()
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.argmin(finite))
        raise SchemaError(
            f"column {column!r} holds a non-finite value {float(values[row])!r} at row {row}; "
            "NaN and infinity are not readings (reject them at decode time)"
        )


def _check_nonempty_strings(table: pa.Table, column: str) -> None:
    empty = pc.equal(pc.utf8_length(table.column(column)), 0)
    if pc.any(empty).as_py():
        row = pc.index(empty, True).as_py()
        raise SchemaError(f"column {column!r} holds an empty string at row {row}")


def validate_readings(table: pa.Table) -> pa.Table:
    """Return ``table`` conformed to :data:`READING_SCHEMA`, or raise :class:`SchemaError`.

    Compatible types are cast (large strings, integer values, other timestamp units and
    time zones); wrong types, nulls, naive timestamps, empty ids and non-finite values are
    rejected with a message naming the column and row.
    """
    table = _conform(table, READING_SCHEMA, "reading")
    _check_finite(table, "value")
    _check_nonempty_strings(table, "device_id")
    _check_nonempty_strings(table, "metric")
    return table


def validate_events(table: pa.Table) -> pa.Table:
    """Return ``table`` conformed to :data:`EVENT_SCHEMA`, or raise :class:`SchemaError`."""
    table = _conform(table, EVENT_SCHEMA, "event")
    _check_finite(table, "score")
    _check_nonempty_strings(table, "device_id")
    _check_nonempty_strings(table, "kind")
    bad = pc.invert(pc.is_in(table.column("severity"), value_set=pa.array(SEVERITIES)))
    if pc.any(bad).as_py():
        row = pc.index(bad, True).as_py()
        value = table.column("severity")[row].as_py()
        raise SchemaError(f"column 'severity' holds {value!r} at row {row}; accepted: {SEVERITIES}")
    for row, text in enumerate(table.column("detail").to_pylist()):
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError as err:
            raise SchemaError(f"column 'detail' at row {row} is not JSON: {text!r}") from err
    return table


def _ts_array(values: Sequence[Any]) -> pa.Array:
    """Datetimes must be aware; integers are microseconds since the epoch."""
    for i, v in enumerate(values):
        if isinstance(v, datetime) and v.tzinfo is None:
            raise SchemaError(
                f"column 'ts' holds naive timestamps (no timezone); give timezone-aware UTC "
                f"times, e.g. datetime(..., tzinfo=timezone.utc) (row {i}: {v!r})"
            )
    try:
        return pa.array(values, type=TS_TYPE)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise SchemaError(f"column 'ts': {err}") from err


def _columns_from_records(
    records: Iterable[Mapping[str, Any]], schema: pa.Schema
) -> dict[str, list[Any]]:
    names = schema.names
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, rec in enumerate(records):
        missing = [n for n in names if n not in rec]
        if missing:
            raise SchemaError(f"record {i} lacks field(s) {missing}; expected {names}")
        for n in names:
            columns[n].append(rec[n])
    return columns


def _array(name: str, values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise SchemaError(f"column {name!r}: expected {type_}: {err}") from err


def _from_frame(frame: Any) -> pa.Table:
    module = type(frame).__module__.split(".")[0]
    if module == "pandas":
        try:
            return pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise SchemaError(f"cannot convert pandas frame: {err}") from err
    if module == "polars":
        return frame.to_arrow()
    raise SchemaError(f"expected a pandas or polars DataFrame, got {type(frame).__name__}")


class Batch:
    """A validated, immutable batch of readings backed by an Arrow table.

    Build one with :meth:`from_arrays` (the fast path from numpy columns),
    :meth:`from_records`, :meth:`from_pandas`, :meth:`from_polars` or :meth:`from_arrow`.

    >>> import numpy as np
    >>> b = Batch.from_arrays(["a", "a"], ["t", "t"], np.array([2, 1]), np.array([0.5, 1.5]))
    >>> b.sort().ts_us.tolist()
    [1, 2]
    """

    __slots__ = ("_table",)

    def __init__(self, table: pa.Table) -> None:
        self._table = validate_readings(table)

    @classmethod
    def _trusted(cls, table: pa.Table) -> Batch:
        """Wrap a table already known to conform (results of our own queries and slices)."""
        self = cls.__new__(cls)
        self._table = table
        return self

    @classmethod
    def empty(cls) -> Batch:
        """A batch with no readings."""
        return cls._trusted(READING_SCHEMA.empty_table())

    @classmethod
    def from_arrays(
        cls,
        device_id: Sequence[str] | npt.NDArray[Any] | pa.Array,
        metric: Sequence[str] | npt.NDArray[Any] | pa.Array,
        ts_us: Sequence[int] | npt.NDArray[np.int64] | pa.Array,
        value: Sequence[float] | npt.NDArray[np.float64] | pa.Array,
    ) -> Batch:
        """Build from four columns; ``ts_us`` is integer microseconds since the Unix epoch."""
        ts = (
            pa.array(np.asarray(ts_us, dtype=np.int64))
            if not isinstance(ts_us, pa.Array)
            else ts_us
        )
        try:
            table = pa.Table.from_arrays(
                [
                    pa.array(device_id, type=pa.string()),
                    pa.array(metric, type=pa.string()),
                    ts.cast(TS_TYPE),
                    pa.array(value, type=pa.float64()),
                ],
                schema=READING_SCHEMA,
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise SchemaError(f"cannot build a reading batch: {err}") from err
        return cls(table)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Batch:
        """Build from mappings with keys ``device_id, metric, ts, value``.

        ``ts`` is a timezone-aware :class:`~datetime.datetime` or integer microseconds.
        """
        cols = _columns_from_records(records, READING_SCHEMA)
        table = pa.Table.from_arrays(
            [
                _array("device_id", cols["device_id"], pa.string()),
                _array("metric", cols["metric"], pa.string()),
                _ts_array(cols["ts"]),
                _array("value", cols["value"], pa.float64()),
            ],
            schema=READING_SCHEMA,
        )
        return cls(table)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Batch:
        """Validate and wrap an Arrow table (compatible types are cast)."""
        return cls(table)

    @classmethod
    def from_pandas(cls, frame: Any) -> Batch:
        """Build from a pandas DataFrame with the four reading columns (tz-aware ``ts``)."""
        return cls(_from_frame(frame))

    @classmethod
    def from_polars(cls, frame: Any) -> Batch:
        """Build from a polars DataFrame with the four reading columns (tz-aware ``ts``)."""
        return cls(_from_frame(frame))

    @classmethod
    def concat(cls, batches: Iterable[Batch]) -> Batch:
        """Concatenate batches, in order."""
        tables = [b.table for b in batches]
        if not tables:
            return cls.empty()
        return cls._trusted(pa.concat_tables(tables).combine_chunks())

    @property
    def table(self) -> pa.Table:
        """The underlying Arrow table (schema :data:`READING_SCHEMA`)."""
        return self._table

    @property
    def device_id(self) -> pa.ChunkedArray:
        """The ``device_id`` column."""
        return self._table.column("device_id")

    @property
    def metric(self) -> pa.ChunkedArray:
        """The ``metric`` column."""
        return self._table.column("metric")

    @property
    def ts_us(self) -> npt.NDArray[np.int64]:
        """Timestamps as integer microseconds since the Unix epoch."""
        ts: npt.NDArray[np.int64] = self._table.column("ts").cast(pa.int64()).to_numpy()
        return ts

    @property
    def values(self) -> npt.NDArray[np.float64]:
        """Values as a float64 numpy array."""
        values: npt.NDArray[np.float64] = self._table.column("value").to_numpy()
        return values

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Batch) and self._table.equals(other._table)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Batch({len(self)} readings)"

    def sort(self) -> Batch:
        """Readings ordered by device, metric and time."""
        order = [("device_id", "ascending"), ("metric", "ascending"), ("ts", "ascending")]
        return Batch._trusted(self._table.sort_by(order))

    def filter(self, mask: npt.NDArray[np.bool_] | pa.Array) -> Batch:
        """The readings where ``mask`` is true."""
        return Batch._trusted(self._table.filter(mask))

    def slice(self, offset: int, length: int | None = None) -> Batch:
        """A zero-copy slice of rows."""
        return Batch._trusted(self._table.slice(offset, length))

    def rows(self) -> list[tuple[str, str, int, float]]:
        """Readings as ``(device_id, metric, ts_us, value)`` tuples (never on a hot path).

        >>> Batch.from_arrays(["a"], ["t"], [5], [1.5]).rows()
        [('a', 't', 5, 1.5)]
        """
        columns = (self.device_id.to_pylist(), self.metric.to_pylist(), self.ts_us.tolist())
        return list(zip(*columns, self.values.tolist(), strict=True))

    def to_pylist(self) -> list[dict[str, Any]]:
        """Readings as dictionaries (for convenience, never on a hot path)."""
        return self._table.to_pylist()  # type: ignore[no-any-return]

    def to_pandas(self) -> Any:
        """A pandas DataFrame with a tz-aware ``ts`` column."""
        return self._table.to_pandas()


class Events:
    """A validated table of events (alerts, predictions, forecasts).

    ``detail`` is JSON text; :meth:`from_records` accepts a mapping there and encodes it.

    >>> from datetime import datetime, timezone
    >>> ev = Events.from_records([{
    ...     "ts": datetime(2026, 1, 1, tzinfo=timezone.utc), "device_id": "pump-1",
    ...     "kind": "anomaly-start", "score": 0.97, "severity": "warning",
    ...     "model": "ewma@1", "message": "temp above baseline", "detail": {"metric": "temp"}}])
    >>> ev.table.column("detail").to_pylist()
    ['{"metric":"temp"}']
    """

    __slots__ = ("_table",)

    def __init__(self, table: pa.Table) -> None:
        self._table = validate_events(table)

    @classmethod
    def _trusted(cls, table: pa.Table) -> Events:
        self = cls.__new__(cls)
        self._table = table
        return self

    @classmethod
    def empty(cls) -> Events:
        """A table with no events."""
        return cls._trusted(EVENT_SCHEMA.empty_table())

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Events:
        """Build from mappings with the eight event fields."""
        cols = _columns_from_records(records, EVENT_SCHEMA)
        cols["detail"] = [
            d if isinstance(d, str) else orjson.dumps(d).decode() for d in cols["detail"]
        ]
        arrays = [_ts_array(cols["ts"])] + [
            _array(f.name, cols[f.name], f.type) for f in EVENT_SCHEMA if f.name != "ts"
        ]
        return cls(pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA))

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Events:
        """Validate and wrap an Arrow table."""
        return cls(table)

    @classmethod
    def from_pandas(cls, frame: Any) -> Events:
        """Build from a pandas DataFrame with the eight event columns."""
        return cls(_from_frame(frame))

    @classmethod
    def from_polars(cls, frame: Any) -> Events:
        """Build from a polars DataFrame with the eight event columns."""
        return cls(_from_frame(frame))

    @classmethod
    def concat(cls, tables: Iterable[Events]) -> Events:
        """Concatenate event tables, in order."""
        parts = [t.table for t in tables]
        if not parts:
            return cls.empty()
        return cls._trusted(pa.concat_tables(parts).combine_chunks())

    @property
    def table(self) -> pa.Table:
        """The underlying Arrow table (schema :data:`EVENT_SCHEMA`)."""
        return self._table

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Events) and self._table.equals(other._table)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Events({len(self)} events)"

    def to_pylist(self) -> list[dict[str, Any]]:
        """Events as dictionaries with ``detail`` decoded from JSON."""
        rows: list[dict[str, Any]] = self._table.to_pylist()
        for row in rows:
            row["detail"] = orjson.loads(row["detail"])
        return rows


@dataclass(frozen=True)
class BadRow:
    """A row of a file that a loader skipped (or reordered): file, 1-based line and why.

    >>> str(BadRow("net.tntp", 7, "capacity is not a number"))
    'net.tntp:7: capacity is not a number'
    """

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"
