"""Standardisation with training statistics and sliding windows over a split.

The scaler is fitted on the training rows only, so nothing about validation or test data
(their level, their spread) reaches a model. Windows are every ``(lookback, horizon)`` pair
inside a part, stride 1: a part of ``n`` rows gives ``n - lookback - horizon + 1`` windows,
all of them — none is dropped to fill a batch.

Windows are read-only views into the series (no copy), shaped ``(n_windows, length,
channels)``; models that need contiguous data copy one chunk at a time.
"""

from __future__ import annotations

__all__ = ["Scaler", "Windows", "phases", "split_windows", "windows"]

from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple, Self

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from iotml.errors import ConfigError, InvalidData

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class Scaler:
    """Per-channel standardisation ``(x - mean_) / scale_`` with statistics from ``fit``.

    >>> s = Scaler().fit(np.array([[1.0, 10.0], [3.0, 10.0]]))
    >>> s.mean_.tolist(), s.scale_.tolist()
    ([2.0, 10.0], [1.0, 1.0])
    >>> s.transform(np.array([[5.0, 12.0]])).tolist()
    [[3.0, 2.0]]
    """

    mean_: Array | None = None
    scale_: Array | None = None

    def fit(self, train: Array) -> Self:
        """Learn each channel's mean and standard deviation (a constant channel scales by 1)."""
        if train.ndim != 2 or len(train) < 2:
            raise InvalidData(f"train has shape {train.shape}; expected (rows >= 2, channels)")
        std = train.std(axis=0)
        self.mean_, self.scale_ = train.mean(axis=0), np.where(std > 0, std, 1.0)
        return self

    def transform(self, values: Array) -> Array:
        """Standardise ``values`` (rows, channels) with the fitted statistics."""
        if self.mean_ is None or self.scale_ is None:
            raise ConfigError("Scaler is not fitted; call fit(train) first")
        return (values - self.mean_) / self.scale_


class Windows(NamedTuple):
    """Inputs ``X`` (n, lookback, channels) and targets ``Y`` (n, horizon, channels)."""

    X: Array
    Y: Array


def windows(series: Array, lookback: int, horizon: int) -> Windows:
    """Every window of ``series`` (rows, channels), stride 1, as read-only views.

    >>> w = windows(np.arange(6.0).reshape(6, 1), lookback=3, horizon=2)
    >>> w.X.shape, w.Y.shape, w.X[1, :, 0].tolist(), w.Y[1, :, 0].tolist()
    ((2, 3, 1), (2, 2, 1), [1.0, 2.0, 3.0], [4.0, 5.0])
    """
    if lookback < 1 or horizon < 1:
        raise ConfigError(f"lookback={lookback!r}, horizon={horizon!r}; expected both >= 1")
    if series.ndim != 2 or len(series) < lookback + horizon:
        raise InvalidData(
            f"series has shape {series.shape}; expected (rows >= {lookback + horizon}, channels)"
        )
    view = sliding_window_view(series, lookback + horizon, axis=0).transpose(0, 2, 1)
    return Windows(view[:, :lookback], view[:, lookback:])


def split_windows(series: Array, part: tuple[int, int], lookback: int, horizon: int) -> Windows:
    """The windows lying wholly inside rows ``part = (start, stop)`` of ``series``."""
    start, stop = part
    return windows(series[start:stop], lookback, horizon)


def phases(timestamps: npt.NDArray[np.datetime64], freq: timedelta, period: int) -> IntArray:
    """Position of each timestamp in a cycle of ``period`` rows of ``freq`` (e.g. time of day).

    Counted from midnight UTC of 1970-01-01, so a daily cycle's phase 0 is midnight.

    >>> ts = np.array(["2024-01-01T00:00", "2024-01-01T01:00", "2024-01-02T23:00"],
    ...               dtype="datetime64[m]")
    >>> phases(ts, timedelta(hours=1), 24).tolist()
    [0, 1, 23]
    """
    step = int(freq.total_seconds())
    if step <= 0 or period < 1:
        raise ConfigError(f"freq={freq!r}, period={period!r}; expected both positive")
    seconds = timestamps.astype("datetime64[s]").astype(np.int64)
    out: IntArray = (seconds // step) % period
    return out
