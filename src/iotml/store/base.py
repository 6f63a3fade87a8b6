"""The store contract: what every storage back end (DuckDB, memory, later PostgreSQL) does.

A store keeps readings, events, dead letters, registered devices, series units and opaque
state blobs. Time arguments take a timezone-aware :class:`~datetime.datetime` or integer
microseconds since the Unix epoch; ranges are half-open ``[start, end)`` and ``None``
means unbounded. Results come back ordered by time.

Writes are idempotent and the **first write wins**: a reading is identified by
``(device_id, metric, ts)``, and a key already stored is never overwritten. Re-delivered
MQTT messages and re-imported files carry the same values, so ignoring them is what keeps
the data clean; stored readings are immutable, and correcting one is explicit:
:meth:`Store.delete_range` then :meth:`Store.write`. A repeated key whose value differs
from the one kept is a **conflict**: it is not stored either, but :meth:`Store.write`
reports it (:attr:`WriteResult.conflict_rows`), so the caller can dead-letter it instead of
losing it silently. Values compare as numbers, except that NaN equals NaN.

>>> from iotml.store import MemoryStore
>>> from iotml.types import Batch
>>> with MemoryStore() as store:
...     store.write(Batch.from_arrays(["a", "a"], ["t", "t"], [2, 1], [20.0, 10.0]))
...     store.write(Batch.from_arrays(["a"], ["t"], [1], [10.0]))  # re-delivered: ignored
...     store.write(Batch.from_arrays(["a"], ["t"], [1], [99.0]))  # a conflict: reported
...     store.query("a", "t").values.tolist()
WriteResult(stored=2, duplicates=0, conflicts=0)
WriteResult(stored=0, duplicates=1, conflicts=0)
WriteResult(stored=0, duplicates=1, conflicts=1)
[10.0, 20.0]
"""

from __future__ import annotations

__all__ = [
    "AGGREGATE_SCHEMA",
    "CONFLICT_SCHEMA",
    "DEAD_LETTER_SCHEMA",
    "SERIES_SCHEMA",
    "DeadLetterStats",
    "DeviceRecord",
    "Store",
    "TimeArg",
    "WriteResult",
]

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import pyarrow as pa

from iotml.config import DeadLetterLimits
from iotml.store._util import TimeArg
from iotml.types import TS_TYPE, Batch, Events

if TYPE_CHECKING:
    from iotml.codecs.common import Rejected

AGGREGATE_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("bucket", TS_TYPE, nullable=False),
        pa.field("mean", pa.float64(), nullable=False),
        pa.field("min", pa.float64(), nullable=False),
        pa.field("max", pa.float64(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
)
"""Columns of :meth:`Store.aggregate`: one row per series and non-empty time bucket."""

SERIES_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("first", TS_TYPE, nullable=False),
        pa.field("last", TS_TYPE, nullable=False),
        pa.field("unit", pa.string(), nullable=True),
    ]
)
"""Columns of :meth:`Store.series`: one row per series that holds readings."""

DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("received", TS_TYPE, nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("content_type", pa.string(), nullable=True),
        pa.field("record_index", pa.int64(), nullable=True),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=True),
        pa.field("truncated", pa.bool_(), nullable=False),
    ]
)
"""Columns of :meth:`Store.dead_letters`.

``payload`` is the original bytes, or only their first
:attr:`~iotml.config.DeadLetterLimits.keep_bytes` (4 KiB by default) when ``truncated``;
``size`` is the length of the original and ``sha256`` its hex SHA-256, so a truncated
dead letter still identifies what was sent. ``sha256`` is null when the original was
never read whole (an HTTP body refused from its ``Content-Length`` or while it streamed
in): ``size`` is then what was known, a lower bound, and the reason says so.
"""


CONFLICT_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("stored", pa.float64(), nullable=False),
    ]
)
"""Columns of :attr:`WriteResult.conflict_rows`: the written batch's ``row``, its reading,
and the value ``stored`` under its key, which it was not allowed to replace."""


