"""A device's metric from the store as a regular series, ready for a :class:`Forecaster`.

:func:`load_series` asks the store for the mean of each time bucket of width ``every``
(:meth:`~iotml.store.Store.aggregate`: buckets start at multiples of ``every`` since the
Unix epoch, UTC) and lays them on a regular grid. Only **whole** buckets inside
``[start, end)`` are used: ``start`` is rounded up and ``end`` down to a bucket boundary,
so a bucket still filling up (the current hour) never enters a forecast as if it were
complete.

Empty buckets between the first and the last non-empty one are **gaps**. A gap of at most
``max_gap`` buckets is filled by linear interpolation between the buckets around it; a
longer one raises :class:`~iotml.errors.InvalidData` naming the device, the metric and
where the gap is, because interpolating across a meter that was off for a day invents
the very pattern a forecaster learns from.

The store is passed in, never imported: this is the learning layer, it does no I/O of
its own.

>>> from iotml.store import MemoryStore
>>> from iotml.types import Batch
>>> hour = 3_600_000_000
>>> store = MemoryStore()
>>> _ = store.write(Batch.from_arrays(["m"] * 4, ["power"] * 4,
...                                   [0, hour // 2, 3 * hour, 4 * hour], [1.0, 3.0, 8.0, 9.0]))
>>> s = load_series(store, "m", "power", every=timedelta(hours=1), max_gap=2)
>>> s.values.tolist(), s.filled  # hour 0: mean of 1 and 3; hours 1-2 interpolated
([2.0, 4.0, 6.0, 8.0, 9.0], 2)
"""

from __future__ import annotations

__all__ = ["Series", "load_series"]

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData

if TYPE_CHECKING:
    from iotml.store.base import Store

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Series:
    """A regular series: ``ts_us`` are bucket starts (epoch µs, step ``every_us``), oldest
    first; ``values`` the bucket means, ``filled`` how many of them were interpolated."""

    device_id: str
    metric: str
    every_us: int
    ts_us: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    filled: int = 0

    def __len__(self) -> int:
        return len(self.values)

    @property
    def end_us(self) -> int:
        """The end of the last bucket (where a forecast's first step starts)."""
        return int(self.ts_us[-1]) + self.every_us if len(self) else 0


def load_series(
    store: Store,
    device_id: str,
    metric: str,
    start: datetime | int | None = None,
    end: datetime | int | None = None,
    *,
    every: timedelta,
    max_gap: int = 3,
) -> Series:
    """The bucket means of ``device_id``/``metric`` in ``[start, end)`` on a regular grid.

    Parameters
    ----------
    store
        Any :class:`~iotml.store.Store`.
    start, end
        Aware datetimes or epoch microseconds; ``None`` is unbounded. Rounded inwards to
        whole buckets.
    every
        Bucket width (a positive whole number of microseconds).
    max_gap
        Longest run of empty buckets filled by linear interpolation; a longer one raises
        :class:`~iotml.errors.InvalidData`.

    Returns an empty :class:`Series` when there is no reading in the range.
    """
    width = _width(every)
    if not isinstance(max_gap, int) or isinstance(max_gap, bool) or max_gap < 0:
        raise ConfigError(f"max_gap is {max_gap!r}; expected an integer >= 0")
    lo, hi = _us(start, "start"), _us(end, "end")
    lo = None if lo is None else -(-lo // width) * width  # up to a bucket boundary
    hi = None if hi is None else (hi // width) * width  # down to one
    empty = Series(device_id, metric, width, np.empty(0, np.int64), np.empty(0))
    if lo is not None and hi is not None and hi <= lo:
        return empty
    table = store.aggregate(device_id, metric, timedelta(microseconds=width), lo, hi)
    if not table.num_rows:
        return empty
    buckets = np.asarray(table.column("bucket").cast("int64").to_numpy(), dtype=np.int64)
    means = np.asarray(table.column("mean").to_numpy(), dtype=np.float64)
    return _regular(device_id, metric, width, buckets, means, max_gap)


def _regular(
    device_id: str,
    metric: str,
    width: int,
    buckets: npt.NDArray[np.int64],
    means: npt.NDArray[np.float64],
    max_gap: int,
) -> Series:
    """Lay non-empty buckets on the full grid, interpolating gaps of up to ``max_gap``."""
    index = (buckets - buckets[0]) // width
    steps = np.diff(index) - 1  # empty buckets after each non-empty one
    if len(steps) and int(steps.max()) > max_gap:
        at = int(np.argmax(steps))
        gap_from, gap_to = _iso(int(buckets[at]) + width), _iso(int(buckets[at + 1]))
        raise InvalidData(
            f"{device_id}/{metric} has no reading for {int(steps[at])} buckets of "
            f"{_text(width)} from {gap_from} to {gap_to}; "
            f"expected gaps of at most max_gap={max_gap} buckets (give a range after the gap, "
            "or a larger max_gap)"
        )
    grid = buckets[0] + np.arange(int(index[-1]) + 1, dtype=np.int64) * width
    values = np.interp(grid.astype(np.float64), buckets.astype(np.float64), means)
    return Series(device_id, metric, width, grid, values, len(grid) - len(buckets))


def _width(every: timedelta) -> int:
    if not isinstance(every, timedelta):
        raise ConfigError(f"every is {every!r}; expected a timedelta")
    width = every // timedelta(microseconds=1)
    if width <= 0 or timedelta(microseconds=width) != every:
        raise ConfigError(f"every is {every!r}; expected a positive whole number of µs")
    return width


def _us(value: datetime | int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ConfigError(
                f"{name}={value!r} is a naive datetime; expected a timezone-aware one"
            )
        return (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    raise ConfigError(f"{name}={value!r}; expected an aware datetime or epoch microseconds")


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def _text(width: int) -> str:
    s = width / 1e6
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{s:g}s"
