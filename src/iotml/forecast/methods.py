"""Every forecasting method fitted once on one series, ready to be scored on its test part.

:func:`fit_methods` standardises a series with its training rows' statistics and fits
persistence, seasonal-naive (daily, weekly), the ridge and, when given, the neural model
on the windows of a :class:`~iotml.datasets.ett.Split`; the evaluate and plot commands and
the benchmarks score what it returns with :mod:`iotml.forecast.scoring`.
"""

# ruff: noqa: N803 - X and Y are the window arrays

from __future__ import annotations

__all__ = ["Methods", "check_lengths", "fit_methods"]

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from iotml.datasets.ett import Split
from iotml.errors import ConfigError, InvalidData
from iotml.forecast.baselines import DEFAULT_ALPHAS, Persistence, RidgeForecaster, SeasonalNaive
from iotml.forecast.scoring import Predict, WindowInputs
from iotml.forecast.windows import Scaler, Windows, phases, split_windows

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DAY, WEEK = timedelta(days=1), timedelta(days=7)
_PARTS = ("training", "validation", "test")


def check_lengths(split: Split, lookback: int, horizon: int) -> None:
    """Raise :class:`ConfigError` unless each part of ``split`` holds at least one window.

    >>> check_lengths(Split((0, 200), (60, 150), (110, 300)), lookback=40, horizon=60)
    Traceback (most recent call last):
    ...
    iotml.errors.ConfigError: lookback 40 + horizon 60 = 100 rows, but the validation part ...
    """
    if lookback < 1 or horizon < 1:
        raise ConfigError(f"lookback={lookback!r}, horizon={horizon!r}; expected both >= 1")
    for name, (start, stop) in zip(_PARTS, split, strict=True):
        if lookback + horizon > stop - start:
            raise ConfigError(
                f"lookback {lookback} + horizon {horizon} = {lookback + horizon} rows, but the "
                f"{name} part has {stop - start} rows; expected lookback + horizon <= "
                f"{stop - start}"
            )


@dataclass
class Methods:
    """Forecasting methods fitted on one standardised series, ready to score on its test part.

    ``predict[name]`` is method ``name``'s forecast function and ``test[name]`` its test
    windows: every method has the same targets, but the seasonal-naive ones read
    ``max(lookback, period)`` rows of history. ``val`` holds the validation windows at
    ``lookback`` (interval calibration), ``info[name]`` what fitting recorded (the ridge's
    ``alpha``, ``val_mse`` and ``fit_s``; the neural model's ``fit_s``, ``epochs``,
    ``best_epoch`` and ``val_loss``). ``val_inputs`` and ``test_inputs`` are the
    :class:`~iotml.forecast.scoring.WindowInputs` of the validation and test windows
    (calendar phases, covariates): every ``predict[name]`` takes ``(X, inputs)`` and the
    baselines ignore ``inputs``.
    """

    scaler: Scaler
    val: Windows
    val_inputs: WindowInputs
    test_inputs: WindowInputs
    predict: dict[str, Predict] = field(default_factory=dict)
    test: dict[str, Windows] = field(default_factory=dict)
    info: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(
        self, name: str, predict: Predict, test: Windows, reads_inputs: bool = False, **info: float
    ) -> None:
        """Register ``name``: ``predict(X, inputs)`` if ``reads_inputs``, else ``predict(X)``."""

        def either(X: Array, inputs: WindowInputs | None = None) -> Array:
            out: Array = predict(X, inputs) if reads_inputs else predict(X)
            return out

        self.predict[name], self.test[name], self.info[name] = either, test, info


