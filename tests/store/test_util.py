"""The helpers the store implementations share: time arguments and in-batch dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from iotml.errors import ConfigError
from iotml.store._util import every_us, from_us, keep_first, to_us
from iotml.types import Batch


def test_to_us_is_exact_for_aware_datetimes() -> None:
    dt = datetime(2026, 3, 1, 12, 0, 0, 123_457, tzinfo=timezone(timedelta(hours=-5)))
    assert to_us(dt, "start") == 1_772_384_400_123_457
    assert from_us(to_us(dt, "start") or 0) == dt
    assert to_us(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), "x") == -1
    assert to_us(np.int64(7), "x") == 7
    assert to_us(None, "x") is None


@pytest.mark.parametrize("bad", [datetime(2026, 1, 1), True, 1.5, "2026-01-01"])
def test_to_us_rejects_other_values_naming_the_argument(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^until="):
        to_us(bad, "until")  # type: ignore[arg-type]


def test_every_us() -> None:
    assert every_us(timedelta(hours=1)) == 3_600_000_000
    with pytest.raises(ConfigError, match="every"):
        every_us(timedelta(0))


def _rows(batch: Batch) -> list[tuple[str, str, int, float]]:
    return list(zip(batch.device_id.to_pylist(), batch.metric.to_pylist(), batch.ts_us.tolist(),
                    batch.values.tolist(), strict=True))  # fmt: skip


def test_keep_first_returns_the_same_table_when_nothing_repeats() -> None:
    b = Batch.from_arrays(["b", "a", "a"], ["t", "t", "h"], [3, 1, 1], [1.0, 2.0, 3.0])
    assert keep_first(b.table) is b.table


def test_keep_first_keeps_first_occurrences_in_order() -> None:
    b = Batch.from_arrays(
        ["a", "b", "a", "a", "b", "a"],
        ["t"] * 6,
        [5, 5, 1, 5, 5, 1],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    )
    out = Batch._trusted(keep_first(b.table))
    assert _rows(out) == [("a", "t", 5, 1.0), ("b", "t", 5, 2.0), ("a", "t", 1, 3.0)]


def test_keep_first_handles_time_ranges_too_wide_for_one_key() -> None:
    # The span times the series count overflows int64, so the lexsort path is taken.
    lo, hi = -(2**62), 2**62
    b = Batch.from_arrays(["a", "b", "a", "a"], ["t"] * 4, [hi, lo, hi, lo], [1.0, 2.0, 3.0, 4.0])
    out = Batch._trusted(keep_first(b.table))
    assert _rows(out) == [("a", "t", hi, 1.0), ("b", "t", lo, 2.0), ("a", "t", lo, 4.0)]


def test_keep_first_on_multi_chunk_tables() -> None:
    one = Batch.from_arrays(["a", "a"], ["t", "t"], [1, 2], [1.0, 2.0])
    two = Batch.from_arrays(["a", "b"], ["t", "t"], [2, 2], [3.0, 4.0])
    table = one.table.__class__.from_batches(one.table.to_batches() + two.table.to_batches())
    out = Batch._trusted(keep_first(table))
    assert _rows(out) == [("a", "t", 1, 1.0), ("a", "t", 2, 2.0), ("b", "t", 2, 4.0)]
