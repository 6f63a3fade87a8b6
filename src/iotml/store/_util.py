"""Small helpers the store implementations share: time arguments, validation, dedupe."""

from __future__ import annotations

__all__ = [
    "check_batch",
    "check_id",
    "check_limit",
    "check_optional_id",
    "conform",
    "dead_letter_rows",
    "decode_meta",
    "encode_meta",
    "every_us",
    "from_us",
    "keep_first",
    "to_us",
    "to_us_or_now",
    "write_parquet",
]

import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iotml.errors import ConfigError, SchemaError
from iotml.types import READING_SCHEMA, TS_TYPE

if TYPE_CHECKING:
    from iotml.codecs.common import Rejected

TimeArg = datetime | int | None
"""A point in time: an aware datetime, integer microseconds since the epoch, or None."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def to_us(value: TimeArg, name: str) -> int | None:
    """Integer microseconds for an aware datetime or an integer; ``None`` stays ``None``.

    >>> to_us(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), "start"), to_us(5, "end")
    (1000000, 5)
    >>> to_us(datetime(2026, 1, 1), "start")
    Traceback (most recent call last):
    ...
    iotml.errors.ConfigError: start=datetime.datetime(2026, 1, 1, 0, 0) is a naive datetime; ...
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigError(
                f"{name}={value!r} is a naive datetime; give a timezone-aware datetime "
                "(e.g. tzinfo=timezone.utc) or integer microseconds since the epoch"
            )
        return (value - _EPOCH) // _ONE_US
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not -(2**63) <= int(value) < 2**63:
            raise ConfigError(f"{name}={value!r} is out of range for microseconds since the epoch")
        return int(value)
    raise ConfigError(
        f"{name}={value!r} is not a time; give a timezone-aware datetime or integer "
        "microseconds since the epoch"
    )


def to_us_or_now(value: TimeArg, name: str) -> int:
    """Like :func:`to_us`, with ``None`` meaning the current time (the default clock)."""
    us = to_us(value, name)
    return time.time_ns() // 1000 if us is None else us


def from_us(us: int) -> datetime:
    """The aware UTC datetime for integer microseconds since the epoch.

    >>> from_us(1_500_000)
    datetime.datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=datetime.timezone.utc)
    """
    return _EPOCH + timedelta(microseconds=us)


def every_us(every: timedelta) -> int:
    """The bucket width in microseconds; it must be a positive :class:`~datetime.timedelta`.

    >>> every_us(timedelta(minutes=1))
    60000000
    """
    if not isinstance(every, timedelta) or every <= timedelta(0):
        raise ConfigError(f"every={every!r} must be a positive datetime.timedelta")
    return every // _ONE_US


def check_limit(limit: int | None) -> int | None:
    """Validate a ``limit`` argument: ``None`` or a non-negative integer."""
    if limit is None:
        return None
    if not isinstance(limit, numbers.Integral) or isinstance(limit, bool) or limit < 0:
        raise ConfigError(f"limit={limit!r} must be None or a non-negative integer")
    return int(limit)


def check_id(value: object, name: str) -> str:
    """Validate an identifier argument (device id, metric, key): a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name}={value!r} must be a non-empty string")
    return value


def check_optional_id(value: object, name: str) -> str | None:
    """Like :func:`check_id`, but ``None`` (meaning "all") is accepted."""
    return None if value is None else check_id(value, name)


def encode_meta(meta: Mapping[str, Any] | None) -> str:
    """Device metadata as JSON text; it must be a JSON-serialisable mapping (or None)."""
    if meta is None:
        return "{}"
    if not isinstance(meta, Mapping):
        raise ConfigError(f"meta={meta!r} must be a mapping")
    try:
        return orjson.dumps(dict(meta)).decode()
    except TypeError as err:
        raise ConfigError(f"meta={meta!r} is not JSON-serialisable: {err}") from err


def decode_meta(text: str) -> dict[str, Any]:
    """The inverse of :func:`encode_meta`."""
    value: dict[str, Any] = orjson.loads(text)
    return value


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns, selected by name and cast to ``schema`` (labels, string kinds)."""
    columns = [table.column(f.name).cast(f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def keep_first(table: pa.Table) -> pa.Table:
    """Drop rows whose ``(device_id, metric, ts)`` repeats an earlier row of ``table``.

    Rows keep their order. The common case, no repeats, is detected without sorting when
    the rows already come ordered by time and series.

    >>> from iotml.types import Batch
    >>> b = Batch.from_arrays(["a", "a", "b", "a"], ["t"] * 4, [1, 1, 1, 2], [1.0, 2.0, 3.0, 4.0])
    >>> keep_first(b.table).column("value").to_pylist()
    [1.0, 3.0, 4.0]
    """
    n = table.num_rows
    if n < 2:
        return table
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
            return table
        ordered = np.sort(key)  # an unstable sort is several times faster than np.unique
        if not bool(np.any(ordered[1:] == ordered[:-1])):
            return table
        first = np.unique(key, return_index=True)[1]
    else:
        order = np.lexsort((np.arange(n), code, ts))
        new = np.ones(n, dtype=bool)
        new[1:] = (ts[order][1:] != ts[order][:-1]) | (code[order][1:] != code[order][:-1])
        first = order[new]
    if len(first) == n:
        return table
    return table.take(np.sort(first))


def dead_letter_rows(
    ids: pa.Array,
    received: int,
    source: str,
    content_type: str | None,
    rejected: Sequence[Rejected],
) -> pa.Table:
    """Rejected records as rows of :data:`~iotml.store.DEAD_LETTER_SCHEMA`."""
    from iotml.store.base import DEAD_LETTER_SCHEMA  # base imports this module

    n = len(rejected)
    return pa.Table.from_arrays(
        [
            ids,
            pa.array(np.full(n, received, dtype=np.int64)).cast(TS_TYPE),
            pa.array([source] * n, type=pa.string()),
            pa.array([content_type] * n, type=pa.string()),
            pa.array([r.index for r in rejected], type=pa.int64()),
            pa.array([r.reason for r in rejected], type=pa.string()),
            pa.array([bytes(r.payload) for r in rejected], type=pa.binary()),
        ],
        schema=DEAD_LETTER_SCHEMA,
    )


def write_parquet(path: str | Path, tables: Iterable[pa.Table]) -> int:
    """Write reading tables to one Parquet file with :data:`~iotml.types.READING_SCHEMA`."""
    rows = 0
    with pq.ParquetWriter(str(path), READING_SCHEMA) as writer:
        for table in tables:
            part = conform(table, READING_SCHEMA)
            writer.write_table(part)
            rows += part.num_rows
    return rows


def check_batch(value: object, expected: type, what: str) -> None:
    """Raise :class:`SchemaError` when a write receives something other than ``expected``."""
    if not isinstance(value, expected):
        raise SchemaError(
            f"{what} expects a {expected.__name__}, got {type(value).__name__}; build one "
            f"with {expected.__name__}.from_arrow / from_records"
        )
