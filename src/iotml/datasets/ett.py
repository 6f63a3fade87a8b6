"""ETT-format time-series CSVs (Electricity Transformer Temperature, CC BY-ND 4.0), by path.

An ETT-format file has a ``date`` column of timestamps at a fixed sampling rate and any
number of numeric channels after it (``HUFL, HULL, MUFL, MULL, LUFL, LULL, OT`` in the
originals). The sampling rate is read from the timestamps, so ETTh* (hourly), ETTm* (15
minutes) and any other rate load the same way.

The standard split (Zhou et al., Informer, 2021) counts months of 30 days: 12 months of
training, 4 of validation, 4 of test; rows after 20 months are unused. Validation and test
start ``lookback`` rows early, so that their first forecast target is the first row of the
part and the set of target windows does not depend on the lookback.

A row with a bad timestamp or value is not skipped: it raises
:class:`~iotml.errors.InvalidData` naming the file, the line and the problem, because a
silently dropped row would shift every window after it.
"""

from __future__ import annotations

__all__ = ["ETTData", "Split", "ett_split", "read_ett", "read_timeseries"]

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from iotml.datasets._columns import line, numbers, read_cells, reject_first
from iotml.errors import ConfigError, InvalidData, require_extra

if TYPE_CHECKING:
    import pandas as pd

MONTH = timedelta(days=30)


class Split(NamedTuple):
    """Row ranges ``(start, stop)`` (half-open) of the train, validation and test parts."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]


@dataclass(frozen=True)
class ETTData:
    """A multichannel series: ``values[i, c]`` is channel ``channels[c]`` at ``timestamps[i]``."""

    timestamps: npt.NDArray[np.datetime64]
    values: npt.NDArray[np.float64]
    channels: tuple[str, ...]
    freq: timedelta


def read_ett(path: str | Path) -> ETTData:
    """Read an ETT-format CSV: a ``date`` column, then numeric channels.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ETTx.csv"
    >>> _ = p.write_text("date,a,OT\\n2016-07-01 00:00:00,1,2\\n2016-07-01 00:15:00,3,4\\n")
    >>> data = read_ett(p)
    >>> data.channels, data.values.tolist(), data.freq
    (('a', 'OT'), [[1.0, 2.0], [3.0, 4.0]], datetime.timedelta(seconds=900))
    """
    return read_timeseries(path, time_column="date")


def read_timeseries(path: str | Path, time_column: str) -> ETTData:
    """Read a CSV of a ``time_column`` and numeric channels at a fixed sampling rate."""
    path = Path(path)
    raw = read_cells(path, "a time-series CSV")
    if list(raw.columns[:1]) != [time_column] or len(raw.columns) < 2:
        raise InvalidData(
            f"{path}: expected columns {time_column!r} then channels; found {list(raw.columns)}"
        )
    if len(raw) < 2:
        raise InvalidData(f"{path}: {len(raw)} data row(s); need at least 2 to infer the rate")
    stamps = _timestamps(raw[time_column], path)
    channels = tuple(str(c) for c in raw.columns[1:])
    values = np.column_stack([numbers(raw[c], path) for c in channels])
    return ETTData(stamps, values, channels, _freq(stamps, path))


def ett_split(n_rows: int, freq: timedelta, lookback: int) -> Split:
    """The standard 12/4/4-month split of an ETT series sampled every ``freq``.

    >>> ett_split(17420, timedelta(hours=1), 96)
    Split(train=(0, 8640), val=(8544, 11520), test=(11424, 14400))
    >>> ett_split(69680, timedelta(minutes=15), 96).test
    (45984, 57600)
    """
    if freq <= timedelta(0) or MONTH % freq:
        raise ConfigError(f"freq is {freq!r}; expected a positive divisor of 30 days")
    month = MONTH // freq
    if n_rows < 20 * month:
        raise InvalidData(f"{n_rows} rows; the 12/4/4-month split needs {20 * month}")
    if not 0 < lookback < 12 * month:
        raise ConfigError(f"lookback is {lookback!r}; expected 1 to {12 * month - 1}")
    train, val, test = 12 * month, 16 * month, 20 * month
    return Split((0, train), (train - lookback, val), (val - lookback, test))


def _timestamps(column: pd.Series, path: Path) -> npt.NDArray[np.datetime64]:
    pandas = require_extra("pandas", "ml")
    parsed = pandas.to_datetime(column, errors="coerce", format="ISO8601")
    reject_first(column, parsed.isna().to_numpy(), path, "a timestamp")
    stamps: npt.NDArray[np.datetime64] = parsed.to_numpy(dtype="datetime64[ns]")
    return stamps


def _freq(stamps: npt.NDArray[np.datetime64], path: Path) -> timedelta:
    """The sampling rate: every step must equal the first."""
    steps = np.diff(stamps)
    bad = np.flatnonzero((steps != steps[0]) | (steps <= np.timedelta64(0, "ns")))
    if bad.size:
        i = int(bad[0]) + 1
        raise InvalidData(
            f"{path}, line {line(i)}: timestamp {stamps[i]} is {steps[i - 1]} after the previous "
            f"row; expected a fixed positive step of {steps[0]}"
        )
    step: timedelta = steps[0].astype("timedelta64[us]").item()
    return step
