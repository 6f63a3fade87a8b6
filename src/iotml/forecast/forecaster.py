"""The :class:`Forecaster` contract: ``fit(history)``, ``predict(horizon)`` -> point + intervals.

A :class:`Forecaster` wraps one window model (:class:`~iotml.forecast.RidgeForecaster`,
:class:`~iotml.forecast.SeasonalNaive` or :class:`~iotml.forecast.Persistence`) and a
:class:`~iotml.forecast.SplitConformal` calibration per interval level, for one series or
many channels at once. ``fit`` cuts the history in time order into three parts
(:data:`SPLIT_FRACTIONS`):

* **train**, the first 60 % of the rows: the per-channel standardisation statistics and the
  window model's weights come from these rows only;
* **validation**, the next 20 %: the ridge penalty is chosen on its windows (the naive
  models have nothing to choose and ignore it);
* **calibration**, the last 20 %: the fitted model forecasts its windows and the absolute
  errors set the interval widths, per lead time and channel.

Validation and calibration windows start ``lookback`` rows before their part, so every
target row of a window lies in that part and no part is scored on rows a model learnt from.
Intervals are computed in standardised units and mapped back with the training statistics.
"""

from __future__ import annotations

__all__ = ["MODELS", "SPLIT_FRACTIONS", "Forecast", "Forecaster"]

from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData
from iotml.forecast.baselines import Persistence, RidgeForecaster, SeasonalNaive
from iotml.forecast.intervals import SplitConformal
from iotml.forecast.windows import Scaler, Windows, windows

Array = npt.NDArray[np.float64]
MODELS = ("persistence", "ridge", "seasonal")
#: Fractions of the fit history used for training, validation and calibration, in time order.
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


class _WindowModel(Protocol):
    def predict(self, X: Array) -> Array: ...  # noqa: N803 - window array, as in sklearn


@dataclass(frozen=True)
class Forecast:
    """A forecast in the history's units: ``point`` (horizon, channels) and its intervals.

    ``lower[level]`` and ``upper[level]`` bound the central interval that should hold the
    truth with probability ``level`` (e.g. 0.8), each shaped like ``point``.
    """

    point: Array
    lower: dict[float, Array]
    upper: dict[float, Array]


