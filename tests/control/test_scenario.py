"""Scenarios: synthetic and file weather, schedules, weeks and the train/held-out split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotml.control.scenario import (
    Comfort,
    Occupancy,
    Tariff,
    build_scenario,
    make_weeks,
    read_weather_csv,
    split_weeks,
    synthetic_weather,
)
from iotml.errors import ConfigError, InvalidData


def test_synthetic_weather_is_seeded_with_a_winter_daily_cycle() -> None:
    a = synthetic_weather("2024-01-01", 56, seed=3)
    assert np.array_equal(a.t_out, synthetic_weather("2024-01-01", 56, seed=3).t_out)
    assert not np.array_equal(a.t_out, synthetic_weather("2024-01-01", 56, seed=4).t_out)
    assert len(a.t_out) == 56 * 96
    by_hour = a.t_out.reshape(56, 24, 4).mean(axis=(0, 2))
    assert abs(a.t_out.mean() - 3.0) < 2.5
    assert int(np.argmax(by_hour)) in (14, 15, 16)
    assert int(np.argmin(by_hour)) in (2, 3, 4)
    assert 6.0 < by_hour.max() - by_hour.min() < 10.0
    assert np.abs(np.diff(a.t_out)).max() < 2.0  # no jumps between 15-minute steps


def test_schedules_follow_the_clock() -> None:
    monday = np.datetime64("2024-01-01T00:00") + np.arange(96) * np.timedelta64(15, "m")
    saturday = monday + np.timedelta64(5, "D")
    home = Occupancy().at(monday)
    assert home[7 * 4]
    assert home[9 * 4 - 1]
    assert not home[9 * 4]
    assert home[22 * 4]
    assert not home[23 * 4]
    assert Occupancy().at(saturday).sum() == 15 * 4
    price = Tariff().at(monday)
    assert price[17 * 4] == 0.35
    assert price[21 * 4] == 0.15
    assert price[3 * 4] == 0.15
    custom = Occupancy(weekday=((0.0, 24.0),)).at(monday)
    assert custom.all()


def test_build_scenario_sets_band_by_occupancy() -> None:
    s = build_scenario("2024-01-01", np.zeros(96), comfort=Comfort((20.0, 23.0), (12.0, 30.0)))
    assert s.comfort_low[8 * 4] == 20.0
    assert s.comfort_high[8 * 4] == 23.0
    assert s.comfort_low[12 * 4] == 12.0
    assert s.comfort_high[12 * 4] == 30.0
    with pytest.raises(ConfigError, match="low < high"):
        Comfort(occupied=(24.0, 21.0))
    with pytest.raises(ValueError, match="read-only"):
        s.t_out[0] = 5.0


def test_window_is_a_fixed_length_forecast_padded_at_the_end() -> None:
    week = make_weeks(1, seed=0)[0]
    w = week.window(10, 2)
    assert w.steps == 8
    assert w.start == week.start + np.timedelta64(10 * 900, "s")
    np.testing.assert_array_equal(w.t_out, week.t_out[10:18])
    tail = week.window(week.steps - 2, 1)
    np.testing.assert_array_equal(tail.t_out, week.t_out[[-2, -1, -1, -1]])
    with pytest.raises(ConfigError, match="window start"):
        week.window(week.steps, 1)


def test_split_weeks_never_shares_a_week() -> None:
    weeks = make_weeks(9, seed=1)
    train, test = split_weeks(weeks, test_every=4)
    assert [weeks.index(w) for w in test] == [3, 7]
    assert not {id(w) for w in train} & {id(w) for w in test}
    assert len(train) + len(test) == 9
    train, test = split_weeks(weeks, test=[0, 8])
    assert test == [weeks[0], weeks[8]]
    assert weeks[0] not in train
    with pytest.raises(ConfigError, match="held-out week"):
        split_weeks(weeks, test=[9])
    assert weeks[1].start - weeks[0].start == np.timedelta64(7, "D")


def test_weather_csv_reports_bad_rows_and_resamples(tmp_path: Path) -> None:
    path = tmp_path / "weather.csv"
    rows = ["time,temperature,station"]
    for hour in range(24 * 15):
        day, h = divmod(hour, 24)
        rows.append(f"2024-01-{day + 1:02d}T{h:02d}:00:00Z,{float(hour % 24)},x")
    rows.insert(5, "not-a-time,1.0,x")
    rows.insert(6, "2024-01-01T03:30:00,abc,x")
    rows.insert(7, "2024-01-01T03:45:00,1.0")
    rows.insert(8, "2024-01-01T04:00:00+01:00,99.0,x")
    rows.append("2024-01-01T05:00:00,7.0,x")
    path.write_text("\n".join(rows) + "\n")
    weather = read_weather_csv(path)
    reasons = "\n".join(weather.problems)
    assert f"{path}:6: time 'not-a-time' is not ISO 8601" in reasons
    assert f"{path}:7: temperature 'abc' is not a number" in reasons
    assert f"{path}:8: 2 fields; expected 3" in reasons
    assert f"{path}:9: temperature 99.0 outside" in reasons
    assert "2024-01-01T05:00:00 repeated" in reasons
    assert len(weather.problems) == 5
    assert weather.step_s == 900
    assert str(weather.start) == "2024-01-01T00:00:00"
    # Hourly values resampled linearly to 15 minutes.
    np.testing.assert_allclose(weather.t_out[:5], [0.0, 0.25, 0.5, 0.75, 1.0])
    weeks = make_weeks(2, seed=0, weather=weather)
    assert len(weeks) == 2
    assert weeks[1].t_out[0] == weather.t_out[7 * 96]
    with pytest.raises(ConfigError, match="2 whole weeks; 3"):
        make_weeks(3, seed=0, weather=weather)


def test_weather_csv_gaps_and_unusable_files(tmp_path: Path) -> None:
    path = tmp_path / "gappy.csv"
    path.write_text("t,temp\n2024-01-01T00:00,1\n2024-01-01T10:00,11\n")
    weather = read_weather_csv(path, time_column="t", temperature_column="temp")
    assert weather.problems == (f"{path}: 10.0 h gap after 2024-01-01T00:00:00",)
    assert weather.t_out[4] == pytest.approx(2.0)
    with pytest.raises(InvalidData, match="expected columns 'time'"):
        read_weather_csv(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("time,temperature\n2024-01-01T00:00,1\n")
    with pytest.raises(InvalidData, match="1 usable rows"):
        read_weather_csv(empty)
