"""The :class:`Forecaster` contract: ``fit(history)``, ``predict(horizon)`` -> point + intervals.

A :class:`Forecaster` wraps one window model (:class:`~iotml.forecast.RidgeForecaster`,
:class:`~iotml.forecast.SeasonalNaive`, :class:`~iotml.forecast.Persistence`, or the
:class:`~iotml.forecast.neural.NeuralForecaster` with the ``nn`` extra) and a
:class:`~iotml.forecast.SplitConformal` calibration per interval level, for one series or
many channels at once. ``fit`` cuts the history in time order into three parts
(:data:`SPLIT_FRACTIONS`):

* **train**, the first 60 % of the rows: the per-channel standardisation statistics and the
  window model's weights come from these rows only;
* **validation**, the next 20 %: the ridge penalty is chosen on its windows and the neural
  model stops training when their error stops falling (the naive models ignore it);
* **calibration**, the last 20 %: the fitted model forecasts its windows and the absolute
  errors set the interval widths, per lead time and channel.

Validation and calibration windows start ``lookback`` rows before their part, so every
target row of a window lies in that part and no part is scored on rows a model learnt from.
Intervals are computed in standardised units and mapped back with the training statistics.

The neural model reads the calendar: each window's position in a cycle of ``period`` rows
(a day, for ``period`` = rows per day). With ``timestamps`` the position is the time of
day; without, it is counted from the history's first row, and ``predict`` can only continue
the fit history.
"""

from __future__ import annotations

__all__ = ["MODELS", "SPLIT_FRACTIONS", "Forecast", "Forecaster"]

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt

