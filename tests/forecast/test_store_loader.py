"""load_series: bucket means on a regular grid, short gaps interpolated, long gaps refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from iotml.errors import ConfigError, InvalidData
from iotml.forecast.store import load_series
from iotml.store import MemoryStore
from iotml.types import Batch

T0 = 1_767_225_600_000_000
HOUR = 3_600_000_000
ONE_HOUR = timedelta(hours=1)


def _store(offsets_h: list[float], values: list[float], device: str = "m-1") -> MemoryStore:
    store = MemoryStore()
    ts = [T0 + int(h * HOUR) for h in offsets_h]
    store.write(Batch.from_arrays([device] * len(ts), ["power"] * len(ts), ts, values))
    store.write(Batch.from_arrays(["m-1"], ["voltage"], [T0], [230.0]))  # another metric
    return store


def test_each_bucket_is_the_mean_of_its_readings_on_a_regular_grid() -> None:
    store = _store([0.0, 0.25, 0.75, 1.5, 2.1], [1.0, 2.0, 3.0, 10.0, 20.0])
    s = load_series(store, "m-1", "power", every=ONE_HOUR)
    assert s.ts_us.tolist() == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert s.values.tolist() == [2.0, 10.0, 20.0]
    assert (s.device_id, s.metric, s.filled, len(s), s.end_us) == (
        "m-1",
        "power",
        0,
        3,
        T0 + 3 * HOUR,
    )


def test_short_gaps_are_interpolated_linearly() -> None:
    store = _store([0, 1, 4, 5], [1.0, 2.0, 5.0, 6.0])  # hours 2 and 3 empty
    s = load_series(store, "m-1", "power", every=ONE_HOUR, max_gap=2)
    assert s.values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert s.filled == 2
    assert np.all(np.diff(s.ts_us) == HOUR)


def test_a_gap_longer_than_max_gap_is_refused_naming_where_it_is() -> None:
    store = _store([0, 1, 6], [1.0, 2.0, 3.0])  # hours 2 to 5 empty: 4 buckets
    with pytest.raises(InvalidData) as err:
        load_series(store, "m-1", "power", every=ONE_HOUR, max_gap=3)
    message = str(err.value)
    assert "m-1/power has no reading for 4 buckets of 1h" in message
    assert "from 2026-01-01T02:00:00Z to 2026-01-01T06:00:00Z" in message
    assert "max_gap=3" in message
    # the same range after the gap is fine
    after = load_series(store, "m-1", "power", T0 + 6 * HOUR, every=ONE_HOUR, max_gap=3)
    assert after.values.tolist() == [3.0]


def test_only_whole_buckets_inside_the_range_are_used() -> None:
    store = _store([0.1, 0.9, 1.2, 1.8, 2.5], [1.0, 1.0, 4.0, 6.0, 9.0])
    start = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)  # hour 0 only half inside: left out
    s = load_series(store, "m-1", "power", start, T0 + int(2.6 * HOUR), every=ONE_HOUR)
    assert s.ts_us.tolist() == [T0 + HOUR]  # hour 2 is not complete by the end: left out
    assert s.values.tolist() == [5.0]


def test_no_reading_gives_an_empty_series() -> None:
    store = _store([0], [1.0])
    assert len(load_series(store, "m-2", "power", every=ONE_HOUR)) == 0
    assert len(load_series(store, "m-1", "power", T0 + HOUR, T0 + HOUR, every=ONE_HOUR)) == 0
    assert load_series(store, "m-2", "power", every=ONE_HOUR).end_us == 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"every": timedelta(0)}, "every is"),
        ({"every": 3600}, "expected a timedelta"),
        ({"every": ONE_HOUR, "max_gap": -1}, "max_gap is -1"),
        ({"every": ONE_HOUR, "start": datetime(2026, 1, 1)}, "naive datetime"),
    ],
)
def test_bad_arguments_are_config_errors(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_series(_store([0], [1.0]), "m-1", "power", **kw)  # type: ignore[arg-type]