def fit_methods(
    values: Array,
    freq: timedelta,
    split: Split,
    lookback: int,
    horizon: int,
    *,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
    neural: Any = None,
    progress: Callable[..., None] | None = None,
    timestamps: npt.NDArray[np.datetime64] | None = None,
    covariates: Array | None = None,
) -> Methods:
    """Standardise ``values`` with training statistics and fit every method on its windows.

    Methods: persistence, seasonal-naive daily and weekly (when the test part allows the
    history), the ridge (penalty on validation, weights on training) and, when given,
    ``neural``: the :class:`~iotml.forecast.neural.NeuralForecaster` (or any window model
    with its ``fit`` and ``predict``). With ``timestamps`` (one per row of ``values``) it is
    given each window's time of day; with ``covariates`` (rows, k), standardised with the
    training rows' statistics too, their windows; ``progress`` goes to its ``fit``.
    """
    check_lengths(split, lookback, horizon)
    scaler = Scaler().fit(values[slice(*split.train)])
    series = scaler.transform(values)
    train, val, test = (split_windows(series, part, lookback, horizon) for part in split)
    rows_per_day = DAY // freq if DAY % freq == timedelta(0) else 0
    inputs = _window_inputs(values, split, lookback, horizon, timestamps, freq, rows_per_day,
                            covariates)  # fmt: skip
    methods = Methods(scaler, val, inputs[1], inputs[2])
    methods.add("persistence", Persistence().fit(*test).predict, test)
    for name, period in (("seasonal_24h", DAY // freq), ("seasonal_168h", WEEK // freq)):
        seasonal = _seasonal_windows(series, split, period, lookback, horizon)
        if seasonal is not None:
            methods.add(name, SeasonalNaive(period).fit(*seasonal).predict, seasonal)
    ridge = RidgeForecaster(alphas)
    fit_s = _timed(lambda: ridge.fit(*train, validation=(val.X, val.Y)))
    alpha = ridge.alpha_
    methods.add(
        "ridge", ridge.predict, test, alpha=alpha, val_mse=ridge.val_mse_[alpha], fit_s=fit_s
    )
    if neural is not None:
        _fit_neural(methods, neural, train, val, test, inputs, rows_per_day, progress)
    return methods


def _fit_neural(
    methods: Methods,
    neural: Any,
    train: Windows,
    val: Windows,
    test: Windows,
    inputs: tuple[WindowInputs, ...],
    rows_per_day: int,
    progress: Callable[..., None] | None,
) -> None:
    fit_in, val_in = inputs[0], inputs[1]
    if fit_in.phase is not None:
        neural.period = rows_per_day
    fit_s = _timed(
        lambda: neural.fit(
            *train, validation=(val.X, val.Y), progress=progress,
            phase=fit_in.phase, val_phase=val_in.phase, exog=fit_in.exog, val_exog=val_in.exog,
        )
    )  # fmt: skip

    def forecast(X: Array, given: WindowInputs) -> Array:
        out: Array = neural.predict(X, phase=given.phase, exog=given.exog)
        return out

    info = {"fit_s": fit_s, "epochs": neural.epochs_, "best_epoch": neural.best_epoch_}
    methods.add("neural", forecast, test, reads_inputs=True, **info, val_loss=neural.val_loss_)


def _window_inputs(
    values: Array,
    split: Split,
    lookback: int,
    horizon: int,
    timestamps: npt.NDArray[np.datetime64] | None,
    freq: timedelta,
    rows_per_day: int,
    covariates: Array | None,
) -> tuple[WindowInputs, ...]:
    """Per part: each window's time of day (of its first forecast row) and covariates."""
    rows = len(values)
    phase = None
    if timestamps is not None and rows_per_day:
        if len(timestamps) != rows:
            raise InvalidData(f"{len(timestamps)} timestamps for {rows} rows; expected one each")
        phase = phases(timestamps, freq, rows_per_day)
    exog = None
    if covariates is not None:
        if covariates.ndim != 2 or len(covariates) != rows:
            raise InvalidData(f"covariates have shape {covariates.shape}; expected ({rows}, k)")
        exog = Scaler().fit(covariates[slice(*split.train)]).transform(covariates)
    out = []
    for start, stop in split:
        count = stop - start - lookback - horizon + 1
        first = start + lookback
        out.append(
            WindowInputs(
                None if phase is None else phase[first : first + count],
                None if exog is None else split_windows(exog, (start, stop), lookback, horizon).X,
            )
        )
    return tuple(out)


def _seasonal_windows(
    series: Array, split: Split, period: int, lookback: int, horizon: int
) -> Windows | None:
    """The test targets with ``max(lookback, period)`` rows of history; None if none fit."""
    if period < 1:
        return None
    history = max(lookback, period)
    start, stop = split.test
    count = stop - start - lookback - horizon + 1
    first = stop - count - history - horizon + 1
    if first < 0:
        return None
    return split_windows(series, (first, stop), history, horizon)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start