class Forecaster:
    """Forecast ``horizon`` steps from the last ``lookback`` rows, with conformal intervals.

    Parameters
    ----------
    model
        ``"ridge"`` (channel-independent, last-value normalised, penalty chosen on
        validation), ``"seasonal"`` (repeat the last ``period`` rows) or ``"persistence"``.
    lookback, horizon
        Rows of history read per forecast and steps forecast.
    levels
        Nominal coverages of the intervals, each strictly between 0 and 1.
    period
        Season length in rows for ``"seasonal"``; it must not exceed ``lookback``.

    >>> t = np.arange(600.0)
    >>> history = np.sin(2 * np.pi * t / 24) + np.random.default_rng(0).normal(0, 0.1, 600)
    >>> f = Forecaster("seasonal", lookback=24, horizon=6, levels=(0.9,)).fit(history)
    >>> out = f.predict()
    >>> out.point.shape, out.lower[0.9].shape, bool(np.all(out.lower[0.9] < out.upper[0.9]))
    ((6, 1), (6, 1), True)
    """

    def __init__(
        self,
        model: str = "ridge",
        lookback: int = 96,
        horizon: int = 24,
        levels: tuple[float, ...] = (0.8, 0.95),
        period: int = 24,
    ) -> None:
        self.model = model
        self.lookback = lookback
        self.horizon = horizon
        self.levels = levels
        self.period = period

    def fit(self, history: Array) -> Self:
        """Standardise, fit the window model and calibrate the intervals on ``history``.

        ``history`` is ``(time, channels)`` or 1-D (one channel), oldest row first.
        """
        self._check_params()
        values = _as_rows(history, "history")
        train, val, calib = self._parts(len(values))
        self.scaler_ = Scaler().fit(values[slice(*train)])
        series = self.scaler_.transform(values)
        self.model_ = self._fit_model(self._windows(series, train), self._windows(series, val))
        held_out = self._windows(series, calib)
        predicted = self.model_.predict(held_out.X)
        self.conformal_ = {
            level: SplitConformal(alpha=1.0 - level).fit(held_out.Y, predicted)
            for level in self.levels
        }
        self.last_ = values[-self.lookback :].copy()
        self.n_channels_ = values.shape[1]
        return self

    def predict(self, horizon: int | None = None, history: Array | None = None) -> Forecast:
        """Forecast the ``horizon`` (default: the fitted one) rows after ``history``.

        Only the last ``lookback`` rows of ``history`` are read; by default, those of the
        fit history.
        """
        if not hasattr(self, "model_"):
            raise ConfigError("Forecaster is not fitted; call fit(history) first")
        steps = self.horizon if horizon is None else horizon
        if not _is_int(steps) or not 1 <= steps <= self.horizon:
            raise ConfigError(f"horizon is {horizon!r}; expected 1 to {self.horizon} (as fitted)")
        rows = self.last_ if history is None else self._recent(history)
        window = self.scaler_.transform(rows)[None]
        point = self.model_.predict(window)[0, :steps]
        lower, upper = {}, {}
        for level, conformal in self.conformal_.items():
            low, high = conformal.interval(point)
            lower[level], upper[level] = self._unscale(low), self._unscale(high)
        return Forecast(self._unscale(point), lower, upper)

    def _check_params(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"model is {self.model!r}; expected one of {MODELS}")
        for name in ("lookback", "horizon", "period"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} is {value!r}; expected an integer >= 1")
        if self.model == "seasonal" and self.period > self.lookback:
            raise ConfigError(
                f"period is {self.period!r}; expected at most lookback={self.lookback}"
            )
        levels = self.levels
        if not levels or not all(isinstance(x, float | int) and 0 < x < 1 for x in levels):
            raise ConfigError(f"levels is {levels!r}; expected coverages strictly in (0, 1)")

    def _parts(self, rows: int) -> tuple[tuple[int, int], ...]:
        """Row ranges of train, validation and calibration; each must hold a window."""
        parts = _split(rows)
        if not self._holds_windows(parts):
            minimum = rows + 1
            while not self._holds_windows(_split(minimum)):
                minimum += 1
            raise InvalidData(
                f"history has {rows} rows; expected at least {minimum} for "
                f"lookback={self.lookback}, horizon={self.horizon}"
            )
        return parts

    def _holds_windows(self, parts: tuple[tuple[int, int], ...]) -> bool:
        (_, train_stop), *held_out = parts
        enough = min(stop - start for start, stop in held_out) >= self.horizon
        return enough and train_stop >= self.lookback + self.horizon

    def _windows(self, series: Array, part: tuple[int, int]) -> Windows:
        """The windows whose targets lie in ``part``, reading history from before it."""
        start, stop = part
        return windows(series[max(start - self.lookback, 0) : stop], self.lookback, self.horizon)

    def _fit_model(self, train: Windows, val: Windows) -> _WindowModel:
        if self.model == "ridge":
            return RidgeForecaster().fit(train.X, train.Y, validation=(val.X, val.Y))
        if self.model == "seasonal":
            return SeasonalNaive(self.period).fit(train.X, train.Y)
        return Persistence().fit(train.X, train.Y)

    def _recent(self, history: Array) -> Array:
        values = _as_rows(history, "history")
        if values.shape[1] != self.n_channels_ or len(values) < self.lookback:
            raise InvalidData(
                f"history has shape {values.shape}; expected (rows >= {self.lookback}, "
                f"{self.n_channels_}) as fitted"
            )
        return values[-self.lookback :]

    def _unscale(self, values: Array) -> Array:
        assert self.scaler_.mean_ is not None
        assert self.scaler_.scale_ is not None
        out: Array = values * self.scaler_.scale_ + self.scaler_.mean_
        return out


def _split(rows: int) -> tuple[tuple[int, int], ...]:
    """Train, validation and calibration row ranges of ``rows`` rows (:data:`SPLIT_FRACTIONS`)."""
    train_stop = int(rows * SPLIT_FRACTIONS[0])
    val_stop = int(rows * (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]))
    return (0, train_stop), (train_stop, val_stop), (val_stop, rows)


def _as_rows(values: Array, name: str) -> Array:
    """``values`` as a float (rows, channels) array; 1-D becomes one channel."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise InvalidData(f"{name} has shape {array.shape}; expected (time, channels) or (time,)")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InvalidData(f"{name} holds {bad} non-finite values; expected finite numbers")
    return array


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
