"""Daily usage profiles: hourly means from any rate, load shapes, day features, skipped days."""

# ruff: noqa: N806 - X is a feature matrix, as in scikit-learn

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iotml.clustering.profiles import (
    EXTRA_NAMES,
    HOUR_NAMES,
    daily_profiles,
    household_day_profiles,
)
from iotml.errors import ConfigError, InvalidData

WEEKDAY = np.where((np.arange(24) >= 7) & (np.arange(24) < 9), 3.0, 1.0)  # morning peak
WEEKEND = np.where((np.arange(24) >= 12) & (np.arange(24) < 14), 4.0, 1.0)  # midday peak


def _series(step_min: int = 15, weeks: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Readings every ``step_min`` from Monday 2024-01-01: weekday and weekend shapes."""
    t = np.arange(
        np.datetime64("2024-01-01T00:00"), np.datetime64("2024-01-01T00:00") + weeks * 7 * 1440,
        step_min,
    ).astype("datetime64[m]")  # fmt: skip
    hour = (t.astype(np.int64) // 60) % 24
    day = (t.astype("datetime64[D]").astype(np.int64) + 3) % 7
    rng = np.random.default_rng(0)
    load = np.where(day >= 5, WEEKEND[hour], WEEKDAY[hour]) + rng.normal(0, 0.01, t.size)
    return t, load


def test_shapes_and_features_from_a_known_week() -> None:
    t, v = _series()
    p = daily_profiles(t, v)
    assert len(p.days) == 14
    assert not p.skipped
    assert p.shapes.shape == (14, 24)
    assert p.extras.shape == (14, len(EXTRA_NAMES))
    weekend = p.extras[:, 0]
    assert weekend.tolist() == [0.0] * 5 + [1.0] * 2 + [0.0] * 5 + [1.0] * 2
    assert np.allclose(p.shapes.mean(axis=1), 1.0)
    assert np.allclose(p.shapes[0], WEEKDAY / WEEKDAY.mean(), atol=0.02)
    assert np.allclose(p.shapes[5], WEEKEND / WEEKEND.mean(), atol=0.02)
    peak = p.extras[:, 1]
    assert set(peak[weekend == 0]) <= {7.0, 8.0}
    assert set(peak[weekend == 1]) <= {12.0, 13.0}
    assert p.extras[0, 2] == pytest.approx(WEEKDAY.mean() / 3.0, abs=0.02)  # load factor
    assert p.extras[0, 3] == pytest.approx(WEEKDAY.sum(), rel=0.01)  # energy: kW x 1 h


def test_sum_normalisation_and_raw_values() -> None:
    t, v = _series(step_min=60, weeks=1)
    assert np.allclose(daily_profiles(t, v, by="sum").shapes.sum(axis=1), 1.0)
    raw = daily_profiles(t, v, normalise=False).shapes
    assert np.allclose(raw[0], WEEKDAY, atol=0.05)


def test_incomplete_days_are_skipped_with_a_reason() -> None:
    t, v = _series(step_min=60, weeks=1)
    keep = ~((t >= np.datetime64("2024-01-02T03:00")) & (t < np.datetime64("2024-01-02T13:00")))
    keep &= ~((t >= np.datetime64("2024-01-04T05:00")) & (t < np.datetime64("2024-01-04T07:00")))
    keep &= t.astype("datetime64[D]") != np.datetime64("2024-01-05")  # a whole day lost
    v = v.copy()
    v[10] = np.nan  # a dropped reading: hour 10 of Monday has none
    p = daily_profiles(t[keep], v[keep], max_missing=2)
    assert [str(s.day) for s in p.skipped] == ["2024-01-02", "2024-01-05"]
    assert p.skipped[0].reason.startswith("10 of 24 hours have no readings")
    assert p.skipped[1].reason.startswith("24 of 24 hours")
    assert len(p.days) == 5
    thursday = p.shapes[list(p.days.astype(str)).index("2024-01-04")]
    assert np.all(np.isfinite(thursday))  # two missing hours interpolated
    assert np.all(np.isfinite(p.shapes[0]))


def test_days_without_load_are_skipped() -> None:
    t, v = _series(step_min=60, weeks=1)
    v = np.where(t.astype("datetime64[D]") == np.datetime64("2024-01-03"), 0.0, v)
    p = daily_profiles(t, v)
    assert [s.reason.split(":")[0] for s in p.skipped] == ["mean load 0 is not positive"]


def test_feature_matrix_reads_the_peak_hour_circularly() -> None:
    p = daily_profiles(*_series(step_min=60, weeks=1))
    X, names = p.features()
    assert names[:24] == HOUR_NAMES
    assert names[24:] == ("weekend", "peak_hour_sin", "peak_hour_cos", "load_factor", "energy")
    assert X.shape == (7, 29)
    assert X[:, 25] ** 2 + X[:, 26] ** 2 == pytest.approx(np.ones(7))
    assert p.features(("weekend",))[0].shape == (7, 25)
    with pytest.raises(ConfigError, match="colour"):
        p.features(("colour",))


def test_bad_input_is_rejected() -> None:
    with pytest.raises(InvalidData, match="shape"):
        daily_profiles(np.arange(3).astype("datetime64[h]"), [1.0, 2.0])
    with pytest.raises(InvalidData, match="no reading"):
        daily_profiles(np.arange(2).astype("datetime64[h]"), [np.nan, np.inf])
    with pytest.raises(ConfigError):
        daily_profiles(*_series(weeks=1), by="max")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        daily_profiles(*_series(weeks=1), max_missing=24)


def test_household_file(tmp_path: Path) -> None:
    t, v = _series(step_min=60, weeks=1)
    lines = ["Datetime,Global_active_power,Voltage"]
    lines += [f"{str(s).replace('T', ' ')}:00,{x},240" for s, x in zip(t, v, strict=True)]
    path = tmp_path / "household.csv"
    path.write_text("\n".join(lines) + "\n")
    p = household_day_profiles(path)
    assert len(p.days) == 7
    assert p.extras[5, 0] == 1.0
    assert household_day_profiles(path, "Voltage").extras[0, 3] == pytest.approx(240 * 24)
    with pytest.raises(ConfigError, match="Sub_metering_1"):
        household_day_profiles(path, "Sub_metering_1")


def test_household_files_of_both_layouts_with_bad_rows(tmp_path: Path) -> None:
    """The hourly CSV and UCI's original minute file read alike; bad rows are listed, not fatal."""
    hours = np.arange("2007-01-01T00", "2007-01-03T00", dtype="datetime64[h]")
    hourly = ["Datetime,Global_active_power,Voltage"] + [
        f"{str(h).replace('T', ' ')}:00:00,{1.0 + (i % 24 == 19)},240" for i, h in enumerate(hours)
    ]
    hourly[5] = "2007-01-01 04:00:00,not-a-number,240"
    hourly.insert(9, "a line, cut")
    csv_path = tmp_path / "hourly.csv"
    csv_path.write_text("\n".join(hourly) + "\n")
    minute = ["Date;Time;Global_active_power;Voltage"]
    for i, h in enumerate(hours):
        day = h.astype(object)
        for m in (0, 30):
            value = "?" if (i, m) == (3, 30) else f"{1.0 + (i % 24 == 19)}"
            minute.append(f"{day.day}/{day.month}/{day.year};{day.hour:02d}:{m:02d}:00;{value};240")
    txt_path = tmp_path / "household_power_consumption.txt"
    txt_path.write_text("\n".join(minute) + "\n")

    from_csv = household_day_profiles(csv_path)
    from_txt = household_day_profiles(txt_path)
    assert [(b.line, b.reason) for b in from_csv.bad] == [
        (6, "value 'not-a-number' is not a number"),
        (10, "expected 3 fields, got 2"),
    ]
    assert [(b.line, b.reason) for b in from_txt.bad] == [(9, "value '?' is missing")]
    assert len(from_csv.days) == len(from_txt.days) == 2
    np.testing.assert_allclose(from_csv.extras[:, 1], [19.0, 19.0])  # the evening peak
    np.testing.assert_allclose(from_txt.shapes, from_csv.shapes, atol=1e-12)
    (tmp_path / "other.csv").write_text("when,power\n")
    with pytest.raises(InvalidData, match="expected 'Datetime' or 'Date;Time'"):
        household_day_profiles(tmp_path / "other.csv")
