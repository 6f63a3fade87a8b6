"""ETT-format and household-power loaders on small generated files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotml.datasets import ett_split, household_split, read_ett, read_household
from iotml.errors import ConfigError, InvalidData


def _write(path: Path, rows: int, freq: str = "15min", time_column: str = "date") -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            time_column: pd.date_range("2020-01-01", periods=rows, freq=freq).astype(str),
            "load kW": rng.normal(size=rows),
            "temp": rng.normal(size=rows),
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_read_ett_any_channels_and_rate(tmp_path: Path) -> None:
    data = read_ett(_write(tmp_path / "mine.csv", 50))
    assert data.channels == ("load kW", "temp")
    assert data.values.shape == (50, 2)
    assert data.values.dtype == np.float64
    assert data.freq == timedelta(minutes=15)
    assert len(data.timestamps) == 50


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        (3, "2020-01-01 00:15:00,abc,1.0", "line 3: column 'load kW' is 'abc'"),
        (4, "2020-01-01 00:30:00,1.0,", "line 4: column 'temp'"),
        (5, "not a date,1.0,2.0", "line 5: column 'date' is 'not a date'"),
        (5, "2020-01-01 00:50:00,1.0,2.0", "line 5: timestamp"),
    ],
)
def test_malformed_rows_name_file_and_line(
    tmp_path: Path, line: int, replacement: str, message: str
) -> None:
    path = _write(tmp_path / "bad.csv", 10)
    lines = path.read_text().splitlines()
    lines[line - 1] = replacement
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidData, match=message) as info:
        read_ett(path)
    assert str(path) in str(info.value)


def test_wrong_header_and_too_short(tmp_path: Path) -> None:
    with pytest.raises(InvalidData, match="expected columns 'date'"):
        read_ett(_write(tmp_path / "h.csv", 5, time_column="time"))
    with pytest.raises(InvalidData, match="at least 2"):
        read_ett(_write(tmp_path / "s.csv", 1))
    with pytest.raises(InvalidData, match="cannot read"):
        read_ett(tmp_path / "missing.csv")


def test_standard_split_from_the_rate() -> None:
    hourly = ett_split(17420, timedelta(hours=1), 96)
    assert hourly.train == (0, 8640)
    assert hourly.val == (8640 - 96, 11520)
    assert hourly.test == (11520 - 96, 14400)
    quarter = ett_split(69680, timedelta(minutes=15), 336)
    assert quarter.train == (0, 4 * 8640)
    assert quarter.val == (4 * 8640 - 336, 4 * 11520)
    assert quarter.test == (4 * 11520 - 336, 4 * 14400)
    daily = ett_split(600, timedelta(days=1), 7)
    assert daily.test == (480 - 7, 600)


def test_split_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidData, match="needs 14400"):
        ett_split(14399, timedelta(hours=1), 96)
    with pytest.raises(ConfigError, match="lookback"):
        ett_split(14400, timedelta(hours=1), 8640)
    with pytest.raises(ConfigError, match="freq"):
        ett_split(14400, timedelta(minutes=7), 96)


def test_household_reader_and_last_year_test(tmp_path: Path) -> None:
    path = _write(tmp_path / "power.csv", 24 * 600, freq="h", time_column="Datetime")
    data = read_household(path)
    assert data.freq == timedelta(hours=1)
    split = household_split(len(data.values), data.freq, 168)
    assert split.test == (24 * (600 - 365) - 168, 24 * 600)
    assert split.val == (24 * (600 - 485) - 168, 24 * (600 - 365))
    assert split.train == (0, 24 * (600 - 485))
    with pytest.raises(InvalidData, match="needs more"):
        household_split(24 * 400, timedelta(hours=1), 168)
