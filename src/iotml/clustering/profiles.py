"""Usage profiles from meter series: one normalised 24-hour load shape per day, and more.

:func:`daily_profiles` turns readings at any rate into hourly means, lays them out one row
per calendar day (timestamps are read as local wall-clock time) and keeps the days that
are complete enough; short gaps are filled by interpolation within the day, and every day
left out is listed with its reason. Each kept day gets its load shape (the hourly means
divided by the day's mean, so households of any size compare), and

* ``weekend`` — 1.0 on Saturday and Sunday;
* ``peak_hour`` — the hour (0-23) of the highest hourly mean;
* ``load_factor`` — mean over maximum (1 is a flat day, small is peaky);
* ``energy`` — the day's energy, the sum of hourly means times one hour (kWh for kW).

>>> import numpy as np
>>> t = np.arange("2024-01-06T00", "2024-01-08T00", dtype="datetime64[h]")
>>> v = np.where(t.astype(int) % 24 == 19, 3.0, 1.0)          # an evening peak daily
>>> p = daily_profiles(t, v)
>>> p.days.tolist(), p.extras[:, 0].tolist(), p.extras[:, 1].tolist()
([datetime.date(2024, 1, 6), datetime.date(2024, 1, 7)], [1.0, 1.0], [19.0, 19.0])
>>> round(float(p.shapes[0, 19]), 3), round(float(p.extras[0, 3]), 1)
(2.769, 26.0)
"""

from __future__ import annotations

__all__ = ["EXTRA_NAMES", "HOUR_NAMES", "DailyProfiles", "SkippedDay", "daily_profiles",
           "household_day_profiles", "read_household_readings"]  # fmt: skip

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from iotml.clustering.tracks import BadRow
from iotml.errors import ConfigError, InvalidData

FloatArray = npt.NDArray[np.float64]

HOUR_NAMES: tuple[str, ...] = tuple(f"h{h:02d}" for h in range(24))
"""Column names of the load shape: ``h00`` … ``h23``."""

EXTRA_NAMES: tuple[str, ...] = ("weekend", "peak_hour", "load_factor", "energy")
"""Column names of :attr:`DailyProfiles.extras`."""


@dataclass(frozen=True)
class SkippedDay:
    """A calendar day left out of the profiles, and why."""

    day: np.datetime64
    reason: str


@dataclass(frozen=True)
class DailyProfiles:
    """One row per kept day: ``shapes[i]`` (24 hourly values) and ``extras[i]`` of ``days[i]``."""

    days: npt.NDArray[np.datetime64]
    shapes: FloatArray
    extras: FloatArray
    skipped: tuple[SkippedDay, ...]
    bad: tuple[BadRow, ...] = ()
    """Rows of the source file that could not be read (file, line, reason)."""

    def features(
        self, include: tuple[str, ...] = ("weekend", "peak_hour", "load_factor", "energy")
    ) -> tuple[FloatArray, tuple[str, ...]]:
        """The clustering matrix: the load shape, then the chosen extras.

        ``peak_hour`` becomes ``peak_hour_sin``/``peak_hour_cos`` (11 pm is near midnight).
        """
        unknown = [n for n in include if n not in EXTRA_NAMES]
        if unknown:
            raise ConfigError(f"include names {unknown}; expected some of {EXTRA_NAMES}")
        columns, names = [self.shapes], list(HOUR_NAMES)
        for name in include:
            col = self.extras[:, EXTRA_NAMES.index(name)]
            if name == "peak_hour":
                angle = col * (2 * np.pi / 24.0)
                columns += [np.sin(angle)[:, None], np.cos(angle)[:, None]]
                names += ["peak_hour_sin", "peak_hour_cos"]
            else:
                columns.append(col[:, None])
                names.append(name)
        return np.hstack(columns), tuple(names)


