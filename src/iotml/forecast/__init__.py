"""Forecasting: windows over a split, baselines, metrics and the ETT benchmark protocol.

Baselines work on window arrays ``X`` (n, lookback, channels) -> ``(n, horizon,
channels)``: :class:`Persistence`, :class:`SeasonalNaive` and the strong
:class:`RidgeForecaster` (channel-independent, last-value normalised, penalty chosen on
validation). :func:`evaluate_ett` runs the standard protocol on any ETT-format file.

:class:`Forecaster` is the user-facing contract, ``fit(history)`` then ``predict()`` ->
:class:`Forecast` (point and intervals in the history's units), with
:class:`SplitConformal` intervals calibrated on the history's last part.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_ALPHAS",
    "Forecast",
    "Forecaster",
    "Persistence",
    "RidgeForecaster",
    "Scaler",
    "SeasonalNaive",
    "SplitConformal",
    "Windows",
    "coverage",
    "evaluate_ett",
    "evaluate_series",
    "mae",
    "mse",
    "split_windows",
    "window_errors",
    "windows",
]

from iotml.forecast.baselines import DEFAULT_ALPHAS, Persistence, RidgeForecaster, SeasonalNaive
from iotml.forecast.evaluate import evaluate_ett, evaluate_series
from iotml.forecast.forecaster import Forecast, Forecaster
from iotml.forecast.intervals import SplitConformal, coverage
from iotml.forecast.metrics import mae, mse, window_errors
from iotml.forecast.windows import Scaler, Windows, split_windows, windows