from iotml.errors import ConfigError, InvalidData
from iotml.forecast.baselines import Persistence, RidgeForecaster, SeasonalNaive
from iotml.forecast.intervals import SplitConformal
from iotml.forecast.windows import Scaler, Windows, phases, windows

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Stamps = npt.NDArray[np.datetime64]
MODELS = ("neural", "persistence", "ridge", "seasonal")
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
        validation), ``"neural"`` (extra ``nn``; the ridge plus a daily cycle and an MLP,
        early-stopped on validation), ``"seasonal"`` (repeat the last ``period`` rows) or
        ``"persistence"``.
    lookback, horizon
        Rows of history read per forecast and steps forecast.
    levels
        Nominal coverages of the intervals, each strictly between 0 and 1.
    period
        Season length in rows for ``"seasonal"`` (it must not exceed ``lookback``) and the
        calendar cycle of ``"neural"`` (rows per day, for a daily cycle).
    seed
        Seed of the neural model's weights and sample order.

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
        seed: int = 0,
    ) -> None:
        self.model = model
        self.lookback = lookback
        self.horizon = horizon
        self.levels = levels
        self.period = period
        self.seed = seed

    def fit(
        self,
        history: Array,
        timestamps: Stamps | None = None,
        covariates: Array | None = None,
    ) -> Self:
        """Standardise, fit the window model and calibrate the intervals on ``history``.

        ``history`` is ``(time, channels)`` or 1-D (one channel), oldest row first;
        ``timestamps`` (one per row, regular) give the neural model the time of day, and
        ``covariates`` (one row per history row, e.g. outdoor temperature) are read by the
        neural model over each window, beside the history (past values only).
        """
        self._check_params()
        values = _as_rows(history, "history")
        train, val, calib = self._parts(len(values))
        self.freq_ = None if timestamps is None else _regular(timestamps, len(values))
        phase = self._row_phases(len(values), timestamps)
        self.scaler_ = Scaler().fit(values[slice(*train)])
        series = self.scaler_.transform(values)
        extra = self._fit_covariates(covariates, len(values), train)
        self.model_ = self._fit_model(series, phase, extra, train, val)
        self.held_out_: dict[str, tuple[Array, Array]] = {}
        for name, part in (("validation", val), ("calibration", calib)):
            w = self._windows(series, part)
            first = self._first(phase, part, len(w.X))
            self.held_out_[name] = (w.Y, self._predict(w.X, first, self._exog(extra, part)))
        truth, predicted = self.held_out_["calibration"]
        self.conformal_ = {
            level: SplitConformal(alpha=1.0 - level).fit(truth, predicted) for level in self.levels
        }
        self.last_ = values[-self.lookback :].copy()
        self.last_covariates_ = None if extra is None else extra[-self.lookback :].copy()
        self.next_phase_ = int((phase[-1] + 1) % self.period)
        self.n_channels_ = values.shape[1]
        return self

    def held_out(self) -> dict[str, tuple[Array, Array]]:
        """Targets and forecasts ``(windows, horizon, channels)`` in the history's units on
        the ``"validation"`` and ``"calibration"`` parts of the fit history."""
        return {
            name: (self._unscale(y), self._unscale(p)) for name, (y, p) in self.held_out_.items()
        }

    def predict(
        self,
        horizon: int | None = None,
        history: Array | None = None,
        timestamps: Stamps | None = None,
        covariates: Array | None = None,
    ) -> Forecast:
        """Forecast the ``horizon`` (default: the fitted one) rows after ``history``.

        Only the last ``lookback`` rows of ``history`` are read; by default, those of the
        fit history. The neural model also needs ``history``'s ``timestamps`` when it was
        fitted with timestamps (and cannot forecast a new history when it was not), and
        the ``covariates`` over ``history`` when it was fitted with covariates.
        """
        if not hasattr(self, "model_"):
            raise ConfigError("Forecaster is not fitted; call fit(history) first")
        steps = self.horizon if horizon is None else horizon
        if not _is_int(steps) or not 1 <= steps <= self.horizon:
            raise ConfigError(f"horizon is {horizon!r}; expected 1 to {self.horizon} (as fitted)")
        rows = self.last_ if history is None else self._recent(history)
        phase = self.next_phase_ if history is None else self._next_phase(timestamps, len(rows))
        window = self.scaler_.transform(rows)[None]
        exog = self._recent_covariates(history, covariates)
        point = self._predict(window, np.array([phase]), exog)[0, :steps]
        lower, upper = {}, {}
        for level in self.conformal_:
            lower[level], upper[level] = self.interval(point, level, scaled=True)
        return Forecast(self._unscale(point), lower, upper)

    def interval(self, point: Array, level: float, scaled: bool = False) -> tuple[Array, Array]:
        """Lower and upper bounds, in the history's units, around forecasts ``point``.

        ``point`` is ``(..., horizon, channels)`` in the history's units, or standardised
        with ``scaled=True``; ``level`` is one of the fitted ``levels``.
        """
        if level not in self.conformal_:
            raise ConfigError(f"level is {level!r}; expected one of {tuple(self.conformal_)}")
        assert self.scaler_.mean_ is not None
        assert self.scaler_.scale_ is not None
        z = point if scaled else (point - self.scaler_.mean_) / self.scaler_.scale_
        low, high = self.conformal_[level].interval(z)
        return self._unscale(low), self._unscale(high)

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

    def _fit_covariates(
        self, covariates: Array | None, rows: int, train: tuple[int, int]
    ) -> Array | None:
        """The covariates standardised with their training rows' statistics."""
        if covariates is None:
            self.covariate_scaler_ = None
            return None
        if self.model != "neural":
            raise ConfigError(f"covariates are read by the neural model only, not {self.model!r}")
        extra = _as_rows(covariates, "covariates")
        if len(extra) != rows:
            raise InvalidData(f"covariates have {len(extra)} rows; expected {rows}, as history")
        self.covariate_scaler_ = Scaler().fit(extra[slice(*train)])
        return self.covariate_scaler_.transform(extra)

    def _exog(self, extra: Array | None, part: tuple[int, int]) -> Array | None:
        return None if extra is None else self._windows(extra, part).X

    def _recent_covariates(self, history: Array | None, covariates: Array | None) -> Array | None:
        if self.covariate_scaler_ is None:
            if covariates is not None:
                raise ConfigError("the model was fitted without covariates; give none")
            return None
        if history is None and covariates is None:
            assert self.last_covariates_ is not None
            return self.last_covariates_[None]
        rows = None if covariates is None else _as_rows(covariates, "covariates")
        if rows is None or len(rows) < self.lookback:
            raise InvalidData(
                f"the model reads {self.lookback} rows of covariates beside the history; "
                f"got {0 if rows is None else len(rows)}"
            )
        recent: Array = self.covariate_scaler_.transform(rows[-self.lookback :])[None]
        return recent

    def _fit_model(
        self,
        series: Array,
        phase: IntArray,
        extra: Array | None,
        train_part: tuple[int, int],
        val_part: tuple[int, int],
    ) -> Any:
        train, val = self._windows(series, train_part), self._windows(series, val_part)
        if self.model == "neural":
            from iotml.errors import require_extra

            neural = require_extra("iotml.forecast.neural", "nn")
            model = neural.NeuralForecaster(period=self.period, seed=self.seed)
            return model.fit(
                *train, validation=(val.X, val.Y),
                phase=self._first(phase, train_part, len(train.X)),
                val_phase=self._first(phase, val_part, len(val.X)),
                exog=self._exog(extra, train_part), val_exog=self._exog(extra, val_part),
            )  # fmt: skip
        if self.model == "ridge":
            return RidgeForecaster().fit(train.X, train.Y, validation=(val.X, val.Y))
        if self.model == "seasonal":
            return SeasonalNaive(self.period).fit(train.X, train.Y)
        return Persistence().fit(train.X, train.Y)

    def _predict(
        self,
        X: Array,  # noqa: N803 - window array
        phase: IntArray,
        exog: Array | None = None,
    ) -> Array:
        if self.model == "neural":
            out: Array = self.model_.predict(X, phase=phase, exog=exog)
            return out
        model: _WindowModel = self.model_
        return model.predict(X)

    def _row_phases(self, rows: int, timestamps: Stamps | None) -> IntArray:
        """Each row's position in the cycle: from the clock, or counted from row 0."""
        if timestamps is None or self.freq_ is None:
            return np.arange(rows, dtype=np.int64) % self.period
        return phases(np.asarray(timestamps), self.freq_, self.period)

    def _first(self, phase: IntArray, part: tuple[int, int], count: int) -> IntArray:
        """Phases of the first forecast rows of the ``count`` windows of ``part``."""
        first = max(part[0] - self.lookback, 0) + self.lookback
        return phase[first : first + count]

    def _next_phase(self, timestamps: Stamps | None, rows: int) -> int:
        if self.model != "neural":
            return 0
        if self.freq_ is None or timestamps is None or len(timestamps) < rows:
            raise ConfigError(
                "the neural model reads the time of day: fit it with timestamps and give "
                "predict the history's timestamps"
            )
        last = phases(np.asarray(timestamps)[-1:], self.freq_, self.period)
        return int((last[0] + 1) % self.period)

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


def _regular(timestamps: Stamps, rows: int) -> timedelta:
    """The sampling interval of ``timestamps`` (one per row, strictly increasing, regular)."""
    stamps = np.asarray(timestamps).astype("datetime64[us]")
    if stamps.shape != (rows,):
        raise InvalidData(f"timestamps have shape {stamps.shape}; expected ({rows},), one per row")
    steps = np.diff(stamps.astype(np.int64))
    if not len(steps) or steps.min() <= 0 or steps.min() != steps.max():
        raise InvalidData("timestamps are not strictly increasing at one regular interval")
    return timedelta(microseconds=int(steps[0]))


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