def _no_conflicts() -> pa.Table:
    return CONFLICT_SCHEMA.empty_table()


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :meth:`Store.write` did: readings ``stored`` and ``duplicates`` ignored.

    ``conflicts`` counts the duplicates whose value differs from the one kept (they are
    included in ``duplicates``); ``conflict_rows`` lists them, ordered by ``row``, as
    :data:`CONFLICT_SCHEMA`. Equality compares the counts.
    """

    stored: int
    duplicates: int
    conflicts: int = 0
    conflict_rows: pa.Table = field(default_factory=_no_conflicts, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DeadLetterStats:
    """What the dead letters cost now, and what the quota has evicted.

    ``rows`` and ``bytes`` (kept payload bytes plus reason text) are what the table holds;
    ``evicted_rows`` and ``evicted_bytes`` count what the quota in ``limits`` removed,
    earliest written first, since the store was created (retention by
    :meth:`Store.delete_before` is not eviction).
    """

    rows: int
    bytes: int
    evicted_rows: int
    evicted_bytes: int
    limits: DeadLetterLimits


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A registered device; ``token_hash`` is whatever the credential layer stores."""

    device_id: str
    created: datetime
    token_hash: str | None = None
    revoked: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Store(abc.ABC):
    """The storage contract every back end satisfies; see the module docstring.

    Stores are context managers; :meth:`close` releases the database and is idempotent.
    Using a closed store raises :class:`~iotml.errors.StoreError`, and so does any failure
    of the database itself — callers never see the database library's exceptions.
    """

    # -- readings ---------------------------------------------------------------------

    @abc.abstractmethod
    def write(self, batch: Batch) -> WriteResult:
        """Store the readings of ``batch`` whose ``(device_id, metric, ts)`` is new.

        First write wins: a key already stored keeps its value, and of repeats inside
        ``batch`` the first occurrence is kept. ``duplicates`` counts the rows ignored;
        ``conflicts`` those of them whose value differs from the value kept for their key
        (the stored one, or the first occurrence in ``batch``), and ``conflict_rows``
        says which rows they are and what is stored instead. Checking for conflicts costs
        nothing when a batch has no duplicates.

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> result = store.write(Batch.from_arrays(["a"] * 3, ["t"] * 3, [1] * 3, [1.0, 2.0, 1.0]))
        >>> result
        WriteResult(stored=1, duplicates=2, conflicts=1)
        >>> result.conflict_rows.select(["row", "value", "stored"]).to_pylist()
        [{'row': 1, 'value': 2.0, 'stored': 1.0}]
        """

    @abc.abstractmethod
    def query(
        self,
        device_id: str | None = None,
        metric: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        limit: int | None = None,
    ) -> Batch:
        """Readings in ``[start, end)``, ordered by ``ts``, then ``device_id``, ``metric``.

        ``None`` for ``device_id`` or ``metric`` means all. ``limit`` keeps the first
        ``limit`` readings in that order (page on with ``start`` = last ``ts`` + 1 µs).

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> _ = store.write(Batch.from_arrays(["a"] * 3, ["t"] * 3, [1, 2, 3], [1.0, 2.0, 3.0]))
        >>> store.query("a", "t", start=2).ts_us.tolist(), store.query(limit=2).values.tolist()
        ([2, 3], [1.0, 2.0])
        """

    @abc.abstractmethod
    def aggregate(
        self,
        device_id: str | None,
        metric: str | None,
        every: timedelta,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> pa.Table:
        """Mean, min, max and count per series and time bucket of width ``every``.

        Buckets start at multiples of ``every`` since the Unix epoch (so 1-minute buckets
        start on whole minutes, UTC); empty buckets are omitted. Columns and types are
        :data:`AGGREGATE_SCHEMA`, rows ordered by ``device_id``, ``metric``, ``bucket``.

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> _ = store.write(Batch.from_arrays(["a"] * 3, ["t"] * 3, [0, 1, 10], [1.0, 3.0, 5.0]))
        >>> table = store.aggregate("a", "t", timedelta(microseconds=10))
        >>> table.column("mean").to_pylist(), table.column("count").to_pylist()
        ([2.0, 5.0], [2, 1])
        """

    @abc.abstractmethod
    def latest(self, device_id: str | None = None, metric: str | None = None) -> Batch:
        """The newest reading of each series, ordered like :meth:`query`.

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> batch = Batch.from_arrays(["a", "a", "b"], ["t"] * 3, [1, 5, 3], [1.0, 5.0, 3.0])
        >>> _ = store.write(batch)
        >>> store.latest().values.tolist()
        [3.0, 5.0]
        """

    @abc.abstractmethod
    def series(self) -> pa.Table:
        """One row per series holding readings: :data:`SERIES_SCHEMA`, by device and metric.

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> _ = store.write(Batch.from_arrays(["a", "a"], ["t", "t"], [1, 5], [1.0, 5.0]))
        >>> store.set_units({("a", "t"): "Cel"})
        >>> store.series().select(["device_id", "count", "unit"]).to_pylist()
        [{'device_id': 'a', 'count': 2, 'unit': 'Cel'}]
        """

    @abc.abstractmethod
    def set_units(self, units: Mapping[tuple[str, str], str]) -> None:
        """Record the unit of each ``(device_id, metric)``; a later call overwrites."""

    @abc.abstractmethod
    def delete_range(
        self,
        device_id: str | None,
        metric: str | None,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> int:
        """Delete readings in ``[start, end)`` (``None`` ids mean all); returns the count.

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> _ = store.write(Batch.from_arrays(["a"] * 3, ["t"] * 3, [1, 2, 3], [1.0, 2.0, 3.0]))
        >>> store.delete_range("a", "t", start=2), len(store.query())
        (2, 1)
        """

    @abc.abstractmethod
    def delete_before(self, ts: TimeArg) -> dict[str, int]:
        """Retention: delete readings, events and dead letters (by ``received``) older than ``ts``.

        Returns the number of rows deleted per table: ``readings``, ``events``,
        ``dead_letters``.

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> _ = store.write(Batch.from_arrays(["a"] * 3, ["t"] * 3, [1, 2, 3], [1.0, 2.0, 3.0]))
        >>> store.delete_before(3)
        {'readings': 2, 'events': 0, 'dead_letters': 0}
        """

    @abc.abstractmethod
    def export_parquet(
        self,
        path: str | Path,
        device_id: str | None = None,
        metric: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
    ) -> int:
        """Write the readings :meth:`query` would return to a Parquet file; returns the count.

        The file has :data:`~iotml.types.READING_SCHEMA`, so ``Batch.from_arrow`` reads it.
        """

    # -- events and dead letters --------------------------------------------------------

    @abc.abstractmethod
    def write_events(self, events: Events) -> int:
        """Append events (no deduplication: events carry no natural key); returns the count."""

    @abc.abstractmethod
    def events(
        self,
        device_id: str | None = None,
        kind: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        limit: int | None = None,
    ) -> Events:
        """Events in ``[start, end)`` ordered by ``ts``, then insertion order.

        ``limit`` keeps the newest ``limit`` events (still returned oldest first), as an
        alert feed shows them; unlike :meth:`query`, whose ``limit`` pages from the start.
        """

    @abc.abstractmethod
    def write_dead_letters(
        self,
        rejected: Sequence[Rejected],
        *,
        source: str,
        content_type: str | None = None,
        received: TimeArg = None,
    ) -> int:
        """Keep rejected records with their reason and bytes; ``received`` defaults to now.

        ``source`` says where they came from (e.g. ``mqtt:site/+/telemetry``,
        ``file:data.csv``); returns the number written. A payload longer than the store's
        :attr:`~iotml.config.DeadLetterLimits.keep_bytes` keeps only its first bytes, with
        the size and SHA-256 of the whole (see :data:`DEAD_LETTER_SCHEMA`; a
        :class:`~iotml.codecs.Rejected` that already holds only the first bytes says so
        with its ``size`` and ``sha256``). Past the quota the earliest written dead
        letters are evicted and counted (:meth:`dead_letter_stats`), so bad input costs
        bounded disk however much of it arrives.

        >>> from iotml.codecs.common import Rejected
        >>> from iotml.config import DeadLetterLimits
        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore(dead_letters=DeadLetterLimits(keep_bytes=4))
        >>> store.write_dead_letters([Rejected("field 'v': 'x' is not a number", b"{}", 0),
        ...                           Rejected("too large", b"0123456789")],
        ...                          source="http", content_type="application/json", received=7)
        2
        >>> store.dead_letters().select(["id", "payload", "size", "truncated"]).to_pylist()
        [{'id': 1, 'payload': b'{}', 'size': 2, 'truncated': False},
         {'id': 2, 'payload': b'0123', 'size': 10, 'truncated': True}]
        """

    @abc.abstractmethod
    def dead_letters(
        self,
        *,
        source: str | None = None,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Dead letters received in ``[start, end)``: :data:`DEAD_LETTER_SCHEMA`.

        Ordered by ``received`` then ``id`` (ids increase with each write); ``limit``
        keeps the newest ``limit`` rows, still returned oldest first.
        """

    @abc.abstractmethod
    def dead_letter_count(self, source: str | None = None) -> int:
        """How many dead letters are kept (from ``source``, or all)."""

    @abc.abstractmethod
    def dead_letter_stats(self) -> DeadLetterStats:
        """Rows and bytes the dead letters hold, what the quota evicted, and the quota.

        >>> from iotml.codecs.common import Rejected
        >>> from iotml.config import DeadLetterLimits
        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore(dead_letters=DeadLetterLimits(max_rows=2))
        >>> store.write_dead_letters([Rejected("r", b"1"), Rejected("r", b"2"),
        ...                           Rejected("r", b"3")], source="s", received=1)
        3
        >>> stats = store.dead_letter_stats()
        >>> stats.rows, stats.bytes, stats.evicted_rows, store.dead_letters()["payload"].to_pylist()
        (2, 4, 1, [b'2', b'3'])
        """

    # -- devices and state ----------------------------------------------------------------

    @abc.abstractmethod
    def register_device(
        self,
        device_id: str,
        *,
        token_hash: str | None = None,
        meta: Mapping[str, Any] | None = None,
        replace: bool = False,
        now: TimeArg = None,
    ) -> None:
        """Register a device; :class:`~iotml.errors.ConfigError` if it exists, unless ``replace``.

        ``meta`` must be JSON-serialisable; ``now`` (default: the clock) becomes ``created``.
        ``replace=True`` writes a fresh record (new ``created``, not revoked).

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> store.register_device("pump-1", token_hash="h", meta={"site": "A"}, now=0)
        >>> store.device("pump-1")
        DeviceRecord(device_id='pump-1', created=datetime.datetime(1970, 1, 1, 0, 0, tzinfo=...),
                     token_hash='h', revoked=None, meta={'site': 'A'})
        """

    @abc.abstractmethod
    def device(self, device_id: str) -> DeviceRecord | None:
        """The registered device, or ``None``."""

    @abc.abstractmethod
    def devices(self) -> list[DeviceRecord]:
        """Every registered device (revoked ones too), ordered by ``device_id``."""

    @abc.abstractmethod
    def revoke_device(self, device_id: str, *, now: TimeArg = None) -> None:
        """Mark a device revoked at ``now``; :class:`~iotml.errors.UnknownDevice` if absent.

        Revoking twice keeps the first revocation time.
        """

    @abc.abstractmethod
    def save_state(self, key: str, data: bytes) -> None:
        """Store an opaque blob (e.g. detector state) under ``key``, replacing any previous."""

    @abc.abstractmethod
    def load_state(self, key: str) -> bytes | None:
        """The blob saved under ``key``, or ``None``.

        >>> from iotml.store import MemoryStore
        >>> store = MemoryStore()
        >>> store.save_state("ewma", b"\\x00\\x01")
        >>> store.load_state("ewma"), store.load_state("other")
        (b'\\x00\\x01', None)
        """

    # -- lifecycle ------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None:
        """Release the database; later calls raise :class:`~iotml.errors.StoreError`."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
