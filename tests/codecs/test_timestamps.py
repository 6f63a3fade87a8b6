"""Timestamp detection and parsing shared by the flat-JSON and tabular codecs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotml.codecs.timestamps import (
    epoch_to_us,
    epoch_unit,
    parse_text,
    parse_times,
    validate_tz,
)
from iotml.errors import ConfigError

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def us(dt: datetime) -> int:
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("magnitude", "unit"),
    [(0, "s"), (1.7e9, "s"), (99_999_999_999, "s"), (1e11, "ms"), (1.7e12, "ms"),
     (1e14, "us"), (1.7e15, "us"), (1e17, "ns"), (1.7e18, "ns")],
)  # fmt: skip
def test_epoch_unit_by_magnitude(magnitude: float, unit: str) -> None:
    assert epoch_unit(magnitude) == unit


def test_epoch_to_us_integers_are_exact_in_every_unit() -> None:
    raw = np.array(
        [1_767_225_600, 1_767_225_600_123, 1_767_225_600_123_456, 1_767_225_600_123_456_789]
    )
    assert epoch_to_us(raw).tolist() == [T0, T0 + 123_000, T0 + 123_456, T0 + 123_456]


def test_epoch_to_us_floats_round_to_the_microsecond() -> None:
    assert epoch_to_us(np.array([1_767_225_600.25, 1_767_225_600_000.0015])).tolist() == [
        T0 + 250_000,
        T0 + 2,
    ]


def test_epoch_to_us_saturates_instead_of_wrapping() -> None:
    out = epoch_to_us(np.array([10**10, -(10**10)]), unit="ms") // 1  # in range
    assert out.tolist() == [10**13, -(10**13)]
    huge = epoch_to_us(np.array([9 * 10**18]), unit="s")
    assert huge[0] > 10**17  # saturated, still far in the future, never negative
    assert epoch_to_us(np.array([1e300, -1e300])).tolist()[0] > 0


def test_epoch_to_us_with_a_forced_unit() -> None:
    assert epoch_to_us(np.array([5, 5]), unit="ms").tolist() == [5_000, 5_000]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01 00:00:00Z", T0),
        ("2026-01-01T00:00:00.5Z", T0 + 500_000),
        ("2026-01-01T00:00:00,25Z", T0 + 250_000),
        ("2026-01-01T00:00:00.123456789Z", T0 + 123_456),
        ("2026-01-01T01:00:00+01:00", T0),
        ("2026-01-01T01:30:00+0130", T0),
        ("2026-01-01T02:00:00+02", T0),
        ("2025-12-31T19:00:00-05:00", T0),
        ("2026-01-01 00:00:00 UTC", T0),
        ("2026-01-01T00:00Z", T0),
        ("2026-01-01Z", T0),
        ("  2026-01-01T00:00:00z ", T0),
    ],
)
def test_parse_text_reads_iso_8601_with_offsets(text: str, expected: int) -> None:
    parsed = parse_text(pa.array([text]), tz=None)
    assert parsed.ok.tolist() == [True]
    assert parsed.ts_us.tolist() == [expected]


@pytest.mark.parametrize(
    "text",
    ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T25:00:00Z", "soon", "", "2026"],
)
def test_parse_text_refuses_impossible_or_foreign_text(text: str) -> None:
    parsed = parse_text(pa.array([text, "2026-01-01T00:00:00Z"]), tz="UTC")
    assert parsed.ok.tolist() == [False, True]
    assert parsed.naive.tolist()[0] is False


def test_naive_text_is_refused_without_a_zone_and_flagged() -> None:
    parsed = parse_text(pa.array(["2026-01-01T00:00:00", "2026-01-01T00:00:00Z"]), tz=None)
    assert parsed.ok.tolist() == [False, True]
    assert parsed.naive.tolist() == [True, False]


def test_naive_text_is_local_time_in_tz() -> None:
    parsed = parse_text(
        pa.array(["2026-07-01T12:00:00", "2026-01-01T12:00:00"]), tz="Europe/Berlin"
    )
    summer = us(datetime(2026, 7, 1, 10, tzinfo=UTC))
    winter = us(datetime(2026, 1, 1, 11, tzinfo=UTC))
    assert parsed.ts_us.tolist() == [summer, winter]
    assert parsed.description == "ISO-8601 without offset, interpreted as Europe/Berlin"


def test_mixed_offsets_are_described() -> None:
    parsed = parse_text(pa.array(["2026-01-01T00:00:00", "2026-01-01T00:00:00Z"]), tz="UTC")
    assert parsed.ok.all()
    assert parsed.description == ("ISO-8601 1 with UTC offset and 1 without (interpreted as UTC)")


def test_dst_ambiguity_is_read_early_and_reported() -> None:
    # 02:30 happens twice in Berlin on 2022-10-30; the earlier one is 00:30 UTC.
    parsed = parse_times(pa.array(["2022-10-30 02:30:00"]), tz="Europe/Berlin")
    assert parsed.ts_us.tolist() == [us(datetime(2022, 10, 30, 0, 30, tzinfo=UTC))]
    assert "1 local time(s) in a DST change" in parsed.description


def test_parse_times_detects_epoch_milliseconds_in_text() -> None:
    parsed = parse_times(pa.array(["1767225600000", "1767225600500", "", "later"]), tz="UTC")
    assert parsed.description == "epoch milliseconds"
    assert parsed.ok.tolist() == [True, True, False, False]
    assert parsed.ts_us.tolist()[:2] == [T0, T0 + 500_000]


@pytest.mark.parametrize(
    ("values", "word"),
    [([1.7672256e9], "seconds"), ([1767225600000], "milliseconds"),
     ([1767225600000000], "microseconds"), ([1767225600000000000], "nanoseconds")],
)  # fmt: skip
def test_parse_times_names_the_epoch_unit_of_numeric_columns(
    values: list[float], word: str
) -> None:
    parsed = parse_times(pa.array(values), tz="UTC")
    assert parsed.description == f"epoch {word}"
    assert parsed.ts_us.tolist() == [T0]


def test_parse_times_masks_nulls_and_nan_in_numeric_columns() -> None:
    parsed = parse_times(pa.array([1.7672256e9, None, float("nan")]), tz="UTC")
    assert parsed.ok.tolist() == [True, False, False]


def test_parse_times_reads_ton_iot_dates_with_times() -> None:
    parsed = parse_times(pa.array(["25-Apr-19 19:19:40", "25-Apr-19  8:59:02 "]), tz="UTC")
    assert parsed.ts_us.tolist() == [
        us(datetime(2019, 4, 25, 19, 19, 40, tzinfo=UTC)),
        us(datetime(2019, 4, 25, 8, 59, 2, tzinfo=UTC)),
    ]
    assert parsed.description == (
        "dates as '%d-%b-%y' with a time of day, without offset, interpreted as UTC"
    )


def test_parse_times_picks_the_date_order_that_fits() -> None:
    day_first = parse_times(pa.array(["13/01/2020 10:00", "01/02/2020 10:00"]), tz="UTC")
    assert "'%d/%m/%Y'" in day_first.description
    assert day_first.ts_us[1] == us(datetime(2020, 2, 1, 10, tzinfo=UTC))
    month_first = parse_times(pa.array(["01/13/2020 10:00", "01/02/2020 10:00"]), tz="UTC")
    assert "'%m/%d/%Y'" in month_first.description
    assert month_first.ts_us[1] == us(datetime(2020, 1, 2, 10, tzinfo=UTC))


def test_parse_times_reports_an_ambiguous_date_order() -> None:
    parsed = parse_times(pa.array(["03/04/2020", "05/06/2020"]), tz="UTC")
    assert parsed.ts_us[0] == us(datetime(2020, 4, 3, tzinfo=UTC))
    assert "day/month order ambiguous" in parsed.description


def test_parse_times_of_typed_timestamps() -> None:
    aware = pa.array([T0 // 1000], pa.timestamp("ms", tz="Asia/Tokyo"))
    assert parse_times(aware, tz="Europe/Berlin").ts_us.tolist() == [T0]
    naive = pa.array([T0], pa.timestamp("us"))
    parsed = parse_times(naive, tz="Europe/Berlin")
    assert parsed.ts_us.tolist() == [T0 - 3_600_000_000]
    assert parsed.description == "timestamps without time zone, interpreted as Europe/Berlin"
    dates = parse_times(pa.array([20454], pa.date32()), tz="UTC")
    assert dates.ts_us.tolist() == [T0]


def test_parse_times_of_an_unusable_type() -> None:
    parsed = parse_times(pa.array([[1]]), tz="UTC")
    assert not parsed.ok.any()
    assert "is not a timestamp" in parsed.description


def test_validate_tz() -> None:
    validate_tz("America/New_York")
    with pytest.raises(ConfigError, match="'Mars/Olympus'"):
        validate_tz("Mars/Olympus")


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
    separator=st.sampled_from(["T", " "]),
)
def test_iso_text_round_trips_through_any_offset(
    moment: datetime, offset_minutes: int, separator: str
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    text = moment.astimezone(zone).isoformat(sep=separator, timespec="microseconds")
    fast = parse_text(pa.array([text]), tz=None)  # Arrow's own ISO cast
    general = parse_text(pa.array([text, "not a time"]), tz=None)  # the per-part parser
    assert fast.ok.tolist() == [True], text
    assert fast.ts_us.tolist() == [us(moment)], text
    assert general.ok.tolist() == [True, False], text
    assert general.ts_us.tolist()[0] == us(moment), text
