"""UCI household electric power consumption (CC BY 4.0), hourly means, read by path.

The hourly file has a ``Datetime`` column and seven numeric channels
(``Global_active_power`` in kW, reactive power, voltage, intensity, three sub-meters);
gaps were interpolated by its producer, so the step is a fixed hour.

There is no standard split. :func:`household_split` keeps the last 12 months (365 days) as
test, the 4 months (120 days) before them as validation — the ETT proportions — and
everything earlier for training; validation and test start ``lookback`` rows early, as
in :func:`~iotml.datasets.ett_split`.
"""

from __future__ import annotations

__all__ = ["HOUSEHOLD_TARGET", "household_split", "read_household"]

from datetime import timedelta
from pathlib import Path

from iotml.datasets.ett import ETTData, Split, read_timeseries
from iotml.errors import ConfigError, InvalidData

HOUSEHOLD_TARGET = "Global_active_power"
TEST = timedelta(days=365)
VAL = timedelta(days=120)


def read_household(path: str | Path) -> ETTData:
    """Read the hourly household-power CSV (``Datetime`` then numeric channels).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "power.csv"
    >>> _ = p.write_text("Datetime,Global_active_power\\n2006-12-16 17:00:00,4.2\\n"
    ...                  "2006-12-16 18:00:00,3.6\\n")
    >>> data = read_household(p)
    >>> data.channels, data.values[:, 0].tolist(), data.freq
    (('Global_active_power',), [4.2, 3.6], datetime.timedelta(seconds=3600))
    """
    return read_timeseries(path, time_column="Datetime")


def household_split(n_rows: int, freq: timedelta, lookback: int) -> Split:
    """Last 365 days test, the 120 days before validation, the rest training.

    >>> household_split(34589, timedelta(hours=1), 168)
    Split(train=(0, 22949), val=(22781, 25829), test=(25661, 34589))
    """
    if freq <= timedelta(0) or TEST % freq or VAL % freq:
        raise ConfigError(f"freq is {freq!r}; expected a positive divisor of 1 day")
    test, val = n_rows - TEST // freq, n_rows - (TEST + VAL) // freq
    if val <= 0:
        raise InvalidData(f"{n_rows} rows; the split needs more than {(TEST + VAL) // freq}")
    if not 0 < lookback < val:
        raise ConfigError(f"lookback is {lookback!r}; expected 1 to {val - 1}")
    return Split((0, val), (val - lookback, test), (test - lookback, n_rows))