def daily_profiles(
    timestamps: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    normalise: bool = True,
    by: Literal["mean", "sum"] = "mean",
    max_missing: int = 2,
) -> DailyProfiles:
    """Hourly means per day, normalised load shapes and day features (see the module).

    Parameters
    ----------
    timestamps, values : array-like
        Readings at any rate; non-finite values are dropped.
    normalise : bool
        Divide each day by its mean (``by="mean"``) or sum (``by="sum"``).
    max_missing : int
        A day with more hours lacking readings is skipped; fewer are interpolated.
    """
    if by not in ("mean", "sum"):
        raise ConfigError(f"by is {by!r}; expected 'mean' or 'sum'")
    if not 0 <= max_missing < 24:
        raise ConfigError(f"max_missing is {max_missing!r}; expected 0 to 23 hours")
    stamps, readings = _readings(timestamps, values)
    days, grid = _hourly_grid(stamps, readings)
    kept: list[int] = []
    skipped: list[SkippedDay] = []
    for i, row in enumerate(grid):
        reason = _fill(row, max_missing)
        if reason:
            skipped.append(SkippedDay(days[i], reason))
        else:
            kept.append(i)
    hourly = grid[kept]
    extras = _extras(days[kept], hourly)
    scale = hourly.mean(axis=1) if by == "mean" else hourly.sum(axis=1)
    shapes = hourly / scale[:, None] if normalise else hourly
    return DailyProfiles(days[kept], shapes, extras, tuple(skipped))


def household_day_profiles(
    path: str | Path,
    channel: str = "Global_active_power",
    *,
    normalise: bool = True,
    by: Literal["mean", "sum"] = "mean",
    max_missing: int = 2,
) -> DailyProfiles:
    """:func:`daily_profiles` of one channel of a household-power file, bad rows listed.

    See :func:`read_household_readings` for the layouts read; the rows it could not read
    are in the result's ``bad``.
    """
    stamps, values, bad = read_household_readings(path, channel)
    if not len(stamps):
        raise InvalidData(f"{path}: no readable row of {channel!r} ({len(bad)} malformed)")
    found = daily_profiles(stamps, values, normalise=normalise, by=by, max_missing=max_missing)
    return DailyProfiles(found.days, found.shapes, found.extras, found.skipped, tuple(bad))


