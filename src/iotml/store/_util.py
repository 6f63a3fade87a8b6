"""Small helpers the store implementations share: time arguments, validation, dedupe."""

from __future__ import annotations

__all__ = [
    "check_batch",
    "check_id",
    "check_limit",
    "check_optional_id",
    "conform",
    "dead_letter_cost",
    "dead_letter_rows",
    "dead_letters_to_evict",
    "decode_meta",
    "encode_meta",
    "every_us",
    "from_us",
    "keep_first",
    "to_us",
    "to_us_or_now",
    "truncate_rejected",
    "write_parquet",
]

import dataclasses
import hashlib
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iotml.config import DeadLetterLimits
from iotml.errors import ConfigError, SchemaError
from iotml.store._dedupe import first_of_key
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
    first = first_of_key(table)
    if first is None:
        return table
    return table.filter(first == np.arange(len(first)))


def truncate_rejected(rejected: Rejected, keep_bytes: int) -> Rejected:
    """``rejected`` with at most ``keep_bytes`` of its payload, and the whole one's size and hash.

    A record that already holds only the first bytes of its original (``size`` set) keeps
    its ``size`` and ``sha256``; otherwise they are taken from its payload.

    >>> from iotml.codecs.common import Rejected
    >>> cut = truncate_rejected(Rejected("too big", b"abcdef"), 2)
    >>> cut.payload, cut.size, cut.sha256[:12]
    (b'ab', 6, 'bef57ec7f53a')
    >>> truncate_rejected(Rejected("refused", b"abc", size=10**9), 2).sha256 is None
    True
    """
    payload = bytes(rejected.payload)
    size, sha256 = rejected.size, rejected.sha256
    if size is None:
        size, sha256 = len(payload), hashlib.sha256(payload).hexdigest()
    size = max(size, len(payload))
    return dataclasses.replace(rejected, payload=payload[:keep_bytes], size=size, sha256=sha256)


def dead_letter_rows(
    ids: pa.Array,
    received: int,
    source: str,
    content_type: str | None,
    rejected: Sequence[Rejected],
    keep_bytes: int,
) -> pa.Table:
    """Rejected records as rows of :data:`~iotml.store.DEAD_LETTER_SCHEMA`.

    Payloads keep their first ``keep_bytes`` (see :func:`truncate_rejected`).
    """
    from iotml.store.base import DEAD_LETTER_SCHEMA  # base imports this module

    n = len(rejected)
    cut = [truncate_rejected(r, keep_bytes) for r in rejected]
    sizes = [len(r.payload) if r.size is None else r.size for r in cut]  # always set by now
    payloads = [r.payload for r in cut]
    return pa.Table.from_arrays(
        [
            ids,
            pa.array(np.full(n, received, dtype=np.int64)).cast(TS_TYPE),
            pa.array([source] * n, type=pa.string()),
            pa.array([content_type] * n, type=pa.string()),
            pa.array([r.index for r in cut], type=pa.int64()),
            pa.array([r.reason for r in cut], type=pa.string()),
            pa.array(payloads, type=pa.binary()),
            pa.array(sizes, type=pa.int64()),
            pa.array([r.sha256 for r in cut], type=pa.string()),
            pa.array([len(p) < s for p, s in zip(payloads, sizes, strict=True)], pa.bool_()),
        ],
        schema=DEAD_LETTER_SCHEMA,
    )


def dead_letters_to_evict(rows: int, cost: int, limits: DeadLetterLimits) -> tuple[int, int]:
    """How many rows and bytes must go, earliest first, when ``rows`` cost ``cost``.

    Nothing while both are within ``limits``; past either, enough to come down to 99 %
    of both, so that under a flood eviction runs once per 1 % of the quota rather than
    on every write.

    >>> dead_letters_to_evict(1_000, 10, DeadLetterLimits(max_rows=1_000))
    (0, 0)
    >>> dead_letters_to_evict(1_001, 10, DeadLetterLimits(max_rows=1_000))
    (11, 0)
    """
    if rows <= limits.max_rows and cost <= limits.max_bytes:
        return 0, 0
    low_rows = limits.max_rows - limits.max_rows // 100
    low_bytes = limits.max_bytes - limits.max_bytes // 100
    return max(0, rows - low_rows), max(0, cost - low_bytes)


def dead_letter_cost(table: pa.Table) -> npt.NDArray[np.int64]:
    """What each dead letter costs the quota: its kept payload bytes plus its reason's."""
    payload = pc.binary_length(table.column("payload")).to_numpy(zero_copy_only=False)
    reason = pc.binary_length(table.column("reason")).to_numpy(zero_copy_only=False)
    cost: npt.NDArray[np.int64] = (payload + reason).astype(np.int64)
    return cost


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