def read_household_readings(
    path: str | Path, channel: str = "Global_active_power"
) -> tuple[npt.NDArray[np.datetime64], FloatArray, list[BadRow]]:
    """Times and one channel of a household-power file, and the rows that were unreadable.

    Two layouts are read, told apart by the header:

    * the hourly CSV (``Datetime,Global_active_power,...``, ``YYYY-MM-DD HH:MM:SS``);
    * UCI's original minute file (``Date;Time;Global_active_power;...``, ``D/M/YYYY`` and
      ``HH:MM:SS``, ``?`` for a missing measurement).

    A row whose time or value cannot be read — a wrong field count, a time that is not a
    time, a value that is missing, not a number or not finite — is listed (file, 1-based
    line, reason) and skipped; its hour is then missing from its day, which
    :func:`daily_profiles` interpolates or skips. Times are the wall clock as written.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "household_power_consumption.txt"
    >>> _ = p.write_text("Date;Time;Global_active_power;Voltage\\n"
    ...                  "16/12/2006;17:24:00;4.216;234.84\\n16/12/2006;17:25:00;?;233.63\\n")
    >>> t, v, bad = read_household_readings(p)
    >>> t.tolist(), v.tolist(), [(b.line, b.reason) for b in bad]
    ([datetime.datetime(2006, 12, 16, 17, 24)], [4.216], [(3, "value '?' is missing")])

    Raises
    ------
    InvalidData
        If the file cannot be read or its header is neither layout's.
    ConfigError
        If the header has no column ``channel``.
    """
    source = Path(path)
    try:
        with source.open(newline="", encoding="utf-8") as fh:
            first = fh.readline()
            fh.seek(0)
            rows = list(csv.reader(fh, delimiter=";" if ";" in first else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InvalidData(f"cannot read household file {str(source)!r}: {err}") from err
    header = [h.strip() for h in rows[0]] if rows else []
    if header[:1] == ["Datetime"]:
        times = 1
    elif header[:2] == ["Date", "Time"]:
        times = 2
    else:
        raise InvalidData(
            f"{source}: header is {header}; expected 'Datetime' or 'Date;Time', then channels"
        )
    if channel not in header[times:]:
        raise ConfigError(f"channel is {channel!r}; {source} holds {header[times:]}")
    column, stamps, values, bad = header.index(channel), [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            stamp, value = _household_row(row, len(header), times, column)
        except ValueError as err:
            bad.append(BadRow(str(source), line, str(err)))
            continue
        stamps.append(stamp)
        values.append(value)
    return np.array(stamps, dtype="datetime64[s]"), np.array(values, dtype=np.float64), bad


def _household_row(row: list[str], width: int, times: int, column: int) -> tuple[datetime, float]:
    if len(row) != width:
        raise ValueError(f"expected {width} fields, got {len(row)}")
    text = row[0].strip() if times == 1 else f"{row[0].strip()} {row[1].strip()}"
    try:
        if times == 1:
            stamp = datetime.fromisoformat(text)
        else:
            stamp = datetime.strptime(text, "%d/%m/%Y %H:%M:%S")
    except ValueError:
        wanted = "YYYY-MM-DD HH:MM:SS" if times == 1 else "D/M/YYYY;HH:MM:SS"
        raise ValueError(f"time {text!r} is not {wanted!r}") from None
    raw = row[column].strip()
    if raw in ("", "?"):
        raise ValueError(f"value {raw!r} is missing")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"value {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"value {raw!r} is not finite")
    return stamp.replace(tzinfo=None), value


def _readings(
    timestamps: npt.ArrayLike, values: npt.ArrayLike
) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    try:
        stamps = np.asarray(timestamps, dtype="datetime64[ns]")
        readings = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidData(f"timestamps/values: {err}; expected datetimes and numbers") from err
    if stamps.ndim != 1 or stamps.shape != readings.shape:
        raise InvalidData(
            f"timestamps have shape {stamps.shape}, values {readings.shape}; expected equal 1-D"
        )
    ok = ~np.isnat(stamps) & np.isfinite(readings)
    if not ok.any():
        raise InvalidData("no reading has both a timestamp and a finite value")
    return stamps[ok], readings[ok]


def _hourly_grid(
    stamps: npt.NDArray[np.datetime64], readings: FloatArray
) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    """Mean per clock hour, laid out (every day from first to last, 24 hours); NaN = none."""
    hours, inverse = np.unique(stamps.astype("datetime64[h]"), return_inverse=True)
    means = np.bincount(inverse, readings) / np.bincount(inverse)
    day_of = hours.astype("datetime64[D]")
    first = day_of[0]
    days = np.arange(first, day_of[-1] + np.timedelta64(1, "D"))
    grid = np.full((days.size, 24), np.nan)
    row = (day_of - first).astype(np.int64)
    grid[row, (hours - day_of).astype(np.int64)] = means
    return days, grid


def _fill(row: FloatArray, max_missing: int) -> str:
    """Interpolate a few missing hours in place; the reason to skip the day, or ''."""
    present = np.isfinite(row)
    missing = 24 - int(present.sum())
    if missing > max_missing:
        return f"{missing} of 24 hours have no readings (at most {max_missing} allowed)"
    if missing:
        hours = np.arange(24)
        row[~present] = np.interp(hours[~present], hours[present], row[present])
    if row.mean() <= 0:
        return f"mean load {row.mean():g} is not positive: no shape to normalise"
    return ""


def _extras(days: npt.NDArray[np.datetime64], hourly: FloatArray) -> FloatArray:
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return np.column_stack(
        [
            (weekday >= 5).astype(np.float64),
            hourly.argmax(axis=1).astype(np.float64),
            hourly.mean(axis=1) / hourly.max(axis=1),
            hourly.sum(axis=1),
        ]
    ).reshape(len(days), len(EXTRA_NAMES))
